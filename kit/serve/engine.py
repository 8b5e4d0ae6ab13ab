"""The model engine: one process owns CLIP (the GPU) and batches the images of every HTTP worker.

``oskit serve --workers N --engine auto|on`` starts one engine process and N HTTP worker processes
(``auto``: when N > 1 and the model runs on CUDA). Each worker does what spreads across processes —
HTTP, JSON, base64, the JPEG header check, Pillow for images that nvJPEG cannot take, OCR, tags and
captions — and sends each image to the engine over a Unix socket; the engine runs the batches.

Why: one copy of the model in memory (N workers otherwise load N copies: a large CLIP on one GPU may
not fit N times), batches across all workers at a fraction of the server CPU per image, and no GIL
shared between HTTP and the model. The measurements, and the variants that measured worse:
docs/model-server.md ("The model engine") and bench/README.md.

Batching in the engine: a batch thread takes the first waiting item and every item queued behind it
(up to ``max_batch``) and runs at once — it never waits for more. While the model is busy, items
queue; under load batches are therefore full, and a lone request runs immediately (``max_wait_ms``
only applies to a worker's own batcher). Admission: the engine holds at most ``max_queue × N``
images (``N`` workers) and answers more with the same 429 + ``Retry-After`` as a worker. One batch
thread (``streams``) is the default: more made each batch slower (bench/README.md).

Wire protocol (little-endian), both directions one frame per message::

    request:  u64 id | u8 op     | u32 length | payload
    response: u64 id | u8 status | u32 length | payload

ops: ``HELLO`` (→ JSON: the model's description), ``IMAGE_JOB`` (u16 width | u16 height | u8 draft
scale | the JPEG bytes: a JPEG whose headers the worker has checked for the tensor path, sent only
when the engine decodes on the device → vector), ``IMAGE_PIXELS`` (``uint8 [S, S, 3]`` already
preprocessed → vector), ``TEXT`` (UTF-8 → vector),
``STATS`` (→ JSON ``{"metrics": Prometheus text}``), ``TEXTS`` (a JSON list of strings → one
float32 ``n × dim`` block, run at once on a thread of its own, outside the batcher like
``Batcher.run_now``: the tag vocabulary at a worker's start). status: ``VECTOR`` (float32 × dim), ``JSON``,
``ERROR`` (JSON ``{"status", "code", "message", "headers"}``: the worker answers the HTTP request
with exactly that error). The protocol is private to one ``oskit serve``: both ends are always the
same version.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import socket
import struct
import sys
import threading
import time
from typing import Any, Sequence

import numpy as np
import orjson

from kit.errors import ServeError
from kit.serve.batching import QueueFull, _Slot, call_batch, refuse, retry_after
from kit.serve.config import ServeConfig
from kit.serve.errors import ApiError, _as_api_error  # the one mapping from exceptions to HTTP errors
from kit.serve.images import JpegJob
from kit.serve.metrics import BATCH_BUCKETS, LATENCY_BUCKETS, Metrics, label_key

__all__ = ["Engine", "EngineClient", "Pipeline", "RemoteBatcher", "RemoteClip", "connect_engine"]

PIPELINE_ENV = "OSKIT_ENGINE_PIPELINE"  # "1": decode of the next batch overlaps the model (CUDA only)

log = logging.getLogger(__name__)

HEADER = struct.Struct("<QBI")
OP_HELLO, OP_IMAGE_JOB, OP_IMAGE_PIXELS, OP_TEXT, OP_STATS, OP_TEXTS = 0, 1, 2, 3, 4, 5
JOB = struct.Struct("<HHB")  # an IMAGE_JOB's prefix: the JPEG's width, height and draft scale
CHUNK = 1 << 22  # receive buffer: many frames per recv, payloads are views into it (no copy)
ST_VECTOR, ST_JSON, ST_ERROR = 0, 1, 2


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` in the OS (``top -H``, /proc/…/task/*/comm: where a
    benchmark reads each thread's CPU). Linux only; elsewhere nothing."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
        except (OSError, AttributeError):
            pass


def _error_record(exc: BaseException) -> bytes:
    err = _as_api_error(exc)
    return orjson.dumps({"status": err.status, "code": err.code, "message": err.message, "headers": err.headers})


def _frame(rid: int, status: int, payload: bytes) -> bytes:
    return HEADER.pack(rid, status, len(payload)) + payload


class _Conn:
    """One worker's connection. Frames are written whole, under a lock (several batch threads
    answer). Reading: :meth:`frames` after each ``recv`` into a 4 MiB chunk; a payload is a
    memoryview into the chunk (a full chunk is replaced, not reused, so views stay valid)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self.closed = False
        self.buf = bytearray(CHUNK)
        self.view = memoryview(self.buf)
        self.start = self.end = 0

    def _fresh(self, size: int) -> None:
        """A new chunk of at least ``size`` bytes, with the unparsed tail of the old one moved in."""
        buf = bytearray(max(CHUNK, size))
        tail = self.end - self.start
        buf[:tail] = self.view[self.start:self.end]
        self.buf, self.view, self.start, self.end = buf, memoryview(buf), 0, tail

    def receive(self) -> bool:
        """One ``recv`` (the socket is readable); False at the end of the stream."""
        if self.end == len(self.buf):
            self._fresh(0)
        n = self.sock.recv_into(self.view[self.end:])
        self.end += n
        return n > 0

    def frames(self, limit: int) -> list[tuple[int, int, memoryview]]:
        """The complete frames received so far."""
        out = []
        size = HEADER.size
        while self.end - self.start >= size:
            rid, op, n = HEADER.unpack_from(self.buf, self.start)
            if n > limit:
                raise ConnectionError(f"a {n}-byte frame is over the {limit}-byte limit")
            if self.end - self.start < size + n:
                if self.start + size + n > len(self.buf):  # it cannot complete in this chunk
                    self._fresh(size + n)
                break
            out.append((rid, op, self.view[self.start + size: self.start + size + n]))
            self.start += size + n
        return out  # (bytes before ``start`` are never written again: earlier payloads stay valid)

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
                return retry_after(self.inflight, self.max_batch, self.batch_seconds)
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

    def __init__(self, config: ServeConfig, *, streams: int = 1, admit_scale: int = 1) -> None:
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
        self._wake: tuple[socket.socket, socket.socket] | None = None  # wakes the I/O thread to stop
        self._threads: list[threading.Thread] = []
        self._conns: set[_Conn] = set()
        self._conns_lock = threading.Lock()
        self._stopping = threading.Event()
        self.finished = threading.Event()  # set by a failed thread (and by the process's SIGTERM)
        self.failed = False

    # --- model ---------------------------------------------------------------------------------

    def load(self) -> None:
        """Load CLIP on the configured device and run it once (the same steps as a worker's start)."""
        from kit.serve.clip import describe_clip, load_clip_engine, warm_up_clip

        cfg = self.config
        assert cfg.clip is not None
        if cfg.torch_threads:
            import torch

            torch.set_num_threads(cfg.torch_threads)
        self.clip, self.device_decode = load_clip_engine(cfg.clip, cfg.device)
        if cfg.warmup:
            warm_up_clip(self.clip, self.device_decode)
        info = describe_clip(self.clip, device_decode=self.device_decode,
                            batching=cfg.clip.batching.model_dump())
        info["engine"] = {"pid": os.getpid(), "streams": self.streams, "max_queue": self.images.max_queue}
        self.hello = {"clip": info, "image_size": self.clip.image_size, "dim": self.clip.dim,
                      "logit_scale": self.clip.logit_scale, "device": self.clip.loaded.device,
                      "decode": info["decode"]}

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
        self._wake = socket.socketpair()
        self._spawn(self._io_loop, "engine-io")
        for i in range(self.streams):
            self._spawn(self._image_loop, f"engine-images-{i}")
        self._spawn(self._text_loop, "engine-texts")
        log.info("oskit engine: %s on %s ready on %s (%d image batch threads)",
                 self.config.clip.model, self.hello.get("device"), path, self.streams)

    def stop(self) -> None:
        """Stop accepting, finish the batches already taken, close every connection."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._wake is not None:
            self._wake[1].send(b"x")  # the I/O thread closes the listener and every connection
        for _ in range(self.streams):
            self.images.items.put(None)
        self.texts.items.put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=30)
        if self._wake is not None:
            for sock in self._wake:
                sock.close()
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)

    def _spawn(self, target: Any, name: str) -> None:
        """Start an engine thread. If one ends by an exception (not while stopping), the engine
        cannot serve any more: it says why and sets ``finished`` with ``failed``, and its process
        exits 1 (kit/serve/workers.py), so ``oskit serve`` stops rather than answering 503 forever."""
        def run() -> None:
            name_os_thread(name)
            try:
                target()
            except BaseException:
                if self._stopping.is_set():
                    return
                log.exception("engine: thread %s failed; the engine stops", name)
                self.failed = True
                self.finished.set()

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _io_loop(self) -> None:
        """One thread reads every worker: accept, ``recv`` into the connection's chunk, dispatch
        each complete frame. (A thread per connection made each image take the GIL back after
        several small reads, queued behind the batch threads: 8 workers fed the GPU 3,000
        images/s instead of 7,000.)"""
        import selectors

        assert self._listener is not None and self._wake is not None
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, None)
        sel.register(self._wake[0], selectors.EVENT_READ, "wake")
        # the largest legitimate frame: a request body (a JPEG job, a text) or one image's pixels
        size = self.clip.image_size
        limit = max(self.config.max_body_bytes, size * size * 3) + JOB.size
        try:
            while not self._stopping.is_set():
                for key, _ in sel.select():
                    if key.data == "wake":
                        return
                    if key.data is None:  # the listener
                        sock, _ = self._listener.accept()
                        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                            try:
                                sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
                            except OSError:
                                pass
                        conn = _Conn(sock)
                        with self._conns_lock:
                            self._conns.add(conn)
                        sel.register(sock, selectors.EVENT_READ, conn)
                        continue
                    conn = key.data
                    try:
                        alive = conn.receive()
                        for rid, op, payload in conn.frames(limit):
                            self._dispatch(conn, rid, op, payload)
                    except (OSError, ConnectionError) as exc:
                        log.warning("engine: closing a worker connection: %s", exc)
                        alive = False
                    if not alive:
                        sel.unregister(conn.sock)
                        with self._conns_lock:
                            self._conns.discard(conn)
                        conn.close()
        finally:
            with self._conns_lock:
                conns = list(self._conns)
                self._conns.clear()
            for conn in conns:
                conn.close()
            sel.close()
            self._listener.close()

    def _dispatch(self, conn: _Conn, rid: int, op: int, payload: memoryview) -> None:
        if op == OP_HELLO:
            conn.send(_frame(rid, ST_JSON, orjson.dumps(self.hello)))
        elif op == OP_STATS:
            conn.send(_frame(rid, ST_JSON, orjson.dumps({"metrics": self.metrics.render()})))
        elif op in (OP_IMAGE_JOB, OP_IMAGE_PIXELS):
            self._enqueue(self.images, conn, rid, lambda: self._image_item(op, payload))
        elif op == OP_TEXTS:  # not on this thread: the model would hold up every worker's reads
            threading.Thread(target=self._texts_now, args=(conn, rid, bytes(payload)), name="engine-texts-now",
                             daemon=True).start()
        elif op == OP_TEXT:
            self._enqueue(self.texts, conn, rid, lambda: bytes(payload).decode("utf-8"))
        else:
            conn.send(_frame(rid, ST_ERROR, _error_record(ServeError(f"engine: unknown op {op}"))))

    def _texts_now(self, conn: _Conn, rid: int, payload: bytes) -> None:
        try:
            vectors = self.clip.embed_texts([str(t) for t in orjson.loads(payload)])
            conn.send(_frame(rid, ST_VECTOR, np.ascontiguousarray(vectors, dtype=np.float32).tobytes()))
        except Exception as exc:
            conn.send(_frame(rid, ST_ERROR, _error_record(exc)))

    def _enqueue(self, q: _Queue, conn: _Conn, rid: int, make: Any) -> None:
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

    def _image_item(self, op: int, payload: memoryview) -> Any:
        size = self.clip.image_size
        if op == OP_IMAGE_JOB and self.device_decode:
            width, height, scale = JOB.unpack_from(payload)
            return JpegJob(data=payload[JOB.size:], width=width, height=height, scale=scale)
        if op == OP_IMAGE_PIXELS and len(payload) == size * size * 3:
            return np.frombuffer(payload, dtype=np.uint8).reshape(size, size, 3)
        raise ServeError(f"engine: a worker sent op {op} with {len(payload)} bytes; this engine takes "
                         f"{'JPEG jobs and ' if self.device_decode else ''}{size}×{size}×3 pixels")

    def _image_loop(self) -> None:
        # decode overlapped with the model: opt-in until measured faster served on a GPU (bench/README.md)
        if str(self.clip.loaded.device).startswith("cuda") and os.environ.get(PIPELINE_ENV) == "1":
            q = self.images

            def take() -> tuple[Any, list[Any]] | None:
                batch = q.take()
                return None if batch is None else (batch, [item for _, _, item in batch])

            Pipeline(self.clip).run(take, lambda batch, results, seconds: self._deliver(q, batch, results, seconds))
            return
        while (batch := self.images.take()) is not None:
            self._run(self.images, batch, self.clip.embed_items)

    def _text_loop(self) -> None:
        while (batch := self.texts.take()) is not None:
            self._run(self.texts, batch, self.clip.embed_texts)

    def _run(self, q: _Queue, batch: list[tuple[_Conn, int, Any]], fn: Any) -> None:
        started = time.perf_counter()
        results = call_batch(f"engine {q.name}", fn, [item for _, _, item in batch])
        self._deliver(q, batch, results, time.perf_counter() - started)

    def _deliver(self, q: _Queue, batch: list[tuple[_Conn, int, Any]], results: list[Any], elapsed: float) -> None:
        """Answer every item of a batch: one write per worker."""
        q.batch_seconds = 0.8 * q.batch_seconds + 0.2 * elapsed
        self.metrics.observe_key("oskit_engine_batch_size", len(batch), q.labels)
        self.metrics.observe_key("oskit_engine_batch_seconds", elapsed, q.labels)
        frames: dict[_Conn, list[bytes]] = {}
        records: dict[int, bytes] = {}  # a failed batch holds one exception n times: one record (and log)
        for (conn, rid, _), res in zip(batch, results):
            if isinstance(res, BaseException):
                record = records.get(id(res))
                if record is None:
                    record = records[id(res)] = _error_record(res)
                frame = _frame(rid, ST_ERROR, record)
            else:
                frame = _frame(rid, ST_VECTOR, np.ascontiguousarray(res, dtype=np.float32).tobytes())
            frames.setdefault(conn, []).append(frame)
        q.done(len(batch))
        for conn, parts in frames.items():  # one write per worker per batch
            conn.send(b"".join(parts))


class Pipeline:
    """JPEG decode of the next batch overlapped with the model on this one (CUDA).

    Two threads, each with a CUDA stream of its own: the decode thread takes a batch and runs
    :meth:`ClipEngine.prepare` on its stream (nvImageCodec or nvJPEG, crop and resize), then hands
    the batch over with an event; the model thread (the caller of :meth:`run`) makes its stream wait
    for that event, runs the image tower and copies the vectors out. The hand-off holds at most
    ``depth`` prepared batches: while both stages are busy new items queue, so batches stay full
    under load, and a lone item goes straight through. The prepared tensors live until the model
    thread has its vectors (the GPU is done with them), so no stream reads freed memory."""

    def __init__(self, clip: Any, depth: int = 1) -> None:
        import torch

        self.clip = clip
        self.device = torch.device(clip.loaded.device)
        self._handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.decode_seconds = 0.0  # totals, for benchmarks: time in each stage
        self.model_seconds = 0.0

    def run(self, take: Any, deliver: Any) -> None:
        """``take()`` → ``(context, items)``, or ``None`` to stop; ``deliver(context, results,
        seconds)`` once per batch, on this thread, with one vector or exception per item and the
        batch's time from the start of its decode. Returns when ``take`` said stop and every batch
        taken was delivered; an unexpected failure of the decode thread is raised here."""
        failed: list[BaseException] = []
        decoder = threading.Thread(target=self._decode_loop, args=(take, failed), name="engine-decode", daemon=True)
        decoder.start()
        self._model_loop(deliver)
        decoder.join()
        if failed:
            raise failed[0]

    def _decode_loop(self, take: Any, failed: list[BaseException]) -> None:
        import torch

        name_os_thread("engine-decode")
        stream = torch.cuda.Stream(self.device)
        try:
            while (got := take()) is not None:
                context, items = got
                started = time.perf_counter()
                error: BaseException | None = None
                prepared = None
                with torch.cuda.stream(stream):
                    try:
                        prepared = self.clip.prepare(items)
                    except Exception as exc:  # per-image errors are results; this is the whole batch
                        log.exception("engine: decoding a batch of %d failed", len(items))
                        error = exc
                    ready = torch.cuda.Event()
                    ready.record(stream)
                self.decode_seconds += time.perf_counter() - started
                self._handoff.put((context, items, prepared, error, ready, started))
        except BaseException as exc:
            failed.append(exc)
        finally:
            self._handoff.put(None)

    def _model_loop(self, deliver: Any) -> None:
        import torch

        stream = torch.cuda.Stream(self.device)
        while (entry := self._handoff.get()) is not None:
            context, items, prepared, error, ready, started = entry
            t0 = time.perf_counter()
            if error is not None:
                results: list[Any] = [error] * len(items)
            else:
                with torch.cuda.stream(stream):
                    stream.wait_event(ready)
                    results = call_batch("engine clip-image", lambda _: self.clip.run_prepared(prepared), items)
            self.model_seconds += time.perf_counter() - t0
            del prepared, entry
            deliver(context, results, time.perf_counter() - started)


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

    def call(self, op: int, *payload: bytes | memoryview) -> asyncio.Future[Any]:
        """Send one frame (``payload``: its parts, written without joining them)."""
        if self.lost is not None or self.transport is None:
            raise _unavailable(self.lost or "not connected to the model engine")
        self._next += 1
        rid = self._next
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[rid] = fut
        self.transport.writelines((HEADER.pack(rid, op, sum(len(p) for p in payload)), *payload))
        return fut

    async def stats(self) -> str:
        """The engine's ``/metrics`` text."""
        return str((await self.call(OP_STATS))["metrics"])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _unavailable(why: str) -> Exception:
    return ApiError(503, "engine_unavailable", f"{why}; the server is shutting down or the engine failed (see its log)")


def _api_error(record: dict[str, Any]) -> Exception:
    return ApiError(int(record["status"]), str(record["code"]), str(record["message"]),
                    headers=dict(record.get("headers") or {}))


async def connect_engine(path: str, timeout: float = 30.0) -> tuple[EngineClient, dict[str, Any]]:
    """Connect to the engine at ``path`` (retrying until ``timeout``) and ask for its description."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            transport, client = await loop.create_unix_connection(EngineClient, path)
            break
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if loop.time() >= deadline:
                raise ServeError(f"cannot reach the model engine at {path}: {exc}",
                                 hint="the engine is started by 'oskit serve --engine'; see its log") from exc
            await asyncio.sleep(0.1)
    sock = transport.get_extra_info("socket")
    if sock is not None:  # room for a few dozen images in flight without a blocked write
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        except (OSError, AttributeError):
            pass
    hello = await client.call(OP_HELLO)
    return client, hello


class RemoteBatcher:
    """A worker's stand-in for :class:`kit.serve.batching.Batcher`: the same ``admit``/``leave``/
    ``submit``, but the item goes to the engine, which batches it with every worker's items.

    Admission stays here, before the worker spends anything on a request: each worker admits
    ``max_queue`` (its share of the engine's ``max_queue × N``) and refuses the next with the same
    429 a :class:`Batcher` gives; Retry-After comes from the engine round trips measured here. The
    engine's own bound is the backstop for whatever a worker let through."""

    def __init__(self, name: str, client: EngineClient, *, max_batch: int, max_queue: int,
                 metrics: Metrics | None = None) -> None:
        self.name = name
        self.client = client
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.metrics = metrics
        self._inflight = 0
        self._seconds = 0.05  # running estimate of one engine round trip (a batch and its wait)

    @property
    def inflight(self) -> int:
        return self._inflight

    async def stop(self) -> None:
        return None

    def admit(self) -> _Slot:
        if self._inflight >= self.max_queue:
            raise refuse(self.name, self._inflight, self.max_queue, self.max_batch, self._seconds, self.metrics)
        self._inflight += 1
        return _Slot()

    def leave(self, slot: _Slot) -> None:
        self._inflight -= 1

    async def submit(self, item: Any, slot: _Slot | None = None) -> Any:
        if isinstance(item, JpegJob):  # headers checked here already: the engine goes straight to decode
            fut = self.client.call(OP_IMAGE_JOB, JOB.pack(item.width, item.height, item.scale), item.data)
        elif isinstance(item, np.ndarray):
            fut = self.client.call(OP_IMAGE_PIXELS, memoryview(np.ascontiguousarray(item, dtype=np.uint8)).cast("B"))
        elif isinstance(item, str):
            fut = self.client.call(OP_TEXT, item.encode("utf-8"))
        else:
            raise ServeError(f"engine: cannot send a {type(item).__name__}")
        started = time.perf_counter()
        result = await fut
        self._seconds = 0.8 * self._seconds + 0.2 * (time.perf_counter() - started)
        return result


class RemoteClip:
    """What a worker needs to know about the engine's CLIP (the ``ClipEngine`` attributes it reads)."""

    def __init__(self, client: EngineClient, hello: dict[str, Any]) -> None:
        self.client = client
        self.image_size = int(hello["image_size"])
        self.dim = int(hello["dim"])
        self.logit_scale = float(hello["logit_scale"])
        self._loop = asyncio.get_running_loop()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Blocking, from a worker thread (the tag vocabulary at start): texts → vectors via the engine."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        async def call() -> np.ndarray:
            return await self.client.call(OP_TEXTS, orjson.dumps(list(texts)))

        flat = asyncio.run_coroutine_threadsafe(call(), self._loop).result()
        return flat.reshape(len(texts), self.dim)
