"""Run the node: :class:`NodeServer` (uvicorn in a thread, for tests and ``oskit demo``) and
:class:`NodeProcess` (``python -m kit.node`` as a subprocess, with ``kill()`` for crash tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kit.errors import NodeError

__all__ = ["NodeProcess", "NodeServer", "free_port", "run_foreground", "wait_until_up"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, timeout: float = 30.0, auth: tuple[str, str] | None = None,
                  proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``GET /`` until it answers (any HTTP status counts: the server is listening).

    Plain ``http.client``: no TLS context or client set-up per attempt, so polling is cheap."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise NodeError(f"the node process exited with code {proc.returncode} before it was ready")
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=1.0)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return
        except (OSError, http.client.HTTPException) as exc:
            last = exc
            time.sleep(0.01)
        finally:
            conn.close()
    raise NodeError(f"the node at {url} did not answer within {timeout:.0f}s ({last})")


class NodeServer:
    """The node served by uvicorn on a background thread; ``port=0`` picks a free port."""

    def __init__(self, data_dir: Path | str, host: str = "127.0.0.1", port: int = 0, version: str = "3.3.0",
                 auth: tuple[str, str] | None = None, log_level: str = "warning") -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.version = version
        self.auth = auth
        self.log_level = log_level
        self.url = ""
        self.app: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def engine(self) -> Any:
        return self.app.state.engine

    def start(self, timeout: float = 30.0) -> str:
        import uvicorn

        from kit.node.app import create_app

        self.app = create_app(self.data_dir, version=self.version, auth=self.auth)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto set: asyncio then sets TCP_NODELAY
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise NodeError(f"cannot listen on {self.host}:{self.port}: {exc}",
                            hint="pick another --port or stop the process using it") from None
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level=self.log_level, access_log=False, lifespan="on",
                                proxy_headers=False,
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="oskit-node", daemon=True)
        self._thread.start()
        host = self.host if ":" not in self.host else f"[{self.host}]"
        self.url = f"http://{host}:{self.port}"
        wait_until_up(self.url, timeout, self.auth)
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = None
        self._thread = None

    def __enter__(self) -> "NodeServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class NodeProcess:
    """The node as a child process (``python -m kit.node``); ``kill()`` sends SIGKILL (crash tests)."""

    TAIL_BYTES = 64 * 1024

    def __init__(self, data_dir: Path | str, host: str = "127.0.0.1", port: int = 0, version: str = "3.3.0",
                 auth: tuple[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.version = version
        self.auth = auth
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._tail = bytearray()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> str:
        port = self.port or free_port(self.host)
        self.port = port
        cmd = [sys.executable, "-m", "kit.node", "--data", str(self.data_dir), "--host", self.host,
               "--port", str(port), "--version", self.version]
        env = dict(os.environ)
        if self.auth:
            cmd += ["--user", self.auth[0]]
            env["OSKIT_NODE_PASSWORD"] = self.auth[1]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Drained all the time: a pipe nobody reads blocks the node once 64 KB of logs are written.
        self._tail = bytearray()
        self._reader = threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True,
                                        name="node-stderr")
        self._reader.start()
        self.url = f"http://{self.host}:{port}"
        try:
            wait_until_up(self.url, timeout, self.auth, self.proc)
        except NodeError:
            self.kill()
            raise NodeError(f"the node process did not start: {self.stderr_tail()[-2000:]}") from None
        return self.url

    def _drain(self, pipe: Any) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            self._tail += chunk
            del self._tail[:-self.TAIL_BYTES]

    def stderr_tail(self) -> str:
        """The last ``TAIL_BYTES`` the node wrote to stderr (all of it once the process has ended)."""
        return bytes(self._tail).decode(errors="replace")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait: a clean shutdown."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_pipes()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, no chance to flush anything: what survives is what was acknowledged."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self._reader is not None:
            self._reader.join(5)  # the process has ended: the pipe reaches EOF
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> "NodeProcess":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def run_foreground(data_dir: Path, host: str, port: int, *, version: str = "3.3.0",
                   auth: tuple[str, str] | None = None, on_ready: Any = None, log_level: str = "info",
                   max_content_length: int | None = None) -> int:
    """Serve until SIGINT/SIGTERM (uvicorn's handlers: finish in-flight requests, then exit 0)."""
    import logging

    import uvicorn

    from kit.node.app import MAX_CONTENT_LENGTH, create_app

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # httpx logs each connector call at INFO: a line per document and processor during an ingest
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if auth is None and not is_loopback(host):
        logging.getLogger("kit.node").warning(
            "the node listens on %s WITHOUT authentication: anyone who can reach this machine can read, change "
            "and delete all of its data. Start it with --user (password in OSKIT_NODE_PASSWORD), or bind to "
            "127.0.0.1.", host)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise NodeError(f"cannot listen on {host}:{port}: {exc}",
                        hint="pick another --port or stop the process using it") from None
    app = create_app(data_dir, version=version, auth=auth,
                     max_content_length=max_content_length or MAX_CONTENT_LENGTH)
    real_port = sock.getsockname()[1]
    shown = host if ":" not in host else f"[{host}]"
    url = f"http://{shown}:{real_port}"
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                proxy_headers=False,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)

    async def _ready() -> None:
        import logging

        logging.getLogger("kit.node").info("oskit node listening on %s (data %s)", url, data_dir)
        if on_ready is not None:
            on_ready(url)

    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets=sockets)
        if server.started:
            await _ready()

    server.startup = startup  # type: ignore[method-assign]

    # uvicorn re-raises a captured SIGTERM after its graceful shutdown (exit status -15); a clean stop
    # of the node should exit 0, so we own the handlers: first signal = graceful, second = force.
    def _stop(signum: int, frame: Any) -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the node on this machine."""
    import ipaddress

    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface
