"""The spec document: read the folder of OpenAPI YAML files and merge them into one document the way the
upstream merger does (``tools/src/merger/OpenApiMerger.ts``); cut it down to what one server version and
distribution serve (``OpenApiVersionExtractor.ts``); make object schemas strict the way the upstream test
tool does (``tools/src/tester/MergedOpenApiSpec.ts``); strip the prose the validator never reads; and
the string formats, as ajv-formats checks them."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any, Callable

from kit.errors import SpecError
from kit.spec.versions import _coerce

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Bump when the processing in this package changes (here or in the allow-list), so on-disk caches of
# older processing are ignored.
_PROCESSING_VERSION = "3"


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
