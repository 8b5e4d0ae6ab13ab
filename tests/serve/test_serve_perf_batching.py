"""Batcher pipelining: items queue while the model runs, so the next batch is full when it frees
up; time queued behind a running batch counts toward max_wait; one bad item fails alone."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from kit.errors import ServeError
from kit.serve.batching import Batcher


def test_next_batch_collects_while_the_model_runs() -> None:
    sizes: list[int] = []
    release = threading.Event()

    def fn(items: list[int]) -> list[int]:
        sizes.append(len(items))
        if len(sizes) == 1:
            release.wait(10)  # the model is busy with the first batch …
        return items

    async def go() -> list[int]:
        b: Batcher[int, int] = Batcher("t", fn, max_batch=16, max_wait_ms=1, max_queue=100)
        await b.start()
        try:
            async def one(i: int) -> int:
                async with b.slot():
                    return await b.submit(i)

            first = asyncio.create_task(one(0))
            await asyncio.sleep(0.05)
            rest = [asyncio.create_task(one(i)) for i in range(1, 13)]  # … while 12 more arrive
            await asyncio.sleep(0.05)
            release.set()
            return [await first] + list(await asyncio.gather(*rest))
        finally:
            await b.stop()

    assert asyncio.run(go()) == list(range(13))
    assert sizes == [1, 12]  # the lone first ran at once; the 12 left as one batch


def test_time_queued_behind_a_batch_counts_as_waiting() -> None:
    """A request still decoding must not hold up items that already waited max_wait in the queue."""
    sizes: list[int] = []
    release = threading.Event()

    def fn(items: list[int]) -> list[int]:
        sizes.append(len(items))
        if len(sizes) == 1:
            release.wait(10)
        return items

    async def go() -> float:
        b: Batcher[int, int] = Batcher("t", fn, max_batch=16, max_wait_ms=100, max_queue=100)
        await b.start()
        try:
            async def one(i: int) -> int:
                async with b.slot():
                    return await b.submit(i)

            first = asyncio.create_task(one(0))
            await asyncio.sleep(0.02)
            second = asyncio.create_task(one(1))
            await asyncio.sleep(0.2)  # queued for longer than max_wait behind the running batch
            async with b.slot():  # a request that is "still decoding" and never submits
                t0 = time.perf_counter()
                release.set()
                await second
                waited = time.perf_counter() - t0
            await first
            return waited
        finally:
            await b.stop()

    assert asyncio.run(go()) < 0.09
    assert sizes == [1, 1]


def test_an_item_exception_fails_only_its_caller() -> None:
    def fn(items: list[int]) -> list[Any]:
        return [ServeError(f"bad {i}") if i == 2 else i for i in items]

    async def go() -> list[Any]:
        b: Batcher[int, Any] = Batcher("t", fn, max_batch=8, max_wait_ms=20, max_queue=10)
        await b.start()
        try:
            return list(await asyncio.gather(*(b.submit(i) for i in range(4)), return_exceptions=True))
        finally:
            await b.stop()

    out = asyncio.run(go())
    assert out[:2] == [0, 1] and out[3] == 3
    assert isinstance(out[2], ServeError) and out[2].message == "bad 2"


def test_lone_requests_through_the_app_never_wait_for_max_wait(tiny_clip: str, serve_client: Any) -> None:
    """Sequential requests with max_wait 1 s: answered far sooner (nothing to wait for)."""
    from _serve_helpers import b64, image_bytes
    from kit.serve.config import BatchingConfig, ClipConfig, ServeConfig

    cfg = ServeConfig(clip=ClipConfig(model=tiny_clip, batching=BatchingConfig(max_batch=32, max_wait_ms=1000)),
                      device="cpu")

    async def go() -> list[float]:
        async with serve_client(cfg) as (c, app):
            body = {"inputImage": b64(image_bytes(size=(320, 240)))}
            took = []
            for _ in range(5):
                t0 = time.perf_counter()
                assert (await c.post("/clip/embed", json=body)).status_code == 200
                took.append(time.perf_counter() - t0)
            assert app.state.runtime.image_batcher.preparing == 0
            return took

    assert sorted(asyncio.run(go()))[2] < 0.5  # the median; a slow first call on a busy VM is fine
