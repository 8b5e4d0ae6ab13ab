"""Several model-server processes on one port, each with its own listening socket (``SO_REUSEPORT``).

uvicorn's ``workers=N`` shares one listening socket between its processes, and asyncio accepts up
to 100 waiting connections per wake-up: when many keep-alive clients connect at once, the first
worker to wake takes most of them and the others idle (on the H100 run with 8 workers, one worker's
batches averaged 2 images while another's were full). With one ``SO_REUSEPORT`` socket per process
the kernel spreads connections evenly by their address hash. Linux (and the BSDs) only.

With ``engine=True`` one more process, the model engine (kit/serve/engine.py), loads CLIP once and
batches the images of every worker; the workers load no CLIP (``oskit serve --engine``).
:func:`want_engine` is the ``auto`` rule: an engine when several workers would otherwise each put
the model on one GPU.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from typing import Any

from kit.errors import ServeError
from kit.serve.app import config_to_env
from kit.serve.config import ServeConfig

__all__ = ["UVICORN_OPTIONS", "run_workers", "share_cores", "want_engine"]

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


def want_engine(config: ServeConfig, workers: int, mode: str) -> bool:
    """``--engine on|off|auto``: ``auto`` means an engine when there are several workers, a CLIP
    model and that model would run on CUDA (on a CPU, each worker's own model uses its own cores,
    which is what the CPU needs; on one GPU, N copies time-slice it in small batches)."""
    if mode not in ("auto", "on", "off"):
        raise ServeError(f"--engine {mode!r}: use auto, on or off")
    if mode == "off" or config.clip is None:
        if mode == "on":
            raise ServeError("--engine on needs a CLIP model, and no model spec has a 'serve: {kind: clip}' block")
        return False
    if mode == "on":
        return True
    if workers <= 1 or config.device == "cpu":
        return False
    if config.device.startswith("cuda"):
        return True
    try:  # device auto: CUDA when torch sees a GPU (no CUDA context is made here)
        import torch
    except ModuleNotFoundError:
        return False
    return bool(torch.cuda.is_available())


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


def _engine_child(config_json: str, path: str, streams: int, admit_scale: int, ready: Any, log_level: str) -> None:
    from kit.serve.engine import Engine

    # open_clip logs its loading steps on the root logger at INFO: only warnings from there
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:     %(message)s")
    logging.getLogger("kit").setLevel(log_level.upper())
    # The engine's I/O thread gives the GIL up in every recv and needs it back at once; the batch
    # threads hold it while they launch kernels. Python's default 5 ms switch interval would make
    # each image's frame wait behind them; 0.5 ms keeps the reads flowing.
    sys.setswitchinterval(0.0005)
    engine = Engine(ServeConfig.model_validate_json(config_json), streams=streams, admit_scale=admit_scale)
    engine.load()
    engine.start(path)
    signal.signal(signal.SIGTERM, lambda *_: engine.finished.set())
    # Ctrl-C reaches the whole process group: the workers finish their requests first, and the
    # parent then stops the engine with SIGTERM
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ready.set()
    engine.finished.wait()  # SIGTERM, or an engine thread failed (it logged why)
    engine.stop()
    if engine.failed:
        sys.exit(1)  # run_workers sees the engine gone, stops the workers and exits 1


def run_workers(config: ServeConfig, host: str, port: int, workers: int, *, engine: bool = False,
                engine_streams: int = 1, log_level: str = "info", engine_timeout: float = 600.0) -> None:
    """Serve ``config`` from ``workers`` processes on ``host:port`` until SIGTERM/SIGINT (blocks).

    ``engine``: start the model engine first (``engine_streams`` image batch threads) and point
    every worker at it; if the engine dies, the workers are stopped and :class:`ServeError` raised."""
    import multiprocessing
    from multiprocessing.connection import wait

    if not hasattr(socket, "SO_REUSEPORT"):
        raise ServeError("SO_REUSEPORT is not available on this platform", hint="use uvicorn's workers (oskit serve --workers)")
    _bind(host, port).close()  # fail here, once, if the port is taken
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    shared = share_cores(config, workers)
    engine_proc = None
    sock_dir = None
    if engine:
        sock_dir = tempfile.mkdtemp(prefix="oskit-engine-")
        path = os.path.join(sock_dir, "engine.sock")
        ready = ctx.Event()
        engine_proc = ctx.Process(target=_engine_child, name="oskit-engine",
                                  args=(config_to_env(config), path, engine_streams, workers, ready, log_level))
        shared = shared.model_copy(update={"engine": path})
    raw = config_to_env(shared)
    procs = [ctx.Process(target=_child, args=(raw, host, port, log_level), name=f"oskit-serve-{i}")
             for i in range(workers)]
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive():
                p.terminate()  # uvicorn shuts down gracefully on SIGTERM

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if engine_proc is not None:
            engine_proc.start()
            deadline = time.monotonic() + engine_timeout
            while not ready.wait(0.2):
                if stopping:
                    return
                if not engine_proc.is_alive() or time.monotonic() > deadline:
                    raise ServeError(f"the model engine did not start (exit code {engine_proc.exitcode})",
                                     hint="its error is in the log above")
        for p in procs:
            p.start()
        log.info("oskit serve: %d worker processes on %s:%d (SO_REUSEPORT)%s", workers, host, port,
                 " and one model engine" if engine_proc is not None else "")
        # The engine is judged by its sentinel, not by is_alive(): the sentinel (a pipe) is ready as
        # soon as the process closes its descriptors, a moment before waitpid() can reap it. Asking
        # is_alive() in that moment said "alive", and on the next turn (reaped by then) the engine
        # was no longer watched, so the workers were waited on forever (seen under load).
        engine_gone = engine_proc is None
        while True:
            # One look at who is alive: a worker that exits between two looks would otherwise be
            # counted alive by the loop test and left out of ``watched``.
            watched = [p.sentinel for p in procs if p.is_alive()]
            if not watched:
                break
            if engine_proc is not None and not engine_gone:
                watched.append(engine_proc.sentinel)
            fired = wait(watched)
            if engine_proc is not None and not engine_gone and engine_proc.sentinel in fired:
                engine_gone = True
                engine_proc.join(timeout=30)  # it is exiting: collect its exit code
                if not stopping:  # (``finally`` stops and joins the workers)
                    raise ServeError(f"the model engine exited (code {engine_proc.exitcode}); the workers were stopped",
                                     hint="its error is in the log above")
    finally:
        stop(signal.SIGTERM, None)
        for p in procs:
            p.join(timeout=30)
        if engine_proc is not None:  # after the workers: their last requests still reach it
            if engine_proc.is_alive():
                engine_proc.terminate()
            engine_proc.join(timeout=30)
            if engine_proc.is_alive():  # stuck in a batch: it must not keep the GPU after oskit serve
                log.warning("the model engine did not stop within 30 s of SIGTERM; killing it")
                engine_proc.kill()
                engine_proc.join(timeout=10)
        if sock_dir is not None:
            shutil.rmtree(sock_dir, ignore_errors=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
