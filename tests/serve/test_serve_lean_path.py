"""The lean ASGI path for /clip/embed and /clip/embed-texts answers byte for byte what the
Starlette route answers — status, headers and body — for good requests and every kind of bad one."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import orjson
import pytest

from kit.serve.app import _split_image
from kit.serve.config import BatchingConfig, ClipConfig, ServeConfig
from _serve_helpers import b64, image_bytes

JPEG = image_bytes("red")
PNG = image_bytes("blue", fmt="PNG")
IMG = b64(JPEG)

EMBED_BODIES: list[Any] = [
    {"inputText": None, "inputImage": IMG},
    {"inputImage": IMG},
    {"inputText": "null", "inputImage": IMG},
    {"inputText": "a red square", "inputImage": IMG},
    {"inputText": "a red square", "inputImage": None},
    {"inputText": "a red square"},
    {"inputText": None, "inputImage": b64(PNG)},
    {"inputText": None, "inputImage": "data:image/jpeg;base64," + IMG},
    {"inputText": None, "inputImage": base64.urlsafe_b64encode(JPEG).decode().rstrip("=")},
    {"inputText": None, "inputImage": IMG[:40] + "\n" + IMG[40:]},
    {"inputText": None, "inputImage": "@@@@"},
    {"inputText": None, "inputImage": b64(b"not an image at all")},
    {"inputText": None, "inputImage": b64(JPEG[: len(JPEG) // 2])},
    {"inputText": None, "inputImage": ""},
    {"inputText": None, "inputImage": 12},
    {"inputText": 5, "inputImage": IMG},
    {"inputText": None, "inputImage": None},
    {},
    [IMG],
    "just a string",
    {"inputText": '"inputImage": "QUJD"', "inputImage": IMG},  # the key inside a string too
    {'x"inputImage': IMG},  # a key that ends in inputImage
    {"nested": {"inputImage": IMG}},
    {"nested": {"inputImage": IMG}, "inputImage": IMG},
    {"inputImage": IMG, "inputImage ": IMG},
]
RAW_EMBED_BODIES: list[bytes] = [
    b"",
    b"{",
    b"not json",
    b'{"inputImage": "' + IMG.encode() + b'"',  # unterminated object
    b'{"inputImage" :\t"' + IMG.encode() + b'" }',
    b'{"inputImage":"' + IMG.encode() + b'","inputImage":"QUJD"}',  # duplicate key: the last wins
    b'{"inputImage":"' + IMG.encode() + b'" "inputText": "x"}',  # missing comma
    b'["inputImage", "' + IMG.encode() + b'"]',
    b'{"inputText": "\\"inputImage\\": \\"QUJD\\"", "inputImage": "' + IMG.encode() + b'"}',
    b'{"inputText": "caf\xc3\xa9", "inputImage": "' + IMG.encode() + b'"}',
    b'{"inputText": "\xff", "inputImage": "' + IMG.encode() + b'"}',  # not UTF-8
]
TEXT_BODIES: list[Any] = [
    {"input": ["a red square", "a blue circle"]},
    ["one text"],
    {"input": "just one"},
    "bare string",
    {"input": []},
    {"input": [1, 2]},
    {"input": ["x"] * 5},
    {"wrong": ["x"]},
    42,
]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def config(tiny_clip: str) -> ServeConfig:
    return ServeConfig(clip=ClipConfig(model=tiny_clip, batching=BatchingConfig(max_wait_ms=0)), device="cpu",
                       max_body_bytes=64_000, max_texts=4)


async def _both_ways(c: Any, app: Any, path: str, content: bytes) -> tuple[Any, Any]:
    lean = await c.post(path, content=content, headers={"content-type": "application/json"})
    hot, app.hot = app.hot, {}  # the same app and models, through the Starlette route
    try:
        ref = await c.post(path, content=content, headers={"content-type": "application/json"})
    finally:
        app.hot = hot
    return lean, ref


def _same(lean: Any, ref: Any, what: str) -> None:
    assert lean.status_code == ref.status_code, what
    assert lean.headers.multi_items() == ref.headers.multi_items(), what
    assert lean.content == ref.content, what


def test_embed_lean_path_answers_like_the_starlette_route(config: ServeConfig, serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(config) as (c, app):
            assert set(app.hot) == {"/clip/embed", "/clip/embed-texts"}
            statuses = set()
            for body in EMBED_BODIES:
                lean, ref = await _both_ways(c, app, "/clip/embed", json.dumps(body).encode())
                _same(lean, ref, repr(body)[:80])
                statuses.add(lean.status_code)
            for raw in RAW_EMBED_BODIES:
                lean, ref = await _both_ways(c, app, "/clip/embed", raw)
                _same(lean, ref, repr(raw[:80]))
                statuses.add(lean.status_code)
            too_big = json.dumps({"inputImage": b64(bytes(range(256)) * 300)}).encode()
            assert len(too_big) > config.max_body_bytes
            lean, ref = await _both_ways(c, app, "/clip/embed", too_big)
            _same(lean, ref, "too big")
            assert lean.status_code == 413 and lean.json()["error"]["code"] == "request_too_large"
            assert statuses >= {200, 400}
            # a GET is not a hot request: the route's 405, in the one error shape
            r = await c.get("/clip/embed")
            assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
            m = app.state.runtime.metrics
            assert m.value("oskit_serve_requests_total", {"endpoint": "/clip/embed", "status": "200"}) > 0
            assert m.value("oskit_serve_requests_total", {"endpoint": "/clip/embed", "status": "413"}) == 2

    run(go())


def test_embed_texts_lean_path_answers_like_the_starlette_route(config: ServeConfig, serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(config) as (c, app):
            for body in TEXT_BODIES:
                lean, ref = await _both_ways(c, app, "/clip/embed-texts", json.dumps(body).encode())
                _same(lean, ref, repr(body))
            lean, _ = await _both_ways(c, app, "/clip/embed-texts", b'{"input": ["a", "b"]}')
            assert lean.status_code == 200 and [len(v) for v in lean.json()] == [64, 64]

    run(go())


def test_queue_full_answers_429_with_retry_after_on_the_lean_path(tiny_clip: str, serve_client: Any) -> None:
    config = ServeConfig(clip=ClipConfig(model=tiny_clip, batching=BatchingConfig(max_queue=1, max_wait_ms=0)),
                         device="cpu")

    async def go() -> None:
        async with serve_client(config) as (c, app):
            batcher = app.state.runtime.image_batcher
            slot = batcher.admit()  # one request inside: the next is refused before any work
            try:
                lean, ref = await _both_ways(c, app, "/clip/embed", json.dumps({"inputImage": IMG}).encode())
            finally:
                batcher.leave(slot)
            _same(lean, ref, "429")
            assert lean.status_code == 429 and lean.headers["retry-after"].isdigit()
            assert (await c.post("/clip/embed", json={"inputImage": IMG})).status_code == 200

    run(go())


@pytest.mark.parametrize("raw", [json.dumps(b).encode() for b in EMBED_BODIES] + RAW_EMBED_BODIES)
def test_split_image_is_the_full_parse_or_nothing(raw: bytes) -> None:
    """Whenever the shortcut answers, it is what parsing the whole body gives."""
    split = _split_image(raw)
    if split is None:
        return
    body, data = split
    full = orjson.loads(raw)
    assert isinstance(full, dict) and base64.b64decode(full["inputImage"], validate=True) == data
    assert body == {**full, "inputImage": ""}


def test_split_image_takes_the_connector_body() -> None:
    """What ML Commons connectors send is the case the shortcut exists for."""
    for raw in (json.dumps({"inputText": None, "inputImage": IMG}).encode(),
                orjson.dumps({"inputImage": IMG, "inputText": "null"}),
                b'{"inputImage" :\t"' + IMG.encode() + b'" }'):
        split = _split_image(raw)
        assert split is not None and split[1] == JPEG


def test_base64_without_pybase64_decodes_and_refuses_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """pybase64 is optional: binascii gives the same bytes and the same refusals."""
    import kit.serve.images as images

    cases = [IMG.encode(), b"QUJD", b"QQ==", b"QQ==QQ==", b"QQ=", b"Q Q==", b"@@@@", b"QUJD\nRA=="]
    fast = [images.decode_b64_buffer(memoryview(c)) for c in cases]
    monkeypatch.setattr(images, "_pybase64", None)
    slow = [images.decode_b64_buffer(memoryview(c)) for c in cases]
    assert fast == slow
    assert fast[0] == JPEG and fast[1] == b"ABC" and fast[3:] == [None] * 5
    assert _split_image(json.dumps({"inputImage": IMG}).encode()) == ({"inputImage": ""}, JPEG)
