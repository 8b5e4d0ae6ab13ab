"""Several model-server processes on one port, each with its own listening socket (``SO_REUSEPORT``).

uvicorn's ``workers=N`` shares one listening socket between its processes, and asyncio accepts up
to 100 waiting connections per wake-up: when many keep-alive clients connect at once, the first
worker to wake takes most of them and the others idle (on the H100 run with 8 workers, one worker's
batches averaged 2 images while another's were full). With one ``SO_REUSEPORT`` socket per process
the kernel spreads connections evenly by their address hash. Linux (and the BSDs) only.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

from kit.errors import ServeError
from kit.serve.app import config_to_env
from kit.serve.config import ServeConfig

__all__ = ["UVICORN_OPTIONS", "run_workers", "share_cores"]

log = logging.getLogger(__name__)

# How every model-server process runs uvicorn. No per-request access log: at thousands of
# embeddings a second it is pure overhead (/metrics counts). No proxy-headers middleware (nothing
# here reads the client address) and no Server header: a little less work on every request.
UVICORN_OPTIONS: dict[str, Any] = {"log_level": "info", "access_log": False, "proxy_headers": False,
                                   "server_header": False, "timeout_graceful_shutdown": 10}


def share_cores(config: ServeConfig, workers: int) -> ServeConfig:
    """Give each of ``workers`` processes its share of the cores for decode and torch threads
    (N processes × all cores each would oversubscribe the CPU)."""
    if workers <= 1:
        return config
    share = max(1, (os.cpu_count() or 2) // workers)
    return config.model_copy(update={"decode_threads": config.decode_threads or max(2, share),
                                     "torch_threads": config.torch_threads or share})


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _child(config_json: str, host: str, port: int, log_level: str) -> None:
    import uvicorn

    from kit.serve.app import create_app

    sock = _bind(host, port)
    app = create_app(ServeConfig.model_validate_json(config_json))
    server = uvicorn.Server(uvicorn.Config(app, **{**UVICORN_OPTIONS, "log_level": log_level}))
    server.run(sockets=[sock])


def run_workers(config: ServeConfig, host: str, port: int, workers: int, *, log_level: str = "info") -> None:
    """Serve ``config`` from ``workers`` processes on ``host:port`` until SIGTERM/SIGINT (blocks)."""
    import multiprocessing

    if not hasattr(socket, "SO_REUSEPORT"):
        raise ServeError("SO_REUSEPORT is not available on this platform", hint="use uvicorn's workers (oskit serve --workers)")
    _bind(host, port).close()  # fail here, once, if the port is taken
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    raw = config_to_env(share_cores(config, workers))
    procs = [ctx.Process(target=_child, args=(raw, host, port, log_level), name=f"oskit-serve-{i}")
             for i in range(workers)]

    def stop(signum: int, frame: Any) -> None:
        for p in procs:
            if p.is_alive():
                p.terminate()  # uvicorn shuts down gracefully on SIGTERM

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for p in procs:
            p.start()
        log.info("oskit serve: %d worker processes on %s:%d (SO_REUSEPORT)", workers, host, port)
        for p in procs:
            p.join()
    finally:
        stop(signal.SIGTERM, None)
        for p in procs:
            p.join(timeout=30)
        for s, handler in previous.items():
            signal.signal(s, handler)
