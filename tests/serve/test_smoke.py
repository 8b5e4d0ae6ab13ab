"""One real-socket smoke test: uvicorn serving create_app, readiness polling, clean shutdown."""

from __future__ import annotations

import httpx
import numpy as np

from _serve_helpers import ThreadedServer, b64, image_bytes
from kit.serve.app import create_app
from kit.serve.config import ClipConfig, ServeConfig


def test_real_socket(tiny_clip: str) -> None:
    app = create_app(ServeConfig(clip=ClipConfig(model=tiny_clip), device="cpu"))
    with ThreadedServer(app) as url:
        assert httpx.get(url + "/health").json()["status"] == "ok"
        r = httpx.post(url + "/clip/embed", json={"inputText": None, "inputImage": b64(image_bytes())})
        assert r.status_code == 200 and abs(np.linalg.norm(r.json()["embedding"]) - 1) < 1e-5
        r = httpx.post(url + "/clip/embed", content=b"[", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_json"
    assert app.state.runtime.ready is False  # lifespan shutdown ran
