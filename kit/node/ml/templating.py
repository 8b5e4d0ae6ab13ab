"""The string handling ML Commons applies to connector templates, reproduced exactly.

- :func:`substitute` — Apache commons-text ``StringSubstitutor`` with a ``${parameters.`` / ``}`` pair:
  ``:-`` default values, recursive substitution of replaced values, ``$`` as escape character,
  unknown variables left as they are.
- :func:`escape_json` — ``StringEscapeUtils.escapeJson`` (quotes, backslash, ``/``, control and
  non-ASCII characters as ``\\uXXXX``).
- :func:`gson_json` — ML Commons' Gson (``disableHtmlEscaping``, ``serializeNulls``).
- :func:`is_json` — ``StringUtils.isJson``: a JSON object or array.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

__all__ = [
    "NULL_DEFAULT_RE", "SubstitutionLoop", "escape_json", "fill_null_parameters", "gson_json", "is_json",
    "is_json_or_ndjson", "parameter_map", "parse_to_string_parameters", "process_text_doc", "substitute",
    "unfilled_placeholders",
]

NULL_DEFAULT_RE = re.compile(r"\"\$\{parameters\.(\w+):-null}\"")
_TO_STRING_RE = re.compile(r"\$\{parameters\.(.+?)\.toString\(\)\}")
_PLACEHOLDER_RE = re.compile(r"\$\{parameters\.([^}]+)}")


class SubstitutionLoop(ValueError):
    """A variable's value refers back to itself (``StringSubstitutor`` throws IllegalStateException)."""


def substitute(template: str | None, values: Mapping[str, Any], prefix: str = "${parameters.",
               suffix: str = "}") -> str | None:
    """``new StringSubstitutor(values, prefix, suffix).replace(template)``."""
    if template is None:
        return None
    return _substitute(template, values, prefix, suffix, [])


def _substitute(text: str, values: Mapping[str, Any], prefix: str, suffix: str, stack: list[str]) -> str:
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        start = text.find(prefix, i)
        if start < 0:
            out.append(text[i:])
            break
        # "$${...}" is an escaped variable: drop one "$" and keep the rest literally.
        if start > i and text[start - 1] == "$":
            out.append(text[i:start - 1])
            out.append(prefix)
            i = start + len(prefix)
            continue
        out.append(text[i:start])
        # Find the matching suffix, counting nested prefixes ("${" inside the name), as commons-text does.
        j = start + len(prefix)
        depth = 0
        end = -1
        while j < n:
            if text.startswith(prefix, j):
                depth += 1
                j += len(prefix)
                continue
            if text.startswith(suffix, j):
                if depth == 0:
                    end = j
                    break
                depth -= 1
                j += len(suffix)
                continue
            j += 1
        if end < 0:
            out.append(text[start:])
            break
        var = text[start + len(prefix):end]
        name, default = var, None
        if ":-" in var:
            name, default = var.split(":-", 1)
        value = values.get(name)
        if value is None and default is not None:
            value = default
        if value is None:
            out.append(text[start:end + len(suffix)])
        else:
            if name in stack:
                raise SubstitutionLoop(f"Infinite loop in property interpolation of {prefix}{name}{suffix}")
            out.append(_substitute(str(value), values, prefix, suffix, stack + [name]))
        i = end + len(suffix)
    return "".join(out)


def escape_json(value: str) -> str:
    """``org.apache.commons.text.StringEscapeUtils.escapeJson``."""
    out: list[str] = []
    for ch in value:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "/":
            out.append("\\/")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\r":
            out.append("\\r")
        elif c < 32 or c > 0x7F:
            # JavaUnicodeEscaper works on UTF-16 code units.
            if c > 0xFFFF:
                c -= 0x10000
                out.append(f"\\u{0xD800 + (c >> 10):04X}\\u{0xDC00 + (c & 0x3FF):04X}")
            else:
                out.append(f"\\u{c:04X}")
        else:
            out.append(ch)
    return "".join(out)


def gson_json(value: Any) -> str:
    """What ML Commons' ``gson.toJson`` gives (no HTML escaping, nulls kept, compact)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def process_text_doc(doc: str | None) -> str | None:
    """``StringUtils.processTextDoc``: the Gson string encoding without its surrounding quotes."""
    if doc is None:
        return None
    return gson_json(doc)[1:-1]


def is_json(value: str | None) -> bool:
    """``StringUtils.isJson``: a parseable JSON object or array (scalars are not "JSON" here)."""
    if value is None or not value.strip():
        return False
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, (dict, list))


def is_json_or_ndjson(payload: str) -> bool:
    if is_json(payload):
        return True
    lines = [ln for ln in payload.split("\n") if ln.strip()]
    return bool(lines) and all(is_json(ln) for ln in lines)


def parameter_map(params: Mapping[str, Any] | None) -> dict[str, str | None]:
    """``StringUtils.getParameterMap``: strings kept, everything else JSON-encoded."""
    out: dict[str, str | None] = {}
    for key, value in (params or {}).items():
        out[str(key)] = value if isinstance(value, str) else gson_json(value)
    return out


def parse_to_string_parameters(params: dict[str, str | None]) -> None:
    """``StringUtils.parseParameters``: a value that mentions ``${parameters.X.toString()}`` makes
    ``X.toString()`` available as the escaped string form of X."""
    prefixes: list[str] = []
    for value in list(params.values()):
        if value is not None:
            prefixes.extend(m.group(1) for m in _TO_STRING_RE.finditer(value))
    for prefix in prefixes:
        value = params.get(prefix)
        if value is not None:
            params[prefix + ".toString()"] = process_text_doc(value)


def fill_null_parameters(params: Mapping[str, str | None], payload: str) -> str:
    """``HttpConnector.fillNullParameters``: ``"${parameters.X:-null}"`` (with its quotes) → ``null``."""
    for key in NULL_DEFAULT_RE.findall(payload):
        if params.get(key) is None:
            payload = payload.replace('"${parameters.' + key + ':-null}"', "null")
    return payload


def unfilled_placeholders(payload: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER_RE.finditer(payload)]
