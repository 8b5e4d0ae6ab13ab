"""The OpenSearch REST API specification: load it, find operations, validate requests and responses.

The spec (``opensearch-project/opensearch-api-specification``) is a folder of OpenAPI 3.1 YAML files
with ``$ref`` links across files (``spec/namespaces/*.yaml`` hold the operations, ``spec/schemas/*.yaml``
the data types). :func:`load_spec` merges them into one document the way the upstream merger does
(``tools/src/merger/OpenApiMerger.ts``) and then makes the schemas *strict* the way the upstream test
tool does (``tools/src/tester/MergedOpenApiSpec.ts``): object schemas get
``unevaluatedProperties: false`` where they are used, so a misspelt or unknown field is an error.
Optionally, the document is cut down to what one server version and distribution serve
(``OpenApiVersionExtractor.ts``).

Validation is jsonschema's Draft 2020-12 with two changes that keep its verdicts and make it fast on
the spec's large unions (see :func:`fast_validator_class`): a ``oneOf``/``anyOf`` tries only the branches
whose ``type``, ``required`` keys and string ``enum``/``const`` properties admit the instance, and
validity of a (schema node, instance) pair is memoised during one validation.

The spec has a few known gaps: fields and processors that real OpenSearch accepts and the spec does not
declare (see the spec folder's README). :data:`ALLOW_LIST` patches exactly those into the spec before
validation, each with its reason; a test fails when the upstream spec gains an entry, so the list
stays short. Conformance runs use the spec as published (``allow_list=False``).

Example::

    spec = load_spec(Path("../shared/opensearch-api-spec"))
    op = spec.find_operation("PUT", "/_ingest/pipeline/images")      # ingest.put_pipeline
    problems = spec.validate_request("PUT", "/_ingest/pipeline/images", body={...})
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import hashlib
import json
import logging
import os
import pickle
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, unquote

from kit.errors import SpecError

__all__ = [
    "ALLOW_LIST",
    "DEFAULT_DISTRIBUTION",
    "AllowListEntry",
    "Operation",
    "Parameter",
    "Spec",
    "load_spec",
    "satisfies",
]

log = logging.getLogger(__name__)

DEFAULT_DISTRIBUTION = "opensearch.org"
SPEC_URI = "urn:oskit:opensearch-api-spec"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Bump when the processing below changes, so on-disk caches of older processing are ignored.
_PROCESSING_VERSION = "3"


# ------------------------------------------------------------------------------------------------
# Allow-list: the spec's known gaps, patched in before validation (never used by conformance runs).
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowListEntry:
    """One documented gap of the spec, patched into the raw YAML of ``file`` before merging.

    ``kind``:
      - ``property``: add ``name: value`` to the ``properties`` of the schema at ``pointer``;
      - ``query_parameter``: add a query parameter ``name`` (schema ``value``) to the operation at ``pointer``;
      - ``request_body``: give the operation at ``pointer`` a JSON request body with schema ``value``;
      - ``one_of``: add the branch ``value`` (a one-property object named ``name``) to the ``oneOf`` at ``pointer``.
    Each entry is *still needed* while the spec lacks ``name`` there (checked by a test).
    """

    file: str
    pointer: str
    kind: str
    name: str
    value: Any
    reason: str


_ML_INFERENCE_COMMON: dict[str, Any] = {
    "model_id": {"type": "string"},
    "function_name": {"type": "string"},
    "model_config": {"type": "object"},
    "model_input": {"type": "string"},
    "input_map": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}}},
    "output_map": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}}},
    "full_response_path": {"type": "boolean"},
    "ignore_missing": {"type": "boolean"},
    "ignore_failure": {"type": "boolean"},
    "max_prediction_tasks": {"type": "integer"},
    "tag": {"type": "string"},
    "description": {"type": "string"},
}

_ML = "namespaces/ml.yaml"
_ML_SCHEMAS = "schemas/ml._common.yaml"
_INGEST_SCHEMAS = "schemas/ingest._common.yaml"
_SEARCH_PIPELINE_SCHEMAS = "schemas/search_pipeline._common.yaml"

ALLOW_LIST: dict[str, AllowListEntry] = {
    "text_image_embedding.embedding": AllowListEntry(
        _INGEST_SCHEMAS, "/components/schemas/TextImageEmbeddingProcessor/allOf/1", "property",
        "embedding", {"type": "string", "description": "The vector field the embedding is written to."},
        "neural-search's TextImageEmbeddingProcessor requires `embedding` (the output vector field); "
        "the spec defines only model_id and field_map, so every correct CLIP pipeline would fail."),
    "model_config.pooling_mode": AllowListEntry(
        _ML_SCHEMAS, "/components/schemas/ModelConfig", "property", "pooling_mode",
        {"type": "string", "enum": ["MEAN", "MEAN_SQRT_LEN", "MAX", "WEIGHTED_MEAN", "CLS", "LAST_TOKEN",
                                    "mean", "mean_sqrt_len", "max", "weighted_mean", "cls", "last_token"]},
        "ML Commons TextEmbeddingModelConfig.pooling_mode (local custom TEXT_EMBEDDING models); missing in spec ModelConfig."),
    "model_config.normalize_result": AllowListEntry(
        _ML_SCHEMAS, "/components/schemas/ModelConfig", "property", "normalize_result", {"type": "boolean"},
        "ML Commons TextEmbeddingModelConfig.normalize_result; missing in spec ModelConfig."),
    "model_config.model_max_length": AllowListEntry(
        _ML_SCHEMAS, "/components/schemas/ModelConfig", "property", "model_max_length", {"type": "integer"},
        "ML Commons TextEmbeddingModelConfig.model_max_length; missing in spec ModelConfig."),
    "model_config.query_prefix": AllowListEntry(
        _ML_SCHEMAS, "/components/schemas/ModelConfig", "property", "query_prefix", {"type": "string"},
        "ML Commons TextEmbeddingModelConfig.query_prefix (2.12+); missing in spec ModelConfig."),
    "model_config.passage_prefix": AllowListEntry(
        _ML_SCHEMAS, "/components/schemas/ModelConfig", "property", "passage_prefix", {"type": "string"},
        "ML Commons TextEmbeddingModelConfig.passage_prefix (2.12+); missing in spec ModelConfig."),
    "register_model.deploy": AllowListEntry(
        _ML, "/paths/~1_plugins~1_ml~1models~1_register/post", "query_parameter", "deploy", {"type": "boolean"},
        "RestMLRegisterModelAction reads ?deploy=true (register and deploy in one call); the spec declares no query parameters."),
    "register_model.connector": AllowListEntry(
        _ML, "/components/requestBodies/ml.register_model/content/application~1json/schema", "property", "connector",
        {"$ref": "#/components/requestBodies/ml.create_connector/content/application~1json/schema"},
        "MLRegisterModelInput accepts an inline `connector` (2.9+) instead of connector_id; the spec has only connector_id."),
    "deploy_model.body": AllowListEntry(
        _ML, "/paths/~1_plugins~1_ml~1models~1{model_id}~1_deploy/post", "request_body", "requestBody",
        {"type": "object", "properties": {"node_ids": {"type": "array", "items": {"type": "string"}}}},
        "MLDeployModelInput accepts a body with `node_ids`; the spec declares no request body for _deploy."),
    "predict_model.return_number": AllowListEntry(
        _ML, "/components/requestBodies/ml.predict_model/content/application~1json/schema", "property",
        "return_number", {"type": "boolean"},
        "TextDocsInputDataSet takes return_number on /models/{id}/_predict (the legacy _predict path has it)."),
    "predict_model.target_response": AllowListEntry(
        _ML, "/components/requestBodies/ml.predict_model/content/application~1json/schema", "property",
        "target_response", {"type": "array", "items": {"type": "string"}},
        "TextDocsInputDataSet takes target_response on /models/{id}/_predict (the legacy _predict path has it)."),
    "ingest.ml_inference": AllowListEntry(
        _INGEST_SCHEMAS, "/components/schemas/ProcessorContainer", "property", "ml_inference",
        {"allOf": [{"$ref": "#/components/schemas/ProcessorBase"},
                   {"type": "object", "properties": dict(_ML_INFERENCE_COMMON, override={"type": "boolean"}),
                    "required": ["model_id"]}]},
        "ML Commons' ml_inference ingest processor (2.14, MLInferenceIngestProcessor) is not in the spec."),
    "search_request.ml_inference": AllowListEntry(
        _SEARCH_PIPELINE_SCHEMAS, "/components/schemas/RequestProcessor", "one_of", "ml_inference",
        {"type": "object", "properties": dict(_ML_INFERENCE_COMMON, query_template={"type": "string"}),
         "required": ["model_id"]},
        "ML Commons' ml_inference search request processor (2.16, MLInferenceSearchRequestProcessor) is not in the spec."),
    "search_response.ml_inference": AllowListEntry(
        _SEARCH_PIPELINE_SCHEMAS, "/components/schemas/ResponseProcessor", "one_of", "ml_inference",
        {"type": "object", "properties": dict(_ML_INFERENCE_COMMON, one_to_one={"type": "boolean"},
                                              override={"type": "boolean"}),
         "required": ["model_id"]},
        "ML Commons' ml_inference search response processor (2.16, MLInferenceSearchResponseProcessor) is not in the spec."),
}


# ------------------------------------------------------------------------------------------------
# Versions (a small subset of node-semver, as the upstream tools use it)
# ------------------------------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^v?(\d+)(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:[-+].*)?$")
_COMPARATOR_RE = re.compile(r"^(>=|<=|>|<|=|~|\^)?\s*(v?[\dxX*][^\s]*)$")


def _coerce(version: str) -> tuple[int, int, int]:
    """``semver.coerce``: the first ``X[.Y[.Z]]`` in the string, missing parts 0."""
    m = re.search(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(version))
    if not m:
        raise SpecError(f"not a version: {version!r}")
    return (int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0))


def _comparator_ok(version: tuple[int, int, int], op: str, target: str) -> bool:
    m = _VERSION_RE.match(target)
    if not m:
        raise SpecError(f"invalid semver range element: {target!r}")
    parts = [m.group(1), m.group(2), m.group(3)]
    wild = [p is None or p in ("x", "X", "*") for p in parts]
    nums = [0 if w else int(p) for p, w in zip(parts, wild)]
    if wild[0]:
        return True
    given = 1 + (not wild[1]) + (not wild[1] and not wild[2])  # how many parts were written
    lo = (nums[0], nums[1], nums[2])
    # an X-range (2.11 = 2.11.x) covers [lo, hi)
    if given == 1:
        hi = (nums[0] + 1, 0, 0)
    elif given == 2:
        hi = (nums[0], nums[1] + 1, 0)
    else:
        hi = (nums[0], nums[1], nums[2] + 1)
    if op in ("", "="):
        return lo <= version < hi
    if op == ">=":
        return version >= lo
    if op == ">":
        return version >= hi
    if op == "<":
        return version < lo
    if op == "<=":
        return version < hi
    if op == "~":
        return lo <= version < ((nums[0], nums[1] + 1, 0) if given >= 2 else (nums[0] + 1, 0, 0))
    if op == "^":
        return lo <= version < (nums[0] + 1, 0, 0)
    raise SpecError(f"unsupported semver operator {op!r}")


def satisfies(version: str, range_: str) -> bool:
    """node-semver ``satisfies(version, range)`` for the forms used by the spec and its stories.

    Supports ``||``-separated sets of space-separated comparators (``>= 2.11``, ``<3.0``, ``2.x``).
    """
    v = _coerce(version)
    for alternative in str(range_).split("||"):
        tokens = re.findall(r"(>=|<=|>|<|=|~|\^)?\s*([^\s<>=~^|]+)", alternative.strip())
        if not tokens:
            return True
        if all(_comparator_ok(v, op, target) for op, target in tokens):
            return True
    return False


# ------------------------------------------------------------------------------------------------
# Public data types
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Loading and merging
# ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _yaml12_loader() -> Any:
    """A safe loader closer to YAML 1.2 (what the upstream tools' ``yaml`` package reads): no
    timestamps (``2024-01-01`` stays a string) and only ``true``/``false`` are booleans (``on``,
    ``yes`` stay strings, as they do in enums of the spec)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Yaml12Loader(base):  # type: ignore[misc, valid-type]
        pass

    resolvers: dict[Any, Any] = {}
    for first, entries in base.yaml_implicit_resolvers.items():
        kept = [(tag, rx) for tag, rx in entries
                if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
        if kept:
            resolvers[first] = kept
    Yaml12Loader.yaml_implicit_resolvers = resolvers
    Yaml12Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
    return Yaml12Loader


def _yaml_load(path: Path) -> Any:
    import yaml

    with path.open("rb") as fh:
        return yaml.load(fh, Loader=_yaml12_loader())  # noqa: S506 - a safe loader


def _spec_root(spec_dir: Path) -> Path:
    """Accept the repository folder (with ``spec/``) or the ``spec/`` folder itself."""
    spec_dir = Path(spec_dir)
    for candidate in (spec_dir / "spec", spec_dir):
        if (candidate / "namespaces").is_dir() and (candidate / "schemas").is_dir():
            return candidate
    raise SpecError(
        f"{spec_dir}: not an OpenSearch API spec folder (expected spec/namespaces and spec/schemas)",
        hint="point --spec at a checkout of opensearch-project/opensearch-api-specification "
        "(the tests use ../shared/opensearch-api-spec)",
    )


def _read_files(root: Path) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for path in sorted(root.rglob("*.yaml")):
        rel = path.relative_to(root).as_posix()
        try:
            files[rel] = _yaml_load(path)
        except OSError as exc:
            raise SpecError(f"{path}: cannot read the spec file: {exc}") from exc
        except Exception as exc:  # yaml.YAMLError and friends
            raise SpecError(f"{path}: invalid YAML in the spec: {exc}") from exc
    if "_info.yaml" not in files:
        raise SpecError(f"{root}: _info.yaml is missing; not an OpenSearch API spec folder")
    return files


def _pointer_get(doc: Any, pointer: str) -> Any:
    node = doc
    for raw in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(token)]
        else:
            node = node[token]
    return node


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def allow_list_target(files: Mapping[str, Any], entry: AllowListEntry) -> Any:
    """The node an allow-list entry patches, or raise ``KeyError`` when the spec changed shape."""
    return _pointer_get(files[entry.file], entry.pointer)


def allow_list_still_needed(files: Mapping[str, Any], entry: AllowListEntry) -> bool:
    """True while the (unpatched) spec still lacks what ``entry`` adds."""
    target = allow_list_target(files, entry)
    if entry.kind == "property":
        return entry.name not in (target.get("properties") or {})
    if entry.kind == "query_parameter":
        for param in target.get("parameters") or []:
            ref = param.get("$ref", "")
            if param.get("name") == entry.name or ref.endswith(f"::query.{entry.name}"):
                return False
        return True
    if entry.kind == "request_body":
        return "requestBody" not in target
    if entry.kind == "one_of":
        return not any(entry.name in (branch.get("properties") or {}) for branch in target.get("oneOf") or [])
    raise SpecError(f"allow-list entry of unknown kind {entry.kind!r}")


def _apply_allow_list(files: dict[str, Any], entries: Iterable[tuple[str, AllowListEntry]]) -> None:
    for key, entry in entries:
        try:
            target = allow_list_target(files, entry)
        except (KeyError, IndexError, TypeError):
            log.warning("allow-list entry %s no longer fits the spec (%s %s); ignored", key, entry.file, entry.pointer)
            continue
        if not allow_list_still_needed(files, entry):
            continue
        value = copy.deepcopy(entry.value)
        if entry.kind == "property":
            target.setdefault("properties", {})[entry.name] = value
        elif entry.kind == "query_parameter":
            target.setdefault("parameters", []).append(
                {"name": entry.name, "in": "query", "schema": value, "description": f"(oskit allow-list: {key})"})
        elif entry.kind == "request_body":
            target["requestBody"] = {"content": {"application/json": {"schema": value}}}
        elif entry.kind == "one_of":
            target["oneOf"].append({"type": "object", "title": entry.name,
                                    "properties": {entry.name: value}, "required": [entry.name]})


def _normalize_key(key: str) -> str:
    return key.replace("::", "___").replace("@", "___").replace(":", "___")


def _walk_refs(node: Any, fix: Callable[[str], str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            node["$ref"] = fix(ref)
        for value in node.values():
            if isinstance(value, (dict, list)):
                _walk_refs(value, fix)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, (dict, list)):
                _walk_refs(value, fix)


def _merge(files: dict[str, Any]) -> dict[str, Any]:
    """One OpenAPI document, as ``OpenApiMerger.spec()`` builds it.

    Component names become ``<category>___<Name>`` and ``<group>___<status>`` as upstream; unlike
    upstream, property names are left alone (upstream also renames keys such as ``@timestamp``).
    """
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": files.get("_info.yaml") or {},
        "paths": {},
        "components": {"parameters": {}, "requestBodies": {}, "responses": {}, "schemas": {}},
    }
    comps = spec["components"]

    def schema_ref_fixer(category: str) -> Callable[[str], str]:
        def fix(ref: str) -> str:
            if ref.startswith("#/components/schemas"):
                return f"#/components/schemas/{category}:{ref.split('/')[-1]}"
            m = re.match(r"(?:\./)?(.*)\.yaml#", ref)
            if not m:
                raise SpecError(f"schemas/{category}.yaml: invalid schema reference {ref!r}")
            return f"#/components/schemas/{m.group(1)}:{ref.split('/')[-1]}"

        return fix

    for rel, doc in files.items():
        if rel.startswith("schemas/") and isinstance(doc, dict):
            category = rel[len("schemas/"):-len(".yaml")]
            _walk_refs(doc, schema_ref_fixer(category))
            for name, schema in ((doc.get("components") or {}).get("schemas") or {}).items():
                comps["schemas"][f"{category}:{name}"] = schema

    def ns_fix(ref: str) -> str:
        if ref.startswith("../schemas/"):
            return ref.replace("../schemas/", "#/components/schemas/").replace(".yaml#/components/schemas/", ":")
        return ref

    for rel, doc in files.items():
        if rel.startswith("namespaces/") and isinstance(doc, dict):
            _walk_refs(doc, ns_fix)
            for path, item in (doc.get("paths") or {}).items():
                spec["paths"].setdefault(path, {}).update(item)
            for kind in ("parameters", "responses", "requestBodies"):
                comps[kind].update((doc.get("components") or {}).get(kind) or {})

    for response in comps["responses"].values():
        response.setdefault("description", "")

    # Global parameters (GlobalParamsGenerator): added to every operation.
    global_doc = files.get("_global_parameters.yaml") or {}
    global_params: dict[str, Any] = {}
    for param in ((global_doc.get("components") or {}).get("parameters") or {}).values():
        param = copy.deepcopy(param)
        param["x-global"] = True

        def global_fix(ref: str) -> str:
            if ref.startswith("schemas/"):
                return ref.replace("schemas/", "#/components/schemas/").replace(".yaml#/components/schemas/", ":")
            return ref

        _walk_refs(param, global_fix)
        global_params[f"_global::{param['in']}.{param['name']}"] = param
    comps["parameters"] = {**global_params, **comps["parameters"]}
    global_refs = [{"$ref": f"#/components/parameters/{key}"} for key in global_params]
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method in HTTP_METHODS and isinstance(operation, dict):
                operation["parameters"] = list(operation.get("parameters") or []) + copy.deepcopy(global_refs)

    # Superseded operations (SupersededOpsGenerator): old /_opendistro paths answer like their successors.
    superseded = dict(files.get("_superseded_operations.yaml") or {})
    superseded.pop("$schema", None)
    for old_path, entry in superseded.items():
        successor = entry.get("superseded_by", "")
        pattern = re.compile("^" + re.sub(r"\{.+?\}", r"\\{.+?\\}", re.escape(successor).replace(r"\{", "{").replace(r"\}", "}")) + "$")
        match = next((p for p in spec["paths"] if pattern.match(p)), None)
        if match is None:
            continue
        source_params = [p for p in successor.split("/") if p.startswith("{")][::-1]
        target = "/".join(source_params.pop() if part.startswith("{") else part for part in old_path.split("/"))
        ops = {}
        for method in (m.lower() for m in entry.get("operations") or []):
            if method in spec["paths"][match]:
                op = copy.deepcopy(spec["paths"][match][method])
                op["operationId"] = f"{op.get('operationId')}_superseded"
                op["deprecated"] = True
                op["x-ignorable"] = True
                ops[method] = op
        spec["paths"][target] = ops

    # Normalise component names and references (OpenApiMerger.#normalize_fields).
    for kind in list(comps):
        comps[kind] = {_normalize_key(k): v for k, v in comps[kind].items()}
    _walk_refs(spec, _normalize_key)
    return spec


# ---- version / distribution extraction (OpenApiVersionExtractor) ------------------------------


def _excluded(obj: dict[str, Any], version: tuple[int, int, int] | None, distribution: str | None) -> bool:
    if version is not None:
        added = obj.get("x-version-added")
        removed = obj.get("x-version-removed")
        if added is not None and not version >= _coerce(str(added)):
            return True
        if removed is not None and not version < _coerce(str(removed)):
            return True
    if distribution is not None:
        included = obj.get("x-distributions-included")
        if included and distribution not in included:
            return True
        excluded = obj.get("x-distributions-excluded")
        if excluded and distribution in excluded:
            return True
    return False


def _delete_matching(node: Any, condition: Callable[[dict[str, Any]], bool]) -> None:
    if isinstance(node, dict):
        for key in list(node):
            item = node[key]
            if isinstance(item, dict) and condition(item):
                del node[key]
            elif isinstance(item, (dict, list)):
                _delete_matching(item, condition)
    elif isinstance(node, list):
        keep = []
        for item in node:
            if isinstance(item, dict) and condition(item):
                continue
            if isinstance(item, (dict, list)):
                _delete_matching(item, condition)
            keep.append(item)
        node[:] = keep


def _find_refs(spec: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    stack: list[Any] = [spec.get("paths")]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in found:
                found.add(ref)
                try:
                    stack.append(_pointer_get(spec, ref[1:]))
                except (KeyError, IndexError, ValueError):
                    pass
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return found


def _extract_version(spec: dict[str, Any], version: str | None, distribution: str | None) -> None:
    target = _coerce(version) if version is not None else None
    if target is None and distribution is None:
        return
    _delete_matching(spec, lambda obj: _excluded(obj, target, distribution))
    refs = _find_refs(spec)
    comps = spec["components"]
    for kind in ("parameters", "requestBodies", "responses", "schemas"):
        comps[kind] = {k: v for k, v in (comps.get(kind) or {}).items() if f"#/components/{kind}/{k}" in refs}
    remaining = {f"#/components/{kind}/{k}" for kind in comps for k in comps[kind]}
    _delete_matching(spec, lambda obj: isinstance(obj.get("$ref"), str) and obj["$ref"].startswith("#/components/")
                     and obj["$ref"] not in remaining)
    spec["paths"] = {p: item for p, item in spec["paths"].items() if item}


# ---- strictness (MergedOpenApiSpec.inject_additional_properties) -------------------------------

_ALL_TYPES = frozenset({"array", "boolean", "object", "number", "string", "integer"})


def _possible_types(spec: dict[str, Any], schema: Any, seen: frozenset[str] = frozenset()) -> frozenset[str]:
    """``determine_possible_schema_types``; an undeterminable schema counts as any type."""
    schemas = spec["components"]["schemas"]
    while isinstance(schema, dict) and "$ref" in schema:
        key = schema["$ref"].split("/")[-1]
        if key in seen or key not in schemas:
            return _ALL_TYPES
        seen = seen | {key}
        schema = schemas[key]
    if not isinstance(schema, dict):
        return _ALL_TYPES
    if "type" in schema:
        t = schema["type"]
        return frozenset(t) if isinstance(t, list) else frozenset([t])
    if "allOf" in schema:
        out = _ALL_TYPES
        for s in schema["allOf"]:
            out = out & _possible_types(spec, s, seen)
        return out
    for key in ("anyOf", "oneOf"):
        if key in schema:
            acc: frozenset[str] = frozenset()
            for s in schema[key]:
                acc = acc | _possible_types(spec, s, seen)
            return acc
    return _ALL_TYPES


def _inject_strictness(spec: dict[str, Any]) -> None:
    """Add ``unevaluatedProperties: false`` where upstream's tester adds it (see module docstring)."""

    def visit_schema(schema: Any, loc: tuple[str, ...]) -> None:
        if not isinstance(schema, dict):
            return
        if "$ref" not in schema:
            if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
                visit_schema(schema["items"], loc + ("items",))
            if isinstance(schema.get("additionalProperties"), dict):
                visit_schema(schema["additionalProperties"], loc + ("additionalProperties",))
            for name, sub in (schema.get("properties") or {}).items():
                visit_schema(sub, loc + ("properties", name))
            for key in ("allOf", "anyOf", "oneOf"):
                for i, sub in enumerate(schema.get(key) or []):
                    visit_schema(sub, loc + (key, str(i)))
            if isinstance(schema.get("not"), dict):
                visit_schema(schema["not"], loc + ("not",))
        # the callback (post-order, as SchemaVisitor)
        if "unevaluatedProperties" in schema:
            return
        parent = loc[:-1]
        if parent == ("components", "schemas") or "allOf" in parent:
            return
        if _possible_types(spec, schema) != frozenset({"object"}):
            return
        if not [k for k in schema if k not in ("type", "description")]:
            return
        schema["type"] = "object"
        schema["unevaluatedProperties"] = False

    def visit_content(holder: Any, loc: tuple[str, ...]) -> None:
        if isinstance(holder, dict) and "$ref" not in holder:
            for ctype, media in (holder.get("content") or {}).items():
                if isinstance(media, dict) and "schema" in media:
                    visit_schema(media["schema"], loc + ("content", ctype, "schema"))

    def visit_parameter(param: Any, loc: tuple[str, ...]) -> None:
        if isinstance(param, dict) and "$ref" not in param and "schema" in param:
            visit_schema(param["schema"], loc + ("schema",))

    for path, item in spec["paths"].items():
        for i, param in enumerate(item.get("parameters") or []):
            visit_parameter(param, ("paths", path, "parameters", str(i)))
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            loc = ("paths", path, method)
            for i, param in enumerate(op.get("parameters") or []):
                visit_parameter(param, loc + ("parameters", str(i)))
            if "requestBody" in op:
                visit_content(op["requestBody"], loc + ("requestBody",))
            for status, response in (op.get("responses") or {}).items():
                visit_content(response, loc + ("responses", str(status)))
    comps = spec["components"]
    for name, param in comps["parameters"].items():
        visit_parameter(param, ("components", "parameters", name))
    for name, body in comps["requestBodies"].items():
        visit_content(body, ("components", "requestBodies", name))
    for name, response in comps["responses"].items():
        visit_content(response, ("components", "responses", name))
    for name, schema in comps["schemas"].items():
        visit_schema(schema, ("components", "schemas", name))


# ---- annotations (prose the validator never reads; a quarter of the cached document) --------------

_ANNOTATIONS = frozenset({"description", "summary", "externalDocs", "examples", "example", "x-deprecation-message"})
# Keys of these maps are names (a property may well be called "description"), not keywords.
_NAME_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs", "schemas", "parameters",
                        "requestBodies", "responses", "paths", "content"})
# Values of these keywords are data, kept exactly.
_DATA_KEYWORDS = frozenset({"enum", "const", "default"})


def _strip_annotations(node: Any, names: bool = False) -> None:
    """Drop prose annotations from the merged document, in place, so the disk cache loads faster."""
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            if not names and key in _ANNOTATIONS:
                del node[key]
            elif not names and key in _DATA_KEYWORDS:
                continue
            elif isinstance(value, (dict, list)):
                _strip_annotations(value, names=not names and key in _NAME_MAPS)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, (dict, list)):
                _strip_annotations(value)


# ---- formats, as ajv-formats checks them ---------------------------------------------------------

_DATE_TIME = re.compile(
    r"^\d{4}-[01]\d-[0-3]\d[tT\s](?:[0-2]\d:[0-5]\d:[0-5]\d|23:59:60)(?:\.\d+)?(?:[zZ]|[+-]\d\d(?::?\d\d)?)?$")


def _format_checker() -> Any:
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    @checker.checks("int32")
    def _int32(value: Any) -> bool:
        return not is_number(value) or (float(value).is_integer() and -(2**31) <= value <= 2**31 - 1)

    @checker.checks("int64")
    def _int64(value: Any) -> bool:
        return not is_number(value) or float(value).is_integer()

    @checker.checks("float")
    @checker.checks("double")
    def _float(value: Any) -> bool:
        return True

    @checker.checks("date-time")
    def _date_time(value: Any) -> bool:
        return not isinstance(value, str) or bool(_DATE_TIME.match(value))

    return checker


# ------------------------------------------------------------------------------------------------
# Fast strict validation: jsonschema's Draft 2020-12 with discriminating oneOf/anyOf and memoisation
# ------------------------------------------------------------------------------------------------
#
# The spec's big unions (Property: 47 mapping types told apart by `type`; AggregationContainer: ~60
# branches told apart by their one required key) and `unevaluatedProperties: false` everywhere make
# plain jsonschema exponential in nesting depth: each union tries every branch, and every
# `unevaluatedProperties` re-validates the subtree to learn which keys were evaluated. Two changes keep
# the verdicts identical and make it fast:
#   1. a union only tries the branches that *can* match: a branch whose unconditional constraints (its
#      `type`, its `required` keys, a string `enum`/`const` on one of its properties, gathered through
#      `$ref` and `allOf`) exclude the instance is invalid for sure, exactly as jsonschema would find;
#   2. validity of (schema node, instance) is memoised for the length of one validation, keyed by the
#      schema's identity (one document, so identity is stable) and the instance's canonical JSON.


@dataclass(frozen=True)
class _BranchFacts:
    """What a schema requires of every instance it accepts, whatever else it says."""

    types: frozenset[str] | None = None  # None: any type
    required: frozenset[str] = frozenset()
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)  # property -> allowed strings


class _Memo:
    """Memo tables for one validation (see above)."""

    def __init__(self) -> None:
        self.canon: dict[int, tuple[Any, str]] = {}
        self.valid: dict[tuple[Any, ...], bool] = {}
        self.evaluated: dict[tuple[int, str], frozenset[str]] = {}

    def key(self, instance: Any) -> str:
        if isinstance(instance, (dict, list)):
            hit = self.canon.get(id(instance))
            if hit is not None and hit[0] is instance:
                return hit[1]
            text = _canonical(instance)
            self.canon[id(instance)] = (instance, text)  # keeps the instance alive, so its id stays its own
            return text
        return _canonical(instance)


def _canonical(instance: Any) -> str:
    # JSON text keeps 1, 1.0 and true apart, as jsonschema's enum/const do; odd objects get a repr
    return json.dumps(instance, sort_keys=True, separators=(",", ":"), default=lambda o: f"<{type(o).__name__}:{o!r}>")


_LOCAL = threading.local()
_FACTS: dict[int, tuple[Any, _BranchFacts]] = {}
_FACTS_LOCK = threading.Lock()


@contextlib.contextmanager
def _memoised() -> Iterator[_Memo]:
    """Memo tables for the validations inside the block (nested blocks share the outer tables)."""
    outer = getattr(_LOCAL, "memo", None)
    if outer is not None:
        yield outer
        return
    _LOCAL.memo = memo = _Memo()
    try:
        yield memo
    finally:
        _LOCAL.memo = None


def _memo() -> _Memo:
    memo = getattr(_LOCAL, "memo", None)
    return memo if memo is not None else _Memo()  # outside _memoised(): correct, just not shared


def _string_values(validator: Any, schema: Any) -> frozenset[str] | None:
    """The strings a property schema allows (its ``enum``/``const``), or None when not such a list."""
    for _ in range(16):
        if not isinstance(schema, dict):
            return None
        if "const" in schema:
            return frozenset([schema["const"]]) if isinstance(schema["const"], str) else None
        if "enum" in schema:
            enum = schema["enum"]
            return frozenset(enum) if isinstance(enum, list) and all(isinstance(v, str) for v in enum) else None
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return None
        schema = validator._resolver.lookup(ref).contents
    return None


def _facts(validator: Any, schema: Any, depth: int = 0) -> _BranchFacts:
    """:class:`_BranchFacts` of ``schema``, following ``$ref`` and ``allOf`` (cached per schema node)."""
    if not isinstance(schema, dict) or depth > 24:
        return _BranchFacts()  # knowing less only means trying more branches
    hit = _FACTS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    types: frozenset[str] | None = None
    if isinstance(schema.get("type"), str):
        types = frozenset([schema["type"]])
    elif isinstance(schema.get("type"), list):
        types = frozenset(schema["type"])
    required = frozenset(r for r in schema.get("required") or () if isinstance(r, str))
    values: dict[str, frozenset[str]] = {}
    for name, sub in (schema.get("properties") or {}).items():
        allowed = _string_values(validator, sub)
        if allowed is not None:
            values[name] = allowed
    parts = []
    if isinstance(schema.get("$ref"), str):
        parts.append(validator._resolver.lookup(schema["$ref"]).contents)
    parts += [s for s in schema.get("allOf") or () if isinstance(s, dict)]
    for part in parts:  # every part applies, so their constraints add up
        sub = _facts(validator, part, depth + 1)
        if sub.types is not None:
            types = sub.types if types is None else types & sub.types
        required |= sub.required
        for name, allowed in sub.values.items():
            values[name] = values[name] & allowed if name in values else allowed
    facts = _BranchFacts(types, required, values)
    with _FACTS_LOCK:
        _FACTS[id(schema)] = (schema, facts)
    return facts


def _instance_types(instance: Any) -> frozenset[str]:
    if isinstance(instance, bool):
        return frozenset({"boolean"})
    if isinstance(instance, int):
        return frozenset({"integer", "number"})
    if isinstance(instance, float):
        return frozenset({"integer", "number"}) if instance.is_integer() else frozenset({"number"})
    if isinstance(instance, str):
        return frozenset({"string"})
    if isinstance(instance, dict):
        return frozenset({"object"})
    if isinstance(instance, list):
        return frozenset({"array"})
    if instance is None:
        return frozenset({"null"})
    return frozenset()


def _candidates(validator: Any, branches: list[Any], instance: Any) -> list[tuple[int, Any]]:
    """The branches of a union that may accept ``instance``; every other branch rejects it for sure."""
    kinds = _instance_types(instance)
    out = []
    for index, branch in enumerate(branches):
        facts = _facts(validator, branch)
        if kinds and facts.types is not None and not (facts.types & kinds):
            continue
        if isinstance(instance, dict):
            if not facts.required <= instance.keys():
                continue
            if any(isinstance(instance.get(name), str) and instance[name] not in allowed
                   for name, allowed in facts.values.items()):
                continue
        out.append((index, branch))
    return out


def _valid(validator: Any, instance: Any, schema: Any) -> bool:
    """``validator.descend(instance, schema)`` yields no error (memoised)."""
    if schema is True or schema is False:
        return schema
    memo = _memo()
    key = ("schema", id(schema), memo.key(instance))
    hit = memo.valid.get(key)
    if hit is None:
        hit = next(iter(validator.descend(instance, schema)), None) is None
        memo.valid[key] = hit
    return hit


def _kw_ref(validator: Any, ref: str, instance: Any, schema: Any) -> Iterator[Any]:
    # A "#/..." reference means the same schema wherever it appears (one document without $id).
    memo = _memo()
    key = ("$ref", ref, memo.key(instance)) if ref.startswith("#") else None
    if key is not None and memo.valid.get(key):
        return
    errors = list(validator._validate_reference(ref=ref, instance=instance))
    if key is not None:
        memo.valid[key] = not errors
    yield from errors


def _kw_any_of(validator: Any, any_of: list[Any], instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    all_errors = []
    for index, subschema in _candidates(validator, any_of, instance):
        errs = list(validator.descend(instance, subschema, schema_path=index))
        if not errs:
            return
        all_errors.extend(errs)
    yield ValidationError(f"{instance!r} is not valid under any of the given schemas", context=all_errors)


def _kw_one_of(validator: Any, one_of: list[Any], instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    candidates = iter(_candidates(validator, one_of, instance))
    all_errors = []
    for index, subschema in candidates:
        errs = list(validator.descend(instance, subschema, schema_path=index))
        if not errs:
            first_valid = subschema
            break
        all_errors.extend(errs)
    else:
        yield ValidationError(f"{instance!r} is not valid under any of the given schemas", context=all_errors)
        return
    more_valid = [each for _, each in candidates if _valid(validator, instance, each)]
    if more_valid:
        more_valid.append(first_valid)
        reprs = ", ".join(repr(s) for s in more_valid)
        yield ValidationError(f"{instance!r} is valid under each of {reprs}")


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> frozenset[str]:
    """jsonschema's ``find_evaluated_property_keys_by_schema``, memoised and with discriminating unions."""
    if not isinstance(schema, dict):
        return frozenset()
    memo = _memo()
    key = (id(schema), memo.key(instance))
    hit = memo.evaluated.get(key)
    if hit is not None:
        return hit
    keys: set[str] = set()
    for ref_kw in ("$ref", "$dynamicRef"):
        ref = schema.get(ref_kw)
        if ref is not None:
            resolved = validator._resolver.lookup(ref)
            keys |= _evaluated_keys(validator.evolve(schema=resolved.contents, _resolver=resolved.resolver),
                                    instance, resolved.contents)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        sub = schema.get(keyword)
        if sub is not None:
            keys |= {k for k, v in instance.items() if _valid(validator, v, sub)}
    if "patternProperties" in schema:
        keys |= {p for p in instance for pattern in schema["patternProperties"] if re.search(pattern, p)}
    for prop, sub in (schema.get("dependentSchemas") or {}).items():
        if prop in instance:
            keys |= _evaluated_keys(validator, instance, sub)
    for sub in schema.get("allOf") or ():
        if _valid(validator, instance, sub):
            keys |= _evaluated_keys(validator, instance, sub)
    for keyword in ("oneOf", "anyOf"):
        for _, sub in _candidates(validator, schema.get(keyword) or [], instance):
            if _valid(validator, instance, sub):
                keys |= _evaluated_keys(validator, instance, sub)
    if "if" in schema:
        if _valid(validator, instance, schema["if"]):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                keys |= _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            keys |= _evaluated_keys(validator, instance, schema["else"])
    out = frozenset(keys)
    memo.evaluated[key] = out
    return out


def _kw_unevaluated_properties(validator: Any, unevaluated: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    bad = [p for p in instance if p not in evaluated
           and next(iter(validator.descend(instance[p], unevaluated, path=p, schema_path=p)), None) is not None]
    if bad:
        if unevaluated is False:
            extras = sorted(bad, key=str)
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Unevaluated properties are not allowed ({', '.join(map(repr, extras))} {verb} unexpected)")
        else:
            verb = "was" if len(bad) == 1 else "were"
            yield ValidationError("Unevaluated properties are not valid under the given schema "
                                  f"({', '.join(map(repr, bad))} {verb} unevaluated and invalid)")


@functools.lru_cache(maxsize=1)
def fast_validator_class() -> Any:
    """Draft 2020-12 with the keywords above; same verdicts as ``Draft202012Validator``, much faster on
    the spec's unions. Validate inside :func:`_memoised` to share the memo across a whole request."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(Draft202012Validator, {
        "$ref": _kw_ref, "anyOf": _kw_any_of, "oneOf": _kw_one_of,
        "unevaluatedProperties": _kw_unevaluated_properties,
    })


# ------------------------------------------------------------------------------------------------
# The Spec
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# load_spec with caching
# ------------------------------------------------------------------------------------------------


def _default_cache_dir() -> Path | None:
    data = os.environ.get("OSKIT_DATA_DIR")
    if data:
        return Path(data) / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "oskit" if xdg else Path.home() / ".cache" / "oskit"


def _fingerprint(root: Path, version: str | None, distribution: str | None, allow_list: bool) -> str:
    h = hashlib.sha256()
    h.update(f"{_PROCESSING_VERSION}|{version}|{distribution}|{allow_list}|".encode())
    if allow_list:
        h.update(repr(sorted((k, repr(v)) for k, v in ALLOW_LIST.items())).encode())
    for path in sorted(root.rglob("*.yaml")):
        st = path.stat()
        h.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def load_raw_files(spec_dir: Path) -> dict[str, Any]:
    """Every YAML file of the spec, unmerged and unpatched (``rel/path.yaml`` -> document)."""
    return _read_files(_spec_root(spec_dir))


def _build_doc(root: Path, version: str | None, distribution: str | None, allow_list: bool) -> dict[str, Any]:
    files = _read_files(root)
    if allow_list:
        _apply_allow_list(files, ALLOW_LIST.items())
    doc = _merge(files)
    _extract_version(doc, version, distribution)
    _inject_strictness(doc)
    _strip_annotations(doc)
    return doc


@functools.lru_cache(maxsize=8)
def _load_cached(root: Path, version: str | None, distribution: str | None, allow_list: bool,
                 cache_dir: Path | None, fingerprint: str) -> Spec:
    doc: dict[str, Any] | None = None
    cache_file = cache_dir / f"opensearch-api-spec-{fingerprint}.pickle" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        try:
            with cache_file.open("rb") as fh:
                doc = pickle.load(fh)  # noqa: S301 - our own cache file, keyed by content fingerprint
        except Exception as exc:  # a truncated or foreign cache file: rebuild it
            log.debug("ignoring unreadable spec cache %s: %s", cache_file, exc)
            doc = None
    if doc is None:
        doc = _build_doc(root, version, distribution, allow_list)
        if cache_file is not None:
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
                with tmp.open("wb") as fh:
                    pickle.dump(doc, fh, protocol=pickle.HIGHEST_PROTOCOL)
                tmp.replace(cache_file)
            except OSError as exc:  # a read-only home is fine: we just do not cache
                log.debug("cannot write spec cache %s: %s", cache_file, exc)
    return Spec(doc, root=root, version=version, distribution=distribution, allow_list=allow_list)


def load_spec(spec_dir: Path, *, version: str | None = None, distribution: str | None = None,
              allow_list: bool = True, cache_dir: Path | None | bool = True) -> Spec:
    """Load, merge and make strict the spec in ``spec_dir`` (the repository folder or its ``spec/``).

    ``version`` / ``distribution`` keep only what that server serves (``x-version-added`` etc.);
    ``allow_list=False`` uses the spec exactly as published. Results are cached in-process and on
    disk (``cache_dir``; default ``$OSKIT_DATA_DIR/cache``; ``False`` disables the disk cache).
    Raises :class:`SpecError` when the folder is not a readable spec.
    """
    try:
        root = _spec_root(Path(spec_dir)).resolve()
    except OSError as exc:
        raise SpecError(f"{spec_dir}: cannot read the OpenSearch API spec: {exc}") from exc
    if cache_dir is True:
        resolved_cache: Path | None = _default_cache_dir()
    elif cache_dir is False or cache_dir is None:
        resolved_cache = None
    else:
        resolved_cache = Path(cache_dir)
    try:
        fingerprint = _fingerprint(root, version, distribution, allow_list)
    except OSError as exc:
        raise SpecError(f"{root}: cannot read the OpenSearch API spec: {exc}") from exc
    if version is not None:
        _coerce(version)
    return _load_cached(root, version, distribution, allow_list, resolved_cache, fingerprint)

