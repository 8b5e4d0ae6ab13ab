"""A recording reverse proxy: put it in front of a cluster and every exchange any client makes is kept.

The oracle uses it to see what ``oskit node conformance`` sends to each side without reaching into the
runner: the stories run against the proxy's URL, the proxy forwards each request unchanged and records
``(method, path?query, body, status, decoded response)``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RecordingProxy"]

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class RecordingProxy:
    """``with RecordingProxy(target) as proxy: ... proxy.url ... proxy.take()``."""

    def __init__(self, target: str) -> None:
        import httpx

        self.target = target.rstrip("/")
        self.exchanges: list[tuple[str, str, Any, int | None, Any]] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=self.target, timeout=300)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                import httpx

                try:
                    r = proxy._client.request(self.command, self.path, content=body, headers=headers)
                    status, content, rheaders = r.status_code, r.content, r.headers
                except httpx.HTTPError as exc:
                    status, content, rheaders = 502, json.dumps({"proxy_error": str(exc)}).encode(), {}
                proxy._record(self.command, self.path, body, status, content, rheaders.get("content-type", ""))
                self.send_response(status)
                for k, v in rheaders.items():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="oracle-proxy")

    def _record(self, method: str, path: str, body: bytes | None, status: int, content: bytes, ctype: str) -> None:
        decoded: Any = None
        if content:
            if "json" in ctype:
                try:
                    decoded = json.loads(content)
                except ValueError:
                    decoded = content.decode("utf-8", "replace")
            else:
                decoded = [line.split() for line in content.decode("utf-8", "replace").splitlines()]
        req: Any = None
        if body:
            try:
                req = json.loads(body)
            except ValueError:
                req = body.decode("utf-8", "replace")
        with self._lock:
            self.exchanges.append((method, path, req, status, decoded))

    def take(self) -> list[tuple[str, str, Any, int | None, Any]]:
        """The exchanges recorded so far, in order; the list starts over."""
        with self._lock:
            out, self.exchanges = self.exchanges, []
        return out

    def start(self) -> "RecordingProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def __enter__(self) -> "RecordingProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
