"""A small JSONPath reader with Jayway's semantics (the library ML Commons uses).

Supported: ``$``, ``.name``, ``['name']``, ``[n]`` (negative too), ``[a,b]``, ``[start:end]``, ``[*]``,
``.*`` and deep scan ``..name``. A path without a leading ``$`` is read as ``$.`` + path, as Jayway
does. Filters (``[?(...)]``) and functions are not supported and raise :class:`JsonPathError`.

A *definite* path (only names and single indices) reads one value and raises :class:`PathNotFound`
when it is missing; an indefinite path reads the list of every match (missing branches skipped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

__all__ = ["JsonPath", "JsonPathError", "PathNotFound", "compile_path", "is_valid", "read"]


class JsonPathError(ValueError):
    """The expression is not a JSONPath this reader understands."""


class PathNotFound(KeyError):
    """A definite path points at nothing."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "path not found"


@dataclass(frozen=True)
class _Step:
    kind: str  # "name" | "names" | "index" | "indices" | "slice" | "wild" | "deep"
    arg: Any = None


_NAME = re.compile(r"[A-Za-z0-9_\-@$:#/+]+")


def _parse(expr: str) -> list[_Step]:
    s = expr.strip()
    if not s:
        raise JsonPathError("empty JSONPath")
    if s.startswith("$"):
        s = s[1:]
    elif not s.startswith((".", "[")):
        s = "." + s
    steps: list[_Step] = []
    i = 0
    while i < len(s):
        c = s[i]
        if s.startswith("..", i):
            i += 2
            if i < len(s) and s[i] == "*":
                steps.append(_Step("deep", None))
                i += 1
                continue
            if i < len(s) and s[i] == "[":
                steps.append(_Step("deep", None))
                continue
            m = _NAME.match(s, i)
            if not m:
                raise JsonPathError(f"invalid deep scan in JSONPath [{expr}]")
            steps.append(_Step("deep", m.group(0)))
            i = m.end()
        elif c == ".":
            i += 1
            if i < len(s) and s[i] == "*":
                steps.append(_Step("wild"))
                i += 1
                continue
            m = _NAME.match(s, i)
            if not m:
                raise JsonPathError(f"invalid JSONPath [{expr}]")
            steps.append(_Step("name", m.group(0)))
            i = m.end()
        elif c == "[":
            end = _bracket_end(s, i, expr)
            inner = s[i + 1:end].strip()
            i = end + 1
            steps.append(_bracket(inner, expr))
        else:
            raise JsonPathError(f"invalid character [{c}] in JSONPath [{expr}]")
    return steps


def _bracket_end(s: str, start: int, expr: str) -> int:
    quote = ""
    for j in range(start + 1, len(s)):
        ch = s[j]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "]":
            return j
    raise JsonPathError(f"unclosed bracket in JSONPath [{expr}]")


def _bracket(inner: str, expr: str) -> _Step:
    if inner == "*":
        return _Step("wild")
    if inner.startswith("?") or inner.startswith("("):
        raise JsonPathError(f"JSONPath filters and scripts are not supported: [{expr}]")
    if inner[:1] in "'\"":
        names = [p.strip()[1:-1] for p in _split_commas(inner)]
        return _Step("name", names[0]) if len(names) == 1 else _Step("names", names)
    if ":" in inner:
        a, _, b = inner.partition(":")
        try:
            return _Step("slice", (int(a) if a.strip() else None, int(b) if b.strip() else None))
        except ValueError:
            raise JsonPathError(f"invalid slice in JSONPath [{expr}]") from None
    try:
        idx = [int(p) for p in inner.split(",")]
    except ValueError:
        raise JsonPathError(f"invalid index in JSONPath [{expr}]") from None
    return _Step("index", idx[0]) if len(idx) == 1 else _Step("indices", idx)


def _split_commas(inner: str) -> list[str]:
    parts, cur, quote = [], "", ""
    for ch in inner:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur += ch
        elif ch == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


class JsonPath:
    """A compiled path; ``read`` / ``paths`` evaluate it against parsed JSON."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.steps = _parse(expr)
        self.definite = all(s.kind in ("name", "index") for s in self.steps)

    def _walk(self, node: Any, steps: list[_Step], path: list[Any]) -> Iterator[tuple[list[Any], Any]]:
        if not steps:
            yield path, node
            return
        step, rest = steps[0], steps[1:]
        k = step.kind
        if k == "name":
            if isinstance(node, dict) and step.arg in node:
                yield from self._walk(node[step.arg], rest, path + [step.arg])
        elif k == "names":
            if isinstance(node, dict):
                for n in step.arg:
                    if n in node:
                        yield from self._walk(node[n], rest, path + [n])
        elif k in ("index", "indices"):
            if isinstance(node, list):
                for ix in ([step.arg] if k == "index" else step.arg):
                    j = ix + len(node) if ix < 0 else ix
                    if 0 <= j < len(node):
                        yield from self._walk(node[j], rest, path + [j])
        elif k == "slice":
            if isinstance(node, list):
                a, b = step.arg
                for j in range(len(node))[slice(a, b)]:
                    yield from self._walk(node[j], rest, path + [j])
        elif k == "wild":
            if isinstance(node, dict):
                for key, v in node.items():
                    yield from self._walk(v, rest, path + [key])
            elif isinstance(node, list):
                for j, v in enumerate(node):
                    yield from self._walk(v, rest, path + [j])
        elif k == "deep":
            yield from self._deep(node, step.arg, rest, path)

    def _deep(self, node: Any, name: str | None, rest: list[_Step], path: list[Any]) -> Iterator[tuple[list[Any], Any]]:
        if isinstance(node, dict):
            if name is None:
                yield from self._walk(node, rest, path)
            elif name in node:
                yield from self._walk(node[name], rest, path + [name])
            for key, v in node.items():
                yield from self._deep(v, name, rest, path + [key])
        elif isinstance(node, list):
            if name is None:
                yield from self._walk(node, rest, path)
            for j, v in enumerate(node):
                yield from self._deep(v, name, rest, path + [j])

    def read(self, doc: Any) -> Any:
        """Definite path: the value (``PathNotFound`` if missing); indefinite: list of matches."""
        matches = [v for _, v in self._walk(doc, self.steps, [])]
        if self.definite:
            if not matches:
                raise PathNotFound(f"No results for path: {self.expr}")
            return matches[0]
        return matches

    def paths(self, doc: Any) -> list[list[Any]]:
        """The concrete key/index paths of every match."""
        return [p for p, _ in self._walk(doc, self.steps, [])]


_CACHE: dict[str, JsonPath] = {}


def compile_path(expr: str) -> JsonPath:
    jp = _CACHE.get(expr)
    if jp is None:
        jp = JsonPath(expr)
        if len(_CACHE) < 4096:
            _CACHE[expr] = jp
    return jp


def is_valid(expr: str | None) -> bool:
    if expr is None or not expr.strip():
        return False
    try:
        compile_path(expr)
    except JsonPathError:
        return False
    return True


def read(doc: Any, expr: str) -> Any:
    return compile_path(expr).read(doc)
