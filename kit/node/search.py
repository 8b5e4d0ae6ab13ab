"""The engine's search execution: ``_search`` and ``_count`` over resolved indices — query scoring,
alias filters, sorting, paging, hybrid queries (raw or through a search pipeline) and fetching hits."""

from __future__ import annotations

import heapq
import time
from typing import Any

import numpy as np

from kit.node.contexts import parse_time_value
from kit.node.errors import ApiError, bad_request, on_shard, parsing_error, shard_failure, unsupported
from kit.node.index_state import IndexState
from kit.node.indices import Indices
from kit.node.jsonutil import RawJSON, loads, token_name
from kit.node.query import Hybrid, parse_query
from kit.node.sorting import after_key, parse_sort, sort_key
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
            per_shard = [len(self._on_shard(ix, q.docs) & af[ix.name].docs(ix)) if ix.name in af
                         else len(self._on_shard(ix, q.docs)) for ix in targets]
        out: dict[str, Any] = {}
        if params.get("terminate_after") is not None:  # each shard stops collecting at terminate_after
            limit = _int_param(params["terminate_after"], "terminate_after")
            if limit > 0:
                out["terminated_early"] = any(c > limit for c in per_shard)
                per_shard = [min(c, limit) for c in per_shard]
        out.update({"count": sum(per_shard),
                    "_shards": {"total": len(targets), "successful": len(targets), "skipped": 0, "failed": 0}})
        return out

    def search(self, index_expr: str | None, body: dict[str, Any] | None, params: dict[str, Any] | None = None,
               *, raw_source: bool = False) -> dict[str, Any]:
        """A full ``_search`` response. ``raw_source`` returns stored sources unparsed (REST fast path)."""
        t0 = time.perf_counter()
        params = dict(params or {})
        body = dict(body or {})
        if not isinstance(body, dict):
            raise parsing_error("request body must be an object")
        scroll_ms = parse_time_value(params["scroll"], "scroll") if params.get("scroll") is not None else None
        pit_ctx = None
        if body.get("pit") is not None:
            pit = body.pop("pit")
            if index_expr is not None:
                raise ApiError(400, "action_request_validation_exception",
                               "Validation Failed: 1: [indices] cannot be used with point in time;")
            if not isinstance(pit, dict) or "id" not in pit:
                raise parsing_error("[pit] failed to parse field [id]")
            pit_ctx = self.search_contexts.pit(str(pit["id"]))
            if pit.get("keep_alive") is not None:
                pit_ctx.keep_alive_ms = parse_time_value(pit["keep_alive"], "keep_alive")
                pit_ctx.expires = time.monotonic() + pit_ctx.keep_alive_ms / 1000
            index_expr = ",".join(pit_ctx.index_names)
        try:
            with self.lock:
                targets = self.resolve(index_expr, ignore_unavailable=params.get("ignore_unavailable") == "true",
                                       expand_hidden=params.get("expand_wildcards") in ("all", "hidden"))
        except ApiError as exc:
            if exc.type == "index_not_found_exception":
                self._rewrite_before_resolving(body, params)
            raise
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
                                        alias_filters=self.alias_filters(index_expr, targets), scroll_ms=scroll_ms,
                                        pit_rids=pit_ctx.rids if pit_ctx is not None else None)
        if pit_ctx is not None:
            response = {"pit_id": pit_ctx.pit_id, **response}
        if pipeline is not None:
            request = dict(body)
            if "size" in params:  # truncate_hits without target_size falls back to the request's size
                request["size"] = _int_param(params["size"], "size")
            response = pipeline.process_response(response, request)
        response["took"] = took = int((time.perf_counter() - t0) * 1000)
        if params.get("phase_took") in ("", "true"):  # SearchResponse: phase_took right after took
            phases = {"dfs_pre_query": 0, "query": took, "fetch": 0, "dfs_query": 0, "expand": 0, "can_match": 0}
            response = {k: v for k, v in response.items() if k in ("pit_id", "_scroll_id", "took")} | \
                {"phase_took": phases} | {k: v for k, v in response.items() if k not in ("pit_id", "_scroll_id", "took")}
        return response

    def _rewrite_before_resolving(self, body: dict[str, Any], params: dict[str, Any]) -> None:
        """TransportSearchAction runs the request pipeline and rewrites the query (a neural query asks
        ML Commons for its embedding there) before it resolves the indices: on a missing index the
        model's error comes first. Only what the rewrite's predict raises is answered here."""
        if self._predict_fn() is None or body.get("query") is None:
            return
        if self.search_pipelines is not None:
            pipeline = self.search_pipelines.resolve({}, params, body)  # no index: no default pipeline
            if pipeline is not None:
                body = pipeline.process_request(body, None)
        predict = self._predict_fn()
        failures: list[ApiError] = []

        def checked(model_id: str, req: dict[str, Any]) -> dict[str, Any]:
            try:
                return predict(model_id, req)
            except ApiError as exc:
                failures.append(exc)
                raise

        try:
            parse_query(body["query"], predict=checked)
        except ApiError:
            if failures:
                raise failures[0] from None

    def _on_shard(self, ix: IndexState, fn: Any, *args: Any) -> Any:
        """``fn(ix, *args)`` as the shard runs it: its errors come back as shard failures."""
        try:
            return fn(ix, *args)
        except ApiError as exc:
            raise on_shard(exc, index=ix.name, node=self.node_id) from None

    # ------------------------------------------------------------------ scroll and point in time
    def scroll_next(self, scroll_id: str, keep_alive: Any = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The next page of a scroll (``SearchScrollAction``); without ``keep_alive`` the scroll is freed after it."""
        t0 = time.perf_counter()
        keep_ms = parse_time_value(keep_alive, "scroll") if keep_alive is not None else None
        ctx = self.search_contexts.scroll(scroll_id)
        page, ctx.remaining = ctx.remaining[:ctx.size], ctx.remaining[ctx.size:]
        live = [pos for pos, ix in enumerate(ctx.targets) if self.indices.get(ix.name) is ix]
        page = [t for t in page if t[1] in live]  # an index deleted since leaves its hits out
        hits = self._fetch_hits(ctx.targets, page, ctx.render["sort_values"], ctx.render)
        out: dict[str, Any] = {}
        if keep_ms is not None:
            ctx.expires = time.monotonic() + keep_ms / 1000
            out["_scroll_id"] = scroll_id
        else:
            self.search_contexts.free_scroll(scroll_id)
        total = ctx.total
        if (params or {}).get("rest_total_hits_as_int") in ("true", "") and isinstance(total, dict):
            total = total["value"]
        hits_obj: dict[str, Any] = {} if total is None else {"total": total}
        hits_obj.update({"max_score": ctx.max_score, "hits": hits})
        n = len(ctx.targets)
        out.update({"took": int((time.perf_counter() - t0) * 1000), "timed_out": False,
                    "_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0}, "hits": hits_obj})
        return out

    def create_pit(self, index_expr: str, keep_alive: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """``CreatePitAction``: the indices and the documents they hold now."""
        if keep_alive is None:
            raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: keep alive not specified;")
        keep_ms = parse_time_value(keep_alive, "keep_alive")
        params = params or {}
        with self.lock:
            targets = self.resolve(index_expr, ignore_unavailable=params.get("ignore_unavailable") == "true",
                                   expand_hidden=params.get("expand_wildcards") in ("all", "hidden"))
            rids = {ix.name: set(ix.rid_to_id) for ix in targets}
        ctx = self.search_contexts.new_pit([ix.name for ix in targets], rids, keep_ms)
        n = len(targets)
        return {"pit_id": ctx.pit_id, "_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0},
                "creation_time": ctx.created_ms}

    def _execute_search(self, targets: list[IndexState], body: dict[str, Any], params: dict[str, Any],
                        pipeline: Any, *, raw_source: bool,
                        alias_filters: dict[str, list[dict[str, Any]]] | None = None,
                        scroll_ms: int | None = None, pit_rids: dict[str, set[int]] | None = None) -> dict[str, Any]:
        allowed = {"query", "size", "from", "_source", "sort", "track_total_hits", "min_score", "timeout",
                   "post_filter", "version", "seq_no_primary_term", "track_scores", "stored_fields", "explain",
                   "terminate_after", "profile", "ext", "search_after", "aggs", "aggregations", "highlight",
                   "collapse", "suggest", "rescore", "docvalue_fields", "fields", "script_fields", "indices_boost",
                   "pit", "slice", "stats", "verbose_pipeline"}
        for key in body:
            if key not in allowed:
                raise parsing_error(f"Unknown key for a {token_name(body[key])} in [{key}].")
        if body.get("script_fields"):
            raise unsupported("script_fields (Painless scripts)")
        for key in ("collapse", "suggest", "rescore", "slice", "indices_boost"):
            if body.get(key):
                raise unsupported(key)
        highlight = None
        if body.get("highlight") is not None:
            from kit.node.highlight import parse_highlight

            predict = self._predict_fn()
            highlight = parse_highlight(body["highlight"], lambda x: parse_query(x, predict=predict))
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
        search_after = body.get("search_after")
        if scroll_ms is not None:
            if "from" in params or "from" in body:
                raise ApiError(400, "action_request_validation_exception",
                               "Validation Failed: 1: using [from] is not allowed in a scroll context;")
            if size == 0:
                raise ApiError(400, "action_request_validation_exception",
                               "Validation Failed: 1: [size] cannot be [0] in a scroll context;")
            if search_after is not None:
                raise shard_failure(500, "search_exception", "`search_after` cannot be used in a scroll context.",
                                    index=targets[0].name if targets else None, node=self.node_id, nested=False)
        aggs_spec = body.get("aggregations", body.get("aggs"))
        if aggs_spec is not None and not isinstance(aggs_spec, dict):
            raise parsing_error("Expected [START_OBJECT] under [aggregations], but got a [VALUE_STRING] in [aggs]")
        window = min((int(ix.settings.get("index.max_result_window", MAX_RESULT_WINDOW)) for ix in targets),
                     default=MAX_RESULT_WINDOW)
        if from_ + size > window and targets:
            raise shard_failure(400, "illegal_argument_exception",
                                f"Result window is too large, from + size must be less than or equal to: [{window}] but "
                                f"was [{from_ + size}]. See the scroll api for a more efficient way to request large "
                                f"data sets. This limit can be set by changing the [index.max_result_window] index "
                                f"level setting.", index=targets[0].name, node=self.node_id)
        tth = params.get("track_total_hits", body.get("track_total_hits", True))
        if isinstance(tth, str):
            tth = True if tth == "true" else False if tth == "false" else int(tth)
        sort_spec = parse_sort(params.get("sort"), body.get("sort"))
        for ix in targets:  # the shard resolves sort fields before it collects: no hits, same failure
            for field, _, opts in sort_spec:
                if field not in ("_score", "_doc", "_shard_doc") and field not in ix.mapping.fields \
                        and "unmapped_type" not in opts:
                    raise on_shard(ApiError(400, "query_shard_exception",
                                            f"No mapping found for [{field}] in order to sort on",
                                            index=ix.name, index_uuid=ix.uuid), index=ix.name, node=self.node_id)
        if search_after is not None:
            if not isinstance(search_after, list):
                raise parsing_error("[search_after] must be an array")
            shard = targets[0].name if targets else None
            if not sort_spec:
                raise shard_failure(400, "illegal_argument_exception", "Sort must contain at least one field.",
                                    index=shard, node=self.node_id)
            if len(search_after) != len(sort_spec):
                raise shard_failure(400, "illegal_argument_exception", f"search_after has {len(search_after)} "
                                    f"value(s) but sort has {len(sort_spec)}.", index=shard, node=self.node_id)
        terminate_after = _int_param(params.get("terminate_after", body.get("terminate_after", 0)), "terminate_after")
        if terminate_after < 0:
            raise bad_request("terminateAfter must be > 0")
        terminated_early = False
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
        if pit_rids is not None:  # a point in time sees the documents that existed when it was opened
            plain_allowed = allowed

            def allowed(ix: IndexState, sc: dict[int, float]) -> dict[int, float]:  # noqa: F811
                keep = pit_rids.get(ix.name, set())
                return {r: s for r, s in plain_allowed(ix, sc).items() if r in keep}
        scored: list[tuple[float, int, int]] = []  # (score, index position, rid)
        agg_docs: list[dict[int, float]] = []  # per target: what aggregations see (before post_filter)
        with self.lock:
            hybrid_raw = False
            if isinstance(q, Hybrid):
                if aggs_spec:
                    raise unsupported("aggregations with a hybrid query")
                if scroll_ms is not None or search_after is not None:
                    raise unsupported("scroll or search_after with a hybrid query")
                if terminate_after:
                    raise unsupported("terminate_after with a hybrid query")
                depth = _hybrid_depth(q, from_, size, window)
                per_shard: list[list[list[tuple[int, float]]]] = []  # [target][sub-query] → (rid, score), best first
                for pos, ix in enumerate(targets):
                    keep = self._on_shard(ix, q.filter.docs) if q.filter is not None else None
                    pd = self._on_shard(ix, post.docs) if post is not None else None
                    subs = []
                    for sub in q.queries:
                        sc = allowed(ix, self._on_shard(ix, sub.scores))
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
                    sc = allowed(ix, self._on_shard(ix, q.scores))
                    if min_score is not None:
                        ms = float(min_score)
                        sc = {r: s for r, s in sc.items() if s >= ms}
                    agg_sc = sc
                    if post is not None:
                        pd = self._on_shard(ix, post.docs)
                        sc = {r: s for r, s in sc.items() if r in pd}
                    if terminate_after:
                        # the shard collects in doc order and stops after terminate_after accepted hits
                        # (post_filter and min_score accept first); aggregations saw the docs up to there
                        if len(sc) > terminate_after:
                            terminated_early = True
                            last = sorted(sc)[terminate_after - 1]
                            sc = {r: s for r, s in sc.items() if r <= last}
                            agg_sc = {r: s for r, s in agg_sc.items() if r <= last}
                    if aggs_spec:
                        agg_docs.append(agg_sc)
                    scored.extend((s, pos, r) for r, s in sc.items())
            total = len(scored)
            sort_values: dict[tuple[int, int], list[Any]] = {}
            want = len(scored) if scroll_ms is not None else from_ + size
            rest: list[tuple[float, int, int]] = []  # a scroll's later pages
            max_visible = True
            if hybrid_raw:
                total, page, score_visible = raw_total, raw_page, True
            elif sort_spec and (search_after is not None or not all(f == "_score" for f, _, _ in sort_spec)):
                keys = []
                for s, pos, rid in scored:
                    vals, key = self._on_shard(targets[pos], sort_key, rid, s, sort_spec)
                    sort_values[(pos, rid)] = vals
                    keys.append((key, pos, rid, s))
                keys.sort(key=lambda x: (x[0], x[1], x[2]))
                if search_after is not None:
                    after = after_key(targets, sort_spec, search_after)
                    keys = [k for k in keys if k[0] > after]
                ordered = [(s, pos, rid) for _, pos, rid, s in keys[from_:want]]
                page, rest = ordered[:size], ordered[size:]
                track_scores = bool(body.get("track_scores"))
                # a _score sort key shows each hit's score; max_score needs track_scores (or a pure _score sort)
                score_visible = track_scores or any(f == "_score" for f, _, _ in sort_spec)
                max_visible = track_scores or all(f == "_score" for f, _, _ in sort_spec)
            else:
                asc = bool(sort_spec) and sort_spec[0][1] == "asc"
                if isinstance(q, Hybrid):
                    top = scored[:want]
                elif asc:
                    top = heapq.nsmallest(want, scored, key=lambda t: (t[0], t[1], t[2]))
                else:
                    top = heapq.nsmallest(want, scored, key=lambda t: (-t[0], t[1], t[2]))
                page, rest = top[from_:from_ + size], top[from_ + size:want]
                if sort_spec:
                    for s, pos, rid in page + rest:
                        sort_values[(pos, rid)] = [s]
                score_visible = True
            max_score = max((t[0] for t in scored), default=None) if max_visible and size > 0 else None
            if hybrid_raw:
                max_score = raw_max
            src_param = source_param(body.get("_source"), params)
            render = {"source": src_param, "score_visible": score_visible, "raw_source": raw_source,
                      "highlight": (highlight, q) if highlight is not None and highlight.fields else None,
                      "version": bool(body.get("version") or params.get("version") == "true"),
                      "seq_no": bool(body.get("seq_no_primary_term") or params.get("seq_no_primary_term") == "true")}
        hits = self._fetch_hits(targets, page, sort_values, render)
        aggregations = None
        if aggs_spec:
            from kit.node.aggs import aggregate

            aggregations = aggregate(aggs_spec, targets, agg_docs, self)
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
        out: dict[str, Any] = {}
        if scroll_ms is not None:
            ctx = self.search_contexts.new_scroll(
                targets=list(targets), remaining=rest, size=size,
                render={**render, "sort_values": {k: v for k, v in sort_values.items() if (k[0], k[1]) in
                                                  {(p, r) for _, p, r in rest}}},
                total=hits_obj.get("total"), max_score=max_score, expires=time.monotonic() + scroll_ms / 1000)
            out["_scroll_id"] = self.search_contexts.scroll_id(ctx)
        out.update({"took": 0, "timed_out": False})
        if terminate_after:
            out["terminated_early"] = terminated_early
        out.update({"_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0}, "hits": hits_obj})
        if aggregations is not None:
            out["aggregations"] = aggregations
        return out

    def _fetch_hits(self, targets: list[IndexState], page: list[tuple[float, int, int]],
                    sort_values: dict[tuple[int, int], list[Any]], render: dict[str, Any]) -> list[dict[str, Any]]:
        """The hits of one page: stored rows read once per index, rendered as OpenSearch does."""
        src_param = render["source"]
        by_index: dict[int, list[int]] = {}
        for _, pos, rid in page:
            by_index.setdefault(pos, []).append(rid)
        fetched: dict[tuple[int, int], tuple[str, int, int, str]] = {}
        hl = render.get("highlight")
        need_rows = src_param is not False or render["version"] or render["seq_no"] or hl is not None
        with self.lock:
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
        want_version, want_seq_no = render["version"], render["seq_no"]
        score_visible, raw_source = render["score_visible"], render["raw_source"]
        for s, pos, rid in page:
            row = fetched.get((pos, rid))
            if row is None:
                continue
            did, ver, seq, src = row
            hit: dict[str, Any] = {"_index": targets[pos].name, "_id": did}
            if want_version:
                hit["_version"] = ver
            hit["_score"] = float(s) if score_visible else None
            if want_seq_no:
                hit["_seq_no"] = seq
                hit["_primary_term"] = 1
            if src_param is not False:
                if src_param is True:
                    hit["_source"] = RawJSON(src) if raw_source else loads(src)
                else:
                    hit["_source"] = filter_source(loads(src), src_param[0], src_param[1])
            if hl is not None:
                fields = hl[0].highlight(targets[pos], hl[1], loads(src), did)
                if fields:
                    hit["highlight"] = fields
            if (pos, rid) in sort_values:
                hit["sort"] = sort_values[(pos, rid)]
            hits.append(hit)
        return hits


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
