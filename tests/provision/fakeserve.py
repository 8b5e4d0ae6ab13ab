"""A stand-in for `oskit serve` speaking its HTTP contract (docs/ARCHITECTURE.md), for provisioning tests.

Deterministic outputs (hash-seeded unit vectors), no models loaded: provisioning tests check what the
kit sends and how it converges, not embedding quality (the model server has its own tests).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def _vector(seed: str, dim: int) -> list[float]:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little"))
    v = rng.standard_normal(dim)
    return [float(x) for x in v / np.linalg.norm(v)]


def create_app(calls: list[str] | None = None) -> Starlette:
    log = calls if calls is not None else []

    async def clip_embed(request: Request) -> JSONResponse:
        body = await request.json()
        log.append("/clip/embed")
        if not isinstance(body, dict) or (body.get("inputText") is None and body.get("inputImage") is None):
            return JSONResponse({"error": {"code": "bad_request", "message": "no input", "status": 400}}, 400)
        return JSONResponse({"embedding": _vector(f"{body.get('inputText')}|{body.get('inputImage')}", 512)})

    async def ocr(request: Request) -> JSONResponse:
        await request.json()
        log.append("/ocr")
        return JSONResponse({"text": "HELLO", "lines": [{"text": "HELLO", "box": [[0, 0], [1, 0], [1, 1], [0, 1]],
                                                         "confidence": 0.9}]})

    async def tags(request: Request) -> JSONResponse:
        await request.json()
        log.append("/tags")
        return JSONResponse({"tags": ["gray", "square"], "scores": {"gray": 0.4, "square": 0.3}})

    async def hashes(request: Request) -> JSONResponse:
        await request.json()
        log.append("/hash")
        return JSONResponse({"phash": "8000000000000000", "colour": "00000000700", "mean": "808080", "phash_crops": ["8000000000000000", "8000000000000000"], "phash_probes": [], "hash_version": "oskit-hash-v2"})

    async def captions(request: Request) -> JSONResponse:
        await request.json()
        log.append("/captions")
        return JSONResponse({"caption": "a gray square"})

    async def embed_texts(request: Request) -> JSONResponse:
        body = await request.json()
        log.append("/embed-texts")
        texts = body.get("input") if isinstance(body, dict) else body
        return JSONResponse([_vector(str(t), 384) for t in texts or []])

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "models": {}})

    return Starlette(routes=[Route("/clip/embed", clip_embed, methods=["POST"]), Route("/ocr", ocr, methods=["POST"]),
                             Route("/tags", tags, methods=["POST"]), Route("/captions", captions, methods=["POST"]),
                             Route("/hash", hashes, methods=["POST"]),
                             Route("/embed-texts", embed_texts, methods=["POST"]),
                             Route("/text/embed", embed_texts, methods=["POST"]),
                             Route("/health", health)])


class FakeServe:
    """uvicorn in a daemon thread on a free loopback port."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def app(self) -> Any:
        """The ASGI app it serves (stand-ins with other answers override this)."""
        return create_app(self.calls)

    def start(self) -> str:
        import uvicorn

        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so; without it every
        # keep-alive response waits ~40 ms (Nagle + delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake model server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
