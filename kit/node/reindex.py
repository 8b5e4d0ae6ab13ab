"""``_reindex``, ``_update_by_query`` and ``_delete_by_query`` (the reindex module's bulk-by-scroll
actions), without scripts: Painless is refused by name.

Documents are read in ``_doc`` order in batches of ``source.size`` (1000) and written through
``Engine.bulk``, so ingest pipelines (``dest.pipeline``, ``?pipeline=``, the index defaults) run as
they do for ``_bulk``, batching included. Responses are ``BulkByScrollResponse``: the counters,
then ``failures``; a failure stops the request unless ``conflicts: proceed`` and it is a version
conflict, as in OpenSearch.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kit.node.errors import ApiError, bad_request, parsing_error, unsupported
from kit.node.jsonutil import loads
from kit.node.query import parse_query
from kit.node.source_filter import filter_source

if TYPE_CHECKING:
    from kit.node.engine import Engine
    from kit.node.index_state import IndexState

__all__ = ["delete_by_query", "reindex", "update_by_query"]

SCROLL_SIZE = 1000  # AbstractBulkByScrollRequest.DEFAULT_SCROLL_SIZE


def _conflicts(value: Any) -> bool:
    if value in (None, "abort"):
        return False
    if value == "proceed":
        return True
    raise bad_request(f"conflicts may only be \"proceed\" or \"abort\" but was [{value}]")


def _max_docs(body: dict[str, Any], params: dict[str, Any]) -> int | None:
    raw = params.get("max_docs", body.get("max_docs", body.get("size")))
    if raw is None:
        return None
    n = int(raw)
    if n <= 0:
        raise ApiError(400, "action_request_validation_exception",
                       f"Validation Failed: 1: maxDocs should be greater than 0 if the request is limited to some "
                       f"number of documents or -1 if it isn't but it was [{n}];")
    return n


def _matching(engine: "Engine", index: str, query: Any, max_docs: int | None) -> list[tuple["IndexState", int, str]]:
    """(index, rid, id) of the matching documents, in index then ``_doc`` order."""
    q = parse_query(query if query is not None else {"match_all": {}}, predict=engine._predict_fn())
    out: list[tuple[IndexState, int, str]] = []
    with engine.lock:
        for ix in engine.resolve(index):
            for rid in sorted(q.docs(ix)):
                did = ix.rid_to_id.get(rid)
                if did is not None:
                    out.append((ix, rid, did))
    return out[:max_docs] if max_docs is not None else out


def _response(t0: float, counts: dict[str, int], failures: list[dict[str, Any]], *, updated: bool,
              created: bool) -> dict[str, Any]:
    """``BulkByScrollResponse.toXContent``; delete-by-query leaves out updated/created, update-by-query created."""
    out: dict[str, Any] = {"took": int((time.perf_counter() - t0) * 1000), "timed_out": False,
                           "total": counts["total"]}
    if updated:
        out["updated"] = counts["updated"]
    if created:
        out["created"] = counts["created"]
    out.update({"deleted": counts["deleted"], "batches": counts["batches"],
                "version_conflicts": counts["version_conflicts"], "noops": counts["noops"],
                "retries": {"bulk": 0, "search": 0}, "throttled_millis": 0, "requests_per_second": -1.0,
                "throttled_until_millis": 0, "failures": failures})
    return out


def _counts(total: int) -> dict[str, int]:
    return {"total": total, "updated": 0, "created": 0, "deleted": 0, "batches": 0, "version_conflicts": 0, "noops": 0}


def _check_common(body: dict[str, Any], params: dict[str, Any], allowed: set[str]) -> None:
    if body.get("script") is not None:
        raise unsupported("scripts in reindex/update-by-query (Painless)")
    if params.get("wait_for_completion") == "false":
        raise unsupported("wait_for_completion=false (tasks) for bulk-by-scroll requests")
    if params.get("slices") not in (None, "1") or body.get("slice") is not None:
        raise unsupported("sliced bulk-by-scroll requests")
    for key in body:
        if key not in allowed:
            raise parsing_error(f"[{'reindex' if 'dest' in allowed else 'update_by_query'}] unknown field [{key}]")


def _write(engine: "Engine", lines: list[tuple[dict[str, Any], Any, str | None]], counts: dict[str, int],
           failures: list[dict[str, Any]], proceed: bool) -> bool:
    """One bulk batch; False when a failure ends the request."""
    counts["batches"] += 1
    res = engine.bulk(lines)
    ok = True
    for item in res["items"]:
        (op, r), = item.items()
        if "error" in r:
            if r["status"] == 409:
                counts["version_conflicts"] += 1
                if proceed:
                    continue
            failures.append({"index": r["_index"], "id": r["_id"], "cause": r["error"], "status": r["status"]})
            ok = False
        elif r.get("result") == "created":
            counts["created"] += 1
        elif r.get("result") == "updated":
            counts["updated"] += 1
        elif r.get("result") == "noop":
            counts["noops"] += 1
        elif r.get("result") == "deleted":
            counts["deleted"] += 1
    return ok


def _sources(engine: "Engine", batch: list[tuple["IndexState", int, str]]) -> dict[int, tuple[str, int, int, str]]:
    with engine.lock:
        return engine.store.sources([rid for _, rid, _ in batch])


def reindex(engine: "Engine", body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    _check_common(body, params, {"source", "dest", "conflicts", "max_docs", "size", "script"})
    if params.get("pipeline") is not None:
        raise bad_request("_reindex doesn't support [pipeline] as a query parameter. Specify it in the [dest] "
                          "object instead.")
    source, dest = body.get("source"), body.get("dest")
    if not isinstance(source, dict) or not isinstance(dest, dict):
        raise ApiError(400, "action_request_validation_exception",
                       "Validation Failed: 1: use _all if you really want to copy from all existing indexes;"
                       if not isinstance(source, dict) else "Validation Failed: 1: index must be specified;")
    for key in source:
        if key == "remote":
            raise unsupported("reindex from a remote cluster")
        if key not in ("index", "query", "size", "_source", "sort", "max_docs"):
            raise parsing_error(f"[source] unknown field [{key}]")
    for key in dest:
        if key not in ("index", "pipeline", "op_type", "version_type", "routing"):
            raise parsing_error(f"[dest] unknown field [{key}]")
    src_index = source.get("index")
    if isinstance(src_index, list):
        src_index = ",".join(str(i) for i in src_index)
    dest_index = dest.get("index")
    if not src_index or not dest_index:
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: index must be specified;")
    if source.get("sort") is not None:
        raise unsupported("sort in reindex source (deprecated)")
    op_type = dest.get("op_type", "index")
    if op_type not in ("index", "create"):
        raise bad_request(f"opType must be 'create' or 'index', found: [{op_type}]")
    if dest.get("version_type") not in (None, "internal"):
        raise unsupported(f"reindex dest.version_type [{dest['version_type']}]")
    proceed = _conflicts(body.get("conflicts"))
    max_docs = _max_docs({"max_docs": body.get("max_docs", source.get("max_docs"))}, params)
    if engine.index_exists(str(dest_index)) and any(ix.name == dest_index for ix in engine.resolve(src_index)):
        raise ApiError(400, "action_request_validation_exception",
                       f"Validation Failed: 1: reindex cannot write into an index its reading from [{dest_index}];")
    docs = _matching(engine, src_index, source.get("query"), max_docs)
    counts, failures = _counts(len(docs)), []
    size = int(source.get("size", SCROLL_SIZE))
    fields = source.get("_source")
    for start in range(0, len(docs), size):
        batch = docs[start:start + size]
        rows = _sources(engine, batch)
        lines: list[tuple[dict[str, Any], Any, str | None]] = []
        for _ix, rid, did in batch:
            row = rows.get(rid)
            if row is None:  # deleted meanwhile
                continue
            meta: dict[str, Any] = {"_index": dest_index, "_id": did}
            if dest.get("pipeline") is not None:
                meta["pipeline"] = dest["pipeline"]
            raw: str | None = row[3]
            src: Any = None
            if fields is not None and fields is not True:
                inc = fields if isinstance(fields, (list, str)) else fields.get("includes")
                exc = fields.get("excludes") if isinstance(fields, dict) else None
                src, raw = filter_source(loads(row[3]), inc, exc), None
            else:
                src = loads(row[3])
            lines.append(({op_type: meta}, src, raw))
        if lines and not _write(engine, lines, counts, failures, proceed):
            break
    return _response(t0, counts, failures, updated=True, created=True)


def update_by_query(engine: "Engine", index: str, body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Re-index every matching document in place (picks up mapping changes, runs the pipeline)."""
    t0 = time.perf_counter()
    _check_common(body, params, {"query", "conflicts", "max_docs", "script", "slice"})
    proceed = _conflicts(params.get("conflicts", body.get("conflicts")))
    docs = _matching(engine, index, body.get("query"), _max_docs(body, params))
    counts, failures = _counts(len(docs)), []
    for start in range(0, len(docs), SCROLL_SIZE):
        batch = docs[start:start + SCROLL_SIZE]
        rows = _sources(engine, batch)
        lines: list[tuple[dict[str, Any], Any, str | None]] = []
        for ix, rid, did in batch:
            row = rows.get(rid)
            if row is None:
                continue
            # if_seq_no: a document changed since it was read is a version conflict, as in OpenSearch
            meta: dict[str, Any] = {"_index": ix.name, "_id": did, "if_seq_no": row[2], "if_primary_term": 1}
            if params.get("pipeline") is not None:
                meta["pipeline"] = params["pipeline"]
            lines.append(({"index": meta}, loads(row[3]), row[3]))
        if lines and not _write(engine, lines, counts, failures, proceed):
            break
    return _response(t0, counts, failures, updated=True, created=False)


def delete_by_query(engine: "Engine", index: str, body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    _check_common(body, params, {"query", "conflicts", "max_docs", "slice"})
    proceed = _conflicts(params.get("conflicts", body.get("conflicts")))
    docs = _matching(engine, index, body.get("query"), _max_docs(body, params))
    counts, failures = _counts(len(docs)), []
    for start in range(0, len(docs), SCROLL_SIZE):
        batch = docs[start:start + SCROLL_SIZE]
        lines: list[tuple[dict[str, Any], Any, str | None]] = [
            ({"delete": {"_index": ix.name, "_id": did}}, None, None) for ix, _rid, did in batch]
        if not _write(engine, lines, counts, failures, proceed):
            break
    return _response(t0, counts, failures, updated=False, created=False)
