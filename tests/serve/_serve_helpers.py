"""Helpers shared by the model-server tests (imported as a plain module)."""

from __future__ import annotations

import base64
import io
from typing import Any


def image_bytes(color: Any = "red", size: tuple[int, int] = (120, 90), fmt: str = "JPEG", **save: Any) -> bytes:
    from PIL import Image

    mode = "RGBA" if fmt == "PNG" and isinstance(color, tuple) and len(color) == 4 else "RGB"
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, fmt, **save)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """uvicorn on a free port in a thread; ``with ThreadedServer(app) as url:``; waits for readiness."""

    def __init__(self, app: Any, ready_path: str = "/health") -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_path = ready_path
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread: Any = None

    def __enter__(self) -> str:
        import threading
        import time

        import httpx

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code < 500:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server on {self.url} did not become ready")

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "server thread did not stop"
