"""The engine's search execution: ``_search`` and ``_count`` over resolved indices — query scoring,
alias filters, sorting, paging, hybrid queries (raw or through a search pipeline) and fetching hits."""

from __future__ import annotations

import heapq
import time
from typing import Any

import numpy as np

from kit.node.errors import ApiError, bad_request, parsing_error, unsupported
from kit.node.index_state import IndexState
from kit.node.indices import Indices
from kit.node.jsonutil import RawJSON, loads
from kit.node.query import Hybrid, parse_query
from kit.node.source_filter import filter_source, source_param

__all__ = ["HYBRID_DELIMITER", "HYBRID_START_STOP", "MAX_RESULT_WINDOW", "Search"]

MAX_RESULT_WINDOW = 10_000


class Search(Indices):
    """``_search`` and ``_count`` (mixed into :class:`kit.node.engine.Engine`)."""

    def count(self, index_expr: str | None, body: dict[str, Any] | None, params: dict[str, str] | None = None) -> dict[str, Any]:
        body = body or {}
        if not isinstance(body, dict):
            raise parsing_error("request body must be an object")
        for key in body:
            if key not in ("query",):
                raise parsing_error(f"request does not support [{key}]")
        params = params or {}
        q = parse_query(body.get("query", {"match_all": {}}), predict=self._predict_fn())
        if isinstance(q, Hybrid):
            raise bad_request("hybrid query is not supported by _count")
        with self.lock:
            targets = self.resolve(index_expr, ignore_unavailable=params.get("ignore_unavailable") == "true")
            af = {name: parse_query({"bool": {"should": fs, "minimum_should_match": 1}})
                  for name, fs in self.alias_filters(index_expr, targets).items()}
            n = sum(len(q.docs(ix) & af[ix.name].docs(ix)) if ix.name in af else len(q.docs(ix)) for ix in targets)
        return {"count": n, "_shards": {"total": len(targets), "successful": len(targets), "skipped": 0, "failed": 0}}

    def search(self, index_expr: str | None, body: dict[str, Any] | None, params: dict[str, Any] | None = None,
               *, raw_source: bool = False) -> dict[str, Any]:
        """A full ``_search`` response. ``raw_source`` returns stored sources unparsed (REST fast path)."""
        t0 = time.perf_counter()
        params = dict(params or {})
        body = dict(body or {})
        if not isinstance(body, dict):
            raise parsing_error("request body must be an object")
        with self.lock:
            targets = self.resolve(index_expr, ignore_unavailable=params.get("ignore_unavailable") == "true",
                                   expand_hidden=params.get("expand_wildcards") in ("all", "hidden"))
        pipeline = None
        if self.search_pipelines is not None:
            idx_settings = dict(targets[0].settings) if len(targets) == 1 else {}
            pipeline = self.search_pipelines.resolve(idx_settings, params, body)
        elif params.get("search_pipeline") not in (None, "_none") or isinstance(body.get("search_pipeline"), dict):
            raise bad_request(f"Pipeline {params.get('search_pipeline')} is not defined")
        elif len(targets) == 1 and targets[0].settings.get("index.search.default_pipeline") not in (None, "_none"):
            raise bad_request(f"Pipeline {targets[0].settings['index.search.default_pipeline']} is not defined")
        body.pop("search_pipeline", None)
        if pipeline is not None:
            body = pipeline.process_request(body, index_expr)
        response = self._execute_search(targets, body, params, pipeline, raw_source=raw_source,
                                        alias_filters=self.alias_filters(index_expr, targets))
        if pipeline is not None:
            request = dict(body)
            if "size" in params:  # truncate_hits without target_size falls back to the request's size
                request["size"] = _int_param(params["size"], "size")
            response = pipeline.process_response(response, request)
        response["took"] = int((time.perf_counter() - t0) * 1000)
        return response

    def _execute_search(self, targets: list[IndexState], body: dict[str, Any], params: dict[str, Any],
                        pipeline: Any, *, raw_source: bool,
                        alias_filters: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        allowed = {"query", "size", "from", "_source", "sort", "track_total_hits", "min_score", "timeout",
                   "post_filter", "version", "seq_no_primary_term", "track_scores", "stored_fields", "explain",
                   "terminate_after", "profile", "ext", "search_after", "aggs", "aggregations", "highlight",
                   "collapse", "suggest", "rescore", "docvalue_fields", "fields", "script_fields", "indices_boost",
                   "pit", "slice", "stats", "verbose_pipeline"}
        for key in body:
            if key not in allowed:
                raise parsing_error(f"Unknown key for a {'START_OBJECT' if isinstance(body[key], dict) else 'VALUE_STRING'} in [{key}].")
        for key in ("aggs", "aggregations", "highlight", "collapse", "suggest", "rescore", "search_after",
                    "script_fields", "pit", "slice", "indices_boost"):
            if body.get(key):
                raise unsupported(key if key != "aggs" else "aggregations")
        if body.get("explain") or params.get("explain") == "true":
            raise unsupported("explain")
        if body.get("profile"):
            raise unsupported("profile")
        if "q" in params:
            raise unsupported("URI search (q=)")
        size = _int_param(params.get("size", body.get("size", 10)), "size")
        from_ = _int_param(params.get("from", body.get("from", 0)), "from")
        if size < 0:
            raise bad_request(f"[size] parameter cannot be negative, found [{size}]")
        if from_ < 0:
            raise bad_request(f"[from] parameter cannot be negative, found [{from_}]")
        window = min((int(ix.settings.get("index.max_result_window", MAX_RESULT_WINDOW)) for ix in targets),
                     default=MAX_RESULT_WINDOW)
        if from_ + size > window:
            raise ApiError(400, "illegal_argument_exception",
                           f"Result window is too large, from + size must be less than or equal to: [{window}] but "
                           f"was [{from_ + size}]. See the scroll api for a more efficient way to request large data "
                           f"sets. This limit can be set by changing the [index.max_result_window] index level setting.")
        tth = params.get("track_total_hits", body.get("track_total_hits", True))
        if isinstance(tth, str):
            tth = True if tth == "true" else False if tth == "false" else int(tth)
        sort_spec = _parse_sort(params.get("sort"), body.get("sort"))
        q = parse_query(body.get("query", {"match_all": {}}), predict=self._predict_fn())
        post = parse_query(body["post_filter"], predict=self._predict_fn()) if body.get("post_filter") else None
        min_score = body.get("min_score")
        afilt = {name: parse_query({"bool": {"should": fs, "minimum_should_match": 1}})
                 for name, fs in (alias_filters or {}).items()}

        def allowed(ix: IndexState, sc: dict[int, float]) -> dict[int, float]:
            f = afilt.get(ix.name)
            if f is None:
                return sc
            keep = f.docs(ix)
            return {r: s for r, s in sc.items() if r in keep}
        scored: list[tuple[float, int, int]] = []  # (score, index position, rid)
        with self.lock:
            hybrid_raw = False
            if isinstance(q, Hybrid):
                depth = _hybrid_depth(q, from_, size, window)
                per_shard: list[list[list[tuple[int, float]]]] = []  # [target][sub-query] → (rid, score), best first
                for pos, ix in enumerate(targets):
                    keep = q.filter.docs(ix) if q.filter is not None else None
                    pd = post.docs(ix) if post is not None else None
                    subs = []
                    for sub in q.queries:
                        sc = allowed(ix, sub.scores(ix))
                        hits = [(r, s) for r, s in sc.items() if s > 0 and (keep is None or r in keep)
                                and (pd is None or r in pd)]
                        hits.sort(key=lambda x: (-x[1], x[0]))
                        subs.append(hits[:depth])
                    per_shard.append(subs)
                if pipeline is not None and pipeline.has_hybrid_combiner:
                    per_sub: list[list[tuple[tuple[int, int], float]]] = []
                    for i in range(len(q.queries)):
                        res = [((pos, r), s) for pos, subs in enumerate(per_shard) for r, s in subs[i]]
                        res.sort(key=lambda x: (-x[1], x[0]))
                        per_sub.append(res)
                    combined = pipeline.combine_hybrid(per_sub)
                    scored = [(float(s), key[0], key[1]) for key, s in combined]
                    if min_score is not None:
                        scored = [t for t in scored if t[0] >= float(min_score)]
                else:
                    if sort_spec:
                        raise unsupported("sort in a hybrid query without a normalization-processor or "
                                          "score-ranker-processor search pipeline")
                    hybrid_raw = True
                    raw_page, raw_total, raw_max = _hybrid_raw_results(per_shard, from_, size)
            else:
                for pos, ix in enumerate(targets):
                    sc = allowed(ix, q.scores(ix))
                    if post is not None:
                        pd = post.docs(ix)
                        sc = {r: s for r, s in sc.items() if r in pd}
                    if min_score is not None:
                        ms = float(min_score)
                        sc = {r: s for r, s in sc.items() if s >= ms}
                    scored.extend((s, pos, r) for r, s in sc.items())
            total = len(scored)
            sort_values: dict[tuple[int, int], list[Any]] = {}
            want = from_ + size
            if hybrid_raw:
                total, page, score_visible = raw_total, raw_page, True
            elif sort_spec and not all(f == "_score" for f, _, _ in sort_spec):
                keys = []
                for s, pos, rid in scored:
                    vals, key = _sort_key(targets[pos], rid, s, sort_spec)
                    sort_values[(pos, rid)] = vals
                    keys.append((key, pos, rid, s))
                keys.sort(key=lambda x: (x[0], x[1], x[2]))
                page = [(s, pos, rid) for _, pos, rid, s in keys[from_:want]]
                track_scores = bool(body.get("track_scores"))
                score_visible = track_scores
            else:
                asc = bool(sort_spec) and sort_spec[0][1] == "asc"
                if isinstance(q, Hybrid):
                    top = scored[:want]
                elif asc:
                    top = heapq.nsmallest(want, scored, key=lambda t: (t[0], t[1], t[2]))
                else:
                    top = heapq.nsmallest(want, scored, key=lambda t: (-t[0], t[1], t[2]))
                page = top[from_:want]
                if sort_spec:
                    for s, pos, rid in page:
                        sort_values[(pos, rid)] = [s]
                score_visible = True
            max_score = max((t[0] for t in scored), default=None) if score_visible and size > 0 else None
            if hybrid_raw:
                max_score = raw_max
            by_index: dict[int, list[int]] = {}
            for _, pos, rid in page:
                by_index.setdefault(pos, []).append(rid)
            src_param = source_param(body.get("_source"), params)
            fetched: dict[tuple[int, int], tuple[str, int, int, str]] = {}
            need_rows = src_param is not False or body.get("version") or params.get("version") == "true" \
                or body.get("seq_no_primary_term") or params.get("seq_no_primary_term") == "true"
            for pos, rids in by_index.items():
                if need_rows:
                    for rid, row in self.store.sources(rids).items():
                        fetched[(pos, rid)] = row
                else:  # ids are in memory: no storage read when no _source/version is asked for
                    id_of = targets[pos].rid_to_id
                    for rid in rids:
                        if rid in id_of:
                            fetched[(pos, rid)] = (id_of[rid], 0, 0, "")
        hits = []
        # per-request flags hoisted out of the per-hit loop (it runs k times per k-NN query)
        want_version = body.get("version") or params.get("version") == "true"
        want_seq_no = body.get("seq_no_primary_term") or params.get("seq_no_primary_term") == "true"
        for s, pos, rid in page:
            row = fetched.get((pos, rid))
            if row is None:
                continue
            did, ver, seq, src = row
            hit: dict[str, Any] = {"_index": targets[pos].name, "_id": did,
                                   "_score": float(s) if score_visible else None}
            if want_version:
                hit["_version"] = ver
            if want_seq_no:
                hit["_seq_no"] = seq
                hit["_primary_term"] = 1
            if src_param is not False:
                if src_param is True:
                    hit["_source"] = RawJSON(src) if raw_source else loads(src)
                else:
                    hit["_source"] = filter_source(loads(src), src_param[0], src_param[1])
            if (pos, rid) in sort_values:
                hit["sort"] = sort_values[(pos, rid)]
            hits.append(hit)
        hits_obj: dict[str, Any] = {}
        if tth is not False:
            limit = None if tth is True else int(tth)
            if limit is None:
                limit = MAX_RESULT_WINDOW if "track_total_hits" not in body and "track_total_hits" not in params \
                    else None
            if tth is True and ("track_total_hits" in body or "track_total_hits" in params):
                limit = None
            if limit is not None and total > limit:
                hits_obj["total"] = {"value": limit, "relation": "gte"}
            else:
                hits_obj["total"] = {"value": total, "relation": "eq"}
        if params.get("rest_total_hits_as_int") in ("true", "") and "total" in hits_obj:
            hits_obj["total"] = hits_obj["total"]["value"]
        hits_obj["max_score"] = max_score
        hits_obj["hits"] = hits
        n = len(targets)
        return {"took": 0, "timed_out": False,
                "_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0}, "hits": hits_obj}


# neural-search HybridSearchResultFormatUtil: float32 magic scores of the raw hybrid result format,
# as a client parses them from OpenSearch's JSON (Float.toString: -9.549512E9, -4.4224404E9)
HYBRID_START_STOP = float(str(np.float32(-9549511920.4881596047)))


HYBRID_DELIMITER = float(str(np.float32(-4422440593.9791198149)))


def _hybrid_depth(q: Any, from_: int, size: int, window: int) -> int:
    """Hits collected per sub-query and shard (HybridCollectorManager.getSubqueryResultsRetrievalSize)."""
    depth = q.pagination_depth
    if depth is None:
        if from_ > 0:
            raise bad_request("pagination_depth param is missing in the search request")
        return size
    if depth < 0:
        raise bad_request("pagination_depth should be greater than 0")
    if depth > window:
        raise bad_request("pagination_depth should be less than or equal to index.max_result_window setting")
    return depth


def _hybrid_raw_results(per_shard: list[list[list[tuple[int, float]]]], from_: int,
                        size: int) -> tuple[list[tuple[float, int, int]], int, float]:
    """A hybrid query's hits when no search pipeline combines them: neural-search's compound format.

    Each shard returns start, then per sub-query a delimiter and its hits, then stop; the marker
    elements carry magic scores and the first hit's document. One shard: the first ``size`` elements
    (the plugin resets ``from`` to 0 on a single shard). Several: Lucene's ``TopDocs.merge`` (k-way by
    score, ties to the lower shard), then ``from``/``size``. Returns (page, total, max_score).
    """
    lists: list[list[tuple[float, int, int]]] = []
    total = 0
    max_score = 0.0
    for pos, subs in enumerate(per_shard):
        first = next((hits[0][0] for hits in subs if hits), None)
        if first is None:
            lists.append([])
            continue
        out = [(HYBRID_START_STOP, pos, first)]
        for hits in subs:
            out.append((HYBRID_DELIMITER, pos, first))
            out.extend((float(s), pos, r) for r, s in hits)
        out.append((HYBRID_START_STOP, pos, first))
        lists.append(out)
        total += len({r for hits in subs for r, _ in hits})
        max_score = max([max_score] + [hits[0][1] for hits in subs if hits])
    if len(lists) == 1:
        return lists[0][:size], total, max_score
    merged: list[tuple[float, int, int]] = []
    heads = [0] * len(lists)
    while len(merged) < from_ + size:
        best = None
        for pos, lst in enumerate(lists):
            if heads[pos] < len(lst) and (best is None or lst[heads[pos]][0] > lists[best][heads[best]][0]):
                best = pos
        if best is None:
            break
        merged.append(lists[best][heads[best]])
        heads[best] += 1
    return merged[from_:], total, max_score


def _int_param(v: Any, name: str) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise bad_request(f"Failed to parse int parameter [{name}] with value [{v}]") from None


def _parse_sort(param: str | None, spec: Any) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    items: list[Any] = []
    if param:
        for part in param.split(","):
            f, _, o = part.partition(":")
            items.append({f: o or ("desc" if f == "_score" else "asc")})
    elif spec is not None:
        items = spec if isinstance(spec, list) else [spec]
    for it in items:
        if isinstance(it, str):
            out.append((it, "desc" if it == "_score" else "asc", {}))
        elif isinstance(it, dict) and len(it) == 1:
            f, v = next(iter(it.items()))
            if isinstance(v, str):
                order, opts = v, {}
            elif isinstance(v, dict):
                opts = dict(v)
                order = opts.pop("order", "desc" if f == "_score" else "asc")
                for k in opts:
                    if k not in ("missing", "unmapped_type", "mode", "format", "numeric_type"):
                        raise unsupported(f"sort option [{k}]")
            else:
                raise parsing_error(f"[sort] malformed for field [{f}]")
            if order not in ("asc", "desc"):
                raise parsing_error(f"[sort] unknown order [{order}]")
            out.append((f, order, opts))
        else:
            raise parsing_error("[sort] malformed")
    return out


class _Rev:
    """Inverts ordering of a value for descending sorts."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: "_Rev") -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rev) and other.v == self.v


def _sort_key(ix: IndexState, rid: int, score: float, spec: list[tuple[str, str, dict[str, Any]]]) -> tuple[list[Any], tuple[Any, ...]]:
    shown: list[Any] = []
    key: list[Any] = []
    for field, order, opts in spec:
        if field == "_score":
            shown.append(score)
            key.append((0, -score if order == "desc" else score))
            continue
        if field == "_doc":
            shown.append(rid)
            key.append((0, rid if order == "asc" else -rid))
            continue
        fd = ix.mapping.fields.get(field)
        if fd is None:
            if "unmapped_type" in opts:
                shown.append(None)
                key.append((1, 0))
                continue
            raise ApiError(400, "query_shard_exception", f"No mapping found for [{field}] in order to sort on",
                           index=ix.name, index_uuid=ix.uuid)
        if fd.type == "text":
            raise bad_request(
                f"Text fields are not optimised for operations that require per-document field data like "
                f"aggregations and sorting, so these operations are disabled by default. Please use a keyword field "
                f"instead. Alternatively, set fielddata=true on [{field}] in order to load field data by uninverting "
                f"the inverted index. Note that this can use significant memory.")
        vals = ix.exact(field).values.get(rid)
        if not vals:
            missing_first = opts.get("missing") == "_first"
            shown.append(None)
            key.append((-1 if missing_first else 1, 0))
            continue
        v = min(vals) if order == "asc" else max(vals)
        if fd.type == "date" or fd.type in ("long", "integer", "short", "byte"):
            v = int(v)
        elif fd.type == "boolean":
            v = 1 if v else 0
        shown.append(v)
        key.append((0, v if order == "asc" else _Rev(v)))
    return shown, tuple(key)
