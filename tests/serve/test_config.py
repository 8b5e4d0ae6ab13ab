"""Reading the serve: blocks of model specs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kit.errors import ConfigError
from kit.serve.config import load_serve_config

ROOT = Path(__file__).resolve().parents[2]


def _write(d: Path, name: str, text: str) -> None:
    (d / name).write_text(text, encoding="utf-8")


def test_project_specs_parse(tmp_path: Path) -> None:
    """The default project's model specs, with a stand-in weights file next to them."""
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models, ignore=shutil.ignore_patterns("weights"))
    (models / "weights").mkdir()
    (models / "weights" / "oskit-clip-tiny.pt").write_bytes(b"stand-in")
    cfg = load_serve_config(models, device="cpu")
    assert cfg.clip is not None and cfg.clip.model == "oskit-clip-tiny"
    assert cfg.clip.pretrained == str((models / "weights" / "oskit-clip-tiny.pt").resolve())
    assert cfg.tags is not None and cfg.tags.vocabulary.name == "vocabulary.txt"
    assert cfg.ocr is not None
    assert cfg.captions.configured is False  # OSKIT_CAPTIONS_URL is not set in tests
    assert len(cfg.sources) == 5  # text.yaml has no serve: block
    assert cfg.hash is not None


def test_captions_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "captions.yaml", "serve:\n  kind: captions\n  endpoint: ${env:OSKIT_CAPTIONS_URL:-}\n")
    monkeypatch.setenv("OSKIT_CAPTIONS_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OSKIT_CAPTIONS_MODEL", "qwen-vl")
    monkeypatch.setenv("OSKIT_CAPTIONS_API_KEY", "secret")
    cfg = load_serve_config(tmp_path)
    assert cfg.captions.configured and cfg.captions.url == "http://127.0.0.1:9/v1" and cfg.captions.model == "qwen-vl"
    assert "secret" not in repr(cfg)  # the key is a SecretStr


def test_all_problems_at_once(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "serve:\n  kind: clip\n  open_clip: {model: ViT-B-32, pretrained: weights/nope.pt}\n")
    _write(tmp_path, "b.yaml", "serve:\n  kind: ocr\n  min_confidnce: 0.3\n")
    _write(tmp_path, "c.yaml", "serve:\n  kind: tags\n  vocabulary: missing.txt\n")
    _write(tmp_path, "d.yaml", "serve:\n  kind: clip\n  open_clip: {model: x}\n  preprocess: oskit-image-v0\n")
    _write(tmp_path, "e.yaml", "serve:\n  kind: sound\n")
    with pytest.raises(ConfigError) as info:
        load_serve_config(tmp_path)
    text = str(info.value)
    assert "a.yaml: serve: file not found" in text
    assert "b.yaml: serve.min_confidnce: Extra inputs are not permitted" in text
    assert "c.yaml: serve: file not found" in text and "missing.txt" in text
    assert "d.yaml: serve.preprocess: this server implements 'oskit-image-v1', not 'oskit-image-v0'" in text
    assert "e.yaml: serve" in text


def test_tags_must_share_the_clip_model(tmp_path: Path) -> None:
    _write(tmp_path, "clip.yaml", "serve:\n  kind: clip\n  open_clip: {model: ViT-B-32, pretrained: laion2b_s34b_b79k}\n")
    _write(tmp_path, "tags.yaml", "serve:\n  kind: tags\n  open_clip: {model: RN50}\n")
    with pytest.raises(ConfigError, match="one server loads one CLIP"):
        load_serve_config(tmp_path)


def test_no_serve_blocks(tmp_path: Path) -> None:
    _write(tmp_path, "text.yaml", "type: local_custom\n")
    with pytest.raises(ConfigError, match="no model spec has a serve: block"):
        load_serve_config(tmp_path)
    with pytest.raises(ConfigError, match="no such"):
        load_serve_config(tmp_path / "nope")


def test_missing_env_without_default(tmp_path: Path) -> None:
    _write(tmp_path, "clip.yaml", "serve:\n  kind: clip\n  open_clip: {model: '${env:OSKIT_CLIP_ARCH}'}\n")
    with pytest.raises(ConfigError, match="OSKIT_CLIP_ARCH is not set"):
        load_serve_config(tmp_path)


def test_config_travels_to_workers_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``oskit serve --workers N``: each uvicorn worker rebuilds the same config (API key included)."""
    from kit.serve.app import CONFIG_ENV, config_to_env, create_app_from_env
    from kit.serve.config import CaptionsConfig, ClipConfig, ServeConfig

    cfg = ServeConfig(clip=ClipConfig(model="ViT-B-32", pretrained="/w.pt"), device="cpu", torch_threads=2,
                      captions=CaptionsConfig(url="http://x/v1", model="m", api_key="sk-1"))
    monkeypatch.setenv(CONFIG_ENV, config_to_env(cfg))
    app = create_app_from_env()  # builds the app; models load only in its lifespan
    again = app.state.runtime.config
    assert again == cfg and again.captions.api_key.get_secret_value() == "sk-1"
    monkeypatch.delenv(CONFIG_ENV)
    from kit.errors import ServeError

    with pytest.raises(ServeError, match=CONFIG_ENV):
        create_app_from_env()
