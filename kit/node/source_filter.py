"""OpenSearch ``_source`` filtering (includes/excludes with wildcards on dotted paths)."""

from __future__ import annotations

import fnmatch
from typing import Any

from kit.node.errors import parsing_error

__all__ = ["filter_source", "source_param"]


def _patterns(x: Any) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [p for p in x.split(",") if p]
    return [str(p) for p in x]


def filter_source(source: dict[str, Any], includes: Any, excludes: Any) -> dict[str, Any]:
    """OpenSearch ``_source`` filtering with wildcards on dotted paths."""
    inc, exc = _patterns(includes), _patterns(excludes)

    def keep(path: str, is_obj: bool) -> bool | None:
        if any(fnmatch.fnmatchcase(path, p) or (p.endswith(".*") is False and path.startswith(p + "."))
               for p in exc):
            return False
        if not inc:
            return True
        if any(fnmatch.fnmatchcase(path, p) or path.startswith(p + ".") for p in inc):
            return True
        if is_obj and any(p.startswith(path + ".") or ("*" in p and fnmatch.fnmatchcase(path + ".x", p.split("*")[0] + "*"))
                          for p in inc):
            return None  # descend
        return False

    def walk(obj: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            path = prefix + k
            decision = keep(path, isinstance(v, dict))
            if decision is True:
                if isinstance(v, dict) and exc:
                    out[k] = walk(v, path + ".")
                else:
                    out[k] = v
            elif decision is None and isinstance(v, dict):
                sub = walk(v, path + ".")
                if sub:
                    out[k] = sub
        return out

    return walk(source, "")


def source_param(body_src: Any, params: dict[str, Any]) -> Any:
    """True (whole source), False, or (includes, excludes)."""
    if "_source" in params:
        v = params["_source"]
        if v in ("false",):
            return False
        if v not in ("true", ""):
            body_src = v
        else:
            body_src = True
    inc = params.get("_source_includes")
    exc = params.get("_source_excludes")
    if inc or exc:
        return (inc, exc)
    if body_src is None or body_src is True:
        return True
    if body_src is False:
        return False
    if isinstance(body_src, (str, list)):
        return (body_src, None)
    if isinstance(body_src, dict):
        return (body_src.get("includes", body_src.get("include")), body_src.get("excludes", body_src.get("exclude")))
    raise parsing_error("[_source] must be a boolean, string, array or object")
