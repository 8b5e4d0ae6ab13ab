"""What a pipeline runs on: ``IngestDocument`` (``org.opensearch.ingest.IngestDocument``), the
mustache subset ingest templates use, and the errors processors raise."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timezone
from typing import Any, Mapping

from kit.node.errors import ApiError, unsupported
from kit.node.jsonutil import java_class

__all__ = [
    "Dropped", "IngestDocument", "METADATA_KEYS", "ProcessorFailure", "check_template", "config_error", "iae",
    "ise", "java_str", "parse_error", "render_template", "runtime_error", "wrap_factory_error",
]

METADATA_KEYS = ("_index", "_id", "_routing", "_version", "_version_type", "_if_seq_no", "_if_primary_term")


# --------------------------------------------------------------------------------------------
# Errors


def iae(reason: str) -> ApiError:
    """Java ``IllegalArgumentException`` as OpenSearch renders it."""
    return ApiError(400, "illegal_argument_exception", reason)


def ise(reason: str) -> ApiError:
    return ApiError(500, "illegal_state_exception", reason)


def runtime_error(reason: str) -> ApiError:
    return ApiError(500, "runtime_exception", reason)


def parse_error(reason: str, ptype: str | None = None, tag: str | None = None, prop: str | None = None) -> ApiError:
    meta = {"processor_type": ptype, "processor_tag": tag, "property_name": prop}
    return ApiError(400, "parse_exception", reason, **{k: v for k, v in meta.items() if v is not None})


def config_error(ptype: str | None, tag: str | None, prop: str | None, reason: str) -> ApiError:
    """``ConfigurationUtils.newConfigurationException(type, tag, property, reason)``."""
    return parse_error(reason if prop is None else f"[{prop}] {reason}", ptype, tag, prop)


def wrap_factory_error(ptype: str, tag: str | None, exc: ApiError) -> ApiError:
    """A non-OpenSearch exception from a factory becomes a generic ``exception`` wrapping it."""
    ours = "is not supported by the oskit embedded node" in exc.reason  # unsupported(): say it plainly
    if ours or exc.type == "parse_exception" or exc.type not in ("illegal_argument_exception", "illegal_state_exception"):
        exc.extra.setdefault("processor_type", ptype)
        if tag is not None:
            exc.extra.setdefault("processor_tag", tag)
        return exc
    java = "java.lang.IllegalArgumentException" if exc.type == "illegal_argument_exception" else "java.lang.IllegalStateException"
    meta: dict[str, Any] = {"processor_type": ptype}
    if tag is not None:
        meta["processor_tag"] = tag
    return ApiError(500, "exception", f"{java}: {exc.reason}",
                    caused_by={"type": exc.type, "reason": exc.reason}, **meta)


class ProcessorFailure(Exception):
    """A processor failed; ``cause`` is what OpenSearch renders (the wrapper is unwrapped on output)."""

    def __init__(self, cause: ApiError, processor_type: str | None, tag: str | None, pipeline: str | None) -> None:
        super().__init__(cause.reason)
        self.cause = cause
        self.processor_type = processor_type
        self.tag = tag
        self.pipeline = pipeline


class Dropped(Exception):
    """Internal signal: a drop processor ended this document."""


def java_str(value: Any) -> str:
    """``Object#toString`` of a parsed-JSON value (what templates and joins print)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e7:
            return f"{value:.1f}"
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(java_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={java_str(v)}" for k, v in value.items()) + "}"
    return str(value)


# --------------------------------------------------------------------------------------------
# Mustache (the subset ingest templates use: {{var}}, {{{var}}}, dotted names)

_MUSTACHE = re.compile(r"\{\{\{\s*([^}]*?)\s*\}\}\}|\{\{\s*([^}]*?)\s*\}\}")


def check_template(ptype: str, tag: str | None, prop: str, template: str) -> None:
    for m in _MUSTACHE.finditer(template):
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if name[:1] in "#^/>!&=":
            raise unsupported(f"mustache sections/partials in ingest templates ({ptype}.{prop}: {{{{{name}}}}})")


def _json_escape(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)[1:-1]


def render_template(template: str, model: Mapping[str, Any]) -> str:
    """Render ``{{a.b}}`` (JSON-escaped, OpenSearch's default encoder) and ``{{{a.b}}}`` (raw)."""
    if "{{" not in template:
        return template

    def lookup(name: str) -> Any:
        node: Any = model
        for part in name.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def sub(m: re.Match[str]) -> str:
        raw = m.group(1) is not None
        value = lookup(m.group(1) if raw else m.group(2))
        if value is None:
            return ""
        text = java_str(value)
        return text if raw else _json_escape(text)

    return _MUSTACHE.sub(sub, template)


# --------------------------------------------------------------------------------------------
# IngestDocument


def _timestamp() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class IngestDocument:
    """``sourceAndMetadata`` (``data``: metadata keys + source fields) and ``_ingest`` metadata."""

    def __init__(self, index: str | None, doc_id: str | None, source: Mapping[str, Any],
                 routing: str | None = None) -> None:
        self.data: dict[str, Any] = {}
        if index is not None:
            self.data["_index"] = index
        if doc_id is not None:
            self.data["_id"] = doc_id
        if routing is not None:
            self.data["_routing"] = routing
        for k, v in source.items():
            self.data[k] = copy.deepcopy(v)
        self.ingest: dict[str, Any] = {"timestamp": _timestamp()}
        self.executed_pipelines: list[str] = []

    # ---- views

    @property
    def index(self) -> str | None:
        return self.data.get("_index")

    @property
    def doc_id(self) -> str | None:
        v = self.data.get("_id")
        return None if v is None else str(v)

    def source(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k not in METADATA_KEYS}

    def metadata(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k in METADATA_KEYS}

    def template_model(self) -> dict[str, Any]:
        model = dict(self.data)
        model["_source"] = self.data
        model["_ingest"] = self.ingest
        return model

    def render(self, template: str) -> str:
        return render_template(template, self.template_model())

    # ---- paths (IngestDocument.FieldPath)

    def _root(self, path: str) -> tuple[Any, list[str]]:
        if not path:
            raise iae("path cannot be null nor empty")
        root: Any = self.data
        rest = path
        if path.startswith("_ingest."):
            root, rest = self.ingest, path[len("_ingest."):]
        elif path.startswith("_source."):
            rest = path[len("_source."):]
        if not rest:
            raise iae(f"path [{path}] is not valid")
        return root, rest.split(".")

    @staticmethod
    def _resolve(element: str, path: str, ctx: Any) -> Any:
        if ctx is None:
            raise iae(f"cannot resolve [{element}] from null as part of path [{path}]")
        if isinstance(ctx, dict):
            if element in ctx:
                return ctx[element]
            raise iae(f"field [{element}] not present as part of path [{path}]")
        if isinstance(ctx, list):
            i = _list_index(ctx, element, path)
            return ctx[i]
        raise iae(f"cannot resolve [{element}] from object of type [{java_class(ctx)}] as part of path [{path}]")

    def get(self, path: str, ignore_missing: bool = False) -> Any:
        ctx, parts = self._root(path)
        try:
            for element in parts:
                ctx = self._resolve(element, path, ctx)
        except ApiError:
            if ignore_missing:
                return None
            raise
        return ctx

    def has(self, path: str, fail_out_of_range: bool = False) -> bool:
        ctx, parts = self._root(path)
        for element in parts[:-1]:
            if isinstance(ctx, dict):
                if element not in ctx:
                    return False
                ctx = ctx[element]
            elif isinstance(ctx, list):
                try:
                    i = int(element)
                except ValueError:
                    return False
                if i < 0 or i >= len(ctx):
                    if fail_out_of_range:
                        raise iae(f"[{i}] is out of bounds for array with length [{len(ctx)}] as part of path [{path}]")
                    return False
                ctx = ctx[i]
            else:
                return False
        leaf = parts[-1]
        if isinstance(ctx, dict):
            return leaf in ctx
        if isinstance(ctx, list):
            try:
                i = int(leaf)
            except ValueError:
                return False
            if 0 <= i < len(ctx):
                return True
            if fail_out_of_range:
                raise iae(f"[{i}] is out of bounds for array with length [{len(ctx)}] as part of path [{path}]")
        return False

    def set(self, path: str, value: Any, append: bool = False, allow_duplicates: bool = True) -> None:
        ctx, parts = self._root(path)
        for element in parts[:-1]:
            if ctx is None:
                raise iae(f"cannot resolve [{element}] from null as part of path [{path}]")
            if isinstance(ctx, dict):
                if element not in ctx:
                    ctx[element] = {}
                ctx = ctx[element]
            elif isinstance(ctx, list):
                i = _list_index(ctx, element, path)
                ctx = ctx[i]
            else:
                raise iae(f"cannot set [{element}] with parent object of type [{java_class(ctx)}] as part of path [{path}]")
        leaf = parts[-1]
        if ctx is None:
            raise iae(f"cannot set [{leaf}] with null parent as part of path [{path}]")
        if isinstance(ctx, dict):
            if append:
                if leaf in ctx:
                    ctx[leaf] = _append_values(ctx[leaf], value, allow_duplicates)
                else:
                    ctx[leaf] = _append_values([], value, allow_duplicates)
            else:
                ctx[leaf] = value
        elif isinstance(ctx, list):
            i = _list_index(ctx, leaf, path)
            ctx[i] = _append_values(ctx[i], value, allow_duplicates) if append else value
        else:
            raise iae(f"cannot set [{leaf}] with parent object of type [{java_class(ctx)}] as part of path [{path}]")

    def remove(self, path: str) -> None:
        ctx, parts = self._root(path)
        for element in parts[:-1]:
            ctx = self._resolve(element, path, ctx)
        leaf = parts[-1]
        if isinstance(ctx, dict):
            if leaf not in ctx:
                raise iae(f"field [{leaf}] not present as part of path [{path}]")
            del ctx[leaf]
        elif isinstance(ctx, list):
            i = _list_index(ctx, leaf, path)
            del ctx[i]
        elif ctx is None:
            raise iae(f"cannot remove [{leaf}] from null as part of path [{path}]")
        else:
            raise iae(f"cannot remove [{leaf}] from object of type [{java_class(ctx)}] as part of path [{path}]")

    def snapshot(self, include_pipeline: bool = True) -> dict[str, Any]:
        """The ``doc`` object of a simulate response."""
        out: dict[str, Any] = {}
        for key in ("_index", "_id", "_routing"):
            if key in self.data:
                out[key] = self.data[key]
        out["_source"] = copy.deepcopy(self.source())
        ingest = copy.deepcopy(self.ingest)
        if not include_pipeline:
            ingest.pop("pipeline", None)
        out["_ingest"] = ingest
        return out


def _append_values(existing: Any, value: Any, allow_duplicates: bool) -> Any:
    items = value if isinstance(value, list) else [value]
    base = existing if isinstance(existing, list) else [existing]
    base = list(base)
    for item in items:
        if allow_duplicates or item not in base:
            base.append(item)
    return base


def _list_index(ctx: list[Any], element: str, path: str) -> int:
    """``element`` of ``path`` as an index into the list ``ctx``, or OpenSearch's error for it."""
    try:
        i = int(element)
    except ValueError:
        raise iae(f"[{element}] is not an integer, cannot be used as an index as part of path [{path}]") from None
    if i < 0 or i >= len(ctx):
        raise iae(f"[{i}] is out of bounds for array with length [{len(ctx)}] as part of path [{path}]")
    return i
