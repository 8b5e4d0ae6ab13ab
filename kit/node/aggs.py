"""Search aggregations: ``terms``, ``avg``/``min``/``max``/``sum``/``stats``/``extended_stats``,
``value_count``, ``cardinality``, ``histogram``, ``date_histogram``, ``range``, ``date_range``,
``filter``, ``filters``, ``missing``, ``top_hits``, each with sub-aggregations.

One shard per index, so results are exact: ``doc_count_error_upper_bound`` is 0 and ``cardinality``
counts distinct values exactly (OpenSearch's HyperLogLog++ is exact below its default
``precision_threshold`` of 3000 too). Response shapes follow OpenSearch 2.19 (checked against a real
node). Other aggregation types are refused by name.
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from kit.node.errors import ApiError, parsing_error, shard_failure, unsupported
from kit.node.mapping import NUMERIC, parse_date
from kit.node.query import parse_query
from kit.node.sorting import parse_sort, sort_key
from kit.node.source_filter import source_param

if TYPE_CHECKING:
    import threading

    from kit.node.index_state import IndexState

__all__ = ["aggregate"]

Doc = tuple[int, int, float]  # (target position, rid, score)
_INTEGER = {"long", "integer", "short", "byte", "unsigned_long"}
_UNSUPPORTED = {
    "percentiles", "percentile_ranks", "median_absolute_deviation", "geo_bounds", "geo_centroid", "geo_distance",
    "geohash_grid", "geotile_grid", "scripted_metric", "significant_terms", "significant_text", "composite",
    "nested", "reverse_nested", "children", "parent", "global", "sampler", "diversified_sampler", "adjacency_matrix",
    "auto_date_histogram", "variable_width_histogram", "rare_terms", "multi_terms", "ip_range", "weighted_avg",
    "matrix_stats", "geo_line", "t_test", "string_stats", "boxplot", "rate", "avg_bucket", "max_bucket",
    "min_bucket", "sum_bucket", "stats_bucket", "extended_stats_bucket", "percentiles_bucket", "bucket_script",
    "bucket_selector", "bucket_sort", "cumulative_sum", "derivative", "moving_avg", "moving_fn", "serial_diff",
}


class SearchHost(Protocol):
    """What aggregations use of the engine (:class:`kit.node.search.Search`)."""

    lock: "threading.RLock"
    node_id: str

    def _predict_fn(self) -> Any: ...

    def _fetch_hits(self, targets: list["IndexState"], page: list[tuple[float, int, int]],
                    sort_values: dict[tuple[int, int], list[Any]], render: dict[str, Any]) -> list[dict[str, Any]]: ...


class _Ctx:
    def __init__(self, targets: list["IndexState"], engine: SearchHost) -> None:
        self.targets = targets
        self.engine = engine

    def fail(self, reason: str, status: int = 400, type: str = "illegal_argument_exception") -> ApiError:
        return shard_failure(status, type, reason, index=self.targets[0].name if self.targets else None,
                             node=self.engine.node_id)

    def field_type(self, field: str) -> str | None:
        for ix in self.targets:
            fd = ix.mapping.fields.get(field)
            if fd is not None:
                return str(fd.type)
        return None

    def values(self, doc: Doc, field: str) -> list[Any]:
        ix = self.targets[doc[0]]
        if field not in ix.mapping.fields:
            return []
        return ix.exact(field).values.get(doc[1], [])


def aggregate(spec: dict[str, Any], targets: list["IndexState"], matched: list[dict[int, float]],
              engine: SearchHost) -> dict[str, Any]:
    """The ``aggregations`` object over the documents the query matched (before ``post_filter``)."""
    ctx = _Ctx(targets, engine)
    with engine.lock:
        docs = [(pos, rid, score) for pos, sc in enumerate(matched) for rid, score in sc.items()]
        parsed = _parse_level(spec)
        return _run_level(parsed, docs, ctx)


# ---------------------------------------------------------------------------------------- parsing
def _parse_level(spec: Any) -> list[tuple[str, str, dict[str, Any], list[Any], Any]]:
    if not isinstance(spec, dict):
        raise parsing_error("Expected [START_OBJECT] under [aggregations]")
    out = []
    for name, entry in spec.items():
        if not isinstance(entry, dict):
            raise parsing_error(f"Expected [START_OBJECT] under [{name}], but got a [VALUE_STRING] in [{name}]")
        kind, body, subs, meta = None, None, [], None
        for key, value in entry.items():
            if key in ("aggs", "aggregations"):
                subs = _parse_level(value)
            elif key == "meta":
                meta = value
            elif kind is not None:
                raise parsing_error(f"Found two aggregation type definitions in [{name}]: [{kind}] and [{key}]")
            else:
                kind, body = key, value
        if kind is None:
            raise parsing_error(f"Missing definition for aggregation [{name}]")
        if kind in _UNSUPPORTED:
            raise unsupported(f"{kind} aggregation")
        if kind not in _RUNNERS:
            raise parsing_error(f"Unknown aggregation type [{kind}]")
        if not isinstance(body, dict):
            raise parsing_error(f"[{kind}] aggregation [{name}] must be an object")
        if kind in ("filter", "filters", "top_hits") or "script" not in body:
            pass
        else:
            raise unsupported(f"scripts in the {kind} aggregation (Painless)")
        if kind in _METRICS and subs:
            raise ApiError(400, "aggregation_initialization_exception",
                           f"Aggregator [{name}] of type [{kind}] cannot accept sub-aggregations")
        out.append((name, kind, body, subs, meta))
    return out


def _run_level(parsed: list[Any], docs: list[Doc], ctx: _Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind, body, subs, meta in parsed:
        res = _RUNNERS[kind](body, docs, ctx, subs)
        if meta is not None:
            res = {"meta": meta, **res}
        out[name] = res
    return out


def _with_subs(bucket: dict[str, Any], subs: list[Any], docs: list[Doc], ctx: _Ctx) -> dict[str, Any]:
    if subs:
        bucket.update(_run_level(subs, docs, ctx))
    return bucket


# ---------------------------------------------------------------------------------------- values
def _field(body: dict[str, Any], kind: str) -> str:
    field = body.get("field")
    if not isinstance(field, str):
        raise ApiError(400, "illegal_argument_exception", f"Required one of fields [field, script], but none were "
                       f"specified. ")
    return field


def _check_field(ctx: _Ctx, field: str, kind: str, *, numeric: bool) -> str | None:
    ftype = ctx.field_type(field)
    if ftype == "text":
        raise ctx.fail(f"Text fields are not optimised for operations that require per-document field data like "
                       f"aggregations and sorting, so these operations are disabled by default. Please use a keyword "
                       f"field instead. Alternatively, set fielddata=true on [{field}] in order to load field data by "
                       f"uninverting the inverted index. Note that this can use significant memory.")
    if ftype in ("knn_vector", "binary", "object") or (numeric and ftype in ("keyword",)):
        raise ctx.fail(f"Field [{field}] of type [{ftype}] is not supported for aggregation [{kind}]")
    return ftype


def _doc_value(v: Any, ftype: str | None) -> float:
    """The double a numeric doc value reads as: float and half_float fields keep float32/float16 values."""
    if ftype == "float":
        return float(np.float32(v))
    if ftype == "half_float":
        return float(np.float16(v))
    return float(v)


def _numbers(docs: list[Doc], ctx: _Ctx, field: str, missing: Any, ftype: str | None) -> list[float]:
    out: list[float] = []
    for d in docs:
        vals = ctx.values(d, field)
        if vals:
            out.extend(_doc_value(v, ftype) for v in vals)
        elif missing is not None:
            out.append(float(parse_date(missing) if ftype == "date" else missing))
    return out


def _decimal_format(pattern: str) -> Callable[[float], str]:
    """java.text.DecimalFormat for the plain patterns aggregations use (``##0.0``, ``#,##0.00``, ``0``)."""
    if not re.fullmatch(r"[#0,]*(\.[#0]*)?", pattern):
        raise unsupported(f"numeric format [{pattern}] in aggregations (supported: DecimalFormat # 0 , .)")
    whole, _, frac = pattern.partition(".")
    min_frac, max_frac = frac.count("0"), len(frac)
    grouping = "," in whole

    def render(x: float) -> str:
        text = f"{x:,.{max_frac}f}" if grouping else f"{x:.{max_frac}f}"
        if max_frac > min_frac and "." in text:
            head, tail = text.split(".")
            tail = tail.rstrip("0").ljust(min_frac, "0")
            text = head + ("." + tail if tail else "")
        return text

    return render


def _date_str(ms: float) -> str:
    dt = datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


_JAVA_PATTERN = re.compile(r"yyyy|uuuu|yy|MM|dd|HH|mm|ss|SSS|'[^']*'|[-/:. T]")


def _date_formatter(fmt: str | None) -> Callable[[float], str]:
    if fmt is None or fmt in ("strict_date_optional_time", "date_optional_time", "strict_date_time", "date_time"):
        return _date_str
    if fmt == "epoch_millis":
        return lambda ms: str(int(ms))
    if fmt == "epoch_second":
        return lambda ms: str(int(ms // 1000))
    parts = _JAVA_PATTERN.findall(fmt)
    if "".join(parts) != fmt:
        raise unsupported(f"date format [{fmt}] in aggregations (supported: yyyy MM dd HH mm ss SSS, epoch_millis)")
    py = {"yyyy": "%Y", "uuuu": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}

    def render(ms: float) -> str:
        dt = datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)
        out = []
        for p in parts:
            if p == "SSS":
                out.append(f"{int(ms) % 1000:03d}")
            elif p in py:
                out.append(dt.strftime(py[p]))
            elif p.startswith("'"):
                out.append(p[1:-1])
            else:
                out.append(p)
        return "".join(out)

    return render


def _java_double(x: float) -> str:
    """``Double.toString`` for the keys of range buckets (5 → "5.0", 1e21 → "1.0E21")."""
    if x == int(x) and abs(x) < 1e7:
        return f"{x:.1f}"
    r = repr(float(x))
    if "e" in r:
        mant, exp = r.split("e")
        if "." not in mant:
            mant += ".0"
        return f"{mant}E{int(exp)}"
    return r


# ---------------------------------------------------------------------------------------- metrics
def _stats(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, kind: str) -> tuple[list[float], str | None]:
    field = _field(body, kind)
    ftype = _check_field(ctx, field, kind, numeric=True)
    return _numbers(docs, ctx, field, body.get("missing"), ftype), ftype


def _value(v: float | None, ftype: str | None, fmt: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": v}
    if v is not None and ftype == "date":
        out["value_as_string"] = _date_formatter(fmt)(v)
    elif v is not None and fmt is not None:
        out["value_as_string"] = _decimal_format(fmt)(v)
    return out


def _avg(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    vals, ftype = _stats(body, docs, ctx, "avg")
    return _value(math.fsum(vals) / len(vals) if vals else None, ftype, body.get("format"))


def _min(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    vals, ftype = _stats(body, docs, ctx, "min")
    return _value(min(vals) if vals else None, ftype, body.get("format"))


def _max(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    vals, ftype = _stats(body, docs, ctx, "max")
    return _value(max(vals) if vals else None, ftype, body.get("format"))


def _sum(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    vals, ftype = _stats(body, docs, ctx, "sum")
    return _value(math.fsum(vals), ftype, body.get("format"))


def _stats_agg(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    vals, ftype = _stats(body, docs, ctx, "stats")
    out: dict[str, Any] = {"count": len(vals), "min": min(vals) if vals else None, "max": max(vals) if vals else None,
                           "avg": math.fsum(vals) / len(vals) if vals else None, "sum": math.fsum(vals)}
    if vals and ftype == "date":
        f = _date_formatter(body.get("format"))
        out.update({"min_as_string": f(out["min"]), "max_as_string": f(out["max"]),
                    "avg_as_string": f(out["avg"]), "sum_as_string": f(out["sum"])})
    return out


def _extended_stats(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    vals, _ = _stats(body, docs, ctx, "extended_stats")
    sigma = float(body.get("sigma", 2.0))
    n = len(vals)
    s = math.fsum(vals)
    sq = math.fsum(v * v for v in vals)
    out: dict[str, Any] = {"count": n, "min": min(vals) if vals else None, "max": max(vals) if vals else None,
                           "avg": s / n if n else None, "sum": s, "sum_of_squares": sq if n else None}
    if not n:
        out.update({k: None for k in ("variance", "variance_population", "variance_sampling", "std_deviation",
                                      "std_deviation_population", "std_deviation_sampling")})
        out["std_deviation_bounds"] = {k: None for k in ("upper", "lower", "upper_population", "lower_population",
                                                         "upper_sampling", "lower_sampling")}
        return out
    avg = s / n
    var_pop = (sq - s * s / n) / n  # InternalExtendedStats: (sumOfSqrs - (sum * sum) / count) / count
    var_samp = (sq - s * s / n) / (n - 1) if n > 1 else math.inf
    sd_pop, sd_samp = math.sqrt(var_pop), math.sqrt(var_samp) if n > 1 else math.inf
    out.update({"variance": var_pop, "variance_population": var_pop, "variance_sampling": var_samp,
                "std_deviation": sd_pop, "std_deviation_population": sd_pop, "std_deviation_sampling": sd_samp,
                "std_deviation_bounds": {"upper": avg + sd_pop * sigma, "lower": avg - sd_pop * sigma,
                                         "upper_population": avg + sd_pop * sigma,
                                         "lower_population": avg - sd_pop * sigma,
                                         "upper_sampling": avg + sd_samp * sigma,
                                         "lower_sampling": avg - sd_samp * sigma}})
    return out


def _value_count(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    field = _field(body, "value_count")
    _check_field(ctx, field, "value_count", numeric=False)
    return {"value": sum(len(ctx.values(d, field)) for d in docs)}


def _cardinality(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    field = _field(body, "cardinality")
    _check_field(ctx, field, "cardinality", numeric=False)
    seen: set[Any] = set()
    for d in docs:
        vals = ctx.values(d, field)
        if vals:
            seen.update(vals)
        elif body.get("missing") is not None:
            seen.add(body["missing"])
    return {"value": len(seen)}


# ---------------------------------------------------------------------------------------- buckets
def _filter(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    q = parse_query(body, predict=ctx.engine._predict_fn())
    keep = _matching(q, docs, ctx)
    return _with_subs({"doc_count": len(keep)}, subs, keep, ctx)


def _matching(q: Any, docs: list[Doc], ctx: _Ctx) -> list[Doc]:
    per: dict[int, set[int]] = {}
    for pos in {d[0] for d in docs}:
        per[pos] = q.docs(ctx.targets[pos])
    return [d for d in docs if d[1] in per[d[0]]]


def _filters(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    filters = body.get("filters")
    other = body.get("other_bucket", False) or body.get("other_bucket_key") is not None
    other_key = body.get("other_bucket_key", "_other_")
    predict = ctx.engine._predict_fn()
    if isinstance(filters, dict):
        buckets: dict[str, Any] = {}
        matched: set[tuple[int, int]] = set()
        for key in sorted(filters):  # keyed filters come back sorted by key
            keep = _matching(parse_query(filters[key], predict=predict), docs, ctx)
            matched.update((d[0], d[1]) for d in keep)
            buckets[key] = _with_subs({"doc_count": len(keep)}, subs, keep, ctx)
        if other:
            rest = [d for d in docs if (d[0], d[1]) not in matched]
            buckets[other_key] = _with_subs({"doc_count": len(rest)}, subs, rest, ctx)
        return {"buckets": buckets}
    if isinstance(filters, list):
        out = []
        matched = set()
        for f in filters:
            keep = _matching(parse_query(f, predict=predict), docs, ctx)
            matched.update((d[0], d[1]) for d in keep)
            out.append(_with_subs({"doc_count": len(keep)}, subs, keep, ctx))
        if other:
            rest = [d for d in docs if (d[0], d[1]) not in matched]
            out.append(_with_subs({"doc_count": len(rest)}, subs, rest, ctx))
        return {"buckets": out}
    raise parsing_error("[filters] cannot be parsed: expected an object or an array of filters")


def _missing(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    field = _field(body, "missing")
    keep = [d for d in docs if not ctx.values(d, field)]
    return _with_subs({"doc_count": len(keep)}, subs, keep, ctx)


def _compile_filter(spec: Any) -> Callable[[Any], bool] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        rx = re.compile(spec)
        return lambda v: rx.fullmatch(str(v)) is not None
    if isinstance(spec, list):
        allowed = {str(x) for x in spec}
        return lambda v: str(v) in allowed
    raise unsupported("terms include/exclude partitions")


def _bucket_key(v: Any, ftype: str | None) -> dict[str, Any]:
    if ftype == "date":
        return {"key": int(v), "key_as_string": _date_str(float(v))}
    if ftype == "boolean":
        b = bool(v)
        return {"key": 1 if b else 0, "key_as_string": "true" if b else "false"}
    if ftype in _INTEGER:
        return {"key": int(v)}
    if ftype in NUMERIC:
        return {"key": float(v)}
    return {"key": v}


def _order_fn(order: Any, subs_result: Callable[[dict[str, Any]], Any]) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    orders = order if isinstance(order, list) else [order]
    keys: list[tuple[str, bool]] = []
    for o in orders:
        if not isinstance(o, dict) or len(o) != 1:
            raise parsing_error("[order] must be an object with one key")
        (path, direction), = o.items()
        if str(direction).lower() not in ("asc", "desc"):
            raise parsing_error(f"Unknown order direction [{direction}]")
        keys.append((path, str(direction).lower() == "desc"))

    def value(bucket: dict[str, Any], path: str) -> Any:
        if path == "_count":
            return bucket["doc_count"]
        if path in ("_key", "_term"):
            return bucket["key"]
        name, _, metric = path.partition(".")
        agg = bucket.get(name)
        if not isinstance(agg, dict):
            raise ApiError(400, "aggregation_execution_exception", f"Invalid aggregator order path [{path}]. Unknown "
                           f"aggregation [{name}]")
        v = agg.get(metric or "value", agg.get("doc_count"))
        return -math.inf if v is None else v

    def sort(buckets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = list(buckets)
        # stable sorts from the last key to the first; the final tie-break is the key ascending
        out.sort(key=lambda b: b["key"])
        for path, desc in reversed(keys):
            out.sort(key=lambda b: value(b, path), reverse=desc)
        return out

    return sort


def _terms(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    field = _field(body, "terms")
    ftype = _check_field(ctx, field, "terms", numeric=False)
    size = int(body.get("size", 10))
    if size < 1:
        raise ApiError(400, "illegal_argument_exception", f"[size] must be greater than 0. Found [{size}] in [terms]")
    min_doc_count = int(body.get("min_doc_count", 1))
    include, exclude = _compile_filter(body.get("include")), _compile_filter(body.get("exclude"))
    missing = body.get("missing")
    groups: dict[Any, list[Doc]] = {}
    for d in docs:
        vals = ctx.values(d, field)
        if not vals and missing is not None:
            vals = [missing]
        for v in dict.fromkeys(vals):
            if (include is None or include(v)) and (exclude is None or not exclude(v)):
                groups.setdefault(v, []).append(d)
    buckets = []
    for v, members in groups.items():
        if len(members) < min_doc_count:
            continue
        b = _bucket_key(v, ftype if v is not missing else None)
        if body.get("format") is not None and ftype in NUMERIC:
            b["key_as_string"] = _decimal_format(str(body["format"]))(float(v))
        b["doc_count"] = len(members)
        if body.get("show_term_doc_count_error"):
            b["doc_count_error_upper_bound"] = 0  # one shard: counts are exact
        buckets.append(_with_subs(b, subs, members, ctx))
    order = body.get("order", [{"_count": "desc"}, {"_key": "asc"}])
    buckets = _order_fn(order, lambda b: b)(buckets)
    shown = buckets[:size]
    other = sum(b["doc_count"] for b in buckets[size:])
    return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": shown}


def _histogram(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    field = _field(body, "histogram")
    ftype = _check_field(ctx, field, "histogram", numeric=True)
    try:
        interval = float(body["interval"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, "illegal_argument_exception", "[interval] must be >0 for histogram aggregation [histogram]") from None
    if interval <= 0:
        raise ApiError(400, "illegal_argument_exception", "[interval] must be >0 for histogram aggregation [histogram]")
    offset = float(body.get("offset", 0))
    key_of = lambda v: math.floor((v - offset) / interval) * interval + offset  # noqa: E731
    groups: dict[float, list[Doc]] = {}
    missing = body.get("missing")
    for d in docs:
        vals = [_doc_value(v, ftype) for v in ctx.values(d, field)] or ([float(missing)] if missing is not None else [])
        for k in dict.fromkeys(key_of(v) for v in vals):
            groups.setdefault(k, []).append(d)
    bounds = body.get("extended_bounds")
    fmt = _decimal_format(str(body["format"])) if body.get("format") is not None else None
    return _histo_buckets(body, groups, subs, ctx, key_of=key_of, step=lambda k: k + interval,
                          bounds=(key_of(float(bounds["min"])) if bounds and bounds.get("min") is not None else None,
                                  key_of(float(bounds["max"])) if bounds and bounds.get("max") is not None else None),
                          render=lambda k: {"key_as_string": fmt(k), "key": float(k)} if fmt else {"key": float(k)},
                          ftype=ftype)


def _histo_buckets(body: dict[str, Any], groups: dict[Any, list[Doc]], subs: list[Any], ctx: _Ctx, *,
                   key_of: Callable[[float], Any], step: Callable[[Any], Any], bounds: tuple[Any, Any],
                   render: Callable[[Any], dict[str, Any]], ftype: str | None) -> dict[str, Any]:
    min_doc_count = int(body.get("min_doc_count", 0))
    keys = set(groups)
    if min_doc_count == 0:
        lo = min([k for k in (min(keys, default=None), bounds[0]) if k is not None], default=None)
        hi = max([k for k in (max(keys, default=None), bounds[1]) if k is not None], default=None)
        if lo is not None and hi is not None:
            k, n = lo, 0
            while k <= hi:
                keys.add(k)
                k = step(k)
                n += 1
                if n > 65535:  # search.max_buckets
                    raise ctx.fail("Trying to create too many buckets. Must be less than or equal to: [65535] but was "
                                   "[65536]. This limit can be set by changing the [search.max_buckets] cluster level "
                                   "setting.", status=503, type="too_many_buckets_exception")
    buckets = []
    for k in keys:
        members = groups.get(k, [])
        if len(members) < min_doc_count:
            continue
        b = render(k)
        b["doc_count"] = len(members)
        buckets.append(_with_subs(b, subs, members, ctx))
    order = body.get("order", {"_key": "asc"})
    buckets = _order_fn(order, lambda b: b)(buckets)
    if body.get("keyed"):
        return {"buckets": {str(b.get("key_as_string", _java_double(b["key"]) if isinstance(b["key"], float)
                                      else b["key"])): {k: v for k, v in b.items() if k not in ("key",)}
                            for b in buckets}}
    return {"buckets": buckets}


_CALENDAR = {"minute": "1m", "1m": "1m", "hour": "1h", "1h": "1h", "day": "1d", "1d": "1d", "week": "1w", "1w": "1w",
             "month": "1M", "1M": "1M", "quarter": "1q", "1q": "1q", "year": "1y", "1y": "1y"}
_FIXED = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_FIXED_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _calendar_floor(ms: float, unit: str) -> int:
    dt = datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)
    if unit == "1m":
        dt = dt.replace(second=0, microsecond=0)
    elif unit == "1h":
        dt = dt.replace(minute=0, second=0, microsecond=0)
    elif unit == "1d":
        dt = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit == "1w":  # ISO weeks start on Monday
        day = dt.replace(hour=0, minute=0, second=0, microsecond=0)
        return int(calendar.timegm(day.timetuple()) - day.weekday() * 86400) * 1000
    elif unit == "1M":
        dt = dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif unit == "1q":
        dt = dt.replace(month=(dt.month - 1) // 3 * 3 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)
    elif unit == "1y":
        dt = dt.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(calendar.timegm(dt.timetuple())) * 1000


def _calendar_next(ms: int, unit: str) -> int:
    if unit in ("1m", "1h", "1d", "1w"):
        return ms + {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000, "1w": 604_800_000}[unit]
    dt = datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)
    months = {"1M": 1, "1q": 3, "1y": 12}[unit]
    y, m = divmod(dt.month - 1 + months, 12)
    return int(calendar.timegm(dt.replace(year=dt.year + y, month=m + 1).timetuple())) * 1000


def _date_histogram(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    field = _field(body, "date_histogram")
    ftype = _check_field(ctx, field, "date_histogram", numeric=True)
    tz = body.get("time_zone")
    if tz not in (None, "UTC", "Z", "+00:00", "Etc/UTC", "GMT"):
        raise unsupported(f"date_histogram time_zone [{tz}] (only UTC)")
    if body.get("offset"):
        raise unsupported("date_histogram offset")
    cal, fixed = body.get("calendar_interval"), body.get("fixed_interval")
    legacy = body.get("interval", body.get("date_histogram_interval"))
    if cal is None and fixed is None and legacy is not None:
        if str(legacy) in _CALENDAR:
            cal = legacy
        else:
            fixed = legacy
    if cal is not None:
        unit = _CALENDAR.get(str(cal))
        if unit is None:
            raise ApiError(400, "illegal_argument_exception", f"The supplied calendar interval [{cal}] could not be "
                           f"parsed as a calendar interval.")
        key_of: Callable[[float], int] = lambda v: _calendar_floor(v, unit)  # noqa: E731
        step: Callable[[int], int] = lambda k: _calendar_next(k, unit)  # noqa: E731
    elif fixed is not None:
        m = _FIXED.match(str(fixed))
        if m is None:
            raise ApiError(400, "illegal_argument_exception", f"failed to parse setting [date_histogram.fixedInterval] "
                           f"with value [{fixed}] as a time value: unit is missing or unrecognized")
        width = int(m.group(1)) * _FIXED_MS[m.group(2)]
        key_of = lambda v: int(math.floor(v / width) * width)  # noqa: E731
        step = lambda k: k + width  # noqa: E731
    else:
        raise ApiError(400, "illegal_argument_exception", "Invalid interval specified, must be non-null and non-empty")
    fmt = _date_formatter(body.get("format"))
    groups: dict[int, list[Doc]] = {}
    missing = body.get("missing")
    for d in docs:
        vals = [float(v) for v in ctx.values(d, field)] or ([parse_date(missing)] if missing is not None else [])
        for k in dict.fromkeys(key_of(v) for v in vals):
            groups.setdefault(k, []).append(d)
    bounds = body.get("extended_bounds") or {}
    b_lo = key_of(parse_date(bounds["min"])) if bounds.get("min") is not None else None
    b_hi = key_of(parse_date(bounds["max"])) if bounds.get("max") is not None else None
    return _histo_buckets(body, groups, subs, ctx, key_of=key_of, step=step, bounds=(b_lo, b_hi),
                          render=lambda k: {"key_as_string": fmt(k), "key": int(k)}, ftype=ftype)


def _ranges(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any], *, dates: bool) -> dict[str, Any]:
    kind = "date_range" if dates else "range"
    field = _field(body, kind)
    ftype = _check_field(ctx, field, kind, numeric=True)
    ranges = body.get("ranges")
    if not isinstance(ranges, list) or not ranges:
        raise ApiError(400, "illegal_argument_exception", f"No [ranges] specified for the [{kind}] aggregation")
    fmt = _date_formatter(body.get("format"))
    parse = (lambda v: parse_date(v)) if dates else float
    out = []
    for r in ranges:
        lo = parse(r["from"]) if r.get("from") is not None else None
        hi = parse(r["to"]) if r.get("to") is not None else None
        members = []
        for d in docs:
            vals = [float(v) for v in ctx.values(d, field)]
            if not vals and body.get("missing") is not None:
                vals = [parse(body["missing"])]
            if any((lo is None or v >= lo) and (hi is None or v < hi) for v in vals):
                members.append(d)
        show = (lambda x: fmt(x)) if dates else _java_double
        key = r.get("key") or f"{'*' if lo is None else show(lo)}-{'*' if hi is None else show(hi)}"
        b: dict[str, Any] = {"key": key}
        if lo is not None:
            b["from"] = float(lo)
            if dates:
                b["from_as_string"] = fmt(lo)
        if hi is not None:
            b["to"] = float(hi)
            if dates:
                b["to_as_string"] = fmt(hi)
        b["doc_count"] = len(members)
        out.append(_with_subs(b, subs, members, ctx))
    if body.get("keyed"):
        return {"buckets": {b["key"]: {k: v for k, v in b.items() if k != "key"} for b in out}}
    return {"buckets": out}


def _top_hits(body: dict[str, Any], docs: list[Doc], ctx: _Ctx, subs: list[Any]) -> dict[str, Any]:
    for key in body:
        if key not in ("size", "from", "sort", "_source", "version", "seq_no_primary_term", "track_scores"):
            raise unsupported(f"top_hits [{key}]")
    size, from_ = int(body.get("size", 3)), int(body.get("from", 0))
    spec = parse_sort(None, body.get("sort"))
    sort_values: dict[tuple[int, int], list[Any]] = {}
    if spec and not all(f == "_score" for f, _, _ in spec):
        keyed = []
        for pos, rid, s in docs:
            vals, key = sort_key(ctx.targets[pos], rid, s, spec)
            sort_values[(pos, rid)] = vals
            keyed.append((key, pos, rid, s))
        keyed.sort(key=lambda x: (x[0], x[1], x[2]))
        ordered = [(s, pos, rid) for _, pos, rid, s in keyed]
        score_visible = bool(body.get("track_scores"))
    else:
        ordered = sorted(((s, pos, rid) for pos, rid, s in docs), key=lambda t: (-t[0], t[1], t[2]))
        score_visible = True
    page = ordered[from_:from_ + size]
    render = {"source": source_param(body.get("_source"), {}), "score_visible": score_visible, "raw_source": False,
              "version": bool(body.get("version")), "seq_no": bool(body.get("seq_no_primary_term"))}
    hits = ctx.engine._fetch_hits(ctx.targets, page, sort_values, render)
    max_score = max((t[0] for t in ordered), default=None) if score_visible else None
    return {"hits": {"total": {"value": len(docs), "relation": "eq"}, "max_score": max_score, "hits": hits}}


_METRICS = {"avg", "min", "max", "sum", "stats", "extended_stats", "value_count", "cardinality", "top_hits"}
_RUNNERS: dict[str, Callable[[dict[str, Any], list[Doc], _Ctx, list[Any]], dict[str, Any]]] = {
    "avg": _avg, "min": _min, "max": _max, "sum": _sum, "stats": _stats_agg, "extended_stats": _extended_stats,
    "value_count": _value_count, "cardinality": _cardinality, "terms": _terms, "histogram": _histogram,
    "date_histogram": _date_histogram, "range": lambda b, d, c, s: _ranges(b, d, c, s, dates=False),
    "date_range": lambda b, d, c, s: _ranges(b, d, c, s, dates=True), "filter": _filter, "filters": _filters,
    "missing": _missing, "top_hits": _top_hits,
}
