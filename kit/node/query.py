"""Query DSL: parse once into nodes, then evaluate against one index's in-memory structures.

Each node answers ``scores(ix) -> dict[rid, float]`` (scoring context) and ``docs(ix) -> set[rid]``
(filter context). Scores follow Lucene: term/match on text and keyword → BM25; term on other types,
terms, range, exists, match_all → constant 1.0·boost; bool sums must + should; filters score 0.
"""

from __future__ import annotations

import fnmatch
import json
import math
from typing import TYPE_CHECKING, Any, Callable

from kit.node.errors import ApiError, bad_request, parsing_error, unsupported
from kit.node.mapping import NUMERIC, convert_number, parse_date

if TYPE_CHECKING:
    from kit.node.index_state import IndexState

__all__ = ["Hybrid", "Query", "parse_query"]

_UNSUPPORTED_QUERIES = {
    "match_phrase", "match_phrase_prefix", "match_bool_prefix", "query_string", "simple_query_string",
    "prefix", "wildcard", "regexp", "fuzzy", "nested", "has_child", "has_parent", "geo_distance",
    "geo_bounding_box", "geo_shape", "function_score", "more_like_this",
    "dis_max", "constant_score", "boosting", "span_term", "span_near", "intervals", "distance_feature",
    "rank_feature", "percolate", "wrapper", "neural_sparse", "terms_set", "combined_fields", "match_none",
    "pinned", "xy_shape", "parent_id",
}


class Query:
    """A parsed query node."""

    boost: float = 1.0

    def scores(self, ix: "IndexState") -> dict[int, float]:
        return {r: self.boost for r in self.docs(ix)}

    def docs(self, ix: "IndexState") -> set[int]:
        return set(self.scores(ix))


class MatchAll(Query):
    def __init__(self, boost: float = 1.0) -> None:
        self.boost = boost

    def docs(self, ix: "IndexState") -> set[int]:
        return set(ix.rid_to_id)


class MatchNone(Query):
    def docs(self, ix: "IndexState") -> set[int]:
        return set()


def _id_docs(ix: "IndexState", values: list[Any]) -> set[int]:
    """Rids of the documents whose ``_id`` is one of ``values`` (ids are strings, as Lucene stores them)."""
    out: set[int] = set()
    for v in values:
        cur = ix.docs.get(v if isinstance(v, str) else _id_string(v))
        if cur is not None:
            out.add(cur[0])
    return out


def _id_string(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _index_matches(ix: "IndexState", value: Any) -> bool:
    """``_index`` term semantics (IndexFieldMapper): the index name, simple ``*`` wildcards allowed."""
    return fnmatch.fnmatchcase(ix.name, _id_string(value))


class Ids(Query):
    """``ids`` query (and ``term``/``terms`` on ``_id``): constant score ``boost`` per matching id."""

    def __init__(self, values: list[Any], boost: float = 1.0) -> None:
        self.values, self.boost = values, boost

    def docs(self, ix: "IndexState") -> set[int]:
        return _id_docs(ix, self.values)


class Term(Query):
    def __init__(self, field: str, value: Any, boost: float = 1.0, case_insensitive: bool = False) -> None:
        self.field, self.value, self.boost, self.ci = field, value, boost, case_insensitive

    def _resolve(self, ix: "IndexState") -> tuple[str, Any]:
        if self.field == "_id":
            return "id", _id_string(self.value)
        if self.field == "_index":
            return "index", self.value
        fd = ix.mapping.fields.get(self.field)
        if fd is None:
            return "missing", None
        if fd.type in NUMERIC:
            try:
                return "exact", convert_number(fd.type, self.value)
            except ValueError as exc:
                cause = "number_format_exception" if str(exc).startswith("For input string") \
                    else "illegal_argument_exception"
                raise ApiError(400, "query_shard_exception", f"failed to create query: {exc}",
                               index=ix.name, index_uuid=ix.uuid,
                               caused_by={"type": cause, "reason": str(exc)}) from None
        if fd.type == "date":
            try:
                return "exact", parse_date(self.value, fd.params.get("format"))
            except ValueError as exc:
                raise ApiError(400, "query_shard_exception", f"failed to create query: {exc}",
                               index=ix.name, index_uuid=ix.uuid) from None
        if fd.type == "boolean":
            v = self.value
            if isinstance(v, str):
                if v not in ("true", "false"):
                    raise ApiError(400, "query_shard_exception",
                                   f"failed to create query: Can't parse boolean value [{v}], expected [true] or [false]",
                                   index=ix.name, index_uuid=ix.uuid)
                v = v == "true"
            return "exact", bool(v)
        if fd.type in ("text", "keyword"):
            if isinstance(self.value, bool):
                return fd.type, "true" if self.value else "false"
            return fd.type, str(self.value)
        if fd.type == "knn_vector":
            raise ApiError(400, "query_shard_exception",
                           f"failed to create query: Field [{self.field}] of type [knn_vector] does not support term queries",
                           index=ix.name, index_uuid=ix.uuid)
        raise ApiError(400, "query_shard_exception",
                       f"failed to create query: Field [{self.field}] of type [{fd.type}] is not searchable",
                       index=ix.name, index_uuid=ix.uuid)

    def scores(self, ix: "IndexState") -> dict[int, float]:
        kind, value = self._resolve(ix)
        if kind == "missing":
            return {}
        if kind in ("id", "index"):
            return {r: self.boost for r in self.docs(ix)}
        if kind == "text":
            if self.ci:
                raise unsupported("term.case_insensitive on text fields")
            return ix.text(self.field).term_scores(value, self.boost)
        if kind == "keyword":
            ex = ix.exact(self.field)
            if self.ci:
                out: dict[int, float] = {}
                for v in list(ex.postings):
                    if isinstance(v, str) and v.lower() == value.lower():
                        for r, s in ex.term_scores(v, self.boost).items():
                            out[r] = max(out.get(r, 0.0), s)
                return out
            return ex.term_scores(value, self.boost)
        return {r: self.boost for r in ix.exact(self.field).docs(value)}

    def docs(self, ix: "IndexState") -> set[int]:
        kind, value = self._resolve(ix)
        if kind == "missing":
            return set()
        if kind == "id":
            if self.ci:
                low = value.lower()
                return {rid for did, (rid, _, _) in ix.docs.items() if did.lower() == low}
            return _id_docs(ix, [value])
        if kind == "index":
            return set(ix.rid_to_id) if _index_matches(ix, value) else set()
        if kind == "text":
            return ix.text(self.field).term_docs(value)
        if kind == "keyword" and self.ci:
            return set(self.scores(ix))
        return ix.exact(self.field).docs(value)


class Terms(Query):
    def __init__(self, field: str, values: list[Any], boost: float = 1.0) -> None:
        self.field, self.values, self.boost = field, values, boost

    def docs(self, ix: "IndexState") -> set[int]:
        if self.field == "_id":
            return _id_docs(ix, self.values)
        out: set[int] = set()
        for v in self.values:
            out |= Term(self.field, v).docs(ix)
        return out


class Range(Query):
    def __init__(self, field: str, spec: dict[str, Any], boost: float = 1.0) -> None:
        self.field, self.spec, self.boost = field, spec, boost
        for key in spec:
            if key not in ("gt", "gte", "lt", "lte", "from", "to", "include_lower", "include_upper", "boost",
                           "format", "time_zone", "relation"):
                raise parsing_error(f"[range] query does not support [{key}]")
        if spec.get("time_zone") not in (None, "UTC", "Z", "+00:00"):
            raise unsupported("range.time_zone")

    def docs(self, ix: "IndexState") -> set[int]:
        fd = ix.mapping.fields.get(self.field)
        if fd is None:
            return set()
        s = self.spec

        def conv(v: Any, round_up: bool = False) -> Any:
            if v is None:
                return None
            if fd.type in NUMERIC:
                return float(convert_number("double", v))
            if fd.type == "date":
                try:
                    return parse_date(v, s.get("format") or fd.params.get("format"))
                except ValueError as exc:
                    raise ApiError(400, "parse_exception", str(exc)) from None
            if fd.type in ("keyword",):
                return str(v)
            if fd.type == "boolean":
                return v in (True, "true")
            raise ApiError(400, "query_shard_exception",
                           f"failed to create query: Field [{self.field}] of type [{fd.type}] does not support range queries",
                           index=ix.name, index_uuid=ix.uuid)

        lo, lo_inc = (conv(s["gte"]), True) if "gte" in s else (conv(s.get("gt", s.get("from"))),
                                                                   "gt" not in s and s.get("include_lower", True))
        hi, hi_inc = (conv(s["lte"]), True) if "lte" in s else (conv(s.get("lt", s.get("to"))),
                                                                   "lt" not in s and s.get("include_upper", True))
        out: set[int] = set()
        if fd.type == "text":
            raise unsupported("range queries on text fields")
        for rid, vals in ix.exact(self.field).values.items():
            for v in vals:
                if lo is not None and (v < lo or (v == lo and not lo_inc)):
                    continue
                if hi is not None and (v > hi or (v == hi and not hi_inc)):
                    continue
                out.add(rid)
                break
        return out


class Exists(Query):
    def __init__(self, field: str, boost: float = 1.0) -> None:
        self.field, self.boost = field, boost

    def docs(self, ix: "IndexState") -> set[int]:
        out: set[int] = set()
        pattern = any(c in self.field for c in "*?")
        for path, rids in ix.present.items():
            if (fnmatch.fnmatchcase(path, self.field) if pattern else
                    (path == self.field or path.startswith(self.field + "."))):
                out |= rids
        return out


class Match(Query):
    def __init__(self, field: str, text: Any, *, operator: str = "or", minimum_should_match: Any = None,
                 analyzer_name: str | None = None, boost: float = 1.0, zero_terms_query: str = "none") -> None:
        self.field, self.text, self.boost = field, text, boost
        self.operator = operator.lower()
        if self.operator not in ("or", "and"):
            raise bad_request(f"Unknown value for operator [{operator}]")
        self.msm = minimum_should_match
        self.analyzer_name = analyzer_name
        self.zero_terms_query = zero_terms_query

    def _clauses(self, ix: "IndexState") -> list[Query]:
        if self.field in ("_id", "_index"):
            return [Term(self.field, self.text)]  # not analysed: the whole text is one id, as on a keyword
        fd = ix.mapping.fields.get(self.field)
        if fd is None:
            return []
        if fd.type == "text":
            from kit.node.analysis import analyzer

            text = self.text if isinstance(self.text, str) else str(self.text)
            tokens = analyzer(self.analyzer_name or fd.search_analyzer_name)(text)
            return [Term(self.field, t) for t in dict.fromkeys(tokens)] if tokens else []
        return [Term(self.field, self.text)]

    def scores(self, ix: "IndexState") -> dict[int, float]:
        clauses = self._clauses(ix)
        if not clauses:
            return {r: 1.0 for r in ix.rid_to_id} if self.zero_terms_query == "all" else {}
        if len(clauses) == 1:
            return {r: s * self.boost for r, s in clauses[0].scores(ix).items()}
        per = [c.scores(ix) for c in clauses]
        need = len(per) if self.operator == "and" else _msm(self.msm, len(per))
        total: dict[int, float] = {}
        hits: dict[int, int] = {}
        for sc in per:
            for r, s in sc.items():
                total[r] = total.get(r, 0.0) + s
                hits[r] = hits.get(r, 0) + 1
        return {r: s * self.boost for r, s in total.items() if hits[r] >= need}


class MultiMatch(Query):
    def __init__(self, fields: list[tuple[str, float]], text: Any, *, type_: str, tie_breaker: float,
                 operator: str, msm: Any, boost: float) -> None:
        self.fields, self.text, self.type, self.tie = fields, text, type_, tie_breaker
        self.operator, self.msm, self.boost = operator, msm, boost
        if type_ not in ("best_fields", "most_fields"):
            raise unsupported(f"multi_match type [{type_}]")

    def _expand(self, ix: "IndexState") -> list[tuple[str, float]]:
        out = []
        for f, b in self.fields:
            if any(c in f for c in "*?"):
                out.extend((p, b) for p, fd in ix.mapping.fields.items()
                           if fnmatch.fnmatchcase(p, f) and fd.type in ("text", "keyword"))
            else:
                out.append((f, b))
        return out

    def scores(self, ix: "IndexState") -> dict[int, float]:
        per = [Match(f, self.text, operator=self.operator, minimum_should_match=self.msm, boost=b).scores(ix)
               for f, b in self._expand(ix)]
        out: dict[int, float] = {}
        if self.type == "most_fields":
            for sc in per:
                for r, s in sc.items():
                    out[r] = out.get(r, 0.0) + s
        else:  # best_fields: dis_max with tie_breaker
            best: dict[int, float] = {}
            total: dict[int, float] = {}
            for sc in per:
                for r, s in sc.items():
                    best[r] = max(best.get(r, 0.0), s)
                    total[r] = total.get(r, 0.0) + s
            out = {r: best[r] + self.tie * (total[r] - best[r]) for r in best}
        return {r: s * self.boost for r, s in out.items()}


class Bool(Query):
    def __init__(self, must: list[Query], should: list[Query], filter_: list[Query], must_not: list[Query],
                 msm: Any, boost: float) -> None:
        self.must, self.should, self.filter, self.must_not = must, should, filter_, must_not
        self.msm, self.boost = msm, boost

    def _min_should(self) -> int:
        if self.msm is not None:
            return _msm(self.msm, len(self.should))
        return 0 if (self.must or self.filter) else (1 if self.should else 0)

    def _candidates(self, ix: "IndexState") -> set[int] | None:
        cand: set[int] | None = None
        for q in self.filter:
            d = q.docs(ix)
            cand = d if cand is None else cand & d
        return cand

    def scores(self, ix: "IndexState") -> dict[int, float]:
        cand = self._candidates(ix)
        total: dict[int, float] | None = None
        for q in self.must:
            sc = q.scores(ix)
            if total is None:
                total = dict(sc) if cand is None else {r: s for r, s in sc.items() if r in cand}
            else:
                total = {r: total[r] + s for r, s in sc.items() if r in total}
        need = self._min_should()
        if total is None:
            base: dict[int, float] = ({r: 0.0 for r in cand} if cand is not None
                                      else ({} if self.should else {r: 0.0 for r in ix.rid_to_id}))
            if not self.must and not self.filter and not self.should and not self.must_not:
                base = {r: 1.0 for r in ix.rid_to_id}  # empty bool == match_all
            total = base
            from_should = cand is None
        else:
            from_should = False
        if self.should:
            counts: dict[int, int] = {}
            add: dict[int, float] = {}
            for q in self.should:
                for r, s in q.scores(ix).items():
                    if from_should or r in total:
                        add[r] = add.get(r, 0.0) + s
                        counts[r] = counts.get(r, 0) + 1
            if from_should:
                total = {r: s for r, s in add.items() if counts[r] >= max(need, 1)}
            else:
                total = {r: s + add.get(r, 0.0) for r, s in total.items() if counts.get(r, 0) >= need}
        if self.must_not:
            excluded: set[int] = set()
            for q in self.must_not:
                excluded |= q.docs(ix)
            total = {r: s for r, s in total.items() if r not in excluded}
        if self.boost != 1.0:
            total = {r: s * self.boost for r, s in total.items()}
        return total

    def docs(self, ix: "IndexState") -> set[int]:
        return set(self.scores(ix))


class Knn(Query):
    """k-NN query: top-k by vector similarity (optionally pre-filtered), or radial with min_score/max_distance."""

    def __init__(self, field: str, spec: dict[str, Any], vector: Any | None = None, *, name: str = "knn") -> None:
        self.field, self.spec = field, spec
        self.vector = vector if vector is not None else spec.get("vector")
        self.boost = float(spec.get("boost", 1.0))
        allowed = {"vector", "k", "filter", "min_score", "max_distance", "boost", "method_parameters",
                   "_name", "rescore", "expand_nested_docs"}
        if name == "knn":
            for key in spec:
                if key not in allowed:
                    raise parsing_error(f"[knn] unknown token [{key}] after [{field}]" if False else
                                        f"[{name}] query does not support [{key}]")
            if self.vector is None:
                raise parsing_error("[knn] requires 'vector' to be set")
        modes = [k for k in ("k", "min_score", "max_distance") if spec.get(k) is not None]
        if len(modes) > 1:
            raise bad_request(f"[{name}] requires exactly one of k, distance or score to be set")
        self.k = int(spec["k"]) if spec.get("k") is not None else (None if modes else 10)
        if self.k is not None and not (1 <= self.k <= 10000):
            raise bad_request(f"[{name}] requires k to be in the range (0, 10000]")
        self.min_score = spec.get("min_score")
        self.max_distance = spec.get("max_distance")
        if self.min_score is not None and float(self.min_score) <= 0:
            raise bad_request(f"[{name}] requires min_score greater than 0")
        mp = spec.get("method_parameters") or {}
        for key in mp:
            if key != "ef_search":
                raise bad_request(f"[{name}] method_parameters [{key}] is not supported for hnsw")
        self.ef_search = mp.get("ef_search")
        if spec.get("rescore") or spec.get("expand_nested_docs"):
            raise unsupported(f"{name}.rescore / expand_nested_docs")
        f = spec.get("filter")
        self.filter = parse_query(f) if f is not None else None

    def scores(self, ix: "IndexState") -> dict[int, float]:
        fd = ix.mapping.fields.get(self.field)
        if fd is None or fd.type != "knn_vector":
            reason = f"Field '{self.field}' is not knn_vector type."
            raise ApiError(400, "query_shard_exception", f"failed to create query: {reason}",
                           index=ix.name, index_uuid=ix.uuid,
                           caused_by={"type": "illegal_argument_exception", "reason": reason})
        vf = ix.vectors(self.field)
        kind = "knn" if self.k is not None else ("min_score" if self.min_score is not None else "max_distance")
        stats = ix.engine.knn_stats
        try:
            q = vf.query_vector(self.vector, self.field)
        except ApiError as exc:  # KNNQueryBuilder#doToQuery: wrapped by QueryShardContext#toQuery
            if exc.reason.startswith("Query vector has invalid dimension"):  # checked after updateQueryStats
                for key in (f"{kind}_query_requests",
                            f"{kind}_query_with_filter_requests" if self.filter is not None else None):
                    if key:
                        stats[key] = stats.get(key, 0) + 1
            raise ApiError(400, "query_shard_exception", f"failed to create query: {exc.reason}",
                           index=ix.name, index_uuid=ix.uuid,
                           caused_by={"type": exc.type, "reason": exc.reason}) from None
        cand = self.filter.docs(ix) if self.filter is not None else None
        for key in (f"{kind}_query_requests", f"{kind}_query_with_filter_requests" if cand is not None else None,
                    "graph_query_requests" if vf._graph is not None else None):
            if key:
                stats[key] = stats.get(key, 0) + 1
        if self.k is not None:
            hits = vf.search(q, self.k, cand, self.ef_search)
        else:
            hits = vf.radial(q, max_distance=None if self.max_distance is None else float(self.max_distance),
                             min_score=None if self.min_score is None else float(self.min_score), candidates=cand)
        return {r: s * self.boost for r, s in hits}


class Neural(Query):
    """neural query: embed query_text/query_image with the model (ML Commons predict), then k-NN."""

    def __init__(self, field: str, spec: dict[str, Any], predict: Callable[[str, dict[str, Any]], dict[str, Any]] | None) -> None:
        allowed = {"query_text", "query_image", "model_id", "k", "filter", "min_score", "max_distance", "boost",
                   "method_parameters", "rescore", "expand_nested_docs", "_name", "query_tokens"}
        for key in spec:
            if key not in allowed:
                raise parsing_error(f"[neural] query does not support [{key}]")
        text, image = spec.get("query_text"), spec.get("query_image")
        if text is None and image is None:
            raise bad_request("Either query_text or query_image must be provided for neural query")
        model_id = spec.get("model_id")
        if not model_id:
            raise bad_request("model id must be provided in neural query or a default model id must be set in "
                              "search request processor")
        if predict is None:
            raise ApiError(400, "illegal_argument_exception",
                           "neural query needs ML Commons, which is not available in this node build")
        docs: list[Any] = [text] if image is None else [text, image]
        res = predict(str(model_id), {"text_docs": docs, "target_response": ["sentence_embedding"]})
        vector = _first_embedding(res)
        knn_spec = {k: v for k, v in spec.items() if k in ("k", "filter", "min_score", "max_distance", "boost",
                                                           "method_parameters")}
        self.inner = Knn(field, knn_spec, vector=vector, name="neural")
        self.boost = self.inner.boost

    def scores(self, ix: "IndexState") -> dict[int, float]:
        return self.inner.scores(ix)


def _first_embedding(res: dict[str, Any]) -> list[float]:
    """The query vector, as neural-search reads it: the first result's first tensor's ``data``
    (``dataAsMap.embedding`` for remote models answered without a post-process function)."""
    try:
        for result in res["inference_results"]:
            for out in result.get("output", []):
                if out.get("data") is not None:
                    return list(out["data"])
                dam = out.get("dataAsMap") or {}
                for key in ("embedding", "sentence_embedding"):
                    if key in dam:
                        emb = dam[key]
                        return list(emb[0] if emb and isinstance(emb[0], list) else emb)
    except (KeyError, TypeError, AttributeError):
        pass
    raise bad_request("the model's response contains no embedding for the neural query")


class ScriptScore(Query):
    """``script_score`` with the k-NN plugin's ``knn_score`` script (exact k-NN over the inner query's
    documents). Other script languages need Painless and are refused at parse time."""

    def __init__(self, query: Query, source: str, params: Any, min_score: float | None, boost: float) -> None:
        from kit.node.knn_script import KnnScoreScript

        self.query, self.source, self.min_score, self.boost = query, source, min_score, boost
        self.script = KnnScoreScript(params)

    def scores(self, ix: "IndexState") -> dict[int, float]:
        import numpy as np

        from kit.node.knn_script import query_shard_failure
        from kit.node.mapping import version_tuple

        stats = ix.engine.knn_stats
        stats["script_compilations"] = stats.get("script_compilations", 0) + 1  # KNNScoringScriptEngine.compile
        if self.source != "knn_score":
            stats["script_compilation_errors"] = stats.get("script_compilation_errors", 0) + 1
            raise query_shard_failure(ix, f"Failed to compile inline script [{self.source}] using lang [knn]",
                                      cause_reason=f"Unknown script name {self.source}")
        stats["script_query_requests"] = stats.get("script_query_requests", 0) + 1
        rids = self.query.docs(ix)
        try:
            raw = self.script.scores(ix, rids, version_tuple(ix.engine.version))
        except ApiError:
            stats["script_query_errors"] = stats.get("script_query_errors", 0) + 1
            raise
        boost = np.float32(self.boost)
        out = {r: float(np.float32(s) * boost) for r, s in raw.items()}  # ScriptScoreQuery: score * boost (float)
        if self.min_score is not None:
            out = {r: s for r, s in out.items() if s >= self.min_score}
        return out


def _script(body: Any) -> tuple[str, str, Any]:
    """A script object (Script.parse) → (lang, source, params); a string is a Painless source."""
    if isinstance(body, str):
        return "painless", body, {}
    if not isinstance(body, dict):
        raise parsing_error("[script] query malformed, no start_object after query name")
    for key in body:
        if key not in ("source", "inline", "id", "lang", "params", "options"):
            raise parsing_error(f"[script] unknown field [{key}]")
    if body.get("id") is not None:
        raise unsupported("stored scripts (script id; Painless)")
    source = body.get("source", body.get("inline"))
    if source is None:
        raise parsing_error("must specify either [source] for an inline script or [id] for a stored script")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise parsing_error("[script] params must be an object")
    return str(body.get("lang") or "painless"), str(source), params


def _painless(lang: str, where: str) -> ApiError:
    """Scripts other than the k-NN plugin's knn_score need a scripting engine the node does not have."""
    name = "Painless" if lang == "painless" else f"lang [{lang}]"
    return unsupported(f"{name} scripts ({where}); only the k-NN plugin's knn_score script (lang knn) runs")


class Hybrid(Query):
    """Marker: hybrid is executed by the engine (per sub-query, then the search pipeline combines)."""

    def __init__(self, queries: list[Query], filter_: Query | None, pagination_depth: int | None = None) -> None:
        self.queries, self.filter, self.pagination_depth = queries, filter_, pagination_depth


def _template(body: Any, *, predict: Callable[[str, dict[str, Any]], dict[str, Any]] | None,
              top_level: bool) -> Query:
    """``template`` query (TemplateQueryBuilder.doRewrite): the content, with ``"${var}"`` placeholders
    replaced by the search pipeline's context variables, parsed as the query it stands for.

    Only ml_inference search request processors set context variables and the node has none, so the
    variables are always empty and placeholders stay as they are, as in OpenSearch without them.
    """
    if not isinstance(body, dict):
        raise parsing_error("[template] query malformed, no start_object after query name")
    content = json.dumps(body, separators=(",", ":"))
    try:
        return parse_query(body, predict=predict, top_level=top_level)
    except ApiError as exc:
        if "is not supported by the oskit embedded node" in exc.reason:
            raise  # the node's own limits stay visible as such
        # the coordinator's rewrite wraps a failed parse in an IOException (HTTP 500)
        raise ApiError(500, "i_o_exception", f"Failed to rewrite template query: {content}",
                       caused_by={"type": exc.type, "reason": exc.reason}) from None


def _msm(spec: Any, n: int) -> int:
    if spec is None:
        return 1
    if isinstance(spec, int):
        v = spec
    else:
        s = str(spec).strip()
        if s.endswith("%"):
            pct = int(s[:-1])
            v = math.floor(n * pct / 100) if pct >= 0 else n - math.floor(n * -pct / 100)
        else:
            v = int(s)
    if v < 0:
        v = n + v
    return max(0, min(v, n))


def _field_and_spec(name: str, body: Any) -> tuple[str, Any]:
    if name == "match" and body == {}:  # MatchQueryBuilder#fromXContent: no field, so no value
        raise parsing_error("No text specified for text query")
    if not isinstance(body, dict) or not body:
        raise parsing_error(f"[{name}] query malformed, no start_object after query name")
    fields = [k for k in body if k not in ("boost", "_name")]
    if len(fields) != 1:
        raise parsing_error(f"[{name}] query doesn't support multiple fields, found [{fields[0]}] and [{fields[1]}]"
                            if len(fields) > 1 else f"[{name}] query malformed, no field")
    return fields[0], body[fields[0]]


def parse_query(q: Any, *, predict: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
                top_level: bool = True) -> Query:
    """Parse a query DSL object; unknown → parsing_exception, known-unsupported → named error."""
    if not isinstance(q, dict):
        raise parsing_error("query malformed, must start with start_object")
    if len(q) != 1:
        if not q:
            return MatchAll()
        keys = list(q)
        raise parsing_error(f"[{keys[0]}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]")
    name, body = next(iter(q.items()))

    def sub(x: Any) -> Query:
        return parse_query(x, predict=predict, top_level=False)

    def many(x: Any) -> list[Query]:
        if x is None:
            return []
        return [sub(i) for i in (x if isinstance(x, list) else [x])]

    if name == "match_all":
        return MatchAll(float((body or {}).get("boost", 1.0)))
    if name == "match_none":
        return MatchNone()
    if name == "term":
        field, spec = _field_and_spec(name, body)
        if isinstance(spec, dict):
            if "value" not in spec:
                raise parsing_error("[term] query does not support [" + next(iter(spec), "") + "]")
            return Term(field, spec["value"], float(spec.get("boost", 1.0)), bool(spec.get("case_insensitive", False)))
        return Term(field, spec)
    if name == "terms":
        if not isinstance(body, dict):
            raise parsing_error("[terms] query malformed, no start_object after query name")
        boost = float(body.get("boost", 1.0))
        fields = [k for k in body if k not in ("boost", "_name", "value_type")]
        if len(fields) != 1:
            raise parsing_error("[terms] query does not support multiple fields")
        vals = body[fields[0]]
        if isinstance(vals, dict):
            raise unsupported("terms lookup")
        if not isinstance(vals, list):
            raise parsing_error(f"[terms] query does not support [{fields[0]}]")
        return Terms(fields[0], vals, boost)
    if name == "ids":
        if not isinstance(body, dict):
            raise parsing_error("[ids] query malformed, no start_object after query name")
        for key in body:
            if key not in ("values", "boost", "_name", "type", "types"):
                raise parsing_error(f"[ids] query does not support [{key}]")
        values = body.get("values", [])
        if not isinstance(values, list):
            raise parsing_error("[ids] query does not support [values]")
        if any(v is None or isinstance(v, (dict, list)) for v in values):
            raise parsing_error("[ids] failed to parse field [values]")
        return Ids(values, float(body.get("boost", 1.0)))
    if name == "range":
        field, spec = _field_and_spec(name, body)
        if not isinstance(spec, dict):
            raise parsing_error(f"[range] query does not support [{field}]")
        return Range(field, spec, float(spec.get("boost", 1.0)))
    if name == "exists":
        if not isinstance(body, dict) or "field" not in body:
            raise parsing_error("[exists] must be provided with a [field]")
        return Exists(str(body["field"]), float(body.get("boost", 1.0)))
    if name == "match":
        field, spec = _field_and_spec(name, body)
        if isinstance(spec, dict):
            allowed = {"query", "operator", "minimum_should_match", "analyzer", "boost", "zero_terms_query",
                       "_name", "lenient", "auto_generate_synonyms_phrase_query"}
            for key in spec:
                if key not in allowed:
                    if key in ("fuzziness", "prefix_length", "max_expansions", "fuzzy_transpositions", "fuzzy_rewrite"):
                        raise unsupported(f"match.{key}")
                    raise parsing_error(f"[match] query does not support [{key}]")
            if "query" not in spec:
                raise parsing_error("No text specified for text query")
            return Match(field, spec["query"], operator=spec.get("operator", "or"),
                         minimum_should_match=spec.get("minimum_should_match"), analyzer_name=spec.get("analyzer"),
                         boost=float(spec.get("boost", 1.0)), zero_terms_query=spec.get("zero_terms_query", "none"))
        return Match(field, spec)
    if name == "multi_match":
        if not isinstance(body, dict) or "query" not in body:
            raise parsing_error("No text specified for multi_match query")
        fields = []
        for f in body.get("fields") or ["*"]:
            fname, _, b = str(f).partition("^")
            fields.append((fname, float(b) if b else 1.0))
        return MultiMatch(fields, body["query"], type_=body.get("type", "best_fields"),
                          tie_breaker=float(body.get("tie_breaker", 0.0)), operator=body.get("operator", "or"),
                          msm=body.get("minimum_should_match"), boost=float(body.get("boost", 1.0)))
    if name == "bool":
        if not isinstance(body, dict):
            raise parsing_error("[bool] query malformed, no start_object after query name")
        for key in body:
            if key not in ("must", "should", "filter", "must_not", "minimum_should_match", "boost", "_name",
                           "adjust_pure_negative"):
                raise parsing_error(f"[bool] query does not support [{key}]")
        return Bool(many(body.get("must")), many(body.get("should")), many(body.get("filter")),
                    many(body.get("must_not")), body.get("minimum_should_match"), float(body.get("boost", 1.0)))
    if name == "knn":
        field, spec = _field_and_spec(name, body)
        if not isinstance(spec, dict):
            raise parsing_error(f"[knn] query malformed for field [{field}]")
        return Knn(field, spec)
    if name == "neural":
        field, spec = _field_and_spec(name, body)
        if not isinstance(spec, dict):
            raise parsing_error(f"[neural] query malformed for field [{field}]")
        return Neural(field, spec, predict)
    if name == "hybrid":
        if not top_level:
            raise bad_request("hybrid query must be a top level query and cannot be wrapped into other queries")
        if not isinstance(body, dict) or not isinstance(body.get("queries"), list) or not body["queries"]:
            raise parsing_error("[hybrid] requires 'queries' field with at least one clause")
        if len(body["queries"]) > 5:
            raise parsing_error("Number of sub-queries exceeds maximum supported by [hybrid] query")
        for key in body:
            if key not in ("queries", "filter", "boost", "_name", "pagination_depth"):
                # HybridQueryBuilder.fromXContent's wording
                raise parsing_error("Field is not supported by [hybrid] query")
        if "boost" in body and float(body["boost"]) != 1.0:
            raise parsing_error("[hybrid] query does not support [boost]")
        depth = body.get("pagination_depth")
        if depth is not None:
            try:
                depth = int(depth)
            except (TypeError, ValueError):
                raise parsing_error(f"[hybrid] failed to parse field [pagination_depth]: [{depth}]") from None
        f = body.get("filter")
        return Hybrid(many(body["queries"]), sub(f) if f is not None else None, depth)
    if name == "template":
        return _template(body, predict=predict, top_level=top_level)
    if name == "script_score":
        if not isinstance(body, dict):
            raise parsing_error("[script_score] query malformed, no start_object after query name")
        for key in body:
            if key not in ("query", "script", "min_score", "boost", "_name"):
                raise parsing_error(f"[script_score] query does not support [{key}]")
        if body.get("query") is None:
            raise parsing_error("[script_score] requires 'query' field")
        if body.get("script") is None:
            raise parsing_error("[script_score] requires 'script' field")
        lang, source, params = _script(body["script"])
        if lang != "knn":
            raise _painless(lang, "script_score")
        ms = body.get("min_score")
        return ScriptScore(sub(body["query"]), source, params, None if ms is None else float(ms),
                           float(body.get("boost", 1.0)))
    if name == "script":
        lang = _script((body or {}).get("script") if isinstance(body, dict) else None)[0] \
            if isinstance(body, dict) and body.get("script") is not None else "painless"
        raise _painless(lang, "script query")
    if name in _UNSUPPORTED_QUERIES:
        raise unsupported(f"{name} query")
    raise parsing_error(f"unknown query [{name}]")
