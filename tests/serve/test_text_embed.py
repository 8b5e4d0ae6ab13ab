"""``serve: {kind: text}``: MiniLM on POST /text/embed, and environment overlays of the serve blocks."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kit.errors import ConfigError
from kit.serve.config import ServeConfig, TextConfig, load_serve_config

ROOT = Path(__file__).resolve().parents[2]


def _project_models(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "models", tmp_path / "models", ignore=shutil.ignore_patterns("weights"))
    (tmp_path / "models" / "weights").mkdir()
    (tmp_path / "models" / "weights" / "oskit-clip-tiny.pt").write_bytes(b"stand-in")
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    return tmp_path / "models"


def test_an_environment_overlay_can_add_a_serve_block(tmp_path: Path) -> None:
    models = _project_models(tmp_path)
    assert load_serve_config(models, device="cpu").text is None
    (tmp_path / "environments" / "remote-text.yaml").write_text(
        "models:\n  text:\n    serve:\n      kind: text\n      source: sentence-transformers/all-MiniLM-L6-v2\n")
    cfg = load_serve_config(models, device="cpu", env="remote-text")
    assert cfg.text == TextConfig(source="sentence-transformers/all-MiniLM-L6-v2")
    assert cfg.clip is not None and cfg.ocr is not None  # the rest of the project is unchanged
    with pytest.raises(ConfigError, match="unknown environment 'nope'"):
        load_serve_config(models, device="cpu", env="nope")


def test_text_embed_answers_minilm_vectors_in_the_default_embedding_shape(serve_client: Any) -> None:
    asyncio.run(_text_embed(serve_client))


async def _text_embed(serve_client: Any) -> None:
    from kit.models.export import load_sentence_transformer, resolve_source

    config = ServeConfig(text=TextConfig(), device="cpu", warmup=False)
    async with serve_client(config) as (client, _):
        res = await client.post("/text/embed", json={"input": ["a red circle", "HOTEL 42"]})
        assert res.status_code == 200
        vectors = np.array(res.json())
        assert vectors.shape == (2, 384)
        ref = load_sentence_transformer(resolve_source("sentence-transformers/all-MiniLM-L6-v2")).encode(
            ["a red circle", "HOTEL 42"], normalize_embeddings=True)
        assert np.allclose(vectors, ref, atol=1e-5)
        alone = (await client.post("/text/embed", json=["HOTEL 42"])).json()[0]
        assert np.allclose(alone, vectors[1], atol=1e-5)  # a bare list works too; batching changes ~1e-7
        bad = await client.post("/text/embed", json={"input": [1]})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
        assert (await client.get("/health")).json()["models"]["text"] == {
            "source": "sentence-transformers/all-MiniLM-L6-v2", "dimension": 384}
        # CLIP is not configured here: its endpoints say so rather than answer
        assert (await client.post("/clip/embed-texts", json=["x"])).status_code == 503
