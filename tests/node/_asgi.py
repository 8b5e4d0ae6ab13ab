"""A tiny synchronous client over httpx.ASGITransport: the node app in-process, no socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from kit.node.app import create_app


class AsgiNode:
    def __init__(self, data_dir: Path, **kwargs: Any) -> None:
        self.app = create_app(data_dir, **kwargs)
        self.engine = self.app.state.engine

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | str | None = None,
                params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        content: bytes | None = None
        if raw is not None:
            content = raw.encode() if isinstance(raw, str) else raw
        elif body is not None:
            content = json.dumps(body).encode()

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
                return await c.request(method, path, content=content, params=params,
                                       headers={"content-type": "application/json", **(headers or {})})

        return asyncio.run(go())

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        r = self.request(method, path, body, **kw)
        assert r.status_code < 300, (r.status_code, r.text)
        return r.json() if r.content else None

    def close(self) -> None:
        self.engine.close()
