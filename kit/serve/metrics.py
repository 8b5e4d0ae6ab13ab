"""A small Prometheus registry (text exposition format 0.0.4): counters, gauges, histograms.

Kept in-house because the model server needs only three metric kinds and no client library.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "BATCH_BUCKETS", "Labels", "Metrics", "label_key"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Family:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    buckets: tuple[float, ...] = ()
    values: dict[Labels, float] = field(default_factory=dict)
    hist: dict[Labels, list[float]] = field(default_factory=dict)  # bucket counts…, sum, count
    callbacks: list[tuple[Labels, Callable[[], float]]] = field(default_factory=list)


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


def label_key(labels: dict[str, str] | None) -> Labels:
    """Labels in the form :meth:`Metrics.inc_key` / :meth:`Metrics.observe_key` take (made once)."""
    return _labels(labels)


def _fmt_labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    items = list(labels) + ([extra] if extra else [])
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + body + "}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    f = float(v)
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)


class Metrics:
    """Thread-safe metric families; :meth:`render` gives the Prometheus text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}

    def counter(self, name: str, help: str) -> None:
        self._families.setdefault(name, _Family(name, "counter", help))

    def gauge(self, name: str, help: str) -> None:
        self._families.setdefault(name, _Family(name, "gauge", help))

    def histogram(self, name: str, help: str, buckets: tuple[float, ...]) -> None:
        self._families.setdefault(name, _Family(name, "histogram", help, buckets=buckets))

    def inc(self, name: str, labels: dict[str, str] | None = None, value: float = 1.0) -> None:
        self.inc_key(name, _labels(labels), value)

    def inc_key(self, name: str, key: Labels, value: float = 1.0) -> None:
        """:meth:`inc` with labels already made by :func:`label_key` (the hot request path: no sort)."""
        fam = self._families[name]
        with self._lock:
            fam.values[key] = fam.values.get(key, 0.0) + value

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        fam = self._families[name]
        with self._lock:
            fam.values[_labels(labels)] = value

    def gauge_callback(self, name: str, fn: Callable[[], float], labels: dict[str, str] | None = None) -> None:
        fam = self._families[name]
        with self._lock:
            fam.callbacks.append((_labels(labels), fn))

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self.observe_key(name, value, _labels(labels))

    def observe_key(self, name: str, value: float, key: Labels) -> None:
        """:meth:`observe` with labels already made by :func:`label_key`."""
        fam = self._families[name]
        with self._lock:
            row = fam.hist.get(key)
            if row is None:
                row = fam.hist[key] = [0.0] * (len(fam.buckets) + 2)
            for i, bound in enumerate(fam.buckets):
                if value <= bound:
                    row[i] += 1
            row[-2] += value
            row[-1] += 1

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a counter/gauge (histograms: the observation count) — for tests and /health."""
        fam = self._families[name]
        key = _labels(labels)
        with self._lock:
            if fam.kind == "histogram":
                return fam.hist.get(key, [0.0])[-1]
            return fam.values.get(key, 0.0)

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            families = list(self._families.values())
            for fam in families:
                out.append(f"# HELP {fam.name} {fam.help}")
                out.append(f"# TYPE {fam.name} {fam.kind}")
                if fam.kind == "histogram":
                    for key, row in sorted(fam.hist.items()):
                        # bucket counts are already cumulative: each observation counts in every bucket >= it
                        for i, bound in enumerate(fam.buckets):
                            out.append(f"{fam.name}_bucket{_fmt_labels(key, ('le', _num(bound)))} {_num(row[i])}")
                        out.append(f"{fam.name}_bucket{_fmt_labels(key, ('le', '+Inf'))} {_num(row[-1])}")
                        out.append(f"{fam.name}_sum{_fmt_labels(key)} {_num(row[-2])}")
                        out.append(f"{fam.name}_count{_fmt_labels(key)} {_num(row[-1])}")
                else:
                    for key, v in sorted(fam.values.items()):
                        out.append(f"{fam.name}{_fmt_labels(key)} {_num(v)}")
                    for key, fn in fam.callbacks:
                        out.append(f"{fam.name}{_fmt_labels(key)} {_num(float(fn()))}")
        return "\n".join(out) + "\n"
