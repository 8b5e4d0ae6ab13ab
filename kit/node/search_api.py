"""REST handlers for the APIs around search: ``_analyze``, scroll, point in time, ``_msearch``,
``_reindex``, ``_update_by_query``/``_delete_by_query`` and the legacy ``_template`` API.

The engine does the work (:mod:`kit.node.search`, :mod:`kit.node.documents`); these handlers only
parse requests and shape responses as OpenSearch does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kit.node.analysis import analyze_text
from kit.node.errors import ApiError, bad_request, parsing_error, unsupported

if TYPE_CHECKING:
    from kit.node.routing import NodeRequest, Route

__all__ = ["routes"]


# ---------------------------------------------------------------------------------------- _analyze
def analyze(req: "NodeRequest") -> dict[str, Any]:
    """``AnalyzeAction``: built-in analyzers, a field's analyzer, or a tokenizer + filters chain."""
    if not req.has_body() and "text" not in req.query:
        raise ApiError(400, "parse_exception", "request body or source parameter is required")
    body = req.json_object()
    for key in ("text", "analyzer", "tokenizer", "field", "filter"):
        if key not in body and key in req.query:
            body[key] = req.query[key] if key != "filter" else req.query[key].split(",")
    for key in body:
        if key in ("char_filter", "normalizer", "explain", "attributes"):
            if body[key]:
                raise unsupported(f"_analyze [{key}]")
        elif key not in ("text", "analyzer", "tokenizer", "field", "filter"):
            raise parsing_error(f"Unknown parameter [{key}] in request body or parameter is of the wrong type[VALUE_STRING] ")
    text = body.get("text")
    if text is None:
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: text is missing;")
    texts = [str(t) for t in text] if isinstance(text, list) else [str(text)]
    filters = body.get("filter")
    if filters is not None:
        filters = [filters] if isinstance(filters, str) else list(filters)
        if any(not isinstance(f, str) for f in filters):
            raise unsupported("_analyze custom filter definitions")
    tokenizer = body.get("tokenizer")
    if tokenizer is not None and not isinstance(tokenizer, str):
        raise unsupported("_analyze custom tokenizer definitions")
    analyzer_name = body.get("analyzer")
    field = body.get("field")
    index = req.path_params.get("index")
    # TransportAnalyzeAction adds analyzer.getPositionIncrementGap between texts: 0 for a global analyzer (no
    # index) and for a tokenizer/filter chain (CustomAnalyzer), 100 for an index's analyzers
    # (AnalysisRegistry overrides the gap to TextFieldMapper's default), a text field's position_increment_gap
    gap = 100 if index is not None else 0
    if field is not None and analyzer_name is None and tokenizer is None:
        if index is None:
            raise bad_request("analysis based on a specific field requires an index")
        if not req.engine.index_exists(index):
            raise ApiError(404, "index_not_found_exception", f"no such index [{index}]", index=index,
                           **{"resource.id": index, "resource.type": "index_expression", "index_uuid": "_na_"})
        ix = req.engine.index(index)
        fd = ix.mapping.fields.get(str(field))
        if fd is not None and fd.type == "text":
            analyzer_name = fd.analyzer_name
            try:
                gap = int(fd.params.get("position_increment_gap", 100))
            except (TypeError, ValueError):
                gap = 100
        elif fd is not None:
            analyzer_name, gap = "keyword", 0  # Lucene.KEYWORD_ANALYZER, a global analyzer
    elif index is not None and not req.engine.index_exists(index):
        raise ApiError(404, "index_not_found_exception", f"no such index [{index}]", index=index,
                       **{"resource.id": index, "resource.type": "index_expression", "index_uuid": "_na_"})
    if tokenizer is None and filters:
        tokenizer = "keyword"  # AnalyzeAction: filters without a tokenizer run over the keyword tokenizer
    if tokenizer is not None:
        gap = 0
    return {"tokens": analyze_text(texts, analyzer_name=analyzer_name, tokenizer=tokenizer, filters=filters,
                                   position_gap=gap)}


# ---------------------------------------------------------------------------------------- scroll
def scroll(req: "NodeRequest") -> dict[str, Any]:
    body = req.json_object()
    scroll_id = req.path_params.get("scroll_id") or body.get("scroll_id") or req.query.get("scroll_id")
    if not scroll_id:
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: scrollId is missing;")
    keep_alive = body.get("scroll", req.query.get("scroll"))
    return req.engine.scroll_next(str(scroll_id), keep_alive, req.query)


def clear_scroll(req: "NodeRequest") -> Any:
    from kit.node.routing import json_response

    body = req.json_object()
    ids: Any = req.path_params.get("scroll_id")
    if ids is not None:
        ids = ids.split(",")
    else:
        ids = body.get("scroll_id", req.query.get("scroll_id"))
        if isinstance(ids, str):
            ids = ids.split(",")
    if not ids:
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: no scroll ids specified;")
    contexts = req.engine.search_contexts
    if ids == ["_all"]:
        # ClearScrollController.cleanAllScrolls counts the nodes that answered, not the contexts freed:
        # one node, so 1 even when no scroll was open
        contexts.free_all_scrolls()
        return {"succeeded": True, "num_freed": 1}
    freed = sum(1 for i in ids if contexts.free_scroll(str(i)))
    # ClearScrollResponse: 404 when nothing was freed
    return json_response({"succeeded": True, "num_freed": freed}, status=200 if freed else 404)


# ---------------------------------------------------------------------------------------- point in time
def create_pit(req: "NodeRequest") -> dict[str, Any]:
    return req.engine.create_pit(req.path_params["index"], req.query.get("keep_alive"), req.query)


def delete_pits(req: "NodeRequest") -> dict[str, Any]:
    contexts = req.engine.search_contexts
    if req.path.rstrip("/").endswith("/_all"):
        pits = contexts.all_pits()
        for p in pits:
            contexts.free_pit(p.pit_id)
        return {"pits": [{"successful": True, "pit_id": p.pit_id} for p in pits]}
    ids = req.json_object(required=True).get("pit_id")
    if isinstance(ids, str):
        ids = [ids]
    if not ids:
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: Pit Id cannot be empty;")
    return {"pits": [{"successful": contexts.free_pit(str(i)), "pit_id": str(i)} for i in ids]}


def list_pits(req: "NodeRequest") -> dict[str, Any]:
    return {"pits": [{"pit_id": p.pit_id, "creation_time": p.created_ms, "keep_alive": p.keep_alive_ms}
                     for p in req.engine.search_contexts.all_pits()]}


# ---------------------------------------------------------------------------------------- _msearch
_MSEARCH_HEADER_KEYS = {"index", "indices", "search_type", "preference", "routing", "request_cache",
                        "allow_no_indices", "expand_wildcards", "ignore_unavailable", "ignore_throttled",
                        "allow_partial_search_results", "ccs_minimize_roundtrips", "cancel_after_time_interval",
                        "phase_took", "search_pipeline", "type", "types"}


def msearch(req: "NodeRequest") -> dict[str, Any]:
    """``MultiSearchAction``: header/body line pairs; each search answers or fails on its own."""
    import json
    import time

    from kit.node.routing import parse_json

    t0 = time.perf_counter()
    if not req.has_body():
        raise ApiError(400, "parse_exception", "request body or source parameter is required")
    lines = [ln for ln in req.body.split(b"\n") if ln.strip()]
    requests: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for i in range(0, len(lines), 2):
        header = parse_json(lines[i])
        if not isinstance(header, dict):
            raise parsing_error("Expected [START_OBJECT] as the msearch header line")
        for key in header:
            if key not in _MSEARCH_HEADER_KEYS:
                raise bad_request(f"key [{key}] is not supported in the metadata section")
        body = parse_json(lines[i + 1]) if i + 1 < len(lines) else None
        if body is None:
            break  # a header without a body line is not a request (RestMultiSearchAction)
        if not isinstance(body, dict):
            raise parsing_error("Expected [START_OBJECT] as the msearch body line")
        requests.append((header, body))
    if not requests:
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
    responses: list[dict[str, Any]] = []
    for header, body in requests:
        index = header.get("index", header.get("indices", req.path_params.get("index")))
        if isinstance(index, list):
            index = ",".join(str(x) for x in index)
        params = {k: v for k, v in req.query.items() if k not in ("max_concurrent_searches",
                                                                   "max_concurrent_shard_requests")}
        for key in ("ignore_unavailable", "expand_wildcards", "search_pipeline", "allow_no_indices"):
            if key in header:
                params[key] = json.dumps(header[key]) if isinstance(header[key], bool) else str(header[key])
        try:
            res = req.engine.search(index, body, params, raw_source=True)
            res["status"] = 200
            responses.append(res)
        except ApiError as exc:
            if exc.type in ("parsing_exception", "x_content_parse_exception"):
                raise  # OpenSearch parses every body before searching: a malformed one fails the request
            responses.append({"error": exc.error_object(), "status": exc.status})
    return {"took": int((time.perf_counter() - t0) * 1000), "responses": responses}


# ---------------------------------------------------------------------------------------- bulk by scroll
def reindex(req: "NodeRequest") -> dict[str, Any]:
    from kit.node import reindex as rx

    return rx.reindex(req.engine, req.json_object(required=True), req.query)


def update_by_query(req: "NodeRequest") -> dict[str, Any]:
    from kit.node import reindex as rx

    return rx.update_by_query(req.engine, req.path_params["index"], req.json_object(), req.query)


def delete_by_query(req: "NodeRequest") -> dict[str, Any]:
    from kit.node import reindex as rx

    body = req.json_object(required=True)
    return rx.delete_by_query(req.engine, req.path_params["index"], body, req.query)


def routes() -> list["Route"]:
    from kit.node.routing import Route

    out: list[Route] = []
    for m in ("GET", "POST"):
        out.append(Route(m, "/_analyze", analyze))
        out.append(Route(m, "/{index}/_analyze", analyze))
        out.append(Route(m, "/_search/scroll", scroll))
        out.append(Route(m, "/_msearch", msearch))
        out.append(Route(m, "/{index}/_msearch", msearch))
        out.append(Route(m, "/_search/scroll/{scroll_id}", scroll))
    out.append(Route("POST", "/_reindex", reindex))
    out.append(Route("POST", "/{index}/_update_by_query", update_by_query))
    out.append(Route("POST", "/{index}/_delete_by_query", delete_by_query))
    out.append(Route("DELETE", "/_search/scroll", clear_scroll))
    out.append(Route("DELETE", "/_search/scroll/{scroll_id}", clear_scroll))
    out.append(Route("POST", "/{index}/_search/point_in_time", create_pit))
    out.append(Route("DELETE", "/_search/point_in_time", delete_pits))
    out.append(Route("DELETE", "/_search/point_in_time/_all", delete_pits))
    out.append(Route("GET", "/_search/point_in_time/_all", list_pits))
    return out
