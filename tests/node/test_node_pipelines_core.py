"""The core's side of the pipeline contracts: default ingest pipelines on writes and _bulk, search
pipelines (param and index default), hybrid queries combined by the phase-results processor."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.node._asgi import AsgiNode


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    yield node
    node.close()


def test_default_and_explicit_ingest_pipelines(n: AsgiNode) -> None:
    n.ok("PUT", "/_ingest/pipeline/tag", {"processors": [{"set": {"field": "tagged", "value": "yes"}}]})
    n.ok("PUT", "/_ingest/pipeline/other", {"processors": [{"set": {"field": "other", "value": 1}}]})
    n.ok("PUT", "/_ingest/pipeline/dropper", {"processors": [{"drop": {}}]})
    n.ok("PUT", "/p", {"settings": {"index.default_pipeline": "tag"}})
    n.ok("PUT", "/p/_doc/1", {"a": 1})
    assert n.ok("GET", "/p/_doc/1")["_source"] == {"a": 1, "tagged": "yes"}
    n.ok("PUT", "/p/_doc/2", {"a": 2}, params={"pipeline": "other"})
    assert n.ok("GET", "/p/_doc/2")["_source"] == {"a": 2, "other": 1}
    n.ok("PUT", "/p/_doc/3", {"a": 3}, params={"pipeline": "_none"})
    assert n.ok("GET", "/p/_doc/3")["_source"] == {"a": 3}
    r = n.request("PUT", "/p/_doc/4", {"a": 4}, params={"pipeline": "nope"})
    assert r.status_code >= 400
    bulk = "\n".join(['{"index": {"_index": "p", "_id": "5"}}', '{"a": 5}',
                      '{"index": {"_index": "p", "_id": "6", "pipeline": "nope"}}', '{"a": 6}',
                      '{"index": {"_index": "p", "_id": "7", "pipeline": "dropper"}}', '{"a": 7}']) + "\n"
    res = n.ok("POST", "/_bulk", raw=bulk)
    assert res["errors"] is True
    assert res["items"][0]["index"]["status"] == 201 and res["items"][1]["index"]["status"] >= 400
    assert n.ok("GET", "/p/_doc/5")["_source"] == {"a": 5, "tagged": "yes"}
    assert n.request("GET", "/p/_doc/7").status_code == 404  # dropped, nothing written


def _hybrid_index(n: AsgiNode) -> None:
    n.ok("PUT", "/h", {"settings": {"index.knn": True}, "mappings": {"properties": {
        "title": {"type": "text"}, "vec": {"type": "knn_vector", "dimension": 2,
                                           "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2"}}}}})
    docs = {"1": ("red shoes", [0.0, 0.0]), "2": ("red hat", [5.0, 5.0]), "3": ("blue shoes", [0.5, 0.0])}
    for i, (t, v) in docs.items():
        n.ok("PUT", f"/h/_doc/{i}", {"title": t, "vec": v})
    n.ok("PUT", "/_search/pipeline/norm", {"phase_results_processors": [{"normalization-processor": {
        "normalization": {"technique": "min_max"},
        "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.5, 0.5]}}}}]})


def _hybrid_body() -> dict[str, Any]:
    return {"query": {"hybrid": {"queries": [{"match": {"title": "red"}},
                                             {"knn": {"vec": {"vector": [0.0, 0.0], "k": 3}}}]}}}


def test_hybrid_with_normalization_pipeline(n: AsgiNode) -> None:
    _hybrid_index(n)
    res = n.ok("POST", "/h/_search", _hybrid_body(), params={"search_pipeline": "norm"})
    hits = res["hits"]["hits"]
    # doc 1 is best in both sub-queries → 1.0; the rest follow the min_max/arithmetic_mean math
    assert hits[0]["_id"] == "1" and hits[0]["_score"] == pytest.approx(1.0)
    assert {h["_id"] for h in hits} == {"1", "2", "3"}
    assert res["hits"]["max_score"] == pytest.approx(1.0)
    # the same through the index's default search pipeline
    n.ok("PUT", "/h/_settings", {"index.search.default_pipeline": "norm"})
    res2 = n.ok("POST", "/h/_search", _hybrid_body())
    assert [h["_id"] for h in res2["hits"]["hits"]] == [h["_id"] for h in hits]
    # _none bypasses the default → nothing combines the sub-queries → neural-search's raw compound format
    from kit.node.engine import HYBRID_START_STOP
    r = n.request("POST", "/h/_search", _hybrid_body(), params={"search_pipeline": "_none"})
    assert r.status_code == 200 and r.json()["hits"]["hits"][0]["_score"] == HYBRID_START_STOP


def test_search_pipeline_request_processor_applies(n: AsgiNode) -> None:
    _hybrid_index(n)
    n.ok("PUT", "/_search/pipeline/only_red", {"request_processors": [{"filter_query": {
        "query": {"match": {"title": "red"}}}}]})
    res = n.ok("POST", "/h/_search", {"query": {"match_all": {}}}, params={"search_pipeline": "only_red"})
    assert sorted(h["_id"] for h in res["hits"]["hits"]) == ["1", "2"]
    r = n.request("POST", "/h/_search", {"query": {"match_all": {}}}, params={"search_pipeline": "missing"})
    assert r.status_code == 404 or r.status_code == 400


def test_template_default_pipeline_applies_to_auto_created_index_in_bulk(n: AsgiNode) -> None:
    n.ok("PUT", "/_ingest/pipeline/tag", {"processors": [{"set": {"field": "tagged", "value": True}}]})
    n.ok("PUT", "/_index_template/t", {"index_patterns": ["auto-*"],
                                      "template": {"settings": {"index.default_pipeline": "tag"}}})
    res = n.ok("POST", "/_bulk", raw='{"index": {"_index": "auto-1", "_id": "1"}}\n{"a": 1}\n')
    assert res["errors"] is False
    assert n.ok("GET", "/auto-1/_doc/1")["_source"] == {"a": 1, "tagged": True}
