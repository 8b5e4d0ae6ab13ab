"""OpenSearch core's ingest processors: set, remove, rename, lowercase, uppercase, trim, append,
convert, split, join, fail, drop, foreach, pipeline."""

from __future__ import annotations

import abc
import copy
import re
from typing import Any

from kit.node.errors import ApiError
from kit.node.ingest.document import IngestDocument, check_template, iae, ise, java_str
from kit.node.ingest.processor import (
    Config,
    ExecContext,
    Factories,
    Processor,
    ValueSource,
    restore,
    record_trace,
    read_processor,
    run_processor,
)
from kit.node.jsonutil import java_class

__all__ = [
    "AppendProcessor", "ConvertProcessor", "DropProcessor", "FailProcessor", "ForeachProcessor",
    "JoinProcessor", "LowercaseProcessor", "PipelineProcessor", "RemoveProcessor", "RenameProcessor",
    "SetProcessor", "SplitProcessor", "TrimProcessor", "UppercaseProcessor",
]


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
    takes_factories = True  # read_processor passes the factories on for the inner processor

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
                restore(doc.ingest, "_key", prev_key)
                restore(doc.ingest, "_value", prev_val)
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
            restore(doc.ingest, "_value", prev)
        doc.set(self.field, out)
        return doc


class PipelineProcessor(Processor):
    type = "pipeline"
    traces_itself = True

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
            record_trace(ctx, self, "success", doc)  # verbose simulate lists it before the inner processors
        return pipeline.run(doc, ctx)
