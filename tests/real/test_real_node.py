"""The real node itself: the plugins and modules the kit needs are loaded, and what it cannot do is known."""

from __future__ import annotations

from typing import Any

from kit.realnode import recipe


def test_the_node_runs_the_four_plugins_and_the_rebuilt_modules(real_node: Any) -> None:
    root = real_node.request("GET", "/")
    assert root["version"]["number"] == real_node.version and root["version"]["distribution"] == "opensearch"
    node = next(iter(real_node.request("GET", "/_nodes/plugins")["nodes"].values()))
    assert sorted(p["name"] for p in node["plugins"]) == sorted(name for _, name in recipe.PLUGINS)
    modules = {m["name"] for m in node["modules"]}
    assert {m.name for m in recipe.MODULES} | {"transport-netty4"} <= modules
    settings = real_node.request("GET", "/_cluster/settings?include_defaults=true&flat_settings=true")["defaults"]
    assert settings["plugins.ml_commons.connector.private_ip_enabled"] == "true"


def test_lucene_hnsw_english_analysis_and_ingest_common_work(real_node: Any) -> None:
    real_node.request("PUT", "/smoke", {
        "settings": {"index.knn": True, "number_of_replicas": 0},
        "mappings": {"properties": {
            "t": {"type": "text", "analyzer": "english"},
            "v": {"type": "knn_vector", "dimension": 3,
                  "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}}}}})
    try:
        real_node.request("PUT", "/_ingest/pipeline/smoke", {"processors": [{"remove": {"field": "x"}}]})
        real_node.request("POST", "/smoke/_doc/1?refresh=true&pipeline=smoke",
                          {"t": "running dogs", "v": [1, 2, 3], "x": 1})
        hit = real_node.request("POST", "/smoke/_search", {"query": {"knn": {"v": {"vector": [1, 2, 3.1], "k": 1}}}})
        assert hit["hits"]["hits"][0]["_source"] == {"t": "running dogs", "v": [1, 2, 3]}
        stem = real_node.request("POST", "/smoke/_search", {"query": {"match": {"t": "run"}}})
        assert stem["hits"]["total"]["value"] == 1  # english stemming: running -> run
    finally:
        real_node.request("DELETE", "/smoke")
        real_node.request("DELETE", "/_ingest/pipeline/smoke")
