"""JavaScript-compatible value handling (the stories were written for a TypeScript runner): lodash
paths, ``${id.name}`` output references, and json-diff-ts's payload subset match."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping

from kit.node.conformance.results import Evaluation, Result

__all__ = ["StoryOutputs", "lodash_get", "payload_differences"]


# ------------------------------------------------------------------------------------------------
# JavaScript-compatible value handling (the stories were written for a TypeScript runner)
# ------------------------------------------------------------------------------------------------

_UNDEFINED = object()


def _js_str(value: Any) -> str:
    """``String(value)`` as JavaScript would write it."""
    if value is _UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        return ",".join("" if v is None or v is _UNDEFINED else _js_str(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


_PATH_TOKEN = re.compile(r"""[^.[\]]+|\[(?:(-?\d+)|(["'])((?:(?!\2)[^\\]|\\.)*?)\2)\]""")


def lodash_get(obj: Any, path: str) -> Any:
    """``_.get(obj, path)``: dots and ``[0]`` / ``["key"]`` brackets; :data:`_UNDEFINED` when missing."""
    node = obj
    for m in _PATH_TOKEN.finditer(path):
        token = m.group(1) if m.group(1) is not None else (m.group(3) if m.group(2) else m.group(0))
        if isinstance(node, dict):
            if token not in node:
                return _UNDEFINED
            node = node[token]
        elif isinstance(node, list):
            try:
                index = int(token)
            except ValueError:
                if token == "length":
                    node = len(node)
                    continue
                return _UNDEFINED
            if not 0 <= index < len(node):
                return _UNDEFINED
            node = node[index]
        elif isinstance(node, str) and token == "length":
            node = len(node)
        else:
            return _UNDEFINED
    return node


_REF = re.compile(r"\$\{([^}]+)\}")


def _split_ref(ref: str) -> tuple[str, str]:
    chapter_id, _, name = ref.partition(".")
    return chapter_id, name


class StoryOutputs:
    """Values saved by chapters' ``output``; resolves ``${chapter_id.name}``."""

    def __init__(self) -> None:
        self.outputs: dict[str, dict[str, Any]] = {}

    def set_chapter_output(self, chapter_id: str, output: dict[str, Any]) -> None:
        self.outputs[chapter_id] = output

    def has_chapter(self, chapter_id: str) -> bool:
        return chapter_id in self.outputs

    def has_output_value(self, chapter_id: str, name: str) -> bool:
        return name in self.outputs.get(chapter_id, {})

    def get(self, chapter_id: str, name: str) -> Any:
        return self.outputs.get(chapter_id, {}).get(name, _UNDEFINED)

    def resolve_string(self, text: str) -> Any:
        full = re.fullmatch(r"\$\{([^}]+)\}", text)
        if full:
            return self.get(*_split_ref(full.group(1)))
        return _REF.sub(lambda m: _js_str(self.get(*_split_ref(m.group(1)))), text)

    def resolve_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.resolve_string(value)
        if isinstance(value, list):
            return [self.resolve_value(v) for v in value]
        if isinstance(value, dict):
            return {_js_str(self.resolve_value(k)) if isinstance(k, str) else k: self.resolve_value(v)
                    for k, v in value.items()}
        return value

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.resolve_string(v) if isinstance(v, str) else v for k, v in params.items()}


def _refs_in(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [_split_ref(m.group(1)) for m in _REF.finditer(value)]
    if isinstance(value, list):
        return [r for v in value for r in _refs_in(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs_in(v)]
    return []


# ------------------------------------------------------------------------------------------------
# Payload subset match (json-diff-ts 4.0.1 ``diff`` + ``atomizeChangeset``)
# ------------------------------------------------------------------------------------------------


def _js_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is _UNDEFINED:
        return "Undefined"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return type(value).__name__


def _fmt(value: Any) -> str:
    return _js_str(value)


def payload_differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """What upstream reports for an expected payload: ``missing x='v'`` and ``expected x='a', got 'b'``.

    Keys only in ``actual`` (and extra array items) are fine; a type change counts as missing.
    """
    out: list[str] = []
    if _js_type(expected) != _js_type(actual):
        return [f"missing {path or '$'}='{_fmt(expected)}'"]
    if isinstance(expected, dict):
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else str(key)
            if key in actual:
                out += payload_differences(value, actual[key], sub)
            else:
                out.append(f"missing {sub}='{_fmt(value)}'")
        return out
    if isinstance(expected, list):
        for i, value in enumerate(expected):
            sub = f"{path}[{i}]"
            if i < len(actual):
                out += payload_differences(value, actual[i], sub)
            else:
                out.append(f"missing {sub}='{_fmt(value)}'")
        return out
    if expected != actual or (isinstance(expected, float) and math.isnan(expected)):
        out.append(f"expected {path or '$'}='{_fmt(expected)}', got '{_fmt(actual)}'")
    return out


def _evaluate_payload(actual: Any, expected: Any) -> Evaluation:
    if expected is None or expected is _UNDEFINED:
        return Evaluation(Result.PASSED)
    problems = payload_differences(expected, actual)
    return Evaluation(Result.FAILED, ", ".join(problems)) if problems else Evaluation(Result.PASSED)
