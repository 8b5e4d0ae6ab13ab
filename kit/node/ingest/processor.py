"""The processor contract and how processors are read and run: ``Config`` (``ConfigurationUtils``),
``Processor``, ``CompoundProcessor`` (``ignore_failure``/``on_failure``), ``run_processor`` (trace
for verbose simulate) and the factory lookup."""

from __future__ import annotations

import abc
import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from kit.node.errors import ApiError, unsupported
from kit.node.ingest.document import (
    IngestDocument,
    ProcessorFailure,
    Dropped,
    check_template,
    config_error,
    ise,
    java_str,
    parse_error,
    wrap_factory_error,
)
from kit.node.jsonutil import java_class

__all__ = [
    "CompoundProcessor", "Config", "ExecContext", "Factories", "PipelineHost", "Processor",
    "RunnablePipeline", "ValueSource", "predict", "read_processor", "read_processors", "record_trace",
    "restore", "run_processor",
]

# Real processors this node does not implement: refused with a clear message, not "unknown type".
KNOWN_UNSUPPORTED = {
    "attachment", "bytes", "circle", "community_id", "copy", "csv", "date", "date_index_name", "dissect",
    "dot_expander", "fingerprint", "geoip", "geojson-feature", "grok", "gsub", "html_strip", "ip2geo", "json",
    "kv", "set_security_user", "sort", "sparse_encoding", "urldecode", "user_agent",
    "community_id", "semantic_field",
}


class RunnablePipeline(Protocol):
    def run(self, doc: IngestDocument, ctx: "ExecContext") -> IngestDocument | None: ...


class PipelineHost(Protocol):
    """What processors reach through ``ExecContext.service`` (the ``IngestService``)."""

    engine: Any

    def pipeline(self, pipeline_id: str) -> RunnablePipeline | None: ...


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


class Processor(abc.ABC):
    type = ""
    traces_itself = False  # the pipeline processor records its own trace entry

    def __init__(self, tag: str | None, description: str | None) -> None:
        self.tag = tag
        self.description = description

    @abc.abstractmethod
    def execute(self, doc: IngestDocument, ctx: "ExecContext") -> IngestDocument | None:
        raise NotImplementedError


@dataclass
class ExecContext:
    """What processors need beyond the document: the service (ML, pipelines) and an optional trace."""

    service: PipelineHost
    trace: list[dict[str, Any]] | None = None
    pipeline_id: str | None = None


def restore(d: dict[str, Any], key: str, prev: Any) -> None:
    if prev is None:
        d.pop(key, None)
    else:
        d[key] = prev


def predict(ctx: ExecContext, model_id: str, body: dict[str, Any], algorithm: str) -> dict[str, Any]:
    engine = ctx.service.engine
    ml = getattr(engine, "ml", None) if engine is not None else None
    if ml is None:
        raise ise("ML Commons is not available on this node")
    result: dict[str, Any] = ml.predict(model_id, body, algorithm=algorithm)
    return result


# --------------------------------------------------------------------------------------------
# Compound processors and factories


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
                    raise Dropped()
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
    except Dropped:
        raise
    except ProcessorFailure as failure:
        if ctx.trace is not None and not p.traces_itself:
            record_trace(ctx, p, "error_ignored" if ignored else "error", doc, failure.cause)
        raise
    except ApiError as exc:
        if ctx.trace is not None:
            record_trace(ctx, p, "error_ignored" if ignored else "error", doc, exc)
        raise ProcessorFailure(exc, p.type, p.tag, ctx.pipeline_id) from None
    if ctx.trace is not None and not p.traces_itself:
        record_trace(ctx, p, "dropped" if result is None else "success", doc)
    return result


def record_trace(ctx: ExecContext, p: Processor, status: str, doc: IngestDocument, error: ApiError | None = None) -> None:
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
        processor = factory(tag, description, c, factories) if getattr(factory, "takes_factories", False) else factory(tag, description, c)
    except ApiError as exc:
        raise wrap_factory_error(ptype, tag, exc) from None
    if cfg:
        raise parse_error(f"processor [{ptype}] doesn't support one or more provided configuration parameters "
                          f"[{', '.join(cfg)}]", ptype, tag)
    if on_failure or ignore_failure:
        return CompoundProcessor([processor], on_failure, ignore_failure)
    return processor
