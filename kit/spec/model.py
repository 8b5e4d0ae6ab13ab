"""The loaded spec: :class:`Spec` (find operations, validate requests, responses and parameters) and its
data types :class:`Operation` and :class:`Parameter`. Build a :class:`Spec` with :func:`kit.spec.load_spec`."""

from __future__ import annotations

import difflib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, unquote

from kit.errors import SpecError
from kit.spec.document import HTTP_METHODS, _escape, _format_checker, _pointer_get
from kit.spec.validator import _memoised, fast_validator_class

__all__ = ["SPEC_URI", "Operation", "Parameter", "Spec"]

SPEC_URI = "urn:oskit:opensearch-api-spec"


@dataclass(frozen=True)
class Parameter:
    """A path or query parameter of an operation; ``pointer`` locates its schema in the merged spec."""

    name: str
    location: str
    required: bool
    pointer: str | None
    schema: Mapping[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """One HTTP method on one path template of the spec."""

    method: str
    path: str
    group: str
    operation_id: str
    parameters: Mapping[str, Parameter]  # by name; a path parameter wins over a query one of the same name
    query_parameters: Mapping[str, Parameter]
    request_body: Mapping[str, str | None]  # content type -> schema pointer
    request_body_required: bool
    responses: Mapping[str, Mapping[str, str | None]]  # status -> content type -> schema pointer
    version_added: str | None = None
    version_removed: str | None = None
    deprecated: bool = False

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.group})"




def _json_path(prefix: str, parts: Iterable[Any]) -> str:
    out = prefix
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def _error_message(err: Any) -> str:
    if err.validator == "unevaluatedProperties" and err.validator_value is False:
        m = re.search(r"\((.*) (?:was|were) unexpected\)", err.message)
        names = m.group(1) if m else err.message
        return f"unknown field(s) {names}: not defined in the spec"
    return str(err.message)


class Spec:
    """The merged, strict OpenSearch API spec. Build it with :func:`load_spec`."""

    def __init__(self, doc: dict[str, Any], *, root: Path, version: str | None, distribution: str | None,
                 allow_list: bool) -> None:
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012

        self.doc = doc
        self.root = root
        self.version = version
        self.distribution = distribution
        self.allow_list = allow_list
        self._validator_cls = fast_validator_class()
        self._registry = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(doc))
        self._format_checker = _format_checker()
        self._validators: dict[str, Any] = {}
        # Operations are built on first use: validating a project touches a few dozen of ~800.
        self._raw_ops: dict[tuple[str, str], dict[str, Any]] = {}
        self._ops: dict[tuple[str, str], Operation] = {}
        self._templates: list[tuple[tuple[str, ...], str]] = []
        self._lock = threading.Lock()
        for path, item in doc.get("paths", {}).items():
            segments = tuple(path.strip("/").split("/")) if path.strip("/") else ()
            self._templates.append((segments, path))
            for method in HTTP_METHODS:
                op = item.get(method)
                if isinstance(op, dict):
                    self._raw_ops[(method.upper(), path)] = op

    # ---- operations ---------------------------------------------------------------------------

    def _deref(self, node: Any, pointer: str) -> tuple[Any, str]:
        """Follow non-schema ``$ref`` (parameters, requestBodies, responses); return node and its pointer."""
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 16:
            pointer = node["$ref"][1:]
            node = _pointer_get(self.doc, pointer)
            seen += 1
        return node, pointer

    def _content_pointers(self, holder: Any, pointer: str) -> dict[str, str | None]:
        holder, pointer = self._deref(holder, pointer)
        out: dict[str, str | None] = {}
        for ctype, media in ((holder or {}).get("content") or {}).items():
            has_schema = isinstance(media, dict) and "schema" in media
            out[ctype] = f"{pointer}/content/{_escape(ctype)}/schema" if has_schema else None
        return out

    def _build_operation(self, method: str, path: str, op: dict[str, Any]) -> Operation:
        base = f"/paths/{_escape(path)}/{method.lower()}"
        params: dict[str, Parameter] = {}
        query: dict[str, Parameter] = {}
        for i, raw in enumerate(op.get("parameters") or []):
            param, pointer = self._deref(raw, f"{base}/parameters/{i}")
            if not isinstance(param, dict) or "name" not in param:
                continue
            parsed = Parameter(
                name=param["name"], location=param.get("in", "query"), required=bool(param.get("required")),
                pointer=f"{pointer}/schema" if "schema" in param else None, schema=param.get("schema") or {})
            if parsed.location == "query":
                query[parsed.name] = parsed
            if parsed.location == "path" or parsed.name not in params:
                params[parsed.name] = parsed
        body: dict[str, str | None] = {}
        body_required = False
        if "requestBody" in op:
            body = self._content_pointers(op["requestBody"], f"{base}/requestBody")
            resolved, _ = self._deref(op["requestBody"], f"{base}/requestBody")
            body_required = bool((resolved or {}).get("required"))
        responses = {str(status): self._content_pointers(resp, f"{base}/responses/{_escape(str(status))}")
                     for status, resp in (op.get("responses") or {}).items()}
        return Operation(
            method=method, path=path, group=str(op.get("x-operation-group") or op.get("operationId") or ""),
            operation_id=str(op.get("operationId") or ""), parameters=params, query_parameters=query,
            request_body=body,
            request_body_required=body_required, responses=responses,
            version_added=op.get("x-version-added"), version_removed=op.get("x-version-removed"),
            deprecated=bool(op.get("deprecated")))

    def _op(self, key: tuple[str, str]) -> Operation | None:
        op = self._ops.get(key)
        if op is None and key in self._raw_ops:
            op = self._ops[key] = self._build_operation(key[0], key[1], self._raw_ops[key])
        return op

    @property
    def operations(self) -> list[Operation]:
        return [self._op(key) for key in self._raw_ops]  # type: ignore[misc]

    def operation(self, method: str, template: str) -> Operation | None:
        """The operation at exactly this path template (``/{index}/_doc/{id}``), or None."""
        return self._op((method.upper(), template))

    def operations_in_group(self, group: str) -> list[Operation]:
        """Every method/path pair of one ``x-operation-group`` (e.g. ``ml.register_model``)."""
        return [op for op in self.operations if op.group == group]

    def match_path(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """Match a concrete path (``/images/_doc/1``) or a template to an operation and its path values.

        Literal segments win over ``{param}`` segments, left to right, as OpenSearch's router does.
        """
        method = method.upper()
        path = path.split("?", 1)[0]
        if (method, path) in self._raw_ops:
            template_params = {s[1:-1]: s for s in path.strip("/").split("/") if s.startswith("{")}
            return self._op((method, path)), template_params  # type: ignore[return-value]
        segments = tuple(unquote(s) for s in path.strip("/").split("/")) if path.strip("/") else ()
        best: tuple[tuple[int, ...], str, dict[str, str]] | None = None
        for template, template_path in self._templates:
            if len(template) != len(segments) or (method, template_path) not in self._raw_ops:
                continue
            values: dict[str, str] = {}
            score = []
            for t, s in zip(template, segments):
                if t.startswith("{") and t.endswith("}"):
                    if not s:
                        break
                    values[t[1:-1]] = s
                    score.append(0)
                elif t == s:
                    score.append(1)
                else:
                    break
            else:
                key = tuple(score)
                if best is None or key > best[0]:
                    best = (key, template_path, values)
        if best is None:
            return None
        return self._op((method, best[1])), best[2]  # type: ignore[return-value]

    def find_operation(self, method: str, path: str) -> Operation:
        """The operation for a method and a concrete or templated path; SpecError when there is none."""
        found = self.match_path(method, path)
        if found is None:
            methods = sorted({m for (m, p) in self._raw_ops if self.match_path(m, path) is not None})
            hint = f"the spec has {', '.join(methods)} for this path" if methods else "no such path in the spec"
            raise SpecError(f"{method.upper()} {path}: no such operation in the OpenSearch API spec", hint=hint)
        return found[0]

    # ---- validation ---------------------------------------------------------------------------

    def _validator(self, pointer: str) -> Any:
        with self._lock:
            validator = self._validators.get(pointer)
            if validator is None:
                validator = self._validator_cls({"$ref": f"{SPEC_URI}#{pointer}"}, registry=self._registry,
                                                format_checker=self._format_checker)
                self._validators[pointer] = validator
        return validator

    def validate_pointer(self, pointer: str, instance: Any, where: str = "") -> list[str]:
        """Validate ``instance`` against the schema at ``pointer`` in the merged spec."""
        from jsonschema.exceptions import best_match

        problems = []
        with _memoised():
            for err in self._validator(pointer).iter_errors(instance):
                deep = best_match([err]) if err.context else err
                problems.append(f"{_json_path(where, deep.absolute_path)}: {_error_message(deep)}")
        return sorted(set(problems))

    def schema_at(self, pointer: str) -> Any:
        return _pointer_get(self.doc, pointer)

    def validate_parameter(self, operation: Operation, name: str, value: Any, *, coerce_strings: bool = True,
                           location: str | None = None) -> list[str]:
        """Validate one path or query parameter value; strings from a URL are coerced like the server does."""
        param = operation.query_parameters.get(name) if location == "query" else operation.parameters.get(name)
        where = f"{param.location if param else 'query'} parameter {name!r}"
        if param is None:
            return [f"{where}: not a parameter of {operation.method} {operation.path} in the spec"]
        if param.pointer is None:
            return []
        problems = self.validate_pointer(param.pointer, value, where)
        if problems and coerce_strings and isinstance(value, str):
            for candidate in _string_coercions(value):
                if not self.validate_pointer(param.pointer, candidate, where):
                    return []
        return problems

    def validate_request(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None,
                         *, content_type: str = "application/json") -> list[str]:
        """Problems with a request the kit would send: unknown operation, unknown or wrong query
        parameters, a body that does not validate strictly. An empty list means it fits the spec."""
        query: dict[str, Any] = dict(params or {})
        if "?" in path:
            path, qs = path.split("?", 1)
            for k, v in parse_qsl(qs, keep_blank_values=True):
                query.setdefault(k, v)
        found = self.match_path(method, path)
        if found is None:
            try:
                self.find_operation(method, path)
            except SpecError as exc:
                return [f"{exc} ({exc.hint})" if exc.hint else str(exc)]
            return [f"{method.upper()} {path}: no such operation in the OpenSearch API spec"]
        op, path_values = found
        prefix = f"{op.method} {op.path}"
        problems: list[str] = []
        for name, value in path_values.items():
            if not (value.startswith("{") and value.endswith("}")):
                problems += self.validate_parameter(op, name, value)
        for name, value in query.items():
            if name not in op.query_parameters:
                close = difflib.get_close_matches(name, list(op.query_parameters), n=3)
                did_you_mean = f" (did you mean {', '.join(close)}?)" if close else ""
                problems.append(f"query parameter {name!r}: not defined in the spec for this operation{did_you_mean}")
                continue
            problems += self.validate_parameter(op, name, value, location="query")
        if body is not None:
            if content_type not in op.request_body:
                if not op.request_body:
                    problems.append("body: the spec declares no request body for this operation")
                else:
                    problems.append(f"body: content type {content_type} not accepted (spec: {', '.join(op.request_body)})")
            else:
                pointer = op.request_body[content_type]
                if pointer is not None:
                    problems += self.validate_pointer(pointer, body, "body")
        elif op.request_body_required:
            problems.append("body: a request body is required")
        return [f"{prefix}: {p}" for p in problems]

    def validate_response(self, method: str, path: str, status: int, body: Any,
                          *, content_type: str = "application/json") -> list[str]:
        """Problems with a response: the status must be declared and the body must validate strictly."""
        found = self.match_path(method, path)
        if found is None:
            return [f"{method.upper()} {path}: no such operation in the OpenSearch API spec"]
        op = found[0]
        prefix = f"{op.method} {op.path} -> {status}"
        content = op.responses.get(str(status))
        if content is None:
            return [f"{prefix}: status {status} is not declared in the spec (declared: {', '.join(op.responses)})"]
        if content_type not in content:
            return [f"{prefix}: schema for {content_type} response not found in the spec"]
        pointer = content[content_type]
        if pointer is None:
            return []
        return [f"{prefix}: {p}" for p in self.validate_pointer(pointer, body, "body")]


def _string_coercions(value: str) -> list[Any]:
    out: list[Any] = []
    low = value.lower()
    if low in ("true", "false"):
        out.append(low == "true")
    if value == "":
        out.append(True)  # ?flag with no value is true in OpenSearch
    try:
        out.append(int(value))
    except ValueError:
        try:
            out.append(float(value))
        except ValueError:
            pass
    if "," in value:
        out.append(value.split(","))
    out.append([value])
    return out
