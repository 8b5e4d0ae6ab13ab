"""Mappings: validation of ``properties`` (incl. knn_vector rules by version), dynamic mapping,
additive merges, and turning a document into indexable values per field path."""

from __future__ import annotations

import base64
import binascii
import copy
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kit.node.analysis import analyzer
from kit.node.errors import ApiError, bad_request, mapper_parsing

__all__ = ["FieldDef", "Mapping", "NUMERIC", "convert_number", "parse_date", "version_tuple"]

DEPTH_LIMIT = 20  # index.mapping.depth.limit: objects nested deeper are refused (DocumentParser)
NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
INTEGER_TYPES = {"long": (-2**63, 2**63 - 1), "integer": (-2**31, 2**31 - 1), "short": (-32768, 32767),
                 "byte": (-128, 127), "unsigned_long": (0, 2**64 - 1)}
SUPPORTED = NUMERIC | {"text", "keyword", "date", "boolean", "binary", "object", "knn_vector"}
# Real OpenSearch types this node does not implement: refused by name rather than mis-handled.
KNOWN_UNSUPPORTED = {"nested", "geo_point", "geo_shape", "ip", "flat_object", "rank_feature", "rank_features",
                     "semantic", "alias", "token_count", "wildcard", "completion", "match_only_text",
                     "date_nanos", "constant_keyword", "search_as_you_type", "percolator", "join",
                     "integer_range", "long_range", "float_range", "double_range", "date_range", "ip_range",
                     "sparse_vector", "murmur3", "xy_point", "xy_shape", "star_tree", "derived"}
KNN_SPACES = {"l2", "cosinesimil", "innerproduct", "l1", "linf", "hamming", "hammingbit"}
SUPPORTED_SPACES = {"l2", "cosinesimil", "innerproduct"}


def version_tuple(v: str) -> tuple[int, int, int]:
    parts = [int(re.sub(r"\D.*", "", p) or 0) for p in v.split(".")[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


@dataclass
class FieldDef:
    """One leaf (or object) field at a dotted path."""

    path: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def analyzer_name(self) -> str:
        return str(self.params.get("analyzer") or "standard")

    @property
    def search_analyzer_name(self) -> str:
        return str(self.params.get("search_analyzer") or self.params.get("analyzer") or "standard")

    @property
    def indexed(self) -> bool:
        return self.params.get("index", True) is not False

    def knn(self) -> dict[str, Any]:
        """Resolved k-NN parameters: space, engine, m, ef_construction."""
        method = self.params.get("method") or {}
        params = method.get("parameters") or {}
        space = method.get("space_type") or self.params.get("space_type") or "l2"
        return {"dimension": int(self.params["dimension"]), "space": space,
                "engine": method.get("engine", "faiss"), "name": method.get("name", "hnsw"),
                "m": int(params.get("m", 16)), "ef_construction": int(params.get("ef_construction", 100)),
                "ef_search": params.get("ef_search"), "has_method": bool(method)}


_DATE_ISO = re.compile(r"^\d{4}(-\d{2}(-\d{2}([T ]\d{2}(:\d{2}(:\d{2}([.,]\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?)?)?$")
_DATE_SLASH = re.compile(r"^\d{4}/\d{2}/\d{2}( \d{2}:\d{2}:\d{2})?( ?[+-]\d{4}| Z)?$")
_NOW = re.compile(r"^now((?:[+-]\d+[yMwdhHms])*)(/[yMwdhHms])?$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "H": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_date(value: Any, fmt: str | None = None, *, now_ms: float | None = None) -> float:
    """A date value → epoch milliseconds (strict_date_optional_time||epoch_millis, slash dates, now-math)."""
    if isinstance(value, bool):
        raise ValueError(f"failed to parse date field [{value}]")
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).strip()
    if fmt and "epoch_second" in fmt and re.fullmatch(r"-?\d+(\.\d+)?", s):
        return float(s) * 1000.0
    if re.fullmatch(r"-?\d+(\.\d+)?", s) and (fmt is None or "epoch_millis" in fmt or len(s) != 4):
        return float(s)
    m = _NOW.match(s)
    if m:
        t = now_ms if now_ms is not None else datetime.now(timezone.utc).timestamp() * 1000.0
        for sign, num, unit in re.findall(r"([+-])(\d+)([yMwdhHms])", m.group(1)):
            delta = int(num) * (_UNIT_MS.get(unit) or (2_592_000_000 if unit == "M" else 31_536_000_000))
            t = t + delta if sign == "+" else t - delta
        if m.group(2):
            unit = m.group(2)[1]
            size = _UNIT_MS.get(unit)
            if size:
                t = math.floor(t / size) * size
        return t
    if _DATE_ISO.match(s):
        iso = s.replace(" ", "T", 1) if len(s) > 10 else s
        if len(iso) == 4:
            iso += "-01-01"
        elif len(iso) == 7:
            iso += "-01"
        iso = iso.replace(",", ".")
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp() * 1000.0
    if _DATE_SLASH.match(s):
        core = s[:19] if len(s) >= 19 else s[:10]
        dt = datetime.strptime(core, "%Y/%m/%d %H:%M:%S" if len(core) == 19 else "%Y/%m/%d")
        return dt.replace(tzinfo=timezone.utc).timestamp() * 1000.0
    raise ValueError(f"failed to parse date field [{s}] with format [{fmt or 'strict_date_optional_time||epoch_millis'}]")


def _preview(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 40 else s[:40] + "..."


class Mapping:
    """The ``properties`` tree of one index plus the flat path → FieldDef view used by search."""

    def __init__(self, mappings: dict[str, Any] | None, *, version: str, knn_enabled: bool) -> None:
        self.version = version
        self.knn_enabled = knn_enabled
        self.depth_limit = DEPTH_LIMIT  # index.mapping.depth.limit; IndexState sets the index's own
        body = copy.deepcopy(mappings or {})
        if "_doc" in body and isinstance(body["_doc"], dict) and "properties" not in body:
            body = body["_doc"]  # typeless-with-_doc form some clients still send
        allowed = {"properties", "dynamic", "_source", "_meta", "date_detection", "numeric_detection",
                   "dynamic_templates", "_routing", "enabled"}
        for key in body:
            if key not in allowed:
                raise mapper_parsing(f"Root mapping definition has unsupported parameters:  [{key} : {body[key]}]")
        if body.get("dynamic_templates"):
            raise bad_request("[dynamic_templates] is not supported by the oskit embedded node (see COMPATIBILITY.md)")
        self.dynamic = str(body.get("dynamic", "true")).lower()
        if self.dynamic not in ("true", "false", "strict", "runtime"):
            raise mapper_parsing(f"Could not convert [dynamic] to boolean or 'strict': [{self.dynamic}]")
        self.source_cfg: dict[str, Any] = body.get("_source") or {}
        self.meta = body.get("_meta")
        self.date_detection = body.get("date_detection", True) is not False
        self.properties: dict[str, Any] = {}
        self.fields: dict[str, FieldDef] = {}
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise mapper_parsing("Expected map for property [properties] on mapping")
        props = expand_dots(props)
        self._validate_props(props, "")
        self.properties = props
        self._reindex()

    # ------------------------------------------------------------------ rendering
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.dynamic != "true":
            out["dynamic"] = self.dynamic
        if self.source_cfg:
            out["_source"] = self.source_cfg
        if self.meta is not None:
            out["_meta"] = self.meta
        if self.properties:
            out["properties"] = self.properties
        return out

    def render(self) -> dict[str, Any]:
        """The mapping as ``GET _mapping`` shows it (``to_dict`` is what the node stores and compares)."""
        out = self.to_dict()
        if "properties" in out:
            out["properties"] = _render_props(out["properties"])
        return out

    # ------------------------------------------------------------------ validation
    def _validate_props(self, props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            path = prefix + name
            if not isinstance(spec, dict):
                raise mapper_parsing(f"Expected map for property [fields] on field [{name}] but got a class java.lang.String")
            ftype = spec.get("type", "object" if "properties" in spec or not spec else None)
            if ftype is None:
                raise mapper_parsing(f"No type specified for field [{name}]")
            if ftype in KNOWN_UNSUPPORTED:
                raise mapper_parsing(f"field type [{ftype}] (field [{path}]) is not supported by the oskit embedded "
                                     f"node (see COMPATIBILITY.md)")
            if ftype not in SUPPORTED:
                raise mapper_parsing(f"No handler for type [{ftype}] declared on field [{name}]")
            if ftype == "object":
                sub = spec.get("properties") or {}
                self._validate_props(sub, path + ".")
            elif ftype == "knn_vector":
                self._validate_knn(name, spec)
            elif ftype in ("text", "keyword"):
                for key in ("analyzer", "search_analyzer"):
                    if key in spec and ftype == "text":
                        analyzer(spec[key])
                subs = spec.get("fields") or {}
                for sname, sspec in subs.items():
                    stype = sspec.get("type")
                    if stype not in SUPPORTED or stype in ("object", "knn_vector"):
                        raise mapper_parsing(f"No handler for type [{stype}] declared on field [{sname}]")
            elif ftype == "date":
                fmt = spec.get("format")
                if fmt and not set(fmt.split("||")) <= {"strict_date_optional_time", "date_optional_time",
                                                       "epoch_millis", "epoch_second", "yyyy/MM/dd HH:mm:ss",
                                                       "yyyy/MM/dd", "yyyy-MM-dd", "yyyy-MM-dd HH:mm:ss",
                                                       "strict_date_time", "date_time", "strict_date", "date"}:
                    raise bad_request(f"date format [{fmt}] is not supported by the oskit embedded node")

    def _validate_knn(self, name: str, spec: dict[str, Any]) -> None:
        if "dimension" not in spec and "model_id" not in spec:
            raise mapper_parsing(f"Dimension value missing for vector: {name}", cause_type="illegal_argument_exception")
        if "model_id" in spec:
            raise mapper_parsing("knn_vector [model_id] (trained k-NN models) is not supported by the oskit "
                                 "embedded node (see COMPATIBILITY.md)")
        dim = spec["dimension"]
        if isinstance(dim, str) and dim.isdigit():
            dim = int(dim)
        if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
            raise mapper_parsing(f"Unable to parse [dimension] from provided value [{spec['dimension']}] for vector [{name}]")
        if dim > 16000:
            raise mapper_parsing(f"Dimension value cannot be greater than 16000 for vector: {name}")
        data_type = spec.get("data_type", "float")
        if data_type != "float":
            raise mapper_parsing(f"knn_vector data_type [{data_type}] is not supported by the oskit embedded node")
        method = spec.get("method")
        top_space = spec.get("space_type")
        if method is not None:
            if not self.knn_enabled:
                raise mapper_parsing("Cannot set modelId or method parameters when index.knn setting is false",
                                     cause_type="illegal_argument_exception")
            if not isinstance(method, dict):
                raise mapper_parsing(f"Unable to parse [method] for vector [{name}]")
            engine = method.get("engine", "faiss")
            mname = method.get("name")
            space = method.get("space_type") or top_space or "l2"
            if engine not in ("faiss", "nmslib", "lucene"):
                raise mapper_parsing(f"Invalid engine: {engine}")
            if engine == "nmslib" and version_tuple(self.version) >= (3, 0, 0):
                raise mapper_parsing("nmslib engine is deprecated in OpenSearch and cannot be used for new index "
                                     "creation starting from version 3.0.0.")
            if mname is None:
                raise mapper_parsing("name needs to be set")
            if mname not in ("hnsw",):
                if mname in ("ivf", "flat"):
                    raise mapper_parsing(f"knn method [{mname}] is not supported by the oskit embedded node "
                                         f"(see COMPATIBILITY.md)")
                raise mapper_parsing(f"Invalid method name: {mname}")
            if space not in KNN_SPACES:
                raise mapper_parsing(f"Unable to parse [space_type] from provided value [{space}]")
            if method.get("space_type") and top_space and method["space_type"] != top_space:
                raise mapper_parsing(f"Space type in \"method\" and top level space type should be same or one of "
                                     f"them should be defined")
            if engine == "faiss" and space == "cosinesimil" and version_tuple(self.version) < (2, 19, 0):
                raise mapper_parsing("Validation Failed: 1: faiss engine does not support space type: cosinesimil;")
            _check_space(space, data_type)
            params = method.get("parameters") or {}
            for key, val in params.items():
                if key in ("m", "ef_construction", "ef_search"):
                    if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
                        raise mapper_parsing(f"[{key}] must be a positive integer for method [{mname}]")
                elif key == "encoder":
                    raise mapper_parsing("faiss [encoder] (quantization) is not supported by the oskit embedded node")
                else:
                    raise mapper_parsing(f"Validation Failed: 1: Unknown parameter '{key}' found;")
        else:
            space = top_space or "l2"
            if space not in KNN_SPACES:
                raise mapper_parsing(f"Unable to parse [space_type] from provided value [{space}]")
            _check_space(space, data_type)
        for key in ("mode", "compression_level"):
            if key in spec and spec[key] not in ("in_memory", "1x"):
                raise mapper_parsing(f"knn_vector [{key}: {spec[key]}] is not supported by the oskit embedded node")

    # ------------------------------------------------------------------ flat view
    def _reindex(self) -> None:
        fields: dict[str, FieldDef] = {}

        def walk(props: dict[str, Any], prefix: str) -> None:
            for name, spec in props.items():
                path = prefix + name
                ftype = spec.get("type", "object")
                fields[path] = FieldDef(path, ftype, spec)
                if ftype == "object":
                    walk(spec.get("properties") or {}, path + ".")
                for sname, sspec in (spec.get("fields") or {}).items():
                    fields[f"{path}.{sname}"] = FieldDef(f"{path}.{sname}", sspec.get("type", "keyword"), sspec)

        walk(self.properties, "")
        self.fields = fields

    def vector_fields(self) -> dict[str, FieldDef]:
        return {p: f for p, f in self.fields.items() if f.type == "knn_vector"}

    # ------------------------------------------------------------------ merging (PUT _mapping, dynamic)
    def merge(self, new_props: dict[str, Any], *, dynamic: str | None = None) -> None:
        """Additive merge; changing an existing field's type or parameters → illegal_argument_exception."""
        new_props = expand_dots(new_props)
        self._validate_props(new_props, "")
        merged = copy.deepcopy(self.properties)
        _merge_into(merged, new_props, "")
        self.properties = merged
        if dynamic is not None:
            self.dynamic = str(dynamic).lower()
        self._reindex()

    # ------------------------------------------------------------------ documents
    def parse(self, source: dict[str, Any], doc_id: str) -> tuple[dict[str, list[Any]], dict[str, Any], dict[str, Any]]:
        """A document → (values per indexed leaf path, vectors per path, new dynamic properties)."""
        values: dict[str, list[Any]] = {}
        vectors: dict[str, Any] = {}
        new_props: dict[str, Any] = {}
        if self.source_cfg.get("enabled") is False:
            pass
        self._parse_obj(source, "", self.properties, new_props, values, vectors, doc_id, self.dynamic)
        return values, vectors, new_props

    def _parse_obj(self, obj: dict[str, Any], prefix: str, props: dict[str, Any], new_props: dict[str, Any],
                   values: dict[str, list[Any]], vectors: dict[str, Any], doc_id: str, dynamic: str) -> None:
        if prefix.count(".") >= self.depth_limit:  # the root object is depth 1
            reason = (f"The depth of the field has exceeded the allowed limit of [{self.depth_limit}]. This limit can "
                      f"be set by changing the [index.mapping.depth.limit] index level setting.")
            raise ApiError(400, "mapper_parsing_exception", "failed to parse",
                           caused_by={"type": "parse_exception", "reason": reason},
                           root_cause={"type": "parse_exception", "reason": reason})
        for key, val in obj.items():
            if key == "" or key.strip() == "":
                raise mapper_parsing("field name cannot be an empty string")
            if "." in key:
                # {"a.b": 1} is the same field as {"a": {"b": 1}}
                head, rest = key.split(".", 1)
                self._parse_obj({head: {rest: val}}, prefix, props, new_props, values, vectors, doc_id, dynamic)
                continue
            path = prefix + key
            spec = props.get(key) or new_props.get(key)
            if spec is None:
                if val is None:
                    continue
                if dynamic == "strict":
                    raise ApiError(400, "strict_dynamic_mapping_exception",
                                   f"mapping set to strict, dynamic introduction of [{key}] within "
                                   f"[{prefix.rstrip('.') or '_doc'}] is not allowed")
                if dynamic == "false":
                    continue
                spec = self._dynamic_spec(val)
                if spec is None:
                    continue
                new_props[key] = spec
            ftype = spec.get("type", "object")
            if ftype == "object":
                if spec.get("enabled") is False:
                    continue
                items = val if isinstance(val, list) else [val]
                sub_new = new_props.get(key, {}).setdefault("properties", {}) if key in new_props else {}
                sub_dyn = str(spec.get("dynamic", dynamic)).lower()
                for item in items:
                    if item is None:
                        continue
                    if not isinstance(item, dict):
                        raise mapper_parsing(
                            f"object mapping for [{path}] tried to parse field [{key}] as object, but found a concrete value")
                    before = dict(sub_new)
                    extra: dict[str, Any] = {} if key in new_props else {}
                    target = sub_new if key in new_props else extra
                    self._parse_obj(item, path + ".", spec.get("properties") or {}, target, values, vectors,
                                    doc_id, sub_dyn)
                    if key not in new_props and extra:
                        new_props[key] = {"properties": extra}
                        sub_new = extra
                    del before
                continue
            if ftype == "knn_vector":
                if val is not None:
                    vectors[path] = val
                continue
            self._leaf(path, key, ftype, spec, val, values, doc_id)
            for sname, sspec in (spec.get("fields") or {}).items():
                self._leaf(f"{path}.{sname}", sname, sspec.get("type", "keyword"), sspec, val, values, doc_id)

    def _dynamic_spec(self, val: Any) -> dict[str, Any] | None:
        sample = val
        if isinstance(val, list):
            sample = next((v for v in val if v is not None), None)
            if sample is None:
                return None
        if isinstance(sample, bool):
            return {"type": "boolean"}
        if isinstance(sample, int):
            return {"type": "long"}
        if isinstance(sample, float):
            return {"type": "float"}
        if isinstance(sample, dict):
            return {"properties": {}}
        if isinstance(sample, str):
            if self.date_detection:
                if _DATE_ISO.match(sample) and len(sample) >= 10:
                    try:
                        parse_date(sample)
                        return {"type": "date"}
                    except ValueError:
                        pass
                if _DATE_SLASH.match(sample):
                    return {"type": "date", "format": "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis"}
            return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
        return None

    def _leaf(self, path: str, name: str, ftype: str, spec: dict[str, Any], val: Any,
              values: dict[str, list[Any]], doc_id: str) -> None:
        items = val if isinstance(val, list) else [val]
        out = values.setdefault(path, [])
        for item in items:
            if item is None:
                continue
            if isinstance(item, (dict, list)) and ftype != "binary":
                if isinstance(item, list):
                    self._leaf(path, name, ftype, spec, item, values, doc_id)
                    continue
                raise mapper_parsing(
                    f"failed to parse field [{path}] of type [{ftype}] in document with id '{doc_id}'. "
                    f"Preview of field's value: '{_preview(item)}'",
                    caused_by={"type": "illegal_state_exception",
                               "reason": f"Can't get text on a START_OBJECT at 1:{len(path) + 2}"})
            try:
                conv = convert_value(ftype, spec, item)
            except ValueError as exc:
                # Java's NumberFormatException for a string that is no number (Double/Float.parseDouble), but
                # long and unsigned_long parse through Numbers.toLong/toUnsignedLong: IllegalArgumentException
                cause = "number_format_exception" if str(exc).startswith("For input string") \
                    and ftype not in ("long", "unsigned_long") else "illegal_argument_exception"
                raise mapper_parsing(
                    f"failed to parse field [{path}] of type [{ftype}] in document with id '{doc_id}'. "
                    f"Preview of field's value: '{_preview(item)}'",
                    caused_by={"type": cause, "reason": str(exc)}) from None
            if conv is not None and spec.get("index", True) is not False:
                out.append(conv)
        if not out:
            values.pop(path, None)


def convert_value(ftype: str, spec: dict[str, Any], item: Any) -> Any:
    """One JSON value → what the field indexes (str for text/keyword, float/int, ms, bool); ValueError if bad."""
    if ftype == "text":
        return item if isinstance(item, str) else _to_text(item)
    if ftype == "keyword":
        s = item if isinstance(item, str) else _to_text(item)
        limit = spec.get("ignore_above")
        if limit is not None and len(s) > int(limit):
            return None
        return s
    if ftype in NUMERIC:
        return convert_number(ftype, item, coerce=spec.get("coerce", True) is not False)
    if ftype == "date":
        return parse_date(item, spec.get("format"))
    if ftype == "boolean":
        if isinstance(item, bool):
            return item
        if item in ("true", "false"):
            return item == "true"
        if item == "":
            return False
        raise ValueError(f"Failed to parse value [{item}] as only [true] or [false] are allowed.")
    if ftype == "binary":
        if not isinstance(item, str):
            raise ValueError("binary field value must be a base64 string")
        try:
            base64.b64decode(item, validate=False)
        except (binascii.Error, ValueError):
            raise ValueError(f"failed to decode base64 value of binary field") from None
        return None
    return None


def _to_text(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item)


def convert_number(ftype: str, item: Any, *, coerce: bool = True) -> float | int:
    if isinstance(item, bool):
        raise ValueError(f"Current token (VALUE_{str(item).upper()}) not numeric, can not use numeric value accessors")
    if isinstance(item, str):
        if not coerce:
            raise ValueError(f"Current token (VALUE_STRING) not numeric, can not use numeric value accessors")
        try:
            num: float | int = int(item) if re.fullmatch(r"[+-]?\d+", item.strip()) else float(item)
        except ValueError:
            raise ValueError(f'For input string: "{item}"') from None
    elif isinstance(item, (int, float)):
        num = item
    else:
        raise ValueError(f"Current token not numeric: {item!r}")
    if isinstance(num, float) and (math.isnan(num) or math.isinf(num)) and ftype in INTEGER_TYPES:
        raise ValueError(f"[{ftype}] supports only finite values, but got [{num}]")
    if ftype in INTEGER_TYPES:
        lo, hi = INTEGER_TYPES[ftype]
        if isinstance(num, float):
            if not coerce and num != int(num):
                raise ValueError(f"Value [{num}] has a decimal part")
            num = int(num)
        if num < lo or num > hi:
            raise ValueError(f"Value [{num}] is out of range for {'an integer' if ftype == 'integer' else 'a ' + ftype}")
        return num
    if ftype == "float" or ftype == "half_float":
        return float(num)
    return float(num)


def expand_dots(props: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": {...}}`` → ``{"a": {"properties": {"b": {...}}}}``, as OpenSearch reads dotted names."""
    if not isinstance(props, dict) or not any("." in k for k in props):
        out0 = {}
        for k, v in (props or {}).items():
            if isinstance(v, dict) and isinstance(v.get("properties"), dict):
                v = dict(v, properties=expand_dots(v["properties"]))
            out0[k] = v
        return out0
    out: dict[str, Any] = {}
    for key, spec in props.items():
        if isinstance(spec, dict) and isinstance(spec.get("properties"), dict):
            spec = dict(spec, properties=expand_dots(spec["properties"]))
        parts = key.split(".")
        if any(p == "" for p in parts):
            raise bad_request(f"field name cannot be empty or contain empty segments: [{key}]")
        cur = out
        for p in parts[:-1]:
            node = cur.setdefault(p, {"properties": {}})
            if node.get("type", "object") != "object":
                raise mapper_parsing(f"Could not dynamically add mapping for field [{key}]. Existing mapping for "
                                     f"[{p}] must be of type object but found [{node.get('type')}].")
            cur = node.setdefault("properties", {})
        leaf = parts[-1]
        if leaf in cur and isinstance(cur[leaf], dict) and "properties" in cur[leaf] and isinstance(spec, dict):
            cur[leaf].setdefault("properties", {}).update(spec.get("properties") or {})
        else:
            cur[leaf] = spec
    return out


def _merge_into(dst: dict[str, Any], src: dict[str, Any], prefix: str) -> None:
    for name, spec in src.items():
        path = prefix + name
        cur = dst.get(name)
        if cur is None:
            dst[name] = copy.deepcopy(spec)
            continue
        ctype = cur.get("type", "object")
        ntype = spec.get("type", "object")
        if ctype != ntype:
            raise bad_request(f"mapper [{path}] cannot be changed from type [{ctype}] to [{ntype}]")
        if ctype == "object":
            sub = cur.setdefault("properties", {})
            _merge_into(sub, spec.get("properties") or {}, path + ".")
            for k, v in spec.items():
                if k not in ("properties", "type"):
                    cur[k] = v
            continue
        for key, val in spec.items():
            if key == "fields":
                subs = cur.setdefault("fields", {})
                for sname, sspec in val.items():
                    if sname in subs and subs[sname] != sspec:
                        old_t, new_t = subs[sname].get("type"), sspec.get("type")
                        if old_t != new_t:
                            raise bad_request(f"mapper [{path}.{sname}] cannot be changed from type [{old_t}] to [{new_t}]")
                        raise bad_request(f"Mapper for [{path}.{sname}] conflicts with existing mapper")
                    subs[sname] = sspec
                continue
            if key in cur and cur[key] != val:
                if ctype == "knn_vector":
                    raise bad_request(f"Cannot update parameter [{key}] from [{cur[key]}] to [{val}]")
                if key in ("analyzer", "search_analyzer", "index", "format", "doc_values", "store", "norms"):
                    raise bad_request(f"Mapper for [{path}] conflicts with existing mapper:\n\tCannot update parameter "
                                      f"[{key}] from [{cur[key]}] to [{val}]")
            if key not in cur or key in ("ignore_above", "meta", "boost"):
                cur[key] = val


def _check_space(space: str, data_type: str) -> None:
    if space in ("hamming", "hammingbit") and data_type == "float":
        raise mapper_parsing(f"Space type [{space}] is not supported with [{data_type}] data type",
                             cause_type="illegal_argument_exception")
    if space not in SUPPORTED_SPACES:
        raise mapper_parsing(f"space type [{space}] is not supported by the oskit embedded node")


def _render_props(props: dict[str, Any]) -> dict[str, Any]:
    """``GET _mapping`` as OpenSearch 2.19 renders what it stored: ``dynamic`` as a string, a knn_vector's
    method with its space_type (copied from the field) and ``parameters`` ({} when none were given)."""
    out: dict[str, Any] = {}
    for name, spec in sorted(props.items()):  # OpenSearch keeps mapping properties sorted by name
        if not isinstance(spec, dict):
            out[name] = spec
            continue
        spec = dict(spec)
        if isinstance(spec.get("dynamic"), bool):
            spec["dynamic"] = "true" if spec["dynamic"] else "false"
        if isinstance(spec.get("properties"), dict):
            spec["properties"] = _render_props(spec["properties"])
        if isinstance(spec.get("fields"), dict):
            spec["fields"] = _render_props(spec["fields"])
        method = spec.get("method")
        if spec.get("type") == "knn_vector" and isinstance(method, dict):
            space = method.get("space_type") or spec.get("space_type")
            rendered = {k: method[k] for k in ("engine",) if k in method}
            if space is not None:
                rendered["space_type"] = space
            rendered.update({k: method[k] for k in ("name",) if k in method})
            rendered["parameters"] = method.get("parameters") or {}
            rendered.update({k: v for k, v in method.items() if k not in rendered})
            spec["method"] = rendered
        out[name] = spec
    return out
