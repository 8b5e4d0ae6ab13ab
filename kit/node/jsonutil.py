"""JSON in and out of the node: orjson when present, ``RawJSON`` for stored sources spliced in verbatim.

Used by the REST layer (:mod:`kit.node.routing`) and the engine (stored ``_source``), so it sits
below both.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_DEPTH", "NestingTooDeep", "RawJSON", "dumps", "java_class", "loads", "token_name"]


class RawJSON(str):
    """Already-serialised JSON (e.g. a stored ``_source``) spliced into a response without re-encoding."""


try:  # orjson parses and writes JSON 3-5x faster (it matters for _bulk with vectors); json is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is in the node extra
    _orjson = None  # type: ignore[assignment]


MAX_DEPTH = 1024  # orjson's nesting limit; deeper bodies are refused (a 400), never a crash


class NestingTooDeep(json.JSONDecodeError):
    """A body nested deeper than :data:`MAX_DEPTH` (the standard library would overflow the stack)."""

    def __init__(self) -> None:
        super().__init__(f"Document nesting depth exceeds the maximum allowed ({MAX_DEPTH})", "", 0)


def loads(data: bytes | str) -> Any:
    """Parse JSON (orjson when present); raises ``json.JSONDecodeError`` like :func:`json.loads`."""
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc) or "recursion" in str(exc).lower():
                raise NestingTooDeep() from None
            # re-parse with json for its error message (and its tolerance of huge integers)
    try:
        return json.loads(data)
    except RecursionError:
        raise NestingTooDeep() from None


def _default(o: Any) -> Any:
    if isinstance(o, RawJSON):
        return _orjson.Fragment(str(o))
    if isinstance(o, str):
        return str(o)
    if isinstance(o, dict):
        return dict(o)
    if isinstance(o, (list, tuple, set, frozenset)):
        return list(o)
    if isinstance(o, float):
        return float(o)
    if isinstance(o, int):
        return int(o)
    if hasattr(o, "tolist"):  # numpy scalars/arrays
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any) -> bytes:
    """Compact JSON; RawJSON values are inserted verbatim (stored sources are never re-encoded)."""
    if _orjson is not None:
        return _orjson.dumps(obj, default=_default, option=_orjson.OPT_PASSTHROUGH_SUBCLASS
                             | _orjson.OPT_NON_STR_KEYS | _orjson.OPT_SERIALIZE_NUMPY)
    return _dumps_std(obj)


def _dumps_std(obj: Any) -> bytes:
    raws: list[str] = []

    def default(o: Any) -> Any:
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        if hasattr(o, "tolist"):  # numpy scalars/arrays
            return o.tolist()
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    def swap(o: Any) -> Any:
        if isinstance(o, RawJSON):
            raws.append(str(o))
            return f"\x00RAW{len(raws) - 1}\x00"
        if isinstance(o, dict):
            return {k: swap(v) for k, v in o.items()}
        if isinstance(o, list):
            return [swap(v) for v in o]
        return o

    text = json.dumps(swap(obj), separators=(",", ":"), ensure_ascii=False, default=default)
    if raws:
        for i, raw in enumerate(raws):
            text = text.replace(f'"\\u0000RAW{i}\\u0000"', raw, 1)
    return text.encode("utf-8")


def java_class(value: Any) -> str:
    """The Java class OpenSearch names when a config value has the wrong type."""
    if isinstance(value, bool):
        return "java.lang.Boolean"
    if isinstance(value, int):
        return "java.lang.Integer" if -(2**31) <= value < 2**31 else "java.lang.Long"
    if isinstance(value, float):
        return "java.lang.Double"
    if isinstance(value, str):
        return "java.lang.String"
    if isinstance(value, list):
        return "java.util.ArrayList"
    if isinstance(value, dict):
        return "java.util.HashMap"
    return type(value).__name__


def token_name(value: Any) -> str:
    """The Jackson token a JSON value starts with, as OpenSearch names it in parse errors."""
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, (int, float)):
        return "VALUE_NUMBER"
    return "VALUE_NULL"
