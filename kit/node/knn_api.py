"""The k-NN plugin's own REST endpoints that apply to this node: ``warmup`` and ``stats``.

``warmup`` waits until every vector of the index's fields is in its HNSW graph (the real call
loads graphs into native memory; here graphs are built in the background and this is the point
where they are complete). Trained k-NN models (``/_plugins/_knn/models``) are not supported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kit.node.errors import ApiError

if TYPE_CHECKING:
    from kit.node.engine import Engine
    from kit.node.routing import NodeRequest, Route

__all__ = ["COUNTERS", "routes"]

COUNTERS = ("knn_query_requests", "knn_query_with_filter_requests", "min_score_query_requests",
            "min_score_query_with_filter_requests", "max_distance_query_requests",
            "max_distance_query_with_filter_requests", "graph_query_requests", "graph_index_requests",
            "hit_count", "miss_count", "load_success_count", "load_exception_count", "script_query_errors",
            "training_errors", "eviction_count", "graph_query_errors", "graph_index_errors",
            "script_compilations", "script_query_requests", "script_compilation_errors", "training_requests")


def warmup(req: "NodeRequest") -> dict[str, Any]:
    targets = req.engine.resolve(req.path_params["index"], allow_no_indices=False)
    for ix in targets:
        for path in ix.mapping.vector_fields():
            ix.vectors(path).wait_for_graph()
    n = len(targets)
    total = sum(1 + ix.replicas() for ix in targets)
    return {"_shards": {"total": total, "successful": n, "failed": 0}}


def _node_stats(engine: "Engine") -> dict[str, Any]:
    per_index: dict[str, Any] = {}
    total = 0
    for ix in engine.indices.values():
        if not ix.loaded:
            continue
        fields = {p: vf for p, vf in ix._vectors.items() if vf._graph is not None}
        if not fields:
            continue
        mem = sum(vf.memory_bytes() for vf in fields.values())
        total += mem
        per_index[ix.name] = {"graph_memory_usage": mem // 1024, "graph_memory_usage_percentage": 0.0,
                              "graph_count": len(fields)}
    stats: dict[str, Any] = {k: int(engine.knn_stats.get(k, 0)) for k in COUNTERS}
    stats.update({"graph_memory_usage": total // 1024, "graph_memory_usage_percentage": 0.0,
                  "cache_capacity_reached": False, "indices_in_cache": per_index, "total_load_time": 0,
                  "training_memory_usage": 0, "training_memory_usage_percentage": 0.0,
                  "faiss_initialized": True, "lucene_initialized": False, "nmslib_initialized": False,
                  # ModelCache evictions of trained models: the node has no trained models
                  "indexing_from_model_degraded": False,
                  # KNNGraphValue counts native graphs built at Lucene refresh/merge; the node builds its
                  # graphs outside any segment flush or merge, so these stay at the plugin's start values
                  "graph_stats": {"merge": {"current": 0, "current_docs": 0, "current_size_in_bytes": 0, "total": 0,
                                            "total_time_in_millis": 0, "total_docs": 0, "total_size_in_bytes": 0},
                                  "refresh": {"total": 0, "total_time_in_millis": 0}}})
    return stats


def stats(req: "NodeRequest") -> dict[str, Any]:
    e = req.engine
    node_sel = req.path_params.get("node_id", "_all")
    if node_sel not in ("_all", "_local", e.node_id, e.node_name):
        nodes: dict[str, Any] = {}
    else:
        nodes = {e.node_id: _node_stats(e)}
    want = req.path_params.get("stat")
    if want:
        names = want.split(",")
        known = set(COUNTERS) | {"graph_memory_usage", "graph_memory_usage_percentage", "cache_capacity_reached",
                                 "indices_in_cache", "total_load_time", "training_memory_usage",
                                 "training_memory_usage_percentage", "faiss_initialized", "lucene_initialized",
                                 "nmslib_initialized", "circuit_breaker_triggered", "model_index_status",
                                 "indexing_from_model_degraded", "graph_stats"}
        bad = [s for s in names if s not in known]
        if bad:
            raise ApiError(400, "illegal_argument_exception",
                           f"request [/_plugins/_knn/stats/{want}] contains unrecognized stat: [{bad[0]}]")
        nodes = {nid: {k: v for k, v in st.items() if k in names} for nid, st in nodes.items()}
    out: dict[str, Any] = {"_nodes": {"total": len(nodes), "successful": len(nodes), "failed": 0},
                           "cluster_name": e.cluster_name}
    if not want or "circuit_breaker_triggered" in (want or ""):
        out["circuit_breaker_triggered"] = False
    if not want or "model_index_status" in (want or ""):
        out["model_index_status"] = None
    out["nodes"] = nodes
    return out


def unsupported_models(req: "NodeRequest") -> dict[str, Any]:
    raise ApiError(400, "illegal_argument_exception",
                   "[k-NN trained models (/_plugins/_knn/models)] are not supported by the oskit embedded node "
                   "(see COMPATIBILITY.md)")


def routes() -> list["Route"]:
    from kit.node.routing import Route

    out = [Route("GET", "/_plugins/_knn/warmup/{index}", warmup)]
    for p in ("/_plugins/_knn/stats", "/_plugins/_knn/stats/{stat}", "/_plugins/_knn/{node_id}/stats",
              "/_plugins/_knn/{node_id}/stats/{stat}"):
        out.append(Route("GET", p, stats))
    for m, p in (("POST", "/_plugins/_knn/models/_train"), ("POST", "/_plugins/_knn/models/{model_id}/_train"),
                 ("GET", "/_plugins/_knn/models/{model_id}"), ("DELETE", "/_plugins/_knn/models/{model_id}"),
                 ("GET", "/_plugins/_knn/models/_search"), ("POST", "/_plugins/_knn/models/_search")):
        out.append(Route(m, p, unsupported_models))
    return out
