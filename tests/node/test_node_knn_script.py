"""The k-NN exact-search scoring script (``script_score`` with ``knn_score``, lang ``knn``): scores to
the last float32 bit of OpenSearch 2.19.6's, with and without a pre-filter, and the plugin's errors.
Expected values were captured from a real 2.19.6 node (tests/node/realnode/knn_score_2.19.6.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from tests.node._asgi import AsgiNode

REAL = json.loads((Path(__file__).parent / "realnode" / "knn_score_2.19.6.json").read_text())


def _script(field: str, value: Any, space: str) -> dict[str, Any]:
    return {"source": "knn_score", "lang": "knn", "params": {"field": field, "query_value": value, "space_type": space}}


def _search(n: AsgiNode, index: str, query: dict[str, Any], script: dict[str, Any], **extra: Any) -> Any:
    return n.request("POST", f"/{index}/_search", {"query": {"script_score": {"query": query, "script": script, **extra}}})


def _hits(r: Any) -> list[tuple[str, float]]:
    assert r.status_code == 200, r.text
    return [(h["_id"], h["_score"]) for h in r.json()["hits"]["hits"]]


def _same(got: list[tuple[str, float]], expected: list[list[Any]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in expected]
    for (_, s), (_, e) in zip(got, expected):
        assert np.float32(s) == np.float32(e), (s, e)  # the real node writes Float.toString of the same float


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data", version="2.19.6")
    node.ok("PUT", "/kc", {"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": 16,
              "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}},
        "g": {"type": "keyword"}}}})
    for i, v in enumerate(REAL["kc"]["vecs"]):
        node.ok("PUT", f"/kc/_doc/{i}", {"v": v, "g": "even" if i % 2 == 0 else "odd"})
    node.ok("PUT", "/kv", {"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": 3, "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}},
        "n": {"type": "long"}, "b": {"type": "binary"}, "bd": {"type": "binary", "doc_values": True},
        "c": {"type": "keyword"}}}})
    docs = [{"v": [1, 2, 3], "n": [9, 2], "b": "AQI=", "bd": "AQI=", "c": "a"},
            {"v": [-1.5, 0.25, 2], "n": -1, "bd": "/w==", "c": "b"},
            {"c": "a", "n": "12", "bd": "AAAAAAAAAAAAAAAAAAAAAAAAAAE="},
            {"v": [0, 0, 0], "c": "b", "bd": ["Aw==", "AQ=="]}]
    for i, d in enumerate(docs, 1):
        node.ok("PUT", f"/kv/_doc/{i}", d)
    yield node
    node.close()


@pytest.mark.parametrize("space", ["l2", "l1", "linf", "cosinesimil", "innerproduct"])
@pytest.mark.parametrize("prefilter", [False, True])
def test_scores_match_the_plugin(n: AsgiNode, space: str, prefilter: bool) -> None:
    query = {"bool": {"filter": [{"term": {"g": "even"}}]}} if prefilter else {"match_all": {}}
    got = _hits(_search(n, "kc", query, _script("v", REAL["kc"]["q"], space)))
    _same(got, REAL["kc"]["res"][space + ("_f" if prefilter else "")])


@pytest.mark.parametrize("space", ["l2", "l1", "linf", "cosinesimil", "innerproduct"])
def test_scores_above_32_dimensions(tmp_path: Path, space: str) -> None:
    # Lucene's VectorUtil switches to four fused multiply-add accumulators above 32 dimensions
    node = AsgiNode(tmp_path / "d50", version="2.19.6")
    try:
        node.ok("PUT", "/k50", {"settings": {"index.knn": True}, "mappings": {"properties": {"v": {
            "type": "knn_vector", "dimension": 50, "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}}}}})
        for i, v in enumerate(REAL["k50"]["vecs"]):
            node.ok("PUT", f"/k50/_doc/{i}", {"v": v})
        _same(_hits(_search(node, "k50", {"match_all": {}}, _script("v", REAL["k50"]["q"], space))),
              REAL["k50"]["res"][space])
    finally:
        node.close()


def test_small_index_boost_min_score_and_missing_vectors(n: AsgiNode) -> None:
    q = [0.5, -1, 2.5]
    # a document without a vector scores 0.0 and is still a hit; a zero vector has cosine 0
    assert _hits(_search(n, "kv", {"match_all": {}}, _script("v", q, "l2"))) == \
        [("2", pytest.approx(0.14678898)), ("4", pytest.approx(0.11764706)), ("1", pytest.approx(0.0952381)), ("3", 0.0)]
    assert _hits(_search(n, "kv", {"match_all": {}}, _script("v", q, "cosinesimil")))[2:] == [("4", 0.5), ("3", 0.0)]
    assert _hits(_search(n, "kv", {"match_all": {}}, _script("v", q, "innerproduct"))) == \
        [("1", 7.0), ("2", 5.0), ("4", 1.0), ("3", 0.0)]
    # boost multiplies (in float), min_score drops after the boost; the pre-filter limits the documents
    got = _hits(_search(n, "kv", {"term": {"c": "a"}}, _script("v", q, "l2"), boost=2))
    assert got == [("1", pytest.approx(0.1904762)), ("3", 0.0)]
    assert np.float32(got[0][1]) == np.float32(0.1904762)
    got = _hits(_search(n, "kv", {"bool": {"filter": {"term": {"c": "b"}}}}, _script("v", q, "l2"), min_score=0.12))
    assert got == [("2", pytest.approx(0.14678898))]


def test_hammingbit_long_and_binary(n: AsgiNode) -> None:
    # long: the smallest value of a multi-valued field (sorted doc values), 64-bit two's complement
    got = _hits(_search(n, "kv", {"match_all": {}}, _script("n", 3, "hammingbit")))
    assert [(i, np.float32(s)) for i, s in got] == [("1", np.float32(0.5)), ("3", np.float32(0.2)),
                                                    ("2", np.float32(0.015873017)), ("4", np.float32(0.0))]
    got = _hits(_search(n, "kv", {"match_all": {}}, _script("bd", "Aw==", "hammingbit")))
    assert [(i, np.float32(s)) for i, s in got] == [("3", np.float32(0.5)), ("4", np.float32(0.5)),
                                                    ("1", np.float32(0.33333334)), ("2", np.float32(0.14285715))]


def _error(r: Any) -> tuple[int, str, str, str]:
    e = r.json()["error"]
    return r.status_code, e["type"], e["root_cause"][0]["type"], e["root_cause"][0]["reason"]


def test_errors_as_the_plugin(n: AsgiNode) -> None:
    q = [0.5, -1, 2.5]
    shard = ("search_phase_execution_exception", "query_shard_exception")
    cases = [
        (_script("v", q, "bogus"), "Invalid space type. Please refer to the available space types."),
        (_script("v", q, "hamming"), "Incompatible field_type for hamming space. The data type should be [BINARY] but got FLOAT"),
        (_script("v", q, "hammingbit"), "Incompatible field_type for hammingbit space. The field type must of type long or binary."),
        (_script("c", q, "l2"), "Incompatible field_type for l2 space. The field type must be knn_vector."),
        (_script("nosuch", q, "l2"), "Incompatible field_type for l2 space. The field type must be knn_vector."),
        (_script("v", [0.5, -1], "l2"), "Object's length=2 does not match the expected length=3."),
        (_script("n", "3", "hammingbit"), "Object cannot be parsed as a Long."),
        ({"source": "knn_score", "lang": "knn", "params": {"query_value": q, "space_type": "l2"}},
         "Missing parameter [field]"),
    ]
    for script, reason in cases:
        r = _search(n, "kv", {"match_all": {}}, script)
        assert _error(r) == (400, *shard, f"failed to create query: {reason}")
        assert r.json()["error"]["failed_shards"][0]["reason"]["caused_by"]["reason"] == reason
    r = _search(n, "kv", {"match_all": {}}, _script("b", "Aw==", "hammingbit"))
    assert _error(r) == (400, "search_phase_execution_exception", "illegal_argument_exception",
                         "Can't load fielddata on [b] because fielddata is unsupported on fields of type [binary]. "
                         "Use doc values instead.")
    r = _search(n, "kv", {"match_all": {}}, {"source": "other", "lang": "knn", "params": {}})
    assert _error(r) == (400, "search_phase_execution_exception", "illegal_argument_exception", "Unknown script name other")
    # parse errors of the query itself
    r = n.request("POST", "/kv/_search", {"query": {"script_score": {"script": _script("v", q, "l2")}}})
    assert _error(r)[1:] == ("parsing_exception", "parsing_exception", "[script_score] requires 'query' field")
    r = n.request("POST", "/kv/_search", {"query": {"script_score": {"query": {"match_all": {}}}}})
    assert _error(r)[3] == "[script_score] requires 'script' field"
    stats = n.ok("GET", "/_plugins/_knn/stats")
    node_stats = next(iter(stats["nodes"].values()))
    assert node_stats["script_query_errors"] >= len(cases) and node_stats["script_query_requests"] > 0


def test_painless_is_refused_by_name(n: AsgiNode) -> None:
    for q in ({"script_score": {"query": {"match_all": {}}, "script": {"source": "knn_score", "params": {}}}},
              {"script_score": {"query": {"match_all": {}}, "script": "_score * 2"}},
              {"script_score": {"query": {"match_all": {}},
                                "script": {"source": "l2Squared(params.q, doc['v'])", "lang": "painless"}}},
              {"script": {"script": {"source": "doc['n'].value > 1"}}}):
        r = n.request("POST", "/kv/_search", {"query": q})
        assert r.status_code == 400
        assert "Painless scripts" in r.json()["error"]["reason"], r.text
        assert "not supported by the oskit embedded node" in r.json()["error"]["reason"]
    r = n.request("POST", "/kv/_search", {"query": {"script_score": {"query": {"match_all": {}},
                                                                    "script": {"id": "stored-one"}}}})
    assert "stored scripts" in r.json()["error"]["reason"]


def test_cosine_before_2_19_is_one_plus_cos(tmp_path: Path) -> None:
    node = AsgiNode(tmp_path / "old", version="2.18.0")
    try:
        node.ok("PUT", "/k", {"settings": {"index.knn": True}, "mappings": {"properties": {"v": {
            "type": "knn_vector", "dimension": 2, "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}}}}})
        node.ok("PUT", "/k/_doc/1", {"v": [1, 0]})
        node.ok("PUT", "/k/_doc/2", {"v": [-1, 0]})
        assert _hits(_search(node, "k", {"match_all": {}}, _script("v", [1, 0], "cosinesimil"))) == \
            [("1", 2.0), ("2", 0.0)]
    finally:
        node.close()


def test_script_sort_is_refused_naming_painless(n: AsgiNode) -> None:
    r = n.request("POST", "/kv/_search", {"sort": [{"_script": {"type": "number", "order": "asc",
                                                                "script": {"source": "doc['n'].value"}}}]})
    assert r.status_code == 400
    assert r.json()["error"]["reason"].startswith("[_script sort (Painless scripts)] is not supported")


def test_object_path_case_insensitive_space_and_zero_cosine(tmp_path: Path) -> None:
    # OpenSearch 2.19.6 on an index without index.knn: [["0", 0.6666667], ["2", 0.0]], "L2" is l2
    node = AsgiNode(tmp_path / "kf", version="2.19.6")
    try:
        node.ok("PUT", "/kf", {"mappings": {"properties": {"o": {"properties": {"v": {"type": "knn_vector", "dimension": 2}}},
                                                           "g": {"type": "keyword"}}}})
        for i, d in enumerate([{"o": {"v": [1, 1]}, "g": "a"}, {"o": {"v": [2, -1]}, "g": "b"}, {"g": "a"}]):
            node.ok("PUT", f"/kf/_doc/{i}", d)
        only_a = {"bool": {"filter": [{"term": {"g": "a"}}]}}
        got = _hits(_search(node, "kf", only_a, _script("o.v", [0.5, 0.5], "l2")))
        assert [(i, np.float32(s)) for i, s in got] == [("0", np.float32(0.6666667)), ("2", np.float32(0.0))]
        assert _hits(_search(node, "kf", only_a, _script("o.v", [1, 0], "L2"))) == [("0", 0.5), ("2", 0.0)]
        r = _search(node, "kf", only_a, _script("o.v", [0, 0], "cosinesimil"))
        assert _error(r)[3] == "failed to create query: zero vector is not supported when space type is [cosinesimil]"
    finally:
        node.close()


def test_cosine_above_the_source_limit_stays_within_float_rounding(n: AsgiNode, monkeypatch: pytest.MonkeyPatch) -> None:
    import kit.node.knn_script as ks

    monkeypatch.setattr(ks, "EXACT_COSINE_SOURCE_LIMIT", 2)  # 6 documents: the normalised-vector path
    got = _hits(_search(n, "kc", {"match_all": {}}, _script("v", REAL["kc"]["q"], "cosinesimil")))
    expected = REAL["kc"]["res"]["cosinesimil"]
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert all(abs(s - e) < 1e-6 for (_, s), (_, e) in zip(got, expected))
