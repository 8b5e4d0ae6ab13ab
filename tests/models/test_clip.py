"""The offline CLIP: architecture registration, the committed weights (loaded through open_clip's
normal API, ranking held-out images well), the training library and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kit.models import synth

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "models" / "weights" / "oskit-clip-tiny.pt"
REPORT = ROOT / "models" / "weights" / "oskit-clip-tiny.train.json"


def test_register_oskit_configs_is_idempotent() -> None:
    from kit.models.clip_arch import register_oskit_configs

    assert register_oskit_configs() == ["oskit-clip-tiny"]
    assert register_oskit_configs() == ["oskit-clip-tiny"]
    assert open_clip.list_models().count("oskit-clip-tiny") == 1
    cfg = open_clip.get_model_config("oskit-clip-tiny")
    # 512-d like ViT-B-32, the standard tokenizer: swapping models is one line in models/clip.yaml
    assert cfg["embed_dim"] == 512
    assert cfg["text_cfg"]["context_length"] == 77 and cfg["text_cfg"]["vocab_size"] == 49408
    assert 64 <= cfg["vision_cfg"]["image_size"] <= 96


@pytest.fixture(scope="module")
def committed() -> tuple[Any, Any, Any]:
    from kit.models.clip_arch import register_oskit_configs

    torch.set_num_threads(2)
    register_oskit_configs()
    model, _, preprocess = open_clip.create_model_and_transforms("oskit-clip-tiny", pretrained=str(WEIGHTS))
    model.eval()
    return model, preprocess, open_clip.get_tokenizer("oskit-clip-tiny")


def test_committed_weights_size_and_report() -> None:
    assert WEIGHTS.is_file(), "models/weights/oskit-clip-tiny.pt is missing"
    assert WEIGHTS.stat().st_size <= 25 * 1024 * 1024
    doc = json.loads(REPORT.read_text())
    assert doc["weights_bytes"] == WEIGHTS.stat().st_size
    assert doc["model"] == "oskit-clip-tiny" and "config" in doc and doc["data"]["data_seed"] == doc["config"]["seed"]
    held = doc["held_out"]
    assert held["n_images"] >= 500
    for key in ("text_to_image", "image_to_text", "phone_photo_image_to_image"):
        assert set(held[key]) >= {"recall@1", "recall@5", "recall@10"}


def test_committed_weights_rank_held_out_images(committed: tuple[Any, Any, Any]) -> None:
    """~100 held-out images (a seed the committed report did not use): captions find their image,
    phone photos find their original."""
    from kit.models.train_clip import evaluate

    model, preprocess, tokenizer = committed
    es = synth.make_eval_set(100, seed=42, n_image_queries=100)
    m = evaluate(model, preprocess, tokenizer, es)
    assert m["text_to_image"]["recall@1"] >= 0.9, m
    assert m["text_to_image"]["recall@5"] >= 0.98, m
    assert m["phone_photo_image_to_image"]["recall@1"] >= 0.95, m
    assert m["attribute_query_map"]["word"] >= 0.5, m


def test_single_colour_words_retrieve_that_colour(committed: tuple[Any, Any, Any]) -> None:
    model, preprocess, tokenizer = committed
    scenes = [synth.make_scene(synth.EVAL_SEED_OFFSET + 777_000 + i) for i in range(60)]
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(synth.render(s)) for s in scenes]), normalize=True)
        txt = model.encode_text(tokenizer(["red", "blue", "striped"]), normalize=True)
    top = (txt @ img.T).topk(3, dim=1).indices.numpy()
    assert all(any(o.colour == "red" for o in scenes[i].objects) for i in top[0])
    assert all(any(o.colour == "blue" for o in scenes[i].objects) for i in top[1])
    assert all(any(o.texture == "striped" for o in scenes[i].objects) for i in top[2])


def test_trimmed_text_encoding_equals_open_clip(committed: tuple[Any, Any, Any]) -> None:
    from kit.models.train_clip import _encode_text

    model, _, tokenizer = committed
    tokens = tokenizer(["a large red circle on a striped gray background", "SALE"])
    with torch.no_grad():
        assert torch.allclose(_encode_text(model, tokens), model.encode_text(tokens), atol=1e-5)


def test_recall_and_average_precision() -> None:
    from kit.models.train_clip import _average_precision, _recall

    sim = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.0, 0.1, 0.2]])
    assert _recall(sim, (1, 2)) == {"recall@1": round(2 / 3, 4), "recall@2": 1.0}
    assert _average_precision(np.array([0.9, 0.8, 0.1]), np.array([True, False, True])) == pytest.approx((1 + 2 / 3) / 2)


def test_train_needs_a_budget(tmp_path: Path) -> None:
    from kit.errors import ModelError
    from kit.models.train_clip import TrainConfig, train

    with pytest.raises(ModelError, match="budget"):
        train(TrainConfig(minutes=None, steps=None), tmp_path)


@pytest.mark.slow
def test_train_clip_cli_writes_loadable_weights_and_report(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kit.cli.train_clip import train_clip

    out = tmp_path / "w"
    result = CliRunner().invoke(train_clip, ["--out", str(out), "--steps", "1", "--batch-size", "8",
                                             "--eval-images", "10", "--device", "cpu", "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["steps"] == 1 and doc["samples"] == 8
    report = json.loads((out / "oskit-clip-tiny.train.json").read_text())
    assert report["config"]["steps"] == 1 and report["device"] == "cpu"
    assert report["held_out"]["n_images"] == 10
    model, _, _ = open_clip.create_model_and_transforms("oskit-clip-tiny", pretrained=str(out / "oskit-clip-tiny.pt"))
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
