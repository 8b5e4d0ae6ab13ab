"""Dynamic batching across concurrent requests, with admission control.

Requests first take a *slot* (:meth:`Batcher.slot`): at most ``max_queue`` requests may be inside
the batcher's part of the server at once — preprocessing, waiting or running. One more is refused
with :class:`QueueFull` (HTTP 429 + ``Retry-After``) before any work is spent on it.

Inside a slot, :meth:`Batcher.submit` queues one item. Items queue up while the model runs (the
event loop keeps reading, decoding in its thread pool and queueing), so when the model frees up the
next batch is already collected: the batch loop takes every queued item up to ``max_batch`` and
runs the batch function in a worker thread (torch releases the GIL). It waits for more only while
admitted requests are still *preparing* (decoding their image, not yet submitted) and at most until
``max_wait_ms`` after the batch's first item was queued — time spent queued behind a running batch
counts. A lone request therefore runs at once: batching costs no latency when there is nothing to
batch. The batch function may return an exception for one item (a corrupt image found while
decoding the batch): only that caller gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Callable, Generic, Sequence, TypeVar

from kit.errors import ServeError
from kit.serve.metrics import Metrics, label_key

__all__ = ["Batcher", "QueueFull", "call_batch", "refuse", "retry_after"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class _Slot:
    """One admitted request; ``preparing`` until its first :meth:`Batcher.submit`."""

    __slots__ = ("preparing",)

    def __init__(self) -> None:
        self.preparing = True


_current_slot: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("oskit_batch_slot", default=None)


class QueueFull(ServeError):
    """The batcher is at ``max_queue``; ``retry_after`` is a whole-second estimate of the backlog."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, hint="retry later or raise serve batching.max_queue")
        self.retry_after = retry_after


def retry_after(inflight: int, max_batch: int, batch_seconds: float) -> int:
    """Whole seconds until ``inflight`` queued items have gone through, at ``batch_seconds`` a batch."""
    return max(1, math.ceil(math.ceil(inflight / max_batch) * batch_seconds))


def refuse(name: str, inflight: int, max_queue: int, max_batch: int, batch_seconds: float,
           metrics: Metrics | None) -> QueueFull:
    """The 429 of a full batcher (:class:`Batcher` and a worker's ``RemoteBatcher`` alike), counted."""
    if metrics is not None:
        metrics.inc("oskit_serve_rejected_total", {"batcher": name})
    return QueueFull(f"{name}: {inflight} requests queued (max_queue {max_queue})",
                     retry_after=retry_after(inflight, max_batch, batch_seconds))


def call_batch(name: str, fn: Callable[[list[T]], Sequence[R]], items: list[T]) -> list[R | BaseException]:
    """``fn(items)``, one result or exception per item; when the whole batch fails, every item gets
    that exception (also :class:`Batcher`'s contract, shared with the model engine's batch threads)."""
    try:
        results = list(fn(items))
        if len(results) != len(items):
            raise ServeError(f"batcher {name}: batch function returned {len(results)} results for {len(items)} items")
        return results  # type: ignore[return-value]
    except Exception as exc:
        log.exception("batch of %d failed in %s", len(items), name)
        return [exc] * len(items)


class Batcher(Generic[T, R]):
    """Groups single items from concurrent callers into batches for ``fn``."""

    def __init__(self, name: str, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 32,
                 max_wait_ms: float = 5.0, max_queue: int = 256, metrics: Metrics | None = None) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ServeError(f"batcher {name}: max_batch and max_queue must be ≥ 1 and max_wait_ms ≥ 0")
        self.name = name
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.metrics = metrics
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R], float]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._inflight = 0
        self._preparing = 0  # admitted requests that have not queued an item yet (still decoding)
        self._batch_seconds = 0.05  # running estimate for Retry-After
        self._labels = label_key({"batcher": name})

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def preparing(self) -> int:
        return self._preparing

    async def start(self) -> None:
        if self._task is not None:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{self.name}")
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        assert self._queue is not None
        while not self._queue.empty():
            _, fut, _ = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(ServeError(f"batcher {self.name} stopped"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Admission: raise :class:`QueueFull` when ``max_queue`` requests are already inside."""
        slot = self.admit()
        token = _current_slot.set(slot)
        try:
            yield
        finally:
            _current_slot.reset(token)
            self.leave(slot)

    def admit(self) -> _Slot:
        """:meth:`slot` without the context manager (the hot request path): pair with :meth:`leave`
        and pass the slot to :meth:`submit`."""
        if self._inflight >= self.max_queue:
            raise refuse(self.name, self._inflight, self.max_queue, self.max_batch, self._batch_seconds, self.metrics)
        slot = _Slot()
        self._inflight += 1
        self._preparing += 1
        return slot

    def leave(self, slot: _Slot) -> None:
        self._inflight -= 1
        if slot.preparing:
            self._preparing -= 1

    async def submit(self, item: T, slot: _Slot | None = None) -> R:
        """Queue one item and wait for its result (inside :meth:`slot`, or with ``slot`` from :meth:`admit`)."""
        if self._queue is None or self._task is None:
            raise ServeError(f"batcher {self.name} is not running")
        if slot is None:
            slot = _current_slot.get()
        if slot is not None and slot.preparing:
            slot.preparing = False
            self._preparing -= 1
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._queue.put_nowait((item, fut, loop.time()))
        return await fut

    async def run_now(self, items: list[T]) -> Sequence[R]:
        """Run ``fn`` on ``items`` directly in the batch thread (warm-up, multi-item requests)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.fn, items)

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            first = await queue.get()
            batch = [first]
            deadline = first[2] + self.max_wait  # queued behind a running batch counts as waiting
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                if self._preparing <= 0:
                    break  # nobody else is on the way: waiting could only add latency
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = [(item, fut) for item, fut, _ in batch if not fut.done()]  # drop callers that went away
            if not live:
                continue
            started = time.perf_counter()
            results = await loop.run_in_executor(self._executor, call_batch, self.name, self.fn,
                                                 [item for item, _ in live])
            elapsed = time.perf_counter() - started
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * elapsed
            if self.metrics is not None:
                self.metrics.observe_key("oskit_serve_batch_size", len(live), self._labels)
                self.metrics.observe_key("oskit_serve_batch_seconds", elapsed, self._labels)
            for (_, fut), res in zip(live, results):
                if fut.done():
                    continue
                if isinstance(res, BaseException):  # this item failed (a corrupt image), or the whole batch
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
