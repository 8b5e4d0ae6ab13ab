"""REST handlers for the APIs around search: ``_analyze``, scroll, point in time, ``_msearch``,
``_reindex``, ``_update_by_query``/``_delete_by_query`` and the legacy ``_template`` API.

The engine does the work (:mod:`kit.node.search`, :mod:`kit.node.documents`); these handlers only
parse requests and shape responses as OpenSearch does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kit.node.analysis import analyze_text
from kit.node.errors import ApiError, bad_request, body_required, parsing_error, unsupported

if TYPE_CHECKING:
    from kit.node.routing import NodeRequest, Route

__all__ = ["routes"]


def _body(req: "NodeRequest", *, required: bool = False) -> dict[str, Any]:
    data = req.json()
    if data is None:
        if required:
            raise body_required()
        return {}
    if not isinstance(data, dict):
        raise parsing_error("request body must be a JSON object")
    return data


# ---------------------------------------------------------------------------------------- _analyze
def analyze(req: "NodeRequest") -> dict[str, Any]:
    """``AnalyzeAction``: built-in analyzers, a field's analyzer, or a tokenizer + filters chain."""
    if not req.has_body() and "text" not in req.query:
        raise ApiError(400, "parse_exception", "request body or source parameter is required")
    body = _body(req)
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
        elif fd is not None:
            analyzer_name = "keyword"
    elif index is not None and not req.engine.index_exists(index):
        raise ApiError(404, "index_not_found_exception", f"no such index [{index}]", index=index,
                       **{"resource.id": index, "resource.type": "index_expression", "index_uuid": "_na_"})
    if tokenizer is None and filters:
        tokenizer = "keyword"  # AnalyzeAction: filters without a tokenizer run over the keyword tokenizer
    return {"tokens": analyze_text(texts, analyzer_name=analyzer_name, tokenizer=tokenizer, filters=filters)}


def routes() -> list["Route"]:
    from kit.node.routing import Route

    out: list[Route] = []
    for m in ("GET", "POST"):
        out.append(Route(m, "/_analyze", analyze))
        out.append(Route(m, "/{index}/_analyze", analyze))
    return out
