"""Dynamic batching: concurrent requests share batches; a full queue answers 429 + Retry-After."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from _serve_helpers import b64, image_bytes
from kit.errors import ServeError
from kit.serve.batching import Batcher, QueueFull
from kit.serve.config import BatchingConfig, ClipConfig, ServeConfig
from kit.serve.metrics import Metrics


def test_concurrent_items_form_batches() -> None:
    seen: list[int] = []

    def fn(items: list[int]) -> list[int]:
        seen.append(len(items))
        time.sleep(0.02)
        return [i * 2 for i in items]

    async def go() -> list[int]:
        b: Batcher[int, int] = Batcher("t", fn, max_batch=8, max_wait_ms=20, max_queue=100)
        await b.start()
        try:
            async def one(i: int) -> int:
                async with b.slot():
                    return await b.submit(i)
            return list(await asyncio.gather(*(one(i) for i in range(20))))
        finally:
            await b.stop()

    out = asyncio.run(go())
    assert out == [i * 2 for i in range(20)]
    assert sum(seen) == 20 and max(seen) == 8 and len(seen) <= 4


def test_max_wait_bounds_waiting_and_a_lone_request_does_not_wait() -> None:
    async def go() -> tuple[float, float, list[int]]:
        sizes: list[int] = []

        def fn(xs: list[int]) -> list[int]:
            sizes.append(len(xs))
            return xs

        b: Batcher[int, int] = Batcher("t", fn, max_batch=64, max_wait_ms=400, max_queue=10)
        await b.start()
        try:
            t0 = time.perf_counter()
            async with b.slot():
                await b.submit(1)
            lone = time.perf_counter() - t0
            # a second admitted request that never submits (still "decoding"): the first waits max_wait
            async with b.slot():
                async with b.slot():
                    t0 = time.perf_counter()
                    await b.submit(2)
                    waited = time.perf_counter() - t0
            return lone, waited, sizes
        finally:
            await b.stop()

    lone, waited, sizes = asyncio.run(go())
    assert lone < 0.2  # far below max_wait: a lone request does not wait
    assert 0.39 <= waited < 2.0
    assert sizes == [1, 1]


def test_batch_error_reaches_every_caller() -> None:
    def fn(items: list[int]) -> list[int]:
        raise ServeError("boom")

    async def go() -> list[Any]:
        b: Batcher[int, int] = Batcher("t", fn, max_batch=4, max_wait_ms=10, max_queue=10)
        await b.start()
        try:
            return list(await asyncio.gather(*(b.submit(i) for i in range(3)), return_exceptions=True))
        finally:
            await b.stop()

    results = asyncio.run(go())
    assert len(results) == 3 and all(isinstance(r, ServeError) and r.message == "boom" for r in results)


def test_queue_full_raises_with_retry_after() -> None:
    metrics = Metrics()
    metrics.counter("oskit_serve_rejected_total", "x")

    async def go() -> QueueFull:
        b: Batcher[int, int] = Batcher("t", lambda xs: xs, max_batch=1, max_wait_ms=0, max_queue=2, metrics=metrics)
        async with b.slot(), b.slot():
            with pytest.raises(QueueFull) as info:
                async with b.slot():
                    pass
        async with b.slot():  # slots are given back
            pass
        return info.value

    err = asyncio.run(go())
    assert err.retry_after >= 1
    assert metrics.value("oskit_serve_rejected_total", {"batcher": "t"}) == 1


def test_server_answers_429_when_full(tiny_clip: str, serve_client: Any) -> None:
    """Block the model thread, fill the queue, and the next request is refused with Retry-After."""
    cfg = ServeConfig(clip=ClipConfig(model=tiny_clip, batching=BatchingConfig(max_batch=1, max_wait_ms=0, max_queue=2)),
                      device="cpu")
    gate = threading.Event()

    async def go() -> None:
        async with serve_client(cfg) as (c, app):
            engine = app.state.runtime.clip
            real = engine.embed_pixels

            def slow(pixels: Any) -> Any:
                gate.wait(10)
                return real(pixels)

            app.state.runtime.image_batcher.fn = slow
            body = {"inputImage": b64(image_bytes())}
            first = [asyncio.create_task(c.post("/clip/embed", json=body)) for _ in range(2)]
            for _ in range(200):  # wait until both are inside the batcher
                if app.state.runtime.image_batcher.inflight == 2:
                    break
                await asyncio.sleep(0.01)
            r = await c.post("/clip/embed", json=body)
            assert r.status_code == 429
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "overloaded"
            gate.set()
            done = await asyncio.gather(*first)
            assert [d.status_code for d in done] == [200, 200]
            metrics = (await c.get("/metrics")).text
            assert 'oskit_serve_rejected_total{batcher="clip-image"} 1' in metrics
            assert 'oskit_serve_requests_total{endpoint="/clip/embed",status="429"} 1' in metrics

    asyncio.run(go())


def test_server_batches_concurrent_clients(tiny_clip: str, serve_client: Any) -> None:
    cfg = ServeConfig(clip=ClipConfig(model=tiny_clip, batching=BatchingConfig(max_batch=16, max_wait_ms=50)),
                      device="cpu")

    async def go() -> None:
        async with serve_client(cfg) as (c, app):
            body = {"inputImage": b64(image_bytes())}
            rs = await asyncio.gather(*(c.post("/clip/embed", json=body) for _ in range(16)))
            assert all(r.status_code == 200 for r in rs)
            m = app.state.runtime.metrics
            batches = m.value("oskit_serve_batch_size", {"batcher": "clip-image"})
            assert batches < 16  # some requests shared a batch

    asyncio.run(go())
