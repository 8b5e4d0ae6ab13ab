"""The k-NN plugin's exact-search script (script_score + knn_score, lang knn), every space type, with and
without a pre-filter. Expected scores are what OpenSearch 2.19.6 (k-NN 2.19.6.0) answered (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.node._asgi import AsgiNode

DOCS = [{"v": [1, 2, 3], "c": "a", "h": 5, "b": "AQ=="}, {"v": [-1, 0.5, 2], "c": "b", "h": -7, "b": "Aw=="},
        {"v": [0, 0, 0], "c": "a", "h": 0, "b": "AAE="}, {"c": "a"}]


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    node.ok("PUT", "/kv", {"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": 3, "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}},
        "c": {"type": "keyword"}, "h": {"type": "long"}, "b": {"type": "binary"}}}})
    for i, d in enumerate(DOCS):
        node.ok("PUT", f"/kv/_doc/{i}", d)
    yield node
    node.close()


def _q(space: str, value: Any = (1.0, 1.0, 1.0), field: str = "v", inner: Any = None) -> dict[str, Any]:
    return {"_source": False, "query": {"script_score": {"query": inner or {"match_all": {}}, "script": {
        "source": "knn_score", "lang": "knn", "params": {"field": field, "query_value": list(value) if
                                                         isinstance(value, tuple) else value, "space_type": space}}}}}


def _hits(n: AsgiNode, body: dict[str, Any]) -> list[tuple[str, float]]:
    return [(h["_id"], pytest.approx(h["_score"], abs=1e-6)) for h in n.ok("POST", "/kv/_search", body)["hits"]["hits"]]


@pytest.mark.parametrize("space,expected", [
    ("l2", [("2", 0.25), ("0", 0.1666667), ("1", 0.16), ("3", 0.0)]),
    ("l1", [("0", 0.25), ("2", 0.25), ("1", 0.2222222), ("3", 0.0)]),
    ("linf", [("2", 0.5), ("0", 0.3333333), ("1", 0.3333333), ("3", 0.0)]),
    ("cosinesimil", [("0", 0.9629100), ("1", 0.6889822), ("2", 0.5), ("3", 0.0)]),
    ("innerproduct", [("0", 7.0), ("1", 2.5), ("2", 1.0), ("3", 0.0)]),
])
def test_every_space(n: AsgiNode, space: str, expected: list[tuple[str, float]]) -> None:
    assert _hits(n, _q(space)) == expected


def test_hamming_and_pre_filter(n: AsgiNode) -> None:
    assert _hits(n, _q("hammingbit", 3, "h")) == [("0", 0.3333333), ("2", 0.3333333), ("1", 0.015873), ("3", 0.0)]
    assert _hits(n, _q("hammingbit", "Aw==", "b")) == [("1", 1.0), ("0", 0.5), ("2", 0.5), ("3", 0.0)]
    assert _hits(n, _q("l2", inner={"term": {"c": "a"}})) == [("2", 0.25), ("0", 0.1666667), ("3", 0.0)]
    body = _q("l2")
    body["query"]["script_score"].update({"min_score": 0.1, "boost": 2})
    assert _hits(n, body) == [("2", 0.5), ("0", 0.3333333), ("1", 0.32)]


def test_errors_are_shard_failures(n: AsgiNode) -> None:
    for body, reason in [(_q("l2", [1, 2]), "Object's length=2 does not match the expected length=3."),
                         (_q("nope"), "Invalid space type. Please refer to the available space types."),
                         (_q("l2", field="c"), "Incompatible field_type for l2 space. The field type must be knn_vector.")]:
        r = n.request("POST", "/kv/_search", body)
        err = r.json()["error"]
        assert (r.status_code, err["type"], err["root_cause"][0]["reason"]) == (
            400, "search_phase_execution_exception", f"failed to create query: {reason}")
    r = n.request("POST", "/kv/_search", {"query": {"script_score": {"query": {"match_all": {}},
                                                                    "script": {"source": "doc['h'].value"}}}})
    assert r.status_code == 400 and "Painless" in r.json()["error"]["reason"]
