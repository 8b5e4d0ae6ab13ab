"""Search contexts that outlive one request: scrolls and points in time (in memory, per node, lost on
restart as OpenSearch's are). Expired contexts are dropped when the registry is next used."""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kit.node.errors import ApiError, shard_failure

__all__ = ["PitContext", "ScrollContext", "SearchContexts", "parse_time_value"]

_UNITS = {"nanos": 1e-6, "micros": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0}
_TIME = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(nanos|micros|ms|s|m|h|d)\s*$")
MAX_OPEN_SCROLL_CONTEXT = 500  # search.max_open_scroll_context
MAX_OPEN_PIT_CONTEXT = 300  # point_in_time.max_open_pit_context (search.max_open_pit_context)


def parse_time_value(value: Any, setting: str) -> int:
    """OpenSearch ``TimeValue.parseTimeValue`` → milliseconds."""
    text = str(value)
    if text in ("-1", "0"):
        return int(text)
    m = _TIME.match(text)
    if m is None:
        raise ApiError(400, "illegal_argument_exception", f"failed to parse setting [{setting}] with value [{text}] "
                       f"as a time value: unit is missing or unrecognized")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


@dataclass
class ScrollContext:
    """A scroll's remaining hits, in order, and how to render them."""

    number: int
    targets: list[Any]  # the IndexStates searched, by position
    remaining: list[tuple[float, int, int]]  # (score, target position, rid)
    size: int
    render: dict[str, Any]  # source filter, version flags, sort values, score visibility
    total: dict[str, Any] | int | None
    max_score: float | None
    expires: float


@dataclass
class PitContext:
    """A point in time: the indices and the documents (rids) that existed when it was created."""

    pit_id: str
    index_names: list[str]
    rids: dict[str, set[int]]
    created_ms: int
    keep_alive_ms: int
    expires: float = field(default=0.0)


class SearchContexts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self.scrolls: dict[int, ScrollContext] = {}
        self.pits: dict[str, PitContext] = {}

    def _reap(self) -> None:
        now = time.monotonic()
        for n in [n for n, c in self.scrolls.items() if c.expires <= now]:
            del self.scrolls[n]
        for p in [p for p, c in self.pits.items() if c.expires <= now]:
            del self.pits[p]

    # ---- scroll
    def new_scroll(self, **kwargs: Any) -> ScrollContext:
        with self._lock:
            self._reap()
            if len(self.scrolls) >= MAX_OPEN_SCROLL_CONTEXT:
                raise ApiError(500, "exception", f"Trying to create too many scroll contexts. Must be less than or "
                               f"equal to: [{MAX_OPEN_SCROLL_CONTEXT}]. This limit can be set by changing the "
                               f"[search.max_open_scroll_context] setting.")
            self._next += 1
            ctx = ScrollContext(number=self._next, **kwargs)
            self.scrolls[ctx.number] = ctx
            return ctx

    @staticmethod
    def scroll_id(ctx: ScrollContext) -> str:
        return base64.urlsafe_b64encode(f"oskit-scroll:{ctx.number}".encode()).decode().rstrip("=")

    @staticmethod
    def _scroll_number(scroll_id: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(scroll_id + "=" * (-len(scroll_id) % 4)).decode()
            prefix, _, num = raw.partition(":")
            if prefix != "oskit-scroll":
                raise ValueError(raw)
            return int(num)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "illegal_argument_exception", "Cannot parse scroll id") from None

    def scroll(self, scroll_id: str) -> ScrollContext:
        number = self._scroll_number(scroll_id)
        with self._lock:
            self._reap()
            ctx = self.scrolls.get(number)
        if ctx is None:
            raise shard_failure(404, "search_context_missing_exception", f"No search context found for id [{number}]",
                                index=None, node=None, shard=-1, nested=False)
        return ctx

    def free_scroll(self, scroll_id: str) -> bool:
        number = self._scroll_number(scroll_id)
        with self._lock:
            self._reap()
            return self.scrolls.pop(number, None) is not None

    def free_all_scrolls(self) -> int:
        with self._lock:
            self._reap()
            n = len(self.scrolls)
            self.scrolls.clear()
            return n

    # ---- point in time
    def new_pit(self, index_names: list[str], rids: dict[str, set[int]], keep_alive_ms: int) -> PitContext:
        with self._lock:
            self._reap()
            if len(self.pits) >= MAX_OPEN_PIT_CONTEXT:
                raise ApiError(500, "exception", f"Trying to create too many Point In Time contexts. Must be less "
                               f"than or equal to: [{MAX_OPEN_PIT_CONTEXT}]. This limit can be set by changing the "
                               f"[search.max_open_pit_context] setting.")
            self._next += 1
            pid = base64.urlsafe_b64encode(f"oskit-pit:{self._next}".encode()).decode()
            ctx = PitContext(pid, index_names, rids, int(time.time() * 1000), keep_alive_ms,
                             time.monotonic() + keep_alive_ms / 1000)
            self.pits[pid] = ctx
            return ctx

    def pit(self, pit_id: str) -> PitContext:
        with self._lock:
            self._reap()
            ctx = self.pits.get(pit_id)
        if ctx is None:
            self._check_pit_id(pit_id)
            raise shard_failure(404, "search_context_missing_exception", "No search context found for id [0]",
                                index=None, node=None, shard=-1, nested=False)
        return ctx

    @staticmethod
    def _check_pit_id(pit_id: str) -> None:
        try:
            raw = base64.urlsafe_b64decode(pit_id + "=" * (-len(pit_id) % 4)).decode()
            if not raw.startswith("oskit-pit:"):
                raise ValueError(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "illegal_argument_exception", f"invalid id: [{pit_id}]") from None

    def free_pit(self, pit_id: str) -> bool:
        self._check_pit_id(pit_id)
        with self._lock:
            self._reap()
            return self.pits.pop(pit_id, None) is not None

    def all_pits(self) -> list[PitContext]:
        with self._lock:
            self._reap()
            return list(self.pits.values())
