"""The model engine: one process owns CLIP (the GPU) and batches the images of every HTTP worker.

``oskit serve --workers N --engine on`` (``auto``: on when the model runs on a GPU) starts one
engine process and N HTTP worker processes. Each worker does what spreads across processes — HTTP,
JSON, base64, the JPEG header check, Pillow for images that nvJPEG cannot take, OCR, tags and
captions — and sends each image to the engine over a Unix socket; the engine runs the batches.

Why: with N workers that each load the model, every worker has its own CUDA context and its own
small batches (mean 11.7 images on the H100 with 8 workers and 256 clients); the contexts
time-slice the GPU and every small batch pays the model's kernel launches from Python again
(1.1 ms of server CPU per image, against 0.28 ms offline). One engine sees every request, so its
batches are as large as the load allows, and ``streams`` batch threads overlap one batch's nvJPEG
decode with the previous batch's forward pass — exactly what the offline baseline does.

Batching in the engine: a batch thread takes the first waiting item and every item queued behind it
(up to ``max_batch``) and runs at once — it never waits for more. While the GPU is busy, items
queue; under load batches are therefore full, and a lone request runs immediately (``max_wait_ms``
only applies to a worker's own batcher). Admission: the engine holds at most ``max_queue × N``
images (``N`` workers) and answers more with the same 429 + ``Retry-After`` as a worker.

Wire protocol (little-endian), both directions one frame per message::

    request:  u64 id | u8 op     | u32 length | payload
    response: u64 id | u8 status | u32 length | payload

ops: ``HELLO`` (→ JSON: the model's description), ``IMAGE_JPEG`` (the JPEG bytes → vector),
``IMAGE_PIXELS`` (``uint8 [S, S, 3]`` already preprocessed → vector), ``TEXT`` (UTF-8 → vector),
``STATS`` (→ JSON ``{"metrics": Prometheus text}``), ``TEXTS`` (a JSON list of strings → one
float32 ``n × dim`` block, run at once outside the batcher like ``Batcher.run_now``: the tag
vocabulary at a worker's start). status: ``VECTOR`` (float32 × dim), ``JSON``,
``ERROR`` (JSON ``{"status", "code", "message", "headers"}``: the worker answers the HTTP request
with exactly that error). The protocol is private to one ``oskit serve``: both ends are always the
same version.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import socket
import struct
import threading
import time
from typing import Any, Sequence

import numpy as np
import orjson

from kit.errors import ServeError
from kit.serve.batching import _Slot
from kit.serve.config import ServeConfig
from kit.serve.images import DEFAULT_MAX_PIXELS, BadImage, JpegJob, jpeg_job, preprocess
from kit.serve.metrics import BATCH_BUCKETS, LATENCY_BUCKETS, Metrics, label_key

__all__ = ["Engine", "EngineClient", "RemoteBatcher", "RemoteClip", "connect_engine"]

log = logging.getLogger(__name__)

HEADER = struct.Struct("<QBI")
OP_HELLO, OP_IMAGE_JPEG, OP_IMAGE_PIXELS, OP_TEXT, OP_STATS, OP_TEXTS = 0, 1, 2, 3, 4, 5
ST_VECTOR, ST_JSON, ST_ERROR = 0, 1, 2


def _error_record(exc: BaseException) -> bytes:
    from kit.serve.app import _as_api_error  # the one mapping from exceptions to HTTP errors

    err = _as_api_error(exc)
    return orjson.dumps({"status": err.status, "code": err.code, "message": err.message, "headers": err.headers})


def _frame(rid: int, status: int, payload: bytes) -> bytes:
    return HEADER.pack(rid, status, len(payload)) + payload


def _recv_exact(sock: socket.socket, buf: Any) -> bool:
    """Fill ``buf`` from ``sock``; False on a clean end of stream before the first byte."""
    view = memoryview(buf)
    got, want = 0, len(view)
    while got < want:
        n = sock.recv_into(view[got:])
        if n == 0:
            if got == 0:
                return False
            raise ConnectionError("the worker closed its connection in the middle of a frame")
        got += n
    return True


class _Conn:
    """One worker's connection: frames are written whole, under a lock (several batch threads answer)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self.closed = False

    def send(self, data: bytes) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                self.sock.sendall(data)
            except OSError:  # the worker is gone; its reader thread cleans up
                self.closed = True

    def close(self) -> None:
        with self._lock:
            self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class _Queue:
    """Items of one kind waiting for a batch thread, with the engine-wide admission bound."""

    def __init__(self, name: str, max_batch: int, max_queue: int) -> None:
        self.name = name
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.items: queue.SimpleQueue[tuple[_Conn, int, Any] | None] = queue.SimpleQueue()
        self.inflight = 0
        self.lock = threading.Lock()
        self.batch_seconds = 0.05  # running estimate for Retry-After
        self.labels = label_key({"batcher": name})

    def admit(self) -> int | None:
        """Count one more item in; ``None`` when admitted, else the Retry-After seconds."""
        with self.lock:
            if self.inflight >= self.max_queue:
                return max(1, math.ceil(math.ceil(self.inflight / self.max_batch) * self.batch_seconds))
            self.inflight += 1
            return None

    def done(self, n: int) -> None:
        with self.lock:
            self.inflight -= n

    def take(self) -> list[tuple[_Conn, int, Any]] | None:
        """The next batch: the first item (blocking) and whatever queued behind it; ``None``: stop."""
        first = self.items.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                nxt = self.items.get_nowait()
            except queue.Empty:
                break
            if nxt is None:  # stopping: run what we have, the next take() sees the sentinel
                self.items.put(None)
                break
            batch.append(nxt)
        return batch


class Engine:
    """CLIP for many workers: :meth:`load`, then :meth:`start` on a Unix socket path, :meth:`stop`.

    ``admit_scale``: the number of workers (the engine admits ``max_queue × admit_scale`` images,
    what that many separate workers would); ``streams``: concurrent image batch threads."""

    def __init__(self, config: ServeConfig, *, streams: int = 2, admit_scale: int = 1) -> None:
        if config.clip is None:
            raise ServeError("the model engine serves CLIP, and the config has no clip model",
                             hint="add a model spec with 'serve: {kind: clip}' or run without --engine")
        if streams < 1 or admit_scale < 1:
            raise ServeError("engine streams and admit_scale must be ≥ 1")
        self.config = config
        self.streams = streams
        b, tb = config.clip.batching, config.clip.text_batching
        self.images = _Queue("clip-image", b.max_batch, b.max_queue * admit_scale)
        self.texts = _Queue("clip-text", tb.max_batch, tb.max_queue * admit_scale)
        self.metrics = Metrics()
        self.metrics.histogram("oskit_engine_batch_size", "Items per model batch in the engine (all workers).",
                               BATCH_BUCKETS)
        self.metrics.histogram("oskit_engine_batch_seconds", "Model time per engine batch, seconds.", LATENCY_BUCKETS)
        self.metrics.counter("oskit_engine_rejected_total", "Items refused with 429: the engine's queue was full.")
        self.metrics.gauge("oskit_engine_queue_depth", "Items inside the engine (waiting or running).")
        self.metrics.gauge("oskit_engine_workers", "Worker connections to the engine.")
        for q in (self.images, self.texts):
            self.metrics.gauge_callback("oskit_engine_queue_depth", lambda q=q: q.inflight, {"batcher": q.name})
        self.metrics.gauge_callback("oskit_engine_workers", lambda: len(self._conns))
        self.clip: Any = None  # kit.serve.clip.ClipEngine
        self.device_decode = False
        self.hello: dict[str, Any] = {}
        self.path: str | None = None
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[_Conn] = set()
        self._conns_lock = threading.Lock()
        self._stopping = threading.Event()

    # --- model ---------------------------------------------------------------------------------

    def load(self) -> None:
        """Load CLIP on the configured device and run it once (the same steps as a worker's start)."""
        from kit.serve.app import _check_device_decode, warm_jpeg
        from kit.serve.clip import ClipEngine, load_open_clip, resolve_device

        cfg = self.config
        assert cfg.clip is not None
        if cfg.torch_threads:
            import torch

            torch.set_num_threads(cfg.torch_threads)
        device = resolve_device(cfg.device)
        precision = cfg.clip.precision
        if precision == "auto":
            precision = "fp16" if device.startswith("cuda") else "fp32"
        self.clip = ClipEngine(load_open_clip(cfg.clip.model, cfg.clip.pretrained, device=device, precision=precision))
        self.device_decode = cfg.clip.decode == "device" or (cfg.clip.decode == "auto" and device.startswith("cuda"))
        if self.device_decode:
            _check_device_decode(device)
        if cfg.warmup:
            size = self.clip.image_size
            self.clip.embed_items([np.full((size, size, 3), 127, dtype=np.uint8)])
            if self.device_decode:
                job = jpeg_job(warm_jpeg(size), size)
                if job is not None:
                    self.clip.embed_items([job])
            self.clip.embed_texts(["warm up sentence"])
        self.hello = {
            "clip": self.clip.describe(device_decode=self.device_decode, batching=cfg.clip.batching.model_dump()),
            "image_size": self.clip.image_size, "dim": self.clip.dim, "logit_scale": self.clip.logit_scale,
            "device": self.clip.loaded.device, "decode": "device" if self.device_decode else "cpu",
            "engine": {"pid": os.getpid(), "streams": self.streams, "max_queue": self.images.max_queue},
        }

    # --- serving -------------------------------------------------------------------------------

    def start(self, path: str) -> None:
        """Listen on the Unix socket ``path`` and start the threads (returns at once)."""
        if self.clip is None:
            raise ServeError("Engine.start() before load()")
        if os.path.exists(path):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o600)  # only this user's workers
        listener.listen(256)
        self._listener, self.path = listener, path
        self._spawn(self._accept_loop, "engine-accept")
        for i in range(self.streams):
            self._spawn(self._image_loop, f"engine-images-{i}")
        self._spawn(self._text_loop, "engine-texts")
        log.info("oskit engine: %s on %s ready on %s (%d image batch threads)",
                 self.config.clip.model if self.config.clip else "?", self.hello.get("device"), path, self.streams)

    def stop(self) -> None:
        """Stop accepting, finish the batches already taken, close every connection."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        for _ in range(self.streams):
            self.images.items.put(None)
        self.texts.items.put(None)
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=30)
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed: stopping
            conn = _Conn(sock)
            with self._conns_lock:
                self._conns.add(conn)
            threading.Thread(target=self._read_loop, args=(conn,), name="engine-conn", daemon=True).start()

    def _read_loop(self, conn: _Conn) -> None:
        head = bytearray(HEADER.size)
        limit = self.config.max_body_bytes
        try:
            while _recv_exact(conn.sock, head):
                rid, op, n = HEADER.unpack(head)
                if n > limit:
                    log.error("engine: a %d-byte frame from a worker is over the %d-byte limit; closing", n, limit)
                    break
                payload = bytearray(n)
                if n:
                    _recv_exact(conn.sock, payload)
                self._dispatch(conn, rid, op, payload)
        except (OSError, ConnectionError) as exc:
            if not self._stopping.is_set():
                log.debug("engine: worker connection ended: %s", exc)
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()

    def _dispatch(self, conn: _Conn, rid: int, op: int, payload: bytearray) -> None:
        if op == OP_HELLO:
            conn.send(_frame(rid, ST_JSON, orjson.dumps(self.hello)))
        elif op == OP_STATS:
            conn.send(_frame(rid, ST_JSON, orjson.dumps({"metrics": self.metrics.render()})))
        elif op in (OP_IMAGE_JPEG, OP_IMAGE_PIXELS):
            self._enqueue(self.images, conn, rid, lambda: self._image_item(op, payload))
        elif op == OP_TEXTS:
            try:
                vectors = self.clip.embed_texts([str(t) for t in orjson.loads(payload)])
                conn.send(_frame(rid, ST_VECTOR, np.ascontiguousarray(vectors, dtype=np.float32).tobytes()))
            except Exception as exc:
                conn.send(_frame(rid, ST_ERROR, _error_record(exc)))
        elif op == OP_TEXT:
            self._enqueue(self.texts, conn, rid, lambda: payload.decode("utf-8"))
        else:
            conn.send(_frame(rid, ST_ERROR, _error_record(ServeError(f"engine: unknown op {op}"))))

    def _enqueue(self, q: _Queue, conn: _Conn, rid: int, make: Any) -> None:
        from kit.serve.batching import QueueFull

        retry = q.admit()
        if retry is not None:
            self.metrics.inc("oskit_engine_rejected_total", {"batcher": q.name})
            err = QueueFull(f"{q.name}: {q.inflight} requests queued in the model engine (max_queue {q.max_queue})",
                            retry_after=retry)
            conn.send(_frame(rid, ST_ERROR, _error_record(err)))
            return
        try:
            item = make()
        except Exception as exc:  # a bad image found by the header check or the reference decode
            q.done(1)
            conn.send(_frame(rid, ST_ERROR, _error_record(exc)))
            return
        q.items.put((conn, rid, item))

    def _image_item(self, op: int, payload: bytearray) -> Any:
        size = self.clip.image_size
        if op == OP_IMAGE_PIXELS:
            if len(payload) != size * size * 3:
                raise ServeError(f"engine: a pixel frame of {len(payload)} bytes is not {size}×{size}×3")
            return np.frombuffer(payload, dtype=np.uint8).reshape(size, size, 3)
        max_pixels = self.config.max_image_pixels or DEFAULT_MAX_PIXELS
        job = jpeg_job(payload, size, max_pixels) if self.device_decode else None  # type: ignore[arg-type]
        if job is not None:
            return job
        return preprocess(bytes(payload), size, max_pixels)  # the reference path (the worker sends these rarely)

    def _image_loop(self) -> None:
        while (batch := self.images.take()) is not None:
            self._run(self.images, batch, self.clip.embed_items)

    def _text_loop(self) -> None:
        while (batch := self.texts.take()) is not None:
            self._run(self.texts, batch, lambda texts: list(self.clip.embed_texts(texts)))

    def _run(self, q: _Queue, batch: list[tuple[_Conn, int, Any]], fn: Any) -> None:
        started = time.perf_counter()
        try:
            results: Sequence[Any] = fn([item for _, _, item in batch])
            if len(results) != len(batch):
                raise ServeError(f"engine {q.name}: {len(results)} results for {len(batch)} items")
        except Exception as exc:  # the whole batch failed: every caller gets the error
            log.exception("engine: batch of %d failed in %s", len(batch), q.name)
            results = [exc] * len(batch)
        elapsed = time.perf_counter() - started
        q.batch_seconds = 0.8 * q.batch_seconds + 0.2 * elapsed
        self.metrics.observe_key("oskit_engine_batch_size", len(batch), q.labels)
        self.metrics.observe_key("oskit_engine_batch_seconds", elapsed, q.labels)
        frames: dict[_Conn, list[bytes]] = {}
        for (conn, rid, _), res in zip(batch, results):
            if isinstance(res, BaseException):
                frame = _frame(rid, ST_ERROR, _error_record(res))
            else:
                frame = _frame(rid, ST_VECTOR, np.ascontiguousarray(res, dtype=np.float32).tobytes())
            frames.setdefault(conn, []).append(frame)
        q.done(len(batch))
        for conn, parts in frames.items():  # one write per worker per batch
            conn.send(b"".join(parts))


# --- the worker's side ---------------------------------------------------------------------------


class EngineClient(asyncio.Protocol):
    """A worker's connection to the engine (asyncio): :meth:`call` sends one frame and returns the
    future of its answer. If the engine goes away every waiting and later call fails with a 503."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: str | None = None
        self._buf = bytearray()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos, size, end = 0, HEADER.size, len(buf)
        while end - pos >= size:
            rid, status, n = HEADER.unpack_from(buf, pos)
            if end - pos - size < n:
                break
            payload = bytes(buf[pos + size: pos + size + n])
            pos += size + n
            fut = self._pending.pop(rid, None)
            if fut is None or fut.done():  # its HTTP client went away
                continue
            if status == ST_VECTOR:
                fut.set_result(np.frombuffer(payload, dtype=np.float32))
            elif status == ST_JSON:
                fut.set_result(orjson.loads(payload))
            else:
                fut.set_exception(_api_error(orjson.loads(payload)))
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = f"the model engine closed its connection ({exc})" if exc else "the model engine closed its connection"
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(_unavailable(self.lost))
        self._pending.clear()

    def call(self, op: int, payload: bytes | memoryview = b"") -> asyncio.Future[Any]:
        if self.lost is not None or self.transport is None:
            raise _unavailable(self.lost or "not connected to the model engine")
        self._next += 1
        rid = self._next
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[rid] = fut
        self.transport.writelines((HEADER.pack(rid, op, len(payload)), payload))
        return fut

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _unavailable(why: str) -> Exception:
    from kit.serve.app import ApiError

    return ApiError(503, "engine_unavailable", f"{why}; the server is shutting down or the engine failed (see its log)")


def _api_error(record: dict[str, Any]) -> Exception:
    from kit.serve.app import ApiError

    return ApiError(int(record["status"]), str(record["code"]), str(record["message"]),
                    headers=dict(record.get("headers") or {}))


async def connect_engine(path: str, timeout: float = 30.0) -> tuple[EngineClient, dict[str, Any]]:
    """Connect to the engine at ``path`` (retrying until ``timeout``) and ask for its description."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, client = await loop.create_unix_connection(EngineClient, path)
            break
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if loop.time() >= deadline:
                raise ServeError(f"cannot reach the model engine at {path}: {exc}",
                                 hint="the engine is started by 'oskit serve --engine'; see its log") from exc
            await asyncio.sleep(0.1)
    hello = await client.call(OP_HELLO)
    return client, hello


class RemoteBatcher:
    """A worker's stand-in for :class:`kit.serve.batching.Batcher`: the same ``admit``/``leave``/
    ``submit``, but the item goes to the engine, which batches it with every worker's items."""

    def __init__(self, name: str, client: EngineClient, *, max_batch: int, max_queue: int) -> None:
        self.name = name
        self.client = client
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._inflight = 0

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def preparing(self) -> int:
        return 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def admit(self) -> _Slot:
        self._inflight += 1  # the bound is the engine's (it sees every worker)
        return _Slot()

    def leave(self, slot: _Slot) -> None:
        self._inflight -= 1

    async def submit(self, item: Any, slot: _Slot | None = None) -> Any:
        if isinstance(item, JpegJob):
            fut = self.client.call(OP_IMAGE_JPEG, item.data)
        elif isinstance(item, np.ndarray):
            fut = self.client.call(OP_IMAGE_PIXELS, memoryview(np.ascontiguousarray(item, dtype=np.uint8)).cast("B"))
        elif isinstance(item, str):
            fut = self.client.call(OP_TEXT, item.encode("utf-8"))
        else:
            raise ServeError(f"engine: cannot send a {type(item).__name__}")
        return await fut

    async def run_now(self, items: list[Any]) -> list[Any]:
        return list(await asyncio.gather(*(self.submit(i) for i in items)))

    async def stats(self) -> str:
        return str((await self.client.call(OP_STATS))["metrics"])


class RemoteClip:
    """What a worker needs to know about the engine's CLIP (the ``ClipEngine`` attributes it reads)."""

    def __init__(self, client: EngineClient, hello: dict[str, Any]) -> None:
        self.client = client
        self.hello = hello
        self.image_size = int(hello["image_size"])
        self.dim = int(hello["dim"])
        self.logit_scale = float(hello["logit_scale"])
        self._loop = asyncio.get_running_loop()

    def describe(self) -> dict[str, Any]:
        return {**self.hello["clip"], "engine": {**self.hello["engine"], "connected": self.client.lost is None}}

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Blocking, from a worker thread (the tag vocabulary at start): texts → vectors via the engine."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        async def call() -> np.ndarray:
            return await self.client.call(OP_TEXTS, orjson.dumps(list(texts)))

        flat = asyncio.run_coroutine_threadsafe(call(), self._loop).result()
        return flat.reshape(len(texts), self.dim)
