"""The model server in-process: endpoint shapes, the one error shape, limits, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from kit.serve.config import ClipConfig, ServeConfig, TagsConfig
from _serve_helpers import b64, image_bytes


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def config(tiny_clip: str) -> ServeConfig:
    return ServeConfig(clip=ClipConfig(model=tiny_clip), tags=TagsConfig(), device="cpu", max_body_bytes=200_000)


def test_health_describes_models(config: ServeConfig, serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(config) as (c, _):
            r = await c.get("/health")
            assert r.status_code == 200
            body = r.json()
            assert body["status"] == "ok" and body["preprocess"] == "oskit-image-v1"
            assert body["models"]["clip"]["dimension"] == 64
            assert body["models"]["clip"]["random_weights"] is True
            assert body["models"]["tags"]["size"] == 44  # "!plain" competes but is not a tag
            assert body["models"]["captions"] == {"configured": False}
            assert "ocr" not in body["models"]

    run(go())


def test_clip_embed_text_image_and_both(config: ServeConfig, serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(config) as (c, app):
            t = (await c.post("/clip/embed", json={"inputText": "a red circle", "inputImage": None})).json()["embedding"]
            img = image_bytes("red")
            i = (await c.post("/clip/embed", json={"inputText": None, "inputImage": b64(img)})).json()["embedding"]
            both = (await c.post("/clip/embed", json={"inputText": "a red circle", "inputImage": b64(img)})).json()
            # ML Commons sends an image-only doc's null text as the string "null": it must not count as text
            nulled = (await c.post("/clip/embed", json={"inputText": "null", "inputImage": b64(img)})).json()
            assert np.allclose(nulled["embedding"], i, atol=1e-6)
            t, i, b = np.array(t), np.array(i), np.array(both["embedding"])
            assert t.shape == i.shape == b.shape == (64,)
            for v in (t, i, b):
                assert abs(np.linalg.norm(v) - 1) < 1e-5
            expect = (t + i) / np.linalg.norm(t + i)
            assert np.allclose(b, expect, atol=1e-5)
            # the same vectors as the engine offline, with the same preprocessing
            from kit.serve.images import preprocess

            engine = app.state.runtime.clip
            offline = engine.embed_pixels([preprocess(img, engine.image_size)])[0]
            assert np.allclose(i, offline, atol=1e-5)
            assert np.allclose(t, engine.embed_texts(["a red circle"])[0], atol=1e-5)
            # the batch text endpoint (default.embedding contract) gives the same text vectors
            r = await c.post("/clip/embed-texts", json={"input": ["a red circle", "blue"]})
            assert r.status_code == 200 and len(r.json()) == 2
            assert np.allclose(r.json()[0], t, atol=1e-5)
            r2 = await c.post("/clip/embed-texts", json=["a red circle"])
            assert np.allclose(r2.json()[0], t, atol=1e-5)

    run(go())


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "bad_request"),
        ({"inputText": None, "inputImage": None}, 400, "bad_request"),
        ({"inputText": 5}, 400, "bad_request"),
        ({"inputImage": "%%%not base64%%%"}, 400, "bad_image"),
        ({"inputImage": b64(b"hello, not an image")}, 400, "bad_image"),
        ({"inputImage": b64(image_bytes()[:200])}, 400, "bad_image"),
        ({"inputImage": b64(image_bytes(fmt="ICO"))}, 400, "unsupported_image"),
        ([1, 2], 400, "bad_request"),
    ],
)
def test_clip_embed_errors(config: ServeConfig, serve_client: Any, body: Any, status: int, code: str) -> None:
    async def go() -> None:
        async with serve_client(config) as (c, _):
            r = await c.post("/clip/embed", json=body)
            assert r.status_code == status, r.text
            err = r.json()["error"]
            assert err["code"] == code and err["status"] == status and err["message"]

    run(go())


def test_error_shape_everywhere(config: ServeConfig, serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(config) as (c, _):
            cases = [
                (await c.post("/clip/embed", content=b"{not json"), 400, "bad_json"),
                (await c.post("/clip/embed", content=b""), 400, "bad_request"),
                (await c.post("/clip/embed", content=b"x" * 300_000), 413, "request_too_large"),
                (await c.get("/clip/embed"), 405, "method_not_allowed"),
                (await c.get("/nowhere"), 404, "not_found"),
                (await c.post("/ocr", json={"inputImage": b64(image_bytes())}), 503, "not_configured"),
                (await c.post("/clip/embed-texts", json={"input": [1]}), 400, "bad_request"),
                (await c.post("/clip/embed-texts", json={"input": []}), 400, "bad_request"),
                (await c.post("/tags", json={}), 400, "bad_request"),
                (await c.post("/captions", json={"inputImage": b64(image_bytes())}), 503, "captions_not_configured"),
            ]
            for r, status, code in cases:
                assert r.status_code == status, (code, r.text)
                assert r.json() == {"error": {"code": code, "message": r.json()["error"]["message"], "status": status}}

    run(go())


def test_image_too_many_pixels_is_413(tiny_clip: str, serve_client: Any) -> None:
    cfg = ServeConfig(clip=ClipConfig(model=tiny_clip), device="cpu", max_image_pixels=100 * 100)
    async def go() -> None:
        async with serve_client(cfg) as (c, _):
            r = await c.post("/clip/embed", json={"inputImage": b64(image_bytes(size=(200, 200)))})
            assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_large"

    run(go())


def test_tags_shape(config: ServeConfig, serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(config) as (c, _):
            r = await c.post("/tags", json={"inputImage": b64(image_bytes("blue"))})
            assert r.status_code == 200
            body = r.json()
            assert set(body) == {"tags", "scores"}
            assert len(body["scores"]) == 8  # top_k candidates with their probabilities
            assert all(0 <= s <= 1 for s in body["scores"].values())
            assert all(t in body["scores"] and body["scores"][t] >= 0.3 for t in body["tags"])
            assert "plain" not in body["scores"]

    run(go())


def test_metrics_prometheus_text(config: ServeConfig, serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(config) as (c, _):
            await c.post("/clip/embed", json={"inputText": "x"})
            await c.post("/clip/embed", json={})
            r = await c.get("/metrics")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
            text = r.text
            assert 'oskit_serve_requests_total{endpoint="/clip/embed",status="200"} 1' in text
            assert 'oskit_serve_requests_total{endpoint="/clip/embed",status="400"} 1' in text
            assert '# TYPE oskit_serve_request_seconds histogram' in text
            assert 'oskit_serve_request_seconds_count{endpoint="/clip/embed"} 2' in text
            assert 'oskit_serve_batch_size_count{batcher="clip-text"} 1' in text
            assert 'oskit_serve_queue_depth{batcher="clip-image"} 0' in text

    run(go())
