"""The model server's ASGI app: ``create_app(ServeConfig)``.

Endpoints (documented with examples in docs/model-server.md)::

    GET  /health            {"status": "ok", "models": {...}}
    GET  /metrics           Prometheus text
    POST /clip/embed        {"inputText": str|null, "inputImage": b64|null} → {"embedding": [...]}
    POST /clip/embed-texts  {"input": [str, ...]} or [str, ...] → [[...], ...]
    POST /text/embed        the same contract, from a sentence-transformers model (serve: {kind: text})
    POST /ocr               {"inputImage": b64} → {"text", "lines": [{"text", "box", "confidence"}]}
    POST /tags              {"inputImage": b64} → {"tags": [...], "scores": {...}}
    POST /hash              {"inputImage": b64} → {"phash", "colour", "mean", "phash_crops", "phash_probes", "hash_version"}
    POST /captions          {"inputImage": b64} → {"caption": "..."}  (503 when not configured)

Every error: ``{"error": {"code": "...", "message": "...", "status": N}}``.
Models load and warm up in the app's lifespan (uvicorn runs it; tests enter
``app.router.lifespan_context(app)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Awaitable, Callable, MutableMapping

import anyio
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kit.errors import ServeError
from kit.serve.batching import Batcher
from kit.serve.captions import Captioner, CaptionsUnavailable
from kit.serve.config import ServeConfig
from kit.serve.errors import ApiError, _as_api_error, _error_body, error_response
from kit.serve.images import (PREPROCESS_VERSION, BadImage, decode_b64, decode_b64_buffer, jpeg_job, open_image,
                              preprocess)
from kit.serve.metrics import BATCH_BUCKETS, CONTENT_TYPE, LATENCY_BUCKETS, Metrics, label_key

__all__ = ["CONFIG_ENV", "ApiError", "Runtime", "config_to_env", "create_app", "create_app_from_env"]

log = logging.getLogger(__name__)

# ``oskit serve --workers N`` hands the config to each uvicorn worker process through this variable.
CONFIG_ENV = "OSKIT_SERVE_CONFIG_JSON"


class Runtime:
    """Loaded models, batchers and metrics for one app. ``start()`` loads and warms up everything."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = _make_metrics()
        self.device = "cpu"
        self.clip: Any = None  # kit.serve.clip.ClipEngine, or kit.serve.engine.RemoteClip with an engine
        self.engine: Any = None  # kit.serve.engine.EngineClient when config.engine names a model engine
        self.clip_info: dict[str, Any] = {}  # /health's models.clip
        self.image_batcher: Batcher[Any, np.ndarray] | None = None
        self.device_decode = False  # JPEGs decoded in the batch on the model's device (nvJPEG on CUDA)
        self.text_batcher: Batcher[str, np.ndarray] | None = None
        self.tagger: Any = None  # kit.serve.tags.Tagger
        self.text: Any = None  # kit.serve.text.TextEmbedder
        self.sentence_batcher: Batcher[str, np.ndarray] | None = None
        self.ocr: Any = None  # kit.serve.ocr.OcrEngine
        self.ocr_batcher: Batcher[bytes, Any] | None = None
        self.captioner = Captioner(config.captions)
        self.ready = False
        self.started_at = 0.0
        self.decode_pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        cfg = self.config
        # A pool of our own for decoding: sized to the cores this process should use (with several
        # workers each gets its share), not anyio's shared 40-thread default.
        self.decode_pool = ThreadPoolExecutor(max_workers=cfg.decode_threads or os.cpu_count() or 2,
                                              thread_name_prefix="decode")
        if cfg.torch_threads:
            import torch

            torch.set_num_threads(cfg.torch_threads)
        if cfg.clip is not None and cfg.engine is not None:
            await self._connect_engine(cfg.engine)
        elif cfg.clip is not None:
            from kit.serve.clip import describe_clip, load_clip_engine

            self.clip, self.device_decode = await anyio.to_thread.run_sync(load_clip_engine, cfg.clip, cfg.device)
            self.device = self.clip.loaded.device
            self.clip_info = describe_clip(self.clip, device_decode=self.device_decode,
                                           batching=cfg.clip.batching.model_dump())
            b, tb = cfg.clip.batching, cfg.clip.text_batching
            self.image_batcher = Batcher("clip-image", self.clip.embed_items, max_batch=b.max_batch,
                                         max_wait_ms=b.max_wait_ms, max_queue=b.max_queue, metrics=self.metrics)
            self.text_batcher = Batcher("clip-text", self.clip.embed_texts, max_batch=tb.max_batch,
                                        max_wait_ms=tb.max_wait_ms, max_queue=tb.max_queue, metrics=self.metrics)
            await self.image_batcher.start()
            await self.text_batcher.start()
        if cfg.tags is not None:
            if self.clip is None:
                raise ServeError("tags need a CLIP model: the config has tags but no clip")
            from kit.serve.tags import build_tagger, parse_vocabulary

            groups = parse_vocabulary(cfg.tags.vocabulary)
            scale = self.clip.logit_scale
            tags_cfg = cfg.tags
            self.tagger = await anyio.to_thread.run_sync(
                lambda: build_tagger(groups, self.clip.embed_texts, scale, tags_cfg.threshold, tags_cfg.top_k))
        if cfg.text is not None:
            from kit.serve.text import TextEmbedder

            text_cfg = cfg.text
            self.text = await anyio.to_thread.run_sync(lambda: TextEmbedder(text_cfg.source))
            b = text_cfg.batching
            self.sentence_batcher = Batcher("text", self.text.embed, max_batch=b.max_batch,
                                            max_wait_ms=b.max_wait_ms, max_queue=b.max_queue, metrics=self.metrics)
            await self.sentence_batcher.start()
        if cfg.ocr is not None:
            from kit.serve.ocr import OcrEngine

            self.ocr = await anyio.to_thread.run_sync(
                lambda: OcrEngine(cfg.ocr.min_confidence, cfg.max_image_pixels))  # type: ignore[union-attr]
            self.ocr_batcher = Batcher("ocr", self.ocr.read_batch, max_batch=1, max_wait_ms=0,
                                       max_queue=cfg.ocr.max_queue, metrics=self.metrics)
            await self.ocr_batcher.start()
        for batcher in self.batchers():
            self.metrics.gauge_callback("oskit_serve_queue_depth", lambda b=batcher: b.inflight, {"batcher": batcher.name})
        await self.captioner.start()
        if cfg.warmup:
            await self.warmup()
        self.ready = True
        self.started_at = time.time()

    async def _connect_engine(self, path: str) -> None:
        """CLIP runs in the model engine (kit/serve/engine.py): no model here, the batchers forward."""
        from kit.serve.engine import RemoteBatcher, RemoteClip, connect_engine

        cfg = self.config
        assert cfg.clip is not None
        self.engine, hello = await connect_engine(path)
        b, tb = cfg.clip.batching, cfg.clip.text_batching
        self.image_batcher = RemoteBatcher("clip-image", self.engine, max_batch=b.max_batch,  # type: ignore[assignment]
                                           max_queue=b.max_queue, metrics=self.metrics)
        self.text_batcher = RemoteBatcher("clip-text", self.engine, max_batch=tb.max_batch,  # type: ignore[assignment]
                                          max_queue=tb.max_queue, metrics=self.metrics)
        self.clip = RemoteClip(self.engine, hello)
        self.clip_info = hello["clip"]
        self.device = str(hello["device"])
        self.device_decode = hello["decode"] == "device"

    @property
    def healthy(self) -> bool:
        return self.ready and (self.engine is None or self.engine.lost is None)

    async def engine_metrics(self) -> str:
        """The engine's own metrics (its batches hold every worker's images), for /metrics."""
        if self.engine is None or self.engine.lost is not None:
            return ""
        return await self.engine.stats()

    def batchers(self) -> list[Batcher[Any, Any]]:
        return [b for b in (self.image_batcher, self.text_batcher, self.sentence_batcher, self.ocr_batcher)
                if b is not None]

    async def warmup(self) -> None:
        """Run each model once so the first real request does not pay for lazy initialisation."""
        if self.engine is None and self.clip is not None:  # (the model engine warms itself up)
            from kit.serve.clip import warm_up_clip

            await anyio.to_thread.run_sync(warm_up_clip, self.clip, self.device_decode)
        if self.ocr is not None and self.ocr_batcher is not None:
            from PIL import Image
            import io

            buf = io.BytesIO()
            Image.new("RGB", (64, 32), "white").save(buf, "PNG")
            await self.ocr_batcher.run_now([buf.getvalue()])

    async def stop(self) -> None:
        for batcher in self.batchers():
            await batcher.stop()
        await self.captioner.stop()
        if self.engine is not None:
            self.engine.close()
        if self.decode_pool is not None:
            self.decode_pool.shutdown(wait=False)
            self.decode_pool = None
        self.ready = False

    def describe(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        if self.clip is not None:
            models["clip"] = self.clip_info
            if self.engine is not None:
                models["clip"] = {**self.clip_info, "engine": {**self.clip_info["engine"],
                                                               "connected": self.engine.lost is None}}
        if self.tagger is not None:
            assert self.config.tags is not None
            models["tags"] = {"vocabulary": str(self.config.tags.vocabulary), "size": self.tagger.size,
                              "threshold": self.tagger.threshold, "top_k": self.tagger.top_k}
        if self.text is not None:
            models["text"] = {"source": self.text.source, "dimension": self.text.dimension}
        if self.ocr is not None:
            models["ocr"] = {"engine": "rapidocr-onnxruntime", "min_confidence": self.ocr.min_confidence}
        if self.config.hash is not None:
            from kit.serve.hashes import HASH_VERSION

            models["hash"] = {"version": HASH_VERSION, "library": "imagehash"}
        models["captions"] = {"configured": self.captioner.configured,
                              **({"model": self.config.captions.model} if self.captioner.configured else {})}
        return models


def _make_metrics() -> Metrics:
    m = Metrics()
    m.counter("oskit_serve_requests_total", "HTTP requests by endpoint and status code.")
    m.histogram("oskit_serve_request_seconds", "Request latency by endpoint, seconds.", LATENCY_BUCKETS)
    m.histogram("oskit_serve_batch_size", "Items per model batch.", BATCH_BUCKETS)
    m.histogram("oskit_serve_batch_seconds", "Model time per batch, seconds.", LATENCY_BUCKETS)
    m.counter("oskit_serve_rejected_total", "Requests refused with 429 because the queue was full.")
    m.gauge("oskit_serve_queue_depth", "Requests inside a batcher (preprocessing, waiting or running).")
    m.counter("oskit_serve_images_total", "Images decoded, by outcome.")
    return m


# --- request helpers ---------------------------------------------------------------------------


def _check_length(length: str | None, limit: int) -> None:
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, "request_too_large", f"request body is {length} bytes; the limit is {limit}")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "request_too_large", f"request body is over the limit of {limit} bytes")


def _parse_json(raw: bytes) -> Any:
    if not raw:
        raise ApiError(400, "bad_request", "empty request body; send JSON")
    try:
        # orjson: a 100 kB base64 string parses in microseconds, several times faster than json
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", f"request body is not valid JSON: {exc}") from exc


async def _read_json(request: Request, limit: int) -> Any:
    _check_length(request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return _parse_json(chunks[0] if len(chunks) == 1 else b"".join(chunks))  # one chunk: no copy


class _Disconnected(Exception):
    """The client went away before its request body arrived: nobody to answer."""


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def _receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body straight from ASGI messages (the lean path): :func:`_read_json`'s limits
    and errors; :func:`_parse_json` or :func:`_split_image` parse it."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            _check_length(value.decode("latin-1"), limit)
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            raise _Disconnected()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_IMAGE_KEY = b'"inputImage"'
_JSON_SPACE = b" \t\r\n"


def _split_image(raw: bytes) -> tuple[dict[str, Any], bytes] | None:
    """A ``/clip/embed`` body without making a Python str of its ~125 kB base64 image (orjson spent
    ~60 µs on that, more than the rest of the request's Python): ``(the body with inputImage "",
    the decoded image)``, or ``None`` — then the body takes the ordinary path, which answers
    anything unusual (errors included) as before.

    Sound because: ``"inputImage"`` occurs once in the body and starts after ``{`` or ``,``, so
    (once the reduced body parses and has the key at the top level) it is the top-level key; its
    value is a JSON string of base64 characters only (no quote, no backslash), and swapping one
    string token for another ("") keeps a JSON text valid or invalid alike."""
    at = raw.find(_IMAGE_KEY)
    if at < 0:
        return None
    i = at + len(_IMAGE_KEY)
    if raw[:at].rstrip(_JSON_SPACE)[-1:] not in (b"{", b","):
        return None
    n = len(raw)
    while i < n and raw[i] in _JSON_SPACE:
        i += 1
    if i >= n or raw[i] != 0x3A:  # ':'
        return None
    i += 1
    while i < n and raw[i] in _JSON_SPACE:
        i += 1
    if i >= n or raw[i] != 0x22:  # '"'
        return None
    start = i + 1
    stop = raw.find(b'"', start)  # memchr over the value: fast
    # a second key can only come after the value (a base64 value has no quotes); searching the
    # short tail, not the whole body, saves a 12-byte pattern search over ~125 kB
    if stop <= start or (stop - start) % 4 or raw.find(_IMAGE_KEY, stop) >= 0:
        return None
    data = decode_b64_buffer(memoryview(raw)[start:stop])
    if data is None:
        return None
    try:
        body = orjson.loads(raw[:start] + raw[stop:])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or body.get("inputImage") != "":
        return None
    return body, data


class _ServeApp(Starlette):
    """Starlette for every endpoint, except POSTs to the hot ones (``/clip/embed``,
    ``/clip/embed-texts``): those go straight to lean ASGI handlers — no middleware stack, routing,
    Request or Response objects — that answer byte for byte what the Starlette route answers,
    errors included (tests/serve/test_serve_lean_path.py sends the same requests both ways). Every
    other method or path (a GET there → 405, a ``root_path`` mount) takes the Starlette route."""

    def __init__(self, *, hot: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot = hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            handler = self.hot.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "request body must be a JSON object")
    return body


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _present_text(value: Any) -> bool:
    """Text present? ML Commons fills a null text doc into the connector as the *string* "null"
    (neural-search sends ``[null, image]`` for image-only documents and queries), so "null" means
    no text here — otherwise every image-only vector would be mixed with the embedding of "null"."""
    return _present(value) and value != "null"


class _Json(Response):
    """JSON via orjson; numpy arrays are written as float64 so the digits equal ``float(x)``'s repr
    (what the stdlib encoder wrote before), without a Python float per element."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _f64(v: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(v, dtype=np.float64)


def create_app(config: ServeConfig) -> Starlette:
    """Build the model server for ``config``; models load when the app's lifespan starts."""
    rt = Runtime(config)

    def need(part: str, ok: bool) -> None:
        if not ok:
            raise ApiError(503, "not_configured",
                           f"{part} is not configured on this server: add a model spec with 'serve: {{kind: {part}}}'")

    images_ok, images_bad = label_key({"outcome": "ok"}), label_key({"outcome": "bad"})

    async def image_vector(data: bytes) -> np.ndarray:
        batcher = rt.image_batcher
        assert batcher is not None and rt.clip is not None
        slot = batcher.admit()  # not `async with batcher.slot()`: no generator, no contextvar per request
        try:
            item: Any = None
            if rt.device_decode:
                # headers only (a few µs, no pixel work): fine on the event loop; the decode
                # itself happens batched on the device inside the model batch
                item = jpeg_job(data, rt.clip.image_size, config.max_image_pixels)
            if item is None:  # the reference path, in the decode threads: never on the event loop
                item = await asyncio.get_running_loop().run_in_executor(
                    rt.decode_pool, preprocess, data, rt.clip.image_size, config.max_image_pixels)
            vector = await batcher.submit(item, slot)
        except BadImage:
            rt.metrics.inc_key("oskit_serve_images_total", images_bad)
            raise
        finally:
            batcher.leave(slot)
        rt.metrics.inc_key("oskit_serve_images_total", images_ok)
        return vector

    async def text_vectors(texts: list[str], batcher: Batcher[str, np.ndarray] | None = None) -> list[np.ndarray]:
        batcher = batcher or rt.text_batcher
        assert batcher is not None
        slot = batcher.admit()
        try:
            if len(texts) == 1:  # the common case (a query): no gather, no extra task
                return [await batcher.submit(texts[0], slot)]
            return list(await asyncio.gather(*(batcher.submit(t, slot) for t in texts)))
        finally:
            batcher.leave(slot)

    def image_field(body: dict[str, Any]) -> bytes:
        if not _present(body.get("inputImage")):
            raise ApiError(400, "bad_request", "inputImage (base64 image) is required")
        return decode_b64(body["inputImage"])

    async def health(request: Request) -> Response:
        status = "ok" if rt.healthy else ("starting" if not rt.ready else "engine_unavailable")
        return JSONResponse({"status": status, "preprocess": PREPROCESS_VERSION, "models": rt.describe(),
                             "limits": {"max_body_bytes": config.max_body_bytes,
                                        "max_image_pixels": config.max_image_pixels,
                                        "max_texts": config.max_texts}},
                            status_code=200 if rt.healthy else 503)

    async def metrics(request: Request) -> Response:
        return Response(rt.metrics.render() + await rt.engine_metrics(), media_type=CONTENT_TYPE)

    async def embed(body: Any, image_bytes: bytes | None = None) -> Any:
        """``/clip/embed`` on a parsed body → the response content (both paths). ``image_bytes``:
        the image already decoded by :func:`_split_image` (the body's inputImage is then "")."""
        body = _object(body)
        text, image = body.get("inputText"), body.get("inputImage")
        if image_bytes is not None:
            image = image_bytes
        if not _present_text(text):
            text = None
        if not _present(text) and not _present(image):
            raise ApiError(400, "bad_request", "No input text or image provided (send inputText and/or inputImage)")
        if _present(text) and not isinstance(text, str):
            raise ApiError(400, "bad_request", "inputText must be a string")
        vectors: list[np.ndarray] = []
        if _present(image):
            vectors.append(await image_vector(image_bytes if image_bytes is not None else decode_b64(image)))
        if _present(text):
            vectors.extend(await text_vectors([text]))
        vec = vectors[0] if len(vectors) == 1 else vectors[0] + vectors[1]
        vec = vec / max(float(np.linalg.norm(vec)), 1e-12)  # both → normalised mean (the sum, renormalised)
        return {"embedding": _f64(vec)}

    async def embed_texts(body: Any, batcher: Batcher[str, np.ndarray] | None = None) -> Any:
        """``/clip/embed-texts`` (or ``/text/embed`` with its batcher) on a parsed body → the response content."""
        texts = body.get("input") if isinstance(body, dict) else body
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ApiError(400, "bad_request", 'send {"input": ["text", ...]} or ["text", ...] (strings only)')
        if not texts:
            raise ApiError(400, "bad_request", "no texts given")
        if len(texts) > config.max_texts:
            raise ApiError(413, "too_many_inputs", f"{len(texts)} texts in one request; the limit is {config.max_texts}")
        return [_f64(v) for v in await text_vectors(texts, batcher)]

    async def clip_embed(request: Request) -> Response:
        need("clip", rt.clip is not None)
        return _Json(await embed(await _read_json(request, config.max_body_bytes)))

    async def clip_embed_texts(request: Request) -> Response:
        need("clip", rt.clip is not None)
        return _Json(await embed_texts(await _read_json(request, config.max_body_bytes)))

    async def text_embed(request: Request) -> Response:
        need("text", rt.sentence_batcher is not None)
        return _Json(await embed_texts(await _read_json(request, config.max_body_bytes), rt.sentence_batcher))

    async def ocr(request: Request) -> Response:
        need("ocr", rt.ocr_batcher is not None)
        assert rt.ocr_batcher is not None
        data = image_field(_object(await _read_json(request, config.max_body_bytes)))
        async with rt.ocr_batcher.slot():
            result = await rt.ocr_batcher.submit(data)
        if isinstance(result, Exception):
            raise result
        return JSONResponse(result)

    async def tags(request: Request) -> Response:
        need("tags", rt.tagger is not None)
        data = image_field(_object(await _read_json(request, config.max_body_bytes)))
        return JSONResponse(rt.tagger.tag(await image_vector(data)))

    async def hashes(request: Request) -> Response:
        need("hash", config.hash is not None)
        from kit.serve.hashes import hash_image

        data = image_field(_object(await _read_json(request, config.max_body_bytes)))
        return JSONResponse(await anyio.to_thread.run_sync(lambda: hash_image(data, config.max_image_pixels)))

    async def captions(request: Request) -> Response:
        data = image_field(_object(await _read_json(request, config.max_body_bytes)))
        if not rt.captioner.configured:
            raise CaptionsUnavailable(
                "no captioner is configured: set OSKIT_CAPTIONS_URL (an OpenAI-compatible base URL such as "
                "http://127.0.0.1:8000/v1) and OSKIT_CAPTIONS_MODEL; oskit never invents a caption")
        decoded = await anyio.to_thread.run_sync(lambda: open_image(data, max_pixels=config.max_image_pixels))
        return JSONResponse(await rt.captioner.caption(data, decoded.format))

    def endpoint(name: str, fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await fn(request)
            except Exception as exc:  # every error leaves in the one JSON shape
                err = _as_api_error(exc)
                response = error_response(err.status, err.code, err.message, err.headers)
            rt.metrics.inc("oskit_serve_requests_total", {"endpoint": name, "status": str(response.status_code)})
            rt.metrics.observe("oskit_serve_request_seconds", time.perf_counter() - started, {"endpoint": name})
            return response

        return wrapped

    async def embed_raw(raw: bytes) -> Any:
        split = _split_image(raw)
        if split is not None:
            return await embed(*split)
        return await embed(_parse_json(raw))

    async def embed_texts_raw(raw: bytes) -> Any:
        return await embed_texts(_parse_json(raw))

    def lean(name: str, fn: Callable[[bytes], Awaitable[Any]]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        """The ASGI handler for a hot POST endpoint: what ``endpoint(name, …)`` around a Starlette
        route does, written straight against ASGI (a JSON body in, orjson bytes out)."""
        ok_key = label_key({"endpoint": name, "status": "200"})
        latency_key = label_key({"endpoint": name})
        ok_headers = [(b"content-type", b"application/json")]

        async def handler(scope: Scope, receive: Receive, send: Send) -> None:
            started = time.perf_counter()
            try:
                need("clip", rt.clip is not None)
                content = await fn(await _receive_body(scope, receive, config.max_body_bytes))
                body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
                status, key, headers = 200, ok_key, ok_headers
            except _Disconnected:
                return
            except Exception as exc:  # every error leaves in the one JSON shape
                err = _as_api_error(exc)
                body = _error_body(err)
                status, key = err.status, label_key({"endpoint": name, "status": str(err.status)})
                headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()]
                headers.append((b"content-type", b"application/json"))
            rt.metrics.inc_key("oskit_serve_requests_total", key)
            rt.metrics.observe_key("oskit_serve_request_seconds", time.perf_counter() - started, latency_key)
            # header order as Starlette's JSONResponse: extra headers, content-length, content-type
            await send({"type": "http.response.start", "status": status,
                        "headers": [*headers[:-1], (b"content-length", str(len(body)).encode()), headers[-1]]})
            await send({"type": "http.response.body", "body": body})

        return handler

    routes = [
        Route("/health", endpoint("/health", health), methods=["GET"]),
        Route("/metrics", endpoint("/metrics", metrics), methods=["GET"]),
        Route("/clip/embed", endpoint("/clip/embed", clip_embed), methods=["POST"]),
        Route("/clip/embed-texts", endpoint("/clip/embed-texts", clip_embed_texts), methods=["POST"]),
        Route("/text/embed", endpoint("/text/embed", text_embed), methods=["POST"]),
        Route("/ocr", endpoint("/ocr", ocr), methods=["POST"]),
        Route("/tags", endpoint("/tags", tags), methods=["POST"]),
        Route("/hash", endpoint("/hash", hashes), methods=["POST"]),
        Route("/captions", endpoint("/captions", captions), methods=["POST"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"no endpoint {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
        return error_response(exc.status_code, code, message, dict(exc.headers or {}))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    hot = {"/clip/embed": lean("/clip/embed", embed_raw), "/clip/embed-texts": lean("/clip/embed-texts", embed_texts_raw)}
    app = _ServeApp(hot=hot, routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.runtime = rt
    return app


def check_port(host: str, port: int) -> None:
    """Raise :class:`ServeError` when ``host:port`` cannot be bound (busy, or not an address of this host).

    Bound without ``SO_REUSEPORT``, so a port held by another ``oskit serve --workers`` counts as busy
    too. Run before any model loads: uvicorn alone logs the error and exits 3 (read as drift by CI).
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(f"port {port} on {host} is already in use (another `oskit serve`?)",
                                 hint=f"stop the process listening there, or pass --port (e.g. --port {port + 1})") from None
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                             hint="pass --host with an address of this machine") from None


def config_to_env(config: ServeConfig) -> str:
    """Serialise ``config`` for :data:`CONFIG_ENV` (the captions API key included, for the workers)."""
    data = config.model_dump(mode="json")
    key = config.captions.api_key
    data["captions"]["api_key"] = key.get_secret_value() if key is not None else None
    return json.dumps(data)


def create_app_from_env() -> Starlette:
    """uvicorn factory for multi-worker serving: the config comes from :data:`CONFIG_ENV`."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise ServeError(f"{CONFIG_ENV} is not set; start the server with 'oskit serve'")
    return create_app(ServeConfig.model_validate_json(raw))
