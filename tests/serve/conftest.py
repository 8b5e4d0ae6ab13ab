"""Fixtures for the model-server tests: a tiny random-weight open_clip config (tests only) and an
in-process app driven through httpx.ASGITransport with its lifespan entered."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import httpx
import pytest

TINY = "oskit-test-tiny"
TINY_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register a tiny open_clip architecture (random weights) and return its name."""
    import open_clip

    d = tmp_path_factory.mktemp("clipcfg")
    (d / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    if TINY not in open_clip.list_models():
        open_clip.add_model_config(d / f"{TINY}.json")
    return TINY


@pytest.fixture
def serve_client() -> Callable[..., Any]:
    """``async with serve_client(config) as (client, app): ...``"""
    import contextlib

    from kit.serve.app import create_app

    @contextlib.asynccontextmanager
    async def make(config: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        app = create_app(config)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as c:
                yield c, app

    return make
