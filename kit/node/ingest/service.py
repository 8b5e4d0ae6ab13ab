"""Ingest pipelines: ``/_ingest/pipeline`` CRUD and ``_simulate``, and running documents through them.

Processors: set, remove, rename, lowercase, uppercase, trim, append, convert, split, join, foreach,
fail, drop, pipeline (OpenSearch core); text_embedding, text_image_embedding, text_chunking
(neural-search); ml_inference (ML Commons). Semantics follow OpenSearch core
(``org.opensearch.ingest``: ``IngestDocument`` paths, ``CompoundProcessor`` failure handling,
``ConfigurationUtils`` config errors) and the plugins' sources. Errors carry the real types and messages:

* creation errors are ``parse_exception`` (400) with ``processor_type``/``property_name``; errors a
  processor factory throws as ``IllegalArgumentException`` are wrapped the way
  ``ConfigurationUtils.newConfigurationException`` does (``exception``, 500, ``caused_by``);
* execution errors surface as their own type (``illegal_argument_exception`` 400,
  ``fail_processor_exception`` 500, ML Commons' errors unchanged).

Out of scope, refused at creation with a message naming the feature: ``if`` conditions and the
``script`` processor (both Painless), and the real processors not implemented here (grok, date, …).

The core calls ``engine.ingest.execute(pipeline_id, index, doc_id, source)`` → new source, or
``None`` when a ``drop`` processor dropped the document; ``execute_batch`` does the same for the
documents of one ``_bulk`` request and honours ``text_embedding``'s ``batch_size``. Pipelines are
stored as documents of the hidden system index ``.oskit-ingest-pipelines`` (so they survive restarts).
"""

from __future__ import annotations

import abc
import copy
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from kit.node.pipeline_rest import PipelineRest
from kit.node.errors import ApiError, unsupported
from kit.node.jsonpath import JsonPathError, PathNotFound, compile_path
from kit.node.searchpipe import PipelineStore
from kit.node.searchpipe import _java_class as java_class

if TYPE_CHECKING:
    from kit.node.engine import Engine
    from kit.node.routing import NodeRequest, Route

__all__ = ["IngestDocument", "IngestService", "Pipeline", "ProcessorFailure", "render_template"]

log = logging.getLogger(__name__)

SYSTEM_INDEX = ".oskit-ingest-pipelines"
SIMULATE_PIPELINE_ID = "_simulate_pipeline"
METADATA_KEYS = ("_index", "_id", "_routing", "_version", "_version_type", "_if_seq_no", "_if_primary_term")

# Real processors this node does not implement: refused with a clear message, not "unknown type".
KNOWN_UNSUPPORTED = {
    "attachment", "bytes", "circle", "community_id", "copy", "csv", "date", "date_index_name", "dissect",
    "dot_expander", "fingerprint", "geoip", "geojson-feature", "grok", "gsub", "html_strip", "ip2geo", "json",
    "kv", "set_security_user", "sort", "sparse_encoding", "urldecode", "user_agent",
    "community_id", "semantic_field",
}


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


class _Dropped(Exception):
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
            try:
                i = int(element)
            except ValueError:
                raise iae(f"[{element}] is not an integer, cannot be used as an index as part of path [{path}]") from None
            if i < 0 or i >= len(ctx):
                raise iae(f"[{i}] is out of bounds for array with length [{len(ctx)}] as part of path [{path}]")
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
                try:
                    i = int(element)
                except ValueError:
                    raise iae(f"[{element}] is not an integer, cannot be used as an index as part of path [{path}]") from None
                if i < 0 or i >= len(ctx):
                    raise iae(f"[{i}] is out of bounds for array with length [{len(ctx)}] as part of path [{path}]")
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
            try:
                i = int(leaf)
            except ValueError:
                raise iae(f"[{leaf}] is not an integer, cannot be used as an index as part of path [{path}]") from None
            if i < 0 or i >= len(ctx):
                raise iae(f"[{i}] is out of bounds for array with length [{len(ctx)}] as part of path [{path}]")
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
            try:
                i = int(leaf)
            except ValueError:
                raise iae(f"[{leaf}] is not an integer, cannot be used as an index as part of path [{path}]") from None
            if i < 0 or i >= len(ctx):
                raise iae(f"[{i}] is out of bounds for array with length [{len(ctx)}] as part of path [{path}]")
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


# --------------------------------------------------------------------------------------------
# Config reading (ConfigurationUtils)


class Config:
    """One processor's config map, consumed key by key as the Java factories do."""

    def __init__(self, ptype: str, tag: str | None, cfg: dict[str, Any]) -> None:
        self.type = ptype
        self.tag = tag
        self.cfg = cfg

    def err(self, prop: str | None, reason: str) -> ApiError:
        return config_error(self.type, self.tag, prop, reason)

    def string(self, prop: str, default: str | None = None, required: bool = True) -> str | None:
        v = self.cfg.pop(prop, None)
        if v is None:
            if default is not None or not required:
                return default
            raise self.err(prop, "required property is missing")
        if not isinstance(v, str):
            raise self.err(prop, f"property isn't a string, but of type [{java_class(v)}]")
        return v

    def template(self, prop: str, required: bool = True) -> str | None:
        v = self.string(prop, required=required)
        if v is not None:
            check_template(self.type, self.tag, prop, v)
        return v

    def boolean(self, prop: str, default: bool) -> bool:
        v = self.cfg.pop(prop, None)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.err(prop, f"property isn't a boolean, but of type [{java_class(v)}]")
        return v

    def integer(self, prop: str, default: int | None) -> int | None:
        v = self.cfg.pop(prop, None)
        if v is None:
            return default
        try:
            if isinstance(v, bool):
                raise ValueError
            return int(str(v))
        except ValueError:
            raise self.err(prop, f"property cannot be converted to an int [{java_str(v)}]") from None

    def mapping(self, prop: str, required: bool = True) -> dict[str, Any] | None:
        v = self.cfg.pop(prop, None)
        if v is None:
            if required:
                raise self.err(prop, "required property is missing")
            return None
        if not isinstance(v, dict):
            raise self.err(prop, f"property isn't a map, but of type [{java_class(v)}]")
        return v

    def listing(self, prop: str, required: bool = True) -> list[Any] | None:
        v = self.cfg.pop(prop, None)
        if v is None:
            if required:
                raise self.err(prop, "required property is missing")
            return None
        if not isinstance(v, list):
            raise self.err(prop, f"property isn't a list, but of type [{java_class(v)}]")
        return v

    def obj(self, prop: str, required: bool = True) -> Any:
        if prop not in self.cfg or self.cfg[prop] is None:
            self.cfg.pop(prop, None)
            if required:
                raise self.err(prop, "required property is missing")
            return None
        return self.cfg.pop(prop)


class ValueSource:
    """A configured value; strings (also inside lists/maps) are mustache templates."""

    def __init__(self, cfg: Config, prop: str, value: Any) -> None:
        self.value = value
        for s in _strings(value):
            check_template(cfg.type, cfg.tag, prop, s)

    def resolve(self, doc: IngestDocument) -> Any:
        return _render_value(self.value, doc)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)


def _render_value(value: Any, doc: IngestDocument) -> Any:
    if isinstance(value, str):
        return doc.render(value)
    if isinstance(value, list):
        return [_render_value(v, doc) for v in value]
    if isinstance(value, dict):
        return {doc.render(k): _render_value(v, doc) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# Processors


class Processor(abc.ABC):
    type = ""

    def __init__(self, tag: str | None, description: str | None) -> None:
        self.tag = tag
        self.description = description

    @abc.abstractmethod
    def execute(self, doc: IngestDocument, ctx: "ExecContext") -> IngestDocument | None:
        raise NotImplementedError


@dataclass
class ExecContext:
    """What processors need beyond the document: the service (ML, pipelines) and an optional trace."""

    service: "IngestService"
    trace: list[dict[str, Any]] | None = None
    pipeline_id: str | None = None


class SetProcessor(Processor):
    type = "set"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.field = c.template("field")
        self.copy_from = c.string("copy_from", required=False)
        self.value: ValueSource | None = None
        if self.copy_from is None:
            self.value = ValueSource(c, "value", c.obj("value"))
        elif c.cfg.pop("value", None) is not None:
            raise c.err("copy_from", "either copy_from or value can be set")
        self.override = c.boolean("override", True)
        self.ignore_empty_value = c.boolean("ignore_empty_value", False)
        c.cfg.pop("media_type", None)

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        path = doc.render(self.field or "")
        if self.override or not doc.has(path) or doc.get(path) is None:
            if self.copy_from is not None:
                if not doc.has(self.copy_from, True):
                    raise iae(f"source field [{self.copy_from}] doesn't exist")
                value = copy.deepcopy(doc.get(self.copy_from))
            else:
                assert self.value is not None
                value = self.value.resolve(doc)
            if self.ignore_empty_value and (value is None or value == ""):
                return doc
            doc.set(path, value)
        return doc


class RemoveProcessor(Processor):
    type = "remove"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        raw = c.cfg.pop("field", None)
        exclude = c.cfg.pop("exclude_field", None)
        if raw is None and exclude is None:
            raise c.err("field", "either field or exclude_field must be set")
        if raw is not None and exclude is not None:
            raise c.err("field", "either field or exclude_field can be set")
        self.fields = self._names(c, "field", raw)
        self.exclude = self._names(c, "exclude_field", exclude)
        self.ignore_missing = c.boolean("ignore_missing", False)

    @staticmethod
    def _names(c: Config, prop: str, raw: Any) -> list[str]:
        if raw is None:
            return []
        names = raw if isinstance(raw, list) else [raw]
        for n in names:
            if not isinstance(n, str):
                raise c.err(prop, f"property isn't a string, but of type [{java_class(n)}]")
            check_template(c.type, c.tag, prop, n)
        return list(names)

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        if self.fields:
            for template in self.fields:
                path = doc.render(template)
                if path in ("_index", "_version", "_version_type"):
                    raise iae(f"cannot remove metadata field [{path}]")
                if self.ignore_missing and not doc.has(path):
                    continue
                doc.remove(path)
        else:
            keep = {doc.render(t) for t in self.exclude}
            for key in list(doc.source()):
                if key not in keep:
                    del doc.data[key]
        return doc


class RenameProcessor(Processor):
    type = "rename"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.field = c.template("field")
        self.target = c.template("target_field")
        self.ignore_missing = c.boolean("ignore_missing", False)
        self.override_target = c.boolean("override_target", False)

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        path = doc.render(self.field or "")
        if not doc.has(path, True):
            if self.ignore_missing:
                return doc
            raise iae(f"field [{path}] doesn't exist")
        target = doc.render(self.target or "")
        if doc.has(target, True):
            if not self.override_target:
                raise iae(f"field [{target}] already exists")
            doc.remove(target)
        value = doc.get(path)
        doc.remove(path)
        try:
            doc.set(target, value)
        except ApiError:
            doc.set(path, value)
            raise
        return doc


_SKIP = object()


class _FieldProcessor(Processor):
    """``field`` → ``target_field`` (default: the same field) with ``ignore_missing``, as OpenSearch's
    AbstractStringProcessor / ConvertProcessor / SplitProcessor read them."""

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.field = c.string("field") or ""
        self.ignore_missing = c.boolean("ignore_missing", False)
        self.target = c.string("target_field", default=self.field) or self.field

    def value(self, doc: IngestDocument, null_message: str) -> Any:
        """The field's value; ``_SKIP`` when it is missing and ``ignore_missing``; else ``null_message``."""
        val = doc.get(self.field, self.ignore_missing)
        if val is None and self.ignore_missing:
            return _SKIP
        if val is None:
            raise iae(null_message)
        return val


class _StringProcessor(_FieldProcessor):
    @abc.abstractmethod
    def apply(self, s: str) -> Any:
        raise NotImplementedError

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        val = self.value(doc, f"field [{self.field}] is null, cannot process it.")
        if val is _SKIP:
            return doc
        if isinstance(val, list):
            out = []
            for v in val:
                if not isinstance(v, str):
                    raise iae(f"value [{java_str(v)}] of type [{java_class(v)}] in list field [{self.field}] "
                              "cannot be cast to [java.lang.String]")
                out.append(self.apply(v))
            new: Any = out
        else:
            if not isinstance(val, str):
                raise iae(f"field [{self.field}] of type [{java_class(val)}] cannot be cast to [java.lang.String]")
            new = self.apply(val)
        doc.set(self.target, new)
        return doc


class LowercaseProcessor(_StringProcessor):
    type = "lowercase"

    def apply(self, s: str) -> Any:
        return s.lower()


class UppercaseProcessor(_StringProcessor):
    type = "uppercase"

    def apply(self, s: str) -> Any:
        return s.upper()


class TrimProcessor(_StringProcessor):
    type = "trim"

    def apply(self, s: str) -> Any:
        return s.strip(" \t\n\r\x0b\f\x00")


class AppendProcessor(Processor):
    type = "append"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.field = c.template("field")
        self.value = ValueSource(c, "value", c.obj("value"))
        self.allow_duplicates = c.boolean("allow_duplicates", True)

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        doc.set(doc.render(self.field or ""), self.value.resolve(doc), append=True,
                allow_duplicates=self.allow_duplicates)
        return doc


_CONVERT_TYPES = ("integer", "long", "float", "double", "boolean", "string", "auto", "ip")


def _convert(value: Any, kind: str) -> Any:
    text = java_str(value)
    if kind in ("integer", "long"):
        try:
            s = text.strip()
            neg = s.startswith("-")
            body = s[1:] if s[:1] in "+-" else s
            if body.lower().startswith("0x") or body.startswith("#"):
                n = int(body[2:] if body.lower().startswith("0x") else body[1:], 16)
            elif len(body) > 1 and body.startswith("0"):
                n = int(body, 8)
            else:
                if not body.isdigit():
                    raise ValueError
                n = int(body)
            n = -n if neg else n
            limit = 2**31 if kind == "integer" else 2**63
            if not -limit <= n < limit:
                raise ValueError
            return n
        except ValueError:
            raise iae(f"unable to convert [{text}] to {kind}") from None
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            raise iae(f"unable to convert [{text}] to {kind}") from None
    if kind == "boolean":
        if text.lower() == "true":
            return True
        if text.lower() == "false":
            return False
        raise iae(f"[{text}] is not a boolean value, cannot convert to boolean")
    if kind == "string":
        return text
    if kind == "ip":
        import ipaddress

        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise iae(f"[{text}] is not a valid ipv4/ipv6 address") from None
        return text
    # auto: only strings are converted; int, then float, then boolean, else unchanged
    if not isinstance(value, str):
        return value
    for attempt in ("integer", "long", "float"):
        try:
            return _convert(value, attempt)
        except ApiError:
            pass
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


class ConvertProcessor(_FieldProcessor):
    type = "convert"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description, c)
        kind = c.string("type") or ""
        if kind.lower() not in _CONVERT_TYPES:
            raise c.err("type", f"type [{kind}] not supported, cannot convert field.")
        self.kind = kind.lower()

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        old = self.value(doc, f"Field [{self.field}] is null, cannot be converted to type [{self.kind}]")
        if old is _SKIP:
            return doc
        new = [_convert(v, self.kind) for v in old] if isinstance(old, list) else _convert(old, self.kind)
        doc.set(self.target, new)
        return doc


class SplitProcessor(_FieldProcessor):
    type = "split"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description, c)
        self.separator = c.string("separator") or ""
        try:
            self.regex = re.compile(self.separator)
        except re.error as exc:
            raise c.err("separator", f"invalid regex [{self.separator}]: {exc}") from None
        self.preserve_trailing = c.boolean("preserve_trailing", False)

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        val = self.value(doc, f"field [{self.field}] is null, cannot split.")
        if val is _SKIP:
            return doc
        if not isinstance(val, str):
            raise iae(f"field [{self.field}] of type [{java_class(val)}] cannot be cast to [java.lang.String]")
        parts = self.regex.split(val) if val else [""]
        if parts and parts[0] == "" and len(val) > 0 and self.regex.match(val) and self.regex.match(val).end() == 0:  # type: ignore[union-attr]
            parts = parts[1:]  # Java drops the leading empty string of a zero-width match
        if not self.preserve_trailing:
            while len(parts) > 1 and parts[-1] == "":
                parts.pop()
            if parts == [""] and val:
                parts = []
        doc.set(self.target, parts)
        return doc


class JoinProcessor(Processor):
    type = "join"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.field = c.string("field") or ""
        self.separator = c.string("separator") or ""
        self.target = c.string("target_field", default=self.field) or self.field

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        val = doc.get(self.field)
        if not isinstance(val, list):
            raise iae(f"field [{self.field}] of type [{java_class(val)}] cannot be cast to [java.util.List]")
        doc.set(self.target, self.separator.join(java_str(v) for v in val))
        return doc


class FailProcessor(Processor):
    type = "fail"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.message = c.template("message") or ""

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        raise ApiError(500, "fail_processor_exception", doc.render(self.message))


class DropProcessor(Processor):
    type = "drop"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument | None:
        return None


class ForeachProcessor(Processor):
    type = "foreach"

    def __init__(self, tag: str | None, description: str | None, c: Config, factories: "Factories") -> None:
        super().__init__(tag, description)
        self.field = c.string("field") or ""
        self.ignore_missing = c.boolean("ignore_missing", False)
        pcfg = c.mapping("processor")
        assert pcfg is not None
        if len(pcfg) != 1:
            raise c.err("processor", "Must specify exactly one processor type")
        (ptype, inner), = pcfg.items()
        self.processor = read_processor(factories, ptype, inner)

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument | None:
        values = doc.get(self.field, self.ignore_missing)
        if values is None:
            if self.ignore_missing:
                return doc
            raise iae(f"field [{self.field}] is null, cannot loop over its elements.")
        if isinstance(values, dict):
            new_map: dict[str, Any] = {}
            for key, value in values.items():
                prev_key, prev_val = doc.ingest.get("_key"), doc.ingest.get("_value")
                doc.ingest["_key"], doc.ingest["_value"] = key, value
                if run_processor(self.processor, doc, ctx) is None:
                    return None
                new_map[doc.ingest["_key"]] = doc.ingest.get("_value")
                _restore(doc.ingest, "_key", prev_key)
                _restore(doc.ingest, "_value", prev_val)
            doc.set(self.field, new_map)
            return doc
        if not isinstance(values, list):
            raise iae(f"field [{self.field}] of type [{java_class(values)}] cannot be cast to a list or map")
        out = []
        for value in values:
            prev = doc.ingest.get("_value")
            doc.ingest["_value"] = value
            if run_processor(self.processor, doc, ctx) is None:
                return None
            out.append(doc.ingest.get("_value"))
            _restore(doc.ingest, "_value", prev)
        doc.set(self.field, out)
        return doc


def _restore(d: dict[str, Any], key: str, prev: Any) -> None:
    if prev is None:
        d.pop(key, None)
    else:
        d[key] = prev


class PipelineProcessor(Processor):
    type = "pipeline"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.name = c.template("name") or ""
        self.ignore_missing_pipeline = c.boolean("ignore_missing_pipeline", False)

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument | None:
        name = doc.render(self.name)
        pipeline = ctx.service.pipeline(name)
        if pipeline is None:
            if self.ignore_missing_pipeline:
                return doc
            raise ise(f"Pipeline processor configured for non-existent pipeline [{name}]")
        if ctx.trace is not None:
            _trace(ctx, self, "success", doc)  # verbose simulate lists it before the inner processors
        return pipeline.run(doc, ctx)


# ---- neural-search processors


def _predict(ctx: ExecContext, model_id: str, body: dict[str, Any], algorithm: str) -> dict[str, Any]:
    engine = ctx.service.engine
    ml = getattr(engine, "ml", None) if engine is not None else None
    if ml is None:
        raise ise("ML Commons is not available on this node")
    result: dict[str, Any] = ml.predict(model_id, body, algorithm=algorithm)
    return result


_RESPONSE_HINT = ". Ensure the connector's post_process_function returns: {\"response\": [[float, float, ...], ...]}"


def vectors_from_response(result: Mapping[str, Any]) -> list[list[Any]]:
    """neural-search ``buildVectorFromResponse``: one vector per ``data`` tensor, or ``dataAsMap.response``."""
    vectors: list[list[Any]] = []
    for item in result.get("inference_results", []) or []:
        for tensor in item.get("output", []) or []:
            if tensor.get("data") is not None:
                vectors.append(list(tensor["data"]))
                continue
            data_map = tensor.get("dataAsMap")
            if data_map is None:
                raise ise("The remote model returned no data. Ensure the connector's post_process_function is "
                          "configured to return: {\"response\": [[float, float, ...], ...]}")
            if "response" not in data_map:
                raise ise("The remote model response is missing the required 'response' key" + _RESPONSE_HINT)
            resp = data_map["response"]
            if not isinstance(resp, list):
                kind = "null" if resp is None else java_class(resp).rsplit(".", 1)[-1]
                raise ise("The remote model 'response' field must be a list of float arrays, but got: " + kind + _RESPONSE_HINT)
            for emb in resp:
                if not isinstance(emb, list):
                    kind = "null" if emb is None else java_class(emb).rsplit(".", 1)[-1]
                    raise ise("Each element in the remote model 'response' must be a list of floats, but got: "
                              + kind + _RESPONSE_HINT)
                if emb and (isinstance(emb[0], bool) or not isinstance(emb[0], (int, float))):
                    raise ise("Each value in a remote model embedding must be a number (float), but got: "
                              + java_class(emb[0]).rsplit(".", 1)[-1] + _RESPONSE_HINT)
                vectors.append(list(emb))
    return vectors


def _unflatten(data: dict[str, Any]) -> None:
    """``ProcessorDocumentUtils.unflattenJson`` for dotted top-level keys (``{"a.b": 1}`` → ``{"a": {"b": 1}}``)."""
    for key in [k for k in data if "." in k and k not in METADATA_KEYS]:
        value = data.pop(key)
        parts = key.split(".")
        if any(not p.strip() for p in parts):
            raise iae(f"Field name '{key}' contains invalid dot usage")
        node = data
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                node[p] = nxt
            node = nxt
        node[parts[-1]] = value


def _split_key(key: str, target: Any) -> tuple[str, Any]:
    """``processNestedKey``: ``"a.b": t`` → ``("a", {"b": t})``."""
    if "." in key:
        head, rest = key.split(".", 1)
        return head, {rest: target}
    return key, target


def _unflatten_config(fmap: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, target in fmap.items():
        head, t = _split_key(key, target)
        if isinstance(t, dict):
            t = _unflatten_config(t)
            if isinstance(out.get(head), dict):
                out[head].update(t)
                continue
        out[head] = t
    return out


def _validate_map_value(key: str, source: dict[str, Any], fmap: Any, depth: int) -> None:
    """``ProcessorDocumentUtils.validateMapTypeValue`` (allowEmpty = true, as text_embedding uses it)."""
    if depth > 20:
        raise iae(f"map type field [{key}] reaches max depth limit, cannot process it")
    if not isinstance(fmap, dict):
        raise iae(f"[{key}] configuration doesn't match actual value type, configuration type is: "
                  f"{java_class(fmap)}, actual value type is: {java_class(source)}")
    for k, nxt in fmap.items():
        v = source.get(k)
        if v is None:
            continue
        if isinstance(v, list):
            _validate_list_value(k, v, fmap, depth + 1)
        elif isinstance(v, dict):
            _validate_map_value(k, v, nxt, depth + 1)
        elif not isinstance(v, str):
            raise iae(f"map type field [{k}] is neither string nor nested type, cannot process it")


def _validate_list_value(key: str, values: list[Any], fmap: dict[str, Any], depth: int) -> None:
    if depth > 20:
        raise iae(f"map type field [{key}] reaches max depth limit, cannot process it")
    for el in values:
        if el is None:
            raise iae(f"list type field [{key}] has null, cannot process it")
        if isinstance(el, list):
            raise iae(f"list type field [{key}] is nested list type, cannot process it")
        if isinstance(el, dict):
            _validate_map_value(key, el, fmap.get(key), depth + 1)
        elif not isinstance(el, str):
            raise iae(f"list type field [{key}] has non string value, cannot process it")


def _blank_to_none(v: Any) -> Any:
    return None if isinstance(v, str) and not v.strip() else v


@dataclass
class _Slot:
    """Where one or more vectors go: ``container[key] = …``."""

    container: dict[str, Any]
    key: str
    kind: str  # "one" | "list" | "nested_list"
    count: int
    texts: list[str] = field(default_factory=list)
    elements: list[dict[str, Any]] = field(default_factory=list)  # nested_list: the list items written into
    source_path: tuple[Any, ...] = ()


def _plan(node: dict[str, Any], fmap: Mapping[str, Any], slots: list[_Slot], path: tuple[Any, ...]) -> None:
    for raw_key, raw_target in fmap.items():
        key, target = _split_key(raw_key, raw_target)
        value = node.get(key)
        if isinstance(target, dict):
            if isinstance(value, dict):
                _plan(value, target, slots, path + (key,))
            elif isinstance(value, list):
                for sub_key, sub_target in target.items():
                    k2, t2 = _split_key(sub_key, sub_target)
                    if isinstance(t2, dict):
                        for i, el in enumerate(value):
                            if isinstance(el, dict):
                                _plan(el, {k2: t2}, slots, path + (key, i))
                        continue
                    texts, elements = [], []
                    for el in value:
                        v = _blank_to_none(el.get(k2)) if isinstance(el, dict) else None
                        if v is not None:
                            texts.append(v if isinstance(v, str) else java_str(v))
                            elements.append(el)
                    if texts:
                        slots.append(_Slot({}, str(t2), "nested_list", len(texts), texts, elements, path + (key, k2)))
            continue
        value = _blank_to_none(value)
        if value is None:
            continue
        if isinstance(value, list):
            texts = [v for v in value if v is not None]
            slots.append(_Slot(node, str(target), "list", len(texts), [java_str(t) if not isinstance(t, str) else t for t in texts],
                               source_path=path + (key,)))
        elif isinstance(value, str):
            slots.append(_Slot(node, str(target), "one", 1, [value], source_path=path + (key,)))
        else:
            slots.append(_Slot(node, str(target), "one", 1, [java_str(value)], source_path=path + (key,)))


def _get_path(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        if isinstance(data, dict) and isinstance(p, str) and p in data:
            data = data[p]
        elif isinstance(data, list) and isinstance(p, int) and p < len(data):
            data = data[p]
        else:
            return None
    return data


class TextEmbeddingProcessor(Processor):
    type = "text_embedding"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.batch_size = c.integer("batch_size", 1) or 1
        if self.batch_size < 1:
            raise c.err("batch_size", "batch_size should be a positive integer")
        self.model_id = c.string("model_id") or ""
        fmap = c.mapping("field_map")
        self.skip_existing = c.boolean("skip_existing", False)
        if not self.model_id.strip():
            raise iae("model_id is null or empty, cannot process it")
        if not fmap or any(not str(k).strip() or v is None or (isinstance(v, str) and not v.strip())
                           for k, v in (fmap or {}).items()):
            raise iae("Unable to create the processor as field_map has invalid key or value")
        self.field_map: dict[str, Any] = fmap

    def prepare(self, doc: IngestDocument) -> list[_Slot]:
        _unflatten(doc.data)
        _validate_map_value("field_map", doc.data, _unflatten_config(self.field_map), 1)
        slots: list[_Slot] = []
        _plan(doc.data, self.field_map, slots, ())
        return slots

    def reuse_existing(self, doc: IngestDocument, slots: list[_Slot], ctx: ExecContext) -> list[_Slot]:
        """``skip_existing``: copy vectors whose source text is unchanged from the stored document."""
        engine = ctx.service.engine
        if not self.skip_existing or engine is None or doc.index is None or doc.doc_id is None:
            return slots
        try:
            existing = engine.get_doc(doc.index, doc.doc_id)
        except ApiError:
            return slots
        if not existing.get("found"):
            return slots
        old = existing.get("_source") or {}
        remaining = []
        for slot in slots:
            old_value = _get_path(old, slot.source_path)
            if slot.kind == "nested_list":
                remaining.append(slot)
                continue
            target_path = slot.source_path[:-1] + (slot.key,)
            old_vec = _get_path(old, target_path)
            new_value = _get_path(doc.data, slot.source_path)
            if old_vec is not None and old_value == new_value:
                slot.container[slot.key] = copy.deepcopy(old_vec)
            else:
                remaining.append(slot)
        return remaining

    @staticmethod
    def write(slots: list[_Slot], vectors: list[list[Any]]) -> None:
        i = 0
        for slot in slots:
            if slot.kind == "one":
                slot.container[slot.key] = vectors[i]
                i += 1
            elif slot.kind == "list":
                slot.container[slot.key] = [{"knn": v} for v in vectors[i:i + slot.count]]
                i += slot.count
            else:
                for el in slot.elements:
                    el[slot.key] = vectors[i]
                    i += 1

    def infer(self, texts: list[str], ctx: ExecContext) -> list[list[Any]]:
        body = {"text_docs": texts, "return_number": True, "target_response": ["sentence_embedding"]}
        vectors = vectors_from_response(_predict(ctx, self.model_id, body, "text_embedding"))
        if len(vectors) < len(texts):
            raise ApiError(500, "index_out_of_bounds_exception",
                           f"Index {len(vectors)} out of bounds for length {len(vectors)}")
        return vectors

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        slots = self.reuse_existing(doc, self.prepare(doc), ctx)
        texts = [t for s in slots for t in s.texts]
        if texts:
            self.write(slots, self.infer(texts, ctx))
        return doc

    def execute_batch(self, docs: list[IngestDocument], ctx: ExecContext) -> list[ApiError | None]:
        """One predict call for the texts of several documents (``AbstractBatchingProcessor``).

        Per-document errors stay with their document; a failed predict fails every document of the
        batch. Texts are sent sorted by length and mapped back, as neural-search does.
        """
        errors: list[ApiError | None] = [None] * len(docs)
        plans: list[tuple[int, list[_Slot]]] = []
        texts: list[str] = []
        for i, doc in enumerate(docs):
            try:
                slots = self.reuse_existing(doc, self.prepare(doc), ctx)
            except ApiError as exc:
                errors[i] = exc
                continue
            plans.append((i, slots))
            texts.extend(t for slot in slots for t in slot.texts)
        if not texts:
            return errors
        order = sorted(range(len(texts)), key=lambda k: len(texts[k]))
        try:
            sorted_vectors = self.infer([texts[k] for k in order], ctx)
        except ApiError as exc:
            return [e if e is not None else exc for e in errors]
        vectors: list[list[Any]] = [[] for _ in texts]
        for pos, k in enumerate(order):
            vectors[k] = sorted_vectors[pos]
        start = 0
        for _, slots in plans:
            n = sum(len(slot.texts) for slot in slots)
            self.write(slots, vectors[start:start + n])
            start += n
        return errors


class TextImageEmbeddingProcessor(Processor):
    type = "text_image_embedding"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.model_id = c.string("model_id") or ""
        self.embedding = c.string("embedding") or ""
        fmap = c.mapping("field_map")
        self.skip_existing = c.boolean("skip_existing", False)
        if not self.model_id.strip():
            raise iae("model_id is null or empty, can not process it")
        if not fmap or any(not str(k).strip() or v is None for k, v in fmap.items()):
            raise iae("Unable to create the TextImageEmbedding processor as field_map has invalid key or value")
        if any(k not in ("text", "image") for k in fmap):
            raise iae("Unable to create the TextImageEmbedding processor with provided field name(s). "
                      "Following names are supported [text,image]")
        self.field_map: dict[str, Any] = fmap

    def inputs(self, doc: IngestDocument) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, doc_field in self.field_map.items():
            if doc_field not in doc.data:
                continue
            value = doc.data[doc_field]
            if value is None:
                raise iae(f"Unsupported format of the field in the document, {doc_field} value must be a non-empty "
                          "string. Currently it is null")
            if not isinstance(value, str) or not value.strip():
                raise iae(f"Unsupported format of the field in the document, {doc_field} value must be a non-empty "
                          f"string. Currently it is '{java_str(value)}'. Type is class {java_class(value)}")
            found["inputText" if name == "text" else "inputImage"] = value
        return found

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        inputs = self.inputs(doc)
        if not inputs:
            return doc
        if self.skip_existing and self._reuse(doc, ctx):
            return doc
        docs: list[str | None] = [inputs.get("inputText")]
        if "inputImage" in inputs:
            docs.append(inputs["inputImage"])
        body = {"text_docs": docs, "return_number": True, "target_response": ["sentence_embedding"]}
        vectors = vectors_from_response(_predict(ctx, self.model_id, body, "text_embedding"))
        doc.set(self.embedding, vectors[0] if vectors else [])
        return doc

    def _reuse(self, doc: IngestDocument, ctx: ExecContext) -> bool:
        engine = ctx.service.engine
        if engine is None or doc.index is None or doc.doc_id is None:
            return False
        try:
            existing = engine.get_doc(doc.index, doc.doc_id)
        except ApiError:
            return False
        old = existing.get("_source") if existing.get("found") else None
        if not old:
            return False
        if any(old.get(f) != doc.data.get(f) for f in self.field_map.values()):
            return False
        vec = _get_path(old, tuple(self.embedding.split(".")))
        if vec is None:
            return False
        doc.set(self.embedding, copy.deepcopy(vec))
        return True


# ---- text_chunking (neural-search)

_CHUNK_ALGORITHMS = ("fixed_token_length", "delimiter", "fixed_char_length")
_WORD_TOKENIZERS = ("standard", "letter", "lowercase", "whitespace", "uax_url_email", "classic", "thai")
_OUR_TOKENIZERS = ("standard", "letter", "lowercase", "whitespace")
_MID_LETTER = set(":·'’.\u2018\u2019\u2024\ufe52\uff07\uff0e\u00b7\u0387\u05f4\u2027\ufe13\ufe55\uff1a")
_MID_NUM = set(",;'’.\u066c\ufe50\ufe54\uff0c\uff1b\u2024\ufe52\uff07\uff0e\u2018\u2019")


def _is_han(ch: str) -> bool:
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x3040 <= o <= 0x309F
            or 0x20000 <= o <= 0x2A6DF or 0xF900 <= o <= 0xFAFF)


def _word_char(ch: str) -> bool:
    return (ch.isalnum() or ch == "_") and not _is_han(ch)


def standard_token_offsets(text: str) -> list[tuple[int, int]]:
    """Token offsets of Lucene's StandardTokenizer (UAX#29 word breaks) for common scripts.

    Letters/digits/underscore runs form a token; ``'`` ``.`` ``:`` join letters (``can't``, ``U.S``) and
    ``,`` ``;`` ``.`` ``'`` join digits (``7.10.2``, ``1,000``); Han ideographs and hiragana are one
    token each. Thai word segmentation and emoji sequences are not modelled.
    """
    out: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if _is_han(ch):
            out.append((i, i + 1))
            i += 1
            continue
        if not _word_char(ch):
            i += 1
            continue
        start = i
        i += 1
        while i < n:
            c = text[i]
            if _word_char(c):
                i += 1
                continue
            if i + 1 < n and _word_char(text[i + 1]):
                prev, nxt = text[i - 1], text[i + 1]
                if c in _MID_LETTER and prev.isalpha() and nxt.isalpha():
                    i += 1
                    continue
                if c in _MID_NUM and prev.isdigit() and nxt.isdigit():
                    i += 1
                    continue
            break
        out.append((start, i))
    return out


def _token_offsets(text: str, tokenizer: str) -> list[tuple[int, int]]:
    if tokenizer == "standard":
        return standard_token_offsets(text)
    pattern = r"\S+" if tokenizer == "whitespace" else r"[^\W\d_]+"
    return [(m.start(), m.end()) for m in re.finditer(pattern, text)]


def _chunk_int(params: Mapping[str, Any], name: str, default: int, positive: bool = False) -> int:
    if name not in params:
        return default
    raw = params[name]
    try:
        if isinstance(raw, bool) or isinstance(raw, float):
            raise ValueError
        value = int(str(raw), 0) if isinstance(raw, str) and str(raw).lower().startswith("0x") else int(str(raw))
    except ValueError:
        raise iae(f"Parameter [{name}] must be of java.lang.Integer type") from None
    if positive and value <= 0:
        raise iae(f"Parameter [{name}] must be positive.")
    return value


def _chunk_float(params: Mapping[str, Any], name: str, default: float) -> float:
    if name not in params:
        return default
    try:
        if isinstance(params[name], bool):
            raise ValueError
        return float(str(params[name]))
    except ValueError:
        raise iae(f"Parameter [{name}] must be of java.lang.Double type") from None


def _chunk_str(params: Mapping[str, Any], name: str, default: str) -> str:
    if name not in params:
        return default
    value = params[name]
    if not isinstance(value, str):
        raise iae(f"Parameter [{name}] must be of java.lang.String type")
    if value == "":
        raise iae(f"Parameter [{name}] should not be empty.")
    return value


class TextChunkingProcessor(Processor):
    type = "text_chunking"

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.field_map = c.mapping("field_map") or {}
        algorithm = c.mapping("algorithm") or {}
        self.ignore_missing = c.boolean("ignore_missing", False)
        if len(algorithm) > 1:
            raise iae("Unable to create text_chunking processor as [algorithm] contains multiple algorithms")
        name, params = next(iter(algorithm.items())) if algorithm else ("fixed_token_length", {})
        if algorithm and not isinstance(params, dict):
            raise iae(f"Unable to create text_chunking processor as parameters for [{name}] algorithm must be an object")
        if name not in _CHUNK_ALGORITHMS:
            raise iae(f"Chunking algorithm [{name}] is not supported. Supported chunking algorithms are "
                      f"[{', '.join(_CHUNK_ALGORITHMS)}]")
        self.algorithm = name
        self.max_chunk_limit = _chunk_int(params, "max_chunk_limit", 100)
        if self.max_chunk_limit <= 0 and self.max_chunk_limit != -1:
            raise iae("Parameter [max_chunk_limit] must be positive or -1 to disable this parameter")
        if name == "fixed_token_length":
            self.limit = _chunk_int(params, "token_limit", 384, positive=True)
            self.overlap = _chunk_float(params, "overlap_rate", 0.0)
            self.tokenizer = _chunk_str(params, "tokenizer", "standard")
            if not 0.0 <= self.overlap <= 0.5:
                raise iae("Parameter [overlap_rate] must be between 0.0 and 0.5")
            if self.tokenizer not in _WORD_TOKENIZERS:
                raise iae(f"Tokenizer [{self.tokenizer}] is not supported for [fixed_token_length] algorithm. "
                          f"Supported tokenizers are [{', '.join(_WORD_TOKENIZERS)}]")
            if self.tokenizer not in _OUR_TOKENIZERS:
                raise unsupported(f"text_chunking tokenizer [{self.tokenizer}]")
        elif name == "fixed_char_length":
            self.limit = _chunk_int(params, "char_limit", 2048, positive=True)
            self.overlap = _chunk_float(params, "overlap_rate", 0.0)
            if not 0.0 <= self.overlap <= 0.5:
                raise iae(f"Parameter [overlap_rate] must be between 0.0 and 0.5, but was {java_str(self.overlap)}")
        else:
            self.delimiter = _chunk_str(params, "delimiter", "\n\n")

    # ---- algorithms (runtime: remaining max_chunk_limit and strings still to chunk)

    @staticmethod
    def _over(size: int, limit: int, pending: int) -> bool:
        return limit != -1 and size + pending >= limit

    def _chunk(self, content: str, rt: dict[str, int], max_tokens: int) -> list[str]:
        out: list[str] = []
        limit, pending = rt["limit"], rt["pending"]
        if self.algorithm == "delimiter":
            start = 0
            pos = content.find(self.delimiter)
            while pos != -1:
                if self._over(len(out), limit, pending):
                    break
                end = pos + len(self.delimiter)
                out.append(content[start:end])
                start = end
                pos = content.find(self.delimiter, start)
            if start < len(content):
                out.append(content[start:])
        elif self.algorithm == "fixed_char_length":
            start = 0
            step = self.limit - int(self.limit * self.overlap)
            while start < len(content):
                if self._over(len(out), limit, pending):
                    out.append(content[start:])
                    break
                if start + self.limit >= len(content):
                    out.append(content[start:])
                    break
                out.append(content[start:start + self.limit])
                start += step
        else:
            tokens = _token_offsets(content, self.tokenizer)
            if len(tokens) > max_tokens:
                raise ise(f"analyzer {self.tokenizer} throws exception: The number of tokens produced by calling "
                          f"_analyze has exceeded the allowed maximum of [{max_tokens}]. This limit can be set by "
                          "changing the [index.analyze.max_token_count] index level setting.")
            i = 0
            overlap = int(self.limit * self.overlap)
            while i < len(tokens):
                begin = 0 if i == 0 else tokens[i][0]
                if self._over(len(out), limit, pending):
                    out.append(content[begin:])
                    break
                if i + self.limit >= len(tokens):
                    out.append(content[begin:])
                    break
                out.append(content[begin:tokens[i + self.limit][0]])
                i += self.limit - overlap
        return out

    def _chunk_string(self, content: str, rt: dict[str, int], max_tokens: int) -> list[str]:
        if content == "":
            return []
        result = self._chunk(content, rt, max_tokens)
        rt["pending"] -= 1
        if rt["limit"] != -1:
            rt["limit"] -= len(result)
        return result

    @staticmethod
    def _is_str_list(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    def _count(self, node: dict[str, Any], fmap: Mapping[str, Any]) -> int:
        n = 0
        for key, target in fmap.items():
            value = node.get(key)
            if isinstance(target, dict):
                items = value if isinstance(value, list) else [value]
                n += sum(self._count(v, target) for v in items if isinstance(v, dict))
            elif isinstance(value, str):
                n += 1 if value else 0
            elif self._is_str_list(value):
                n += sum(1 for x in value if x)
        return n

    def _apply(self, node: dict[str, Any], fmap: Mapping[str, Any], rt: dict[str, int], max_tokens: int) -> None:
        for key, target in fmap.items():
            value = node.get(key)
            if isinstance(target, dict):
                items = value if isinstance(value, list) else [value]
                for v in items:
                    if isinstance(v, dict):
                        self._apply(v, target, rt, max_tokens)
                continue
            if self.ignore_missing and value is None:
                continue
            result: list[str] = []
            if isinstance(value, str):
                if value.strip():
                    result = self._chunk_string(value, rt, max_tokens)
            elif self._is_str_list(value):
                for item in value:
                    result.extend(self._chunk_string(item, rt, max_tokens))
            node[str(target)] = result

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        _validate_map_value("field_map", doc.data, self.field_map, 1)
        max_tokens = 10000
        engine = ctx.service.engine
        state = getattr(engine, "indices", {}).get(doc.index) if engine is not None and doc.index else None
        if state is not None:
            setting = getattr(state, "settings", {}).get("index.analyze.max_token_count")
            if setting is not None:
                max_tokens = int(setting)
        rt = {"limit": self.max_chunk_limit, "pending": self._count(doc.data, self.field_map)}
        self._apply(doc.data, self.field_map, rt, max_tokens)
        return doc


# ---- ml_inference (ML Commons)


def _to_json_string(value: Any) -> str:
    """ML Commons ``StringUtils.toJson``: strings as-is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _substitute(template: str, prefix: str, values: Mapping[str, str]) -> str:
    """Apache ``StringSubstitutor`` with ``${prefix.`` … ``}``: unknown names are left as they are."""
    pattern = re.compile(re.escape("${" + prefix + ".") + r"([^}]+)\}")
    return pattern.sub(lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), template)


def _convert_to_dot_path(path: list[Any]) -> str:
    return ".".join(str(p) for p in path)


def _output_paths(doc: IngestDocument, dot_path: str) -> list[str]:
    """``writeNewDotPathForNestedObject``: expand the leading path (JSONPath) of an output field."""
    if "." not in dot_path:
        return [dot_path]
    leading, leaf = dot_path.rsplit(".", 1)
    model = dict(doc.data)
    model["_ingest"] = doc.ingest
    try:
        jp = compile_path(leading)
    except JsonPathError:
        return [dot_path]
    paths = jp.paths(model)
    if not paths:
        # Jayway with DEFAULT_PATH_LEAF_TO_NULL returns the definite path even when it is missing
        return [dot_path] if jp.definite else []
    return [_convert_to_dot_path(p) + "." + leaf for p in paths]


def _tensor_data(tensor: Mapping[str, Any]) -> list[Any]:
    """``ModelExecutor.parseDataInTensor``."""
    dtype = str(tensor.get("data_type", "FLOAT32")).upper()
    data = list(tensor.get("data") or [])
    if dtype in ("INT32", "INT64", "INT8", "UINT8", "INT16"):
        return [int(v) for v in data]
    if dtype in ("FLOAT32", "FLOAT64", "FLOAT16"):
        return [float(v) for v in data]
    if dtype == "STRING":
        return [java_str(v) for v in data]
    if dtype == "BOOLEAN":
        return [int(v) != 0 for v in data]
    raise runtime_error("unsupported data type in prediction data.")


class MLInferenceProcessor(Processor):
    type = "ml_inference"
    DEFAULT_MODEL_INPUT = '{ "parameters": ${ml_inference.parameters} }'

    def __init__(self, tag: str | None, description: str | None, c: Config) -> None:
        super().__init__(tag, description)
        self.model_id = c.string("model_id") or ""
        model_config = c.mapping("model_config", required=False)
        self.input_maps = c.listing("input_map", required=False)
        self.output_maps = c.listing("output_map", required=False)
        self.max_prediction_tasks = c.integer("max_prediction_tasks", 10) or 10
        self.ignore_missing = c.boolean("ignore_missing", False)
        self.override = c.boolean("override", False)
        self.function_name = c.string("function_name", default="REMOTE") or "REMOTE"
        model_input = c.string("model_input", required=False)
        if self.function_name.lower() == "remote":
            model_input = model_input if model_input is not None else self.DEFAULT_MODEL_INPUT
        elif model_input is None:
            raise iae("Please provide model input when using a local model in ML Inference Processor")
        self.model_input: str = model_input
        self.full_response_path = c.boolean("full_response_path", self.function_name.lower() != "remote")
        # ml_inference reads ignore_failure itself (it is also a core processor option)
        self.ignore_failure = c.boolean("ignore_failure", False)
        self.model_config = {k: _to_json_string(v) for k, v in (model_config or {}).items()}
        for name, maps in (("input_map", self.input_maps), ("output_map", self.output_maps)):
            for m in maps or []:
                if not isinstance(m, dict):
                    raise c.err(name, f"property isn't a map, but of type [{java_class(m)}]")
        if self.input_maps is not None and len(self.input_maps) > self.max_prediction_tasks:
            raise iae(f"The number of prediction task setting in this process is {len(self.input_maps)}. It exceeds "
                      f"the max_prediction_tasks of {self.max_prediction_tasks}. Please reduce the size of input_map "
                      "or increase max_prediction_tasks.")
        if self.input_maps is not None and self.output_maps is not None and len(self.output_maps) != len(self.input_maps):
            raise iae("The length of output_map and the length of input_map do no match.")

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument:
        n = len(self.input_maps or [])
        try:
            for i in range(max(n, 1)):
                self._one(doc, ctx, i, n)
        except ApiError:
            if self.ignore_failure:
                return doc
            raise
        return doc

    def _input_value(self, doc: IngestDocument, doc_field: str) -> tuple[bool, Any]:
        if doc_field and doc.has(doc_field, True):
            return True, doc.get(doc_field)
        try:
            jp = compile_path(doc_field)
        except JsonPathError:
            raise iae(f"Cannot find field name defined from input map: {doc_field}") from None
        try:
            value = jp.read(doc.data)
        except PathNotFound:
            value = None
        if value is None or (isinstance(value, list) and not value):
            if not self.ignore_missing:
                raise iae(f"Cannot find field name defined from input map: {doc_field}")
            return False, None
        return True, value

    def _one(self, doc: IngestDocument, ctx: ExecContext, i: int, n: int) -> None:
        params: dict[str, str] = dict(self.model_config)
        outputs: dict[str, str] | None = None
        if self.output_maps is not None:
            outputs = {}
            for new_field, model_field in self.output_maps[i].items():
                paths = _output_paths(doc, new_field)
                if not self.override and paths and all(doc.has(p) for p in paths):
                    continue  # already there: ML Commons drops it from the output mapping
                outputs[new_field] = model_field
            if not outputs:
                return
        if n == 0:
            for key in list(doc.data):
                params[key] = _to_json_string(doc.data[key])
        else:
            for model_field, doc_field in self.input_maps[i].items():  # type: ignore[index]
                found, value = self._input_value(doc, str(doc_field))
                if found:
                    if model_field in params and model_field not in self.model_config:
                        existing = json.loads(params[model_field]) if params[model_field].startswith("[") else [params[model_field]]
                        params[model_field] = _to_json_string(existing + [_to_json_string(value)])
                    else:
                        params[model_field] = _to_json_string(value)
        input_mappings = {k: v for k, v in params.items() if k not in self.model_config}
        body = self._payload(params, input_mappings)
        remote = self.function_name.lower() == "remote"
        result = _predict(ctx, self.model_id, body, "remote" if remote else self.function_name.lower())
        if not outputs:
            self._append(doc, result, None, "inference_results")
        else:
            for new_field, model_field in outputs.items():
                self._append(doc, result, model_field, new_field)

    def _payload(self, params: dict[str, str], input_mappings: dict[str, str]) -> dict[str, Any]:
        remote = self.function_name.lower() == "remote"
        ml_params = {"parameters": _to_json_string(params)} if remote else dict(params)
        payload = _substitute(self.model_input, "model_config", self.model_config)
        payload = _substitute(payload, "input_map", input_mappings)
        payload = _substitute(payload, "ml_inference", ml_params)
        try:
            parsed = json.loads(payload)
        except ValueError:
            raise iae(f"Invalid payload: {payload}") from None
        if not isinstance(parsed, dict):
            raise iae(f"Invalid payload: {payload}")
        return parsed

    def _output_value(self, result: dict[str, Any], name: str | None) -> Any:
        if not self.full_response_path:
            try:
                return self._tensor_output(result, name)
            except ApiError as exc:
                raise runtime_error(f"An unexpected error occurred: {exc.reason}") from None
        if name is None:
            return result
        try:
            value = compile_path(name).read(result)
            if value is None:
                raise PathNotFound(name)
            return value
        except (PathNotFound, JsonPathError):
            if self.ignore_missing:
                return result
            raise runtime_error(
                f"An unexpected error occurred: model inference output cannot find such json path: {name}") from None

    def _tensor_output(self, result: dict[str, Any], name: str | None) -> Any:
        outputs = result.get("inference_results") or []
        if not outputs:
            raise runtime_error("Model outputs are null or empty.")
        tensors = outputs[0].get("output") or []
        if not tensors:
            raise runtime_error("Output tensors are null or empty.")
        if len(tensors) == 1:
            t = tensors[0]
            if t.get("dataAsMap") is not None:
                return self._field(t["dataAsMap"], name)
            return _tensor_data(t)
        return [self._field(t["dataAsMap"], name) if t.get("dataAsMap") is not None else _tensor_data(t)
                for t in tensors]

    def _field(self, data_map: Any, name: str | None) -> Any:
        if name is None or data_map is None:
            return data_map
        if isinstance(data_map, dict) and name in data_map:
            return data_map[name]
        try:
            return compile_path(name).read(data_map)
        except (PathNotFound, JsonPathError):
            if self.ignore_missing:
                return data_map
            raise runtime_error(f"model inference output cannot find field name: {name}") from None

    def _append(self, doc: IngestDocument, result: dict[str, Any], model_field: str | None, new_field: str) -> None:
        value = self._output_value(result, model_field)
        paths = _output_paths(doc, new_field)
        if len(paths) == 1:
            self._set(doc, paths[0], value)
            return
        if not isinstance(value, list):
            raise iae("Model output is not an array, cannot assign to array in documents.")
        if len(paths) != len(value):
            raise runtime_error(
                f"the prediction field: {model_field} is an array in size of {len(value)} but the document field "
                f"array from field {new_field} is in size of {len(paths)}")
        for path, v in zip(paths, value):
            self._set(doc, path, v)

    def _set(self, doc: IngestDocument, path: str, value: Any) -> None:
        if self.ignore_missing and (value is None or value == ""):
            return  # setFieldValue(…, ignoreEmptyValue = ignoreMissing)
        doc.set(path, value)


# --------------------------------------------------------------------------------------------
# Compound processors, factories, pipelines


class CompoundProcessor(Processor):
    """A list of processors with ``ignore_failure`` and ``on_failure`` (``CompoundProcessor``)."""

    type = "compound"

    def __init__(self, processors: list[Processor], on_failure: list[Processor], ignore_failure: bool = False) -> None:
        super().__init__(None, None)
        self.processors = processors
        self.on_failure = on_failure
        self.ignore_failure = ignore_failure

    def execute(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument | None:
        for p in self.processors:
            try:
                result = run_processor(p, doc, ctx, ignored=self.ignore_failure)
            except ProcessorFailure as failure:
                if self.ignore_failure:
                    continue
                if not self.on_failure:
                    raise
                self._on_failure(doc, ctx, failure)
                return doc  # OpenSearch stops this compound after its on_failure handlers
            if result is None:
                return None
        return doc

    def _on_failure(self, doc: IngestDocument, ctx: ExecContext, failure: ProcessorFailure) -> None:
        keys = ("on_failure_message", "on_failure_processor_type", "on_failure_processor_tag", "on_failure_pipeline")
        previous = {k: doc.ingest.get(k) for k in keys if k in doc.ingest}
        doc.ingest["on_failure_message"] = failure.cause.reason
        doc.ingest["on_failure_processor_type"] = failure.processor_type
        doc.ingest["on_failure_processor_tag"] = failure.tag
        if failure.pipeline is not None:
            doc.ingest["on_failure_pipeline"] = failure.pipeline
        try:
            for p in self.on_failure:
                if run_processor(p, doc, ctx) is None:
                    raise _Dropped()
        finally:
            for k in keys:
                doc.ingest.pop(k, None)
            doc.ingest.update(previous)


def run_processor(p: Processor, doc: IngestDocument, ctx: ExecContext, ignored: bool = False) -> IngestDocument | None:
    """Execute one processor, turning its errors into a ``ProcessorFailure`` and recording the trace."""
    if isinstance(p, CompoundProcessor):
        return p.execute(doc, ctx)
    try:
        result = p.execute(doc, ctx)
    except _Dropped:
        raise
    except ProcessorFailure as failure:
        if ctx.trace is not None and not isinstance(p, PipelineProcessor):
            _trace(ctx, p, "error_ignored" if ignored else "error", doc, failure.cause)
        raise
    except ApiError as exc:
        if ctx.trace is not None:
            _trace(ctx, p, "error_ignored" if ignored else "error", doc, exc)
        raise ProcessorFailure(exc, p.type, p.tag, ctx.pipeline_id) from None
    if ctx.trace is not None and not isinstance(p, PipelineProcessor):
        _trace(ctx, p, "dropped" if result is None else "success", doc)
    return result


def _trace(ctx: ExecContext, p: Processor, status: str, doc: IngestDocument, error: ApiError | None = None) -> None:
    assert ctx.trace is not None
    entry: dict[str, Any] = {"processor_type": p.type, "status": status}
    if p.tag is not None:
        entry["tag"] = p.tag
    if p.description is not None:
        entry["description"] = p.description
    if status == "error":
        entry["error"] = error.error_object() if error is not None else None
    else:
        if status == "error_ignored" and error is not None:
            entry["ignored_error"] = {"error": error.error_object()}
        if status != "dropped":
            entry["doc"] = doc.snapshot()
    ctx.trace.append(entry)


Factory = Callable[..., Processor]
Factories = dict[str, Factory]

FACTORIES: Factories = {
    "set": SetProcessor,
    "remove": RemoveProcessor,
    "rename": RenameProcessor,
    "lowercase": LowercaseProcessor,
    "uppercase": UppercaseProcessor,
    "trim": TrimProcessor,
    "append": AppendProcessor,
    "convert": ConvertProcessor,
    "split": SplitProcessor,
    "join": JoinProcessor,
    "fail": FailProcessor,
    "drop": DropProcessor,
    "foreach": ForeachProcessor,
    "pipeline": PipelineProcessor,
    "text_embedding": TextEmbeddingProcessor,
    "text_image_embedding": TextImageEmbeddingProcessor,
    "ml_inference": MLInferenceProcessor,
    "text_chunking": TextChunkingProcessor,
}


def read_processors(factories: Factories, configs: Any, prop: str | None = None) -> list[Processor]:
    """``ConfigurationUtils.readProcessorConfigs``: every entry of every map is one processor."""
    out: list[Processor] = []
    first: ApiError | None = None
    for item in configs or []:
        if not isinstance(item, dict):
            raise parse_error(f"[{prop or 'processors'}] property isn't a map, but of type [{java_class(item)}]")
        for ptype, cfg in item.items():
            try:
                out.append(read_processor(factories, ptype, cfg))
            except ApiError as exc:
                first = first or exc
    if first is not None:
        raise first
    return out


def read_processor(factories: Factories, ptype: str, cfg: Any) -> Processor:
    if cfg is None:
        raise config_error(ptype, None, None, f"the config of processor [{ptype}] cannot be null")
    if ptype == "script":
        raise unsupported("script ingest processor (Painless)")
    if not isinstance(cfg, dict):
        raise config_error(ptype, None, None, f"property isn't a map, but of type [{java_class(cfg)}]")
    cfg = copy.deepcopy(cfg)
    tag = Config(ptype, None, cfg).string("tag", required=False)
    description = Config(ptype, tag, cfg).string("description", required=False)
    # Read (and removed) before the factory runs, so ml_inference's own ignore_failure never sees it.
    ignore_failure = Config(ptype, None, cfg).boolean("ignore_failure", False)
    if "if" in cfg:
        raise unsupported("ingest processor condition [if] (Painless scripts)")
    factory = factories.get(ptype)
    if factory is None:
        if ptype in KNOWN_UNSUPPORTED:
            raise unsupported(f"ingest processor [{ptype}]")
        raise config_error(ptype, tag, None, f"No processor type exists with name [{ptype}]")
    on_failure_cfg = cfg.pop("on_failure", None)
    if on_failure_cfg is not None and not isinstance(on_failure_cfg, list):
        raise config_error(None, None, "on_failure", f"property isn't a list, but of type [{java_class(on_failure_cfg)}]")
    on_failure = read_processors(factories, on_failure_cfg, "on_failure")
    if on_failure_cfg is not None and not on_failure:
        raise config_error(ptype, tag, "on_failure", "processors list cannot be empty")
    c = Config(ptype, tag, cfg)
    try:
        processor = factory(tag, description, c, factories) if factory is ForeachProcessor else factory(tag, description, c)
    except ApiError as exc:
        raise wrap_factory_error(ptype, tag, exc) from None
    if cfg:
        raise parse_error(f"processor [{ptype}] doesn't support one or more provided configuration parameters "
                          f"[{', '.join(cfg)}]", ptype, tag)
    if on_failure or ignore_failure:
        return CompoundProcessor([processor], on_failure, ignore_failure)
    return processor


class Pipeline:
    """A parsed ingest pipeline."""

    def __init__(self, pipeline_id: str, config: Mapping[str, Any], factories: Factories | None = None) -> None:
        factories = factories or FACTORIES
        cfg = copy.deepcopy(dict(config))
        self.id = pipeline_id
        c = Config(None, None, cfg)  # type: ignore[arg-type]
        self.description = c.string("description", required=False)
        self.version = c.integer("version", None)
        cfg.pop("_meta", None)
        processors_cfg = c.listing("processors")
        on_failure_cfg = c.listing("on_failure", required=False)
        processors = read_processors(factories, processors_cfg)
        on_failure = read_processors(factories, on_failure_cfg, "on_failure")
        if cfg:
            raise parse_error(f"pipeline [{pipeline_id}] doesn't support one or more provided configuration "
                              f"parameters [{', '.join(cfg)}]")
        if on_failure_cfg is not None and not on_failure:
            raise config_error(None, None, "on_failure",
                               f"pipeline [{pipeline_id}] cannot have an empty on-failure option defined")
        self.compound = CompoundProcessor(processors, on_failure)

    def run(self, doc: IngestDocument, ctx: ExecContext) -> IngestDocument | None:
        if self.id in doc.executed_pipelines:
            raise ProcessorFailure(ise(f"Cycle detected for pipeline: {self.id}"), "pipeline", None, ctx.pipeline_id)
        doc.executed_pipelines.append(self.id)
        previous_pipeline = doc.ingest.get("pipeline")
        previous_ctx = ctx.pipeline_id
        doc.ingest["pipeline"] = self.id
        ctx.pipeline_id = self.id
        try:
            return self.compound.execute(doc, ctx)
        finally:
            doc.executed_pipelines.pop()
            ctx.pipeline_id = previous_ctx
            _restore(doc.ingest, "pipeline", previous_pipeline)


# --------------------------------------------------------------------------------------------
# Service + REST


class IngestService(PipelineRest):
    """``/_ingest/pipeline`` REST API and ``execute`` for the write path."""

    def __init__(self, engine: "Engine | None") -> None:
        self.engine = engine
        self.store = PipelineStore(engine, SYSTEM_INDEX)
        self._parsed: dict[str, tuple[int, Pipeline]] = {}

    # ---- library API

    def put(self, pipeline_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise parse_error("[processors] required property is missing", prop="processors")
        Pipeline(pipeline_id, body)  # validate first: nothing is stored on error
        self.store.put(pipeline_id, body)
        self._parsed.pop(pipeline_id, None)
        return {"acknowledged": True}

    def pipeline(self, pipeline_id: str) -> Pipeline | None:
        body = self.store.get(pipeline_id)
        if body is None:
            return None
        cached = self._parsed.get(pipeline_id)
        if cached is not None and cached[0] == id(body):
            return cached[1]
        pipe = Pipeline(pipeline_id, body)
        self._parsed[pipeline_id] = (id(body), pipe)
        return pipe

    def exists(self, pipeline_id: str) -> bool:
        return self.store.get(pipeline_id) is not None

    def execute(self, pipeline_id: str, index: str | None, doc_id: str | None,
                source: Mapping[str, Any]) -> dict[str, Any] | None:
        """Run one document through a pipeline: the new ``_source``, or None when dropped."""
        pipe = self.pipeline(pipeline_id)
        if pipe is None:
            raise iae(f"pipeline with id [{pipeline_id}] does not exist")
        doc = IngestDocument(index, doc_id, source)
        result = self._run(pipe, doc, ExecContext(self))
        return None if result is None else result.source()

    def execute_batch(self, pipeline_id: str, docs: list[tuple[str | None, str | None, Mapping[str, Any]]]
                      ) -> list[dict[str, Any] | None | ApiError]:
        """Run several documents (one ``_bulk`` request) through a pipeline, honouring ``batch_size``.

        Each result is the new source, None (dropped) or the document's ``ApiError``. Top-level
        ``text_embedding`` processors with ``batch_size`` > 1 embed up to that many documents per
        predict call; every other processor runs per document, with the same failure handling as
        :meth:`execute`.
        """
        pipe = self.pipeline(pipeline_id)
        if pipe is None:
            return [iae(f"pipeline with id [{pipeline_id}] does not exist") for _ in docs]
        results: list[dict[str, Any] | None | ApiError] = [None] * len(docs)
        ingest_docs = [IngestDocument(index, doc_id, source) for index, doc_id, source in docs]
        ctx = ExecContext(self, pipeline_id=pipe.id)
        for doc in ingest_docs:
            doc.ingest["pipeline"] = pipe.id
            doc.executed_pipelines.append(pipe.id)
        live = list(range(len(docs)))

        def fail(i: int, failure: ProcessorFailure) -> None:
            doc = ingest_docs[i]
            if not pipe.compound.on_failure:
                results[i] = failure.cause
                return
            try:
                pipe.compound._on_failure(doc, ctx, failure)
                results[i] = doc.source()
            except ProcessorFailure as again:
                results[i] = again.cause
            except _Dropped:
                results[i] = None

        for p in pipe.compound.processors:
            done: set[int] = set()
            if isinstance(p, TextEmbeddingProcessor) and p.batch_size > 1:
                for start in range(0, len(live), p.batch_size):
                    chunk = live[start:start + p.batch_size]
                    errors = p.execute_batch([ingest_docs[i] for i in chunk], ctx)
                    for i, err in zip(chunk, errors):
                        if err is not None:
                            fail(i, ProcessorFailure(err, p.type, p.tag, pipe.id))
                            done.add(i)
            else:
                for i in live:
                    try:
                        if run_processor(p, ingest_docs[i], ctx) is None:
                            results[i] = None
                            done.add(i)
                    except ProcessorFailure as failure:
                        fail(i, failure)
                        done.add(i)
                    except _Dropped:
                        results[i] = None
                        done.add(i)
            live = [i for i in live if i not in done]
        for i in live:
            results[i] = ingest_docs[i].source()
        return results

    @staticmethod
    def _run(pipe: Pipeline, doc: IngestDocument, ctx: ExecContext) -> IngestDocument | None:
        try:
            return pipe.run(doc, ctx)
        except _Dropped:
            return None
        except ProcessorFailure as failure:
            raise failure.cause from None

    # ---- simulate

    def simulate(self, pipeline_id: str | None, body: Any, verbose: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise parse_error("[docs] required property is missing", prop="docs")
        cfg = dict(body)
        if pipeline_id is not None:
            pipe = self.pipeline(pipeline_id)
            if pipe is None:
                raise iae(f"pipeline [{pipeline_id}] does not exist")
        else:
            pconf = cfg.get("pipeline")
            if pconf is None:
                raise parse_error("[pipeline] required property is missing", prop="pipeline")
            if not isinstance(pconf, dict):
                raise parse_error(f"[pipeline] property isn't a map, but of type [{java_class(pconf)}]",
                                  prop="pipeline")
            pipe = Pipeline(SIMULATE_PIPELINE_ID, pconf)
        docs = cfg.get("docs")
        if docs is None:
            raise parse_error("[docs] required property is missing", prop="docs")
        if not isinstance(docs, list):
            raise parse_error(f"[docs] property isn't a list, but of type [{java_class(docs)}]", prop="docs")
        results = []
        for d in docs:
            if not isinstance(d, dict):
                raise parse_error(f"[docs] property isn't a map, but of type [{java_class(d)}]", prop="docs")
            if "_source" not in d:
                raise parse_error("[_source] required property is missing", prop="_source")
            source = d["_source"]
            if not isinstance(source, dict):
                raise parse_error(f"[_source] property isn't a map, but of type [{java_class(source)}]",
                                  prop="_source")
            doc = IngestDocument(str(d.get("_index", "_index")), str(d.get("_id", "_id")), source,
                                 routing=d.get("_routing"))
            results.append(self._simulate_one(pipe, doc, verbose))
        return {"docs": results}

    def _simulate_one(self, pipe: Pipeline, doc: IngestDocument, verbose: bool) -> Any:
        if verbose:
            trace: list[dict[str, Any]] = []
            ctx = ExecContext(self, trace=trace)
            try:
                pipe.run(doc, ctx)
            except (ProcessorFailure, _Dropped):
                pass  # the failing processor is already in the trace
            return {"processor_results": trace}
        try:
            result = self._run(pipe, doc, ExecContext(self))
        except ApiError as exc:
            return {"error": exc.error_object()}
        if result is None:
            return None
        return {"doc": result.snapshot(include_pipeline=False)}

    # ---- REST

    def routes(self) -> list["Route"]:
        from kit.node.routing import Route

        return [
            Route("GET", "/_ingest/pipeline", self._rest_get_all),
            Route("GET", "/_ingest/pipeline/{id}", self._rest_get),
            Route("PUT", "/_ingest/pipeline/{id}", self._rest_put),
            Route("DELETE", "/_ingest/pipeline/{id}", self._rest_delete),
            Route("GET", "/_ingest/pipeline/_simulate", self._rest_simulate),
            Route("POST", "/_ingest/pipeline/_simulate", self._rest_simulate),
            Route("GET", "/_ingest/pipeline/{id}/_simulate", self._rest_simulate),
            Route("POST", "/_ingest/pipeline/{id}/_simulate", self._rest_simulate),
        ]


    def _rest_simulate(self, req: "NodeRequest") -> Any:
        if not req.has_body():
            raise ApiError(400, "parse_exception", "request body or source parameter is required")
        return self.simulate(req.path_params.get("id"), req.json(), verbose=req.flag("verbose"))
