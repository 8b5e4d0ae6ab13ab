"""Search semantics: Lucene BM25 numbers, analyzers, query DSL, sort/paging/_source, k-NN score formulas."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from kit.node.analysis import english, standard
from kit.node.lexical import byte4_to_int, int_to_byte4
from tests.node._asgi import AsgiNode


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    yield node
    node.close()


def _ids(res: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in res["hits"]["hits"]]


def _search(n: AsgiNode, index: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
    return n.ok("POST", f"/{index}/_search", body, params=params or None)


def test_analyzers() -> None:
    assert standard("The Quick-Brown fox's 3.14 U.S.A") == ["the", "quick", "brown", "fox's", "3.14", "u.s.a"]
    assert english("The dogs' running jumps, John's cats") == ["dog", "run", "jump", "john", "cat"]


def test_norm_encoding_matches_lucene_smallfloat() -> None:
    # SmallFloat.intToByte4 is exact below 24 and lossy above (e.g. 100 → 96, 1000 → 984 in Lucene)
    assert [byte4_to_int(int_to_byte4(i)) for i in (0, 1, 23, 24, 25, 100, 1000)] == [0, 1, 23, 24, 25, 96, 984]


def test_bm25_scores_are_lucene_numbers(n: AsgiNode) -> None:
    n.ok("PUT", "/t", {"mappings": {"properties": {"title": {"type": "text"}}}})
    for i, text in enumerate(["the quick brown fox", "quick quick fox", "lazy dog"], 1):
        n.ok("PUT", f"/t/_doc/{i}", {"title": text})
    res = _search(n, "t", {"query": {"match": {"title": "quick"}}})
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    avgdl = 9 / 3
    expect = {"1": idf * 1 / (1 + 1.2 * (0.25 + 0.75 * 4 / avgdl)), "2": idf * 2 / (2 + 1.2 * (0.25 + 0.75 * 3 / avgdl))}
    got = {h["_id"]: h["_score"] for h in res["hits"]["hits"]}
    assert _ids(res) == ["2", "1"]
    for k, v in expect.items():
        assert got[k] == pytest.approx(v, rel=1e-6)
    # or-match sums the per-term scores; operator and requires all terms
    both = _search(n, "t", {"query": {"match": {"title": {"query": "quick dog", "operator": "and"}}}})
    assert _ids(both) == []
    either = _search(n, "t", {"query": {"match": {"title": "quick dog"}}})
    assert sorted(_ids(either)) == ["1", "2", "3"]


def test_english_analyzer_stems(n: AsgiNode) -> None:
    n.ok("PUT", "/e", {"mappings": {"properties": {"tags": {"type": "text", "analyzer": "english"},
                                                   "plain": {"type": "text"}}}})
    n.ok("PUT", "/e/_doc/1", {"tags": "running dogs", "plain": "running dogs"})
    assert _ids(_search(n, "e", {"query": {"match": {"tags": "run dog"}}})) == ["1"]
    assert _ids(_search(n, "e", {"query": {"match": {"plain": "run dog"}}})) == []


def test_query_dsl(n: AsgiNode) -> None:
    n.ok("PUT", "/q", {"mappings": {"properties": {
        "title": {"type": "text"}, "body": {"type": "text"}, "tag": {"type": "keyword"},
        "year": {"type": "integer"}, "date": {"type": "date"}, "ok": {"type": "boolean"}}}})
    docs = [
        {"title": "red shoes", "body": "running", "tag": "shoe", "year": 2001, "date": "2020-01-01", "ok": True},
        {"title": "blue hat", "body": "red trim", "tag": "hat", "year": 2010, "date": "2021-06-01T10:00:00Z", "ok": False},
        {"title": "green scarf", "tag": "scarf", "year": 2020, "ok": True},
    ]
    for i, d in enumerate(docs, 1):
        n.ok("PUT", f"/q/_doc/{i}", d)
    assert _ids(_search(n, "q", {"query": {"term": {"tag": "hat"}}})) == ["2"]
    assert sorted(_ids(_search(n, "q", {"query": {"terms": {"tag": ["hat", "shoe"]}}}))) == ["1", "2"]
    assert _ids(_search(n, "q", {"query": {"range": {"year": {"gte": 2005, "lt": 2020}}}})) == ["2"]
    assert _ids(_search(n, "q", {"query": {"range": {"date": {"gt": "2020-06-01"}}}})) == ["2"]
    assert sorted(_ids(_search(n, "q", {"query": {"exists": {"field": "body"}}}))) == ["1", "2"]
    assert sorted(_ids(_search(n, "q", {"query": {"term": {"ok": True}}}))) == ["1", "3"]
    mm = _search(n, "q", {"query": {"multi_match": {"query": "red", "fields": ["title^2", "body"]}}})
    assert _ids(mm) == ["1", "2"]
    b = _search(n, "q", {"query": {"bool": {"must": [{"match": {"title": "red"}}],
                                            "filter": [{"range": {"year": {"lte": 2001}}}],
                                            "must_not": [{"term": {"tag": "hat"}}]}}})
    assert _ids(b) == ["1"]
    only_filter = _search(n, "q", {"query": {"bool": {"filter": {"term": {"tag": "scarf"}}}}})
    assert only_filter["hits"]["hits"][0]["_score"] == 0.0
    assert _search(n, "q", {"query": {"match_all": {}}})["hits"]["hits"][0]["_score"] == 1.0


def test_sort_paging_source_and_total(n: AsgiNode) -> None:
    for i in range(25):
        n.ok("PUT", f"/p/_doc/{i}", {"n": i, "k": f"k{i % 3}", "nested": {"a": i, "b": "x"}})
    res = _search(n, "p", {"sort": [{"n": "desc"}], "size": 3, "from": 2, "_source": ["nested.a"]})
    assert _ids(res) == ["22", "21", "20"]
    assert res["hits"]["hits"][0]["sort"] == [22] and res["hits"]["hits"][0]["_score"] is None
    assert res["hits"]["hits"][0]["_source"] == {"nested": {"a": 22}}
    assert res["hits"]["total"] == {"value": 25, "relation": "eq"} and res["hits"]["max_score"] is None
    ex = _search(n, "p", {"size": 1, "_source": {"excludes": ["nested"]}, "sort": ["n"]})
    assert ex["hits"]["hits"][0]["_source"] == {"n": 0, "k": "k0"}
    assert "total" not in _search(n, "p", {"track_total_hits": False})["hits"]
    capped = _search(n, "p", {"track_total_hits": 10, "size": 0})
    assert capped["hits"]["total"] == {"value": 10, "relation": "gte"} and capped["hits"]["hits"] == []
    r = n.request("POST", "/p/_search", {"sort": [{"k.keyword": "asc"}, {"n": "desc"}], "size": 2})
    assert _ids(r.json()) == ["24", "21"]
    r = n.request("POST", "/p/_search", {"from": 9999, "size": 2})
    assert r.status_code == 400 and "Result window is too large" in r.json()["error"]["root_cause"][0]["reason"]


def test_unsupported_features_are_named(n: AsgiNode) -> None:
    n.ok("PUT", "/u/_doc/1", {"a": "b"})
    for body, feature in [({"aggs": {"x": {"percentiles": {"field": "a"}}}}, "percentiles"),
                          ({"query": {"fuzzy": {"a": "c"}}}, "fuzzy"),
                          ({"collapse": {"field": "a"}}, "collapse"),
                          ({"script_fields": {"x": {"script": "1"}}}, "Painless")]:
        r = n.request("POST", "/u/_search", body)
        assert r.status_code == 400 and feature in r.json()["error"]["reason"]
    r = n.request("POST", "/u/_search", {"query": {"no_such_query": {}}})
    assert r.json()["error"]["type"] == "parsing_exception"
    assert r.json()["error"]["reason"] == "unknown query [no_such_query]"


# ----------------------------------------------------------------------------------------- k-NN
def _knn_index(n: AsgiNode, space: str, dim: int = 3, engine: str = "faiss") -> None:
    n.ok("PUT", "/v", {"settings": {"index.knn": True}, "mappings": {"properties": {
        "vec": {"type": "knn_vector", "dimension": dim,
                "method": {"name": "hnsw", "engine": engine, "space_type": space,
                           "parameters": {"m": 8, "ef_construction": 64}}},
        "color": {"type": "keyword"}}}})


@pytest.mark.parametrize("space", ["l2", "cosinesimil", "innerproduct"])
def test_knn_scores_follow_opensearch_formulas(n: AsgiNode, space: str) -> None:
    _knn_index(n, space)
    vecs = {"a": [1.0, 0.0, 0.0], "b": [0.0, 2.0, 0.0], "c": [-1.0, -1.0, 0.5]}
    for k, v in vecs.items():
        n.ok("PUT", f"/v/_doc/{k}", {"vec": v, "color": "red" if k != "b" else "blue"})
    q = np.array([0.5, 1.0, 0.0], dtype=np.float32)
    res = _search(n, "v", {"query": {"knn": {"vec": {"vector": q.tolist(), "k": 3}}}})
    got = {h["_id"]: h["_score"] for h in res["hits"]["hits"]}

    def expected(v: list[float]) -> float:
        x = np.array(v, dtype=np.float32)
        if space == "l2":
            return float(1 / (1 + np.sum((x - q) ** 2)))
        if space == "cosinesimil":
            return float((1 + x @ q / (np.linalg.norm(x) * np.linalg.norm(q))) / 2)
        dot = float(x @ q)
        return 1 + dot if dot > 0 else 1 / (1 - dot)

    for k, v in vecs.items():
        assert got[k] == pytest.approx(expected(v), rel=1e-5)
    assert _ids(res) == sorted(vecs, key=lambda k: -expected(vecs[k]))


def test_knn_k_size_filter_and_radial(n: AsgiNode) -> None:
    _knn_index(n, "l2", dim=2)
    for i in range(20):
        n.ok("PUT", f"/v/_doc/{i}", {"vec": [float(i), 0.0], "color": "red" if i % 2 else "blue"})
    res = _search(n, "v", {"size": 10, "query": {"knn": {"vec": {"vector": [0, 0], "k": 3}}}})
    assert _ids(res) == ["0", "1", "2"] and res["hits"]["total"]["value"] == 3
    res = _search(n, "v", {"size": 2, "query": {"knn": {"vec": {"vector": [0, 0], "k": 5}}}})
    assert _ids(res) == ["0", "1"] and res["hits"]["total"]["value"] == 5
    res = _search(n, "v", {"query": {"knn": {"vec": {"vector": [0, 0], "k": 3,
                                                     "filter": {"term": {"color": "red"}}}}}})
    assert _ids(res) == ["1", "3", "5"]
    res = _search(n, "v", {"query": {"knn": {"vec": {"vector": [0, 0], "max_distance": 4.0}}}})
    assert _ids(res) == ["0", "1", "2"]  # squared l2 distance ≤ 4
    res = _search(n, "v", {"query": {"knn": {"vec": {"vector": [0, 0], "min_score": 0.5}}}})
    assert _ids(res) == ["0", "1"]  # 1/(1+d) ≥ 0.5


def test_knn_hnsw_above_threshold_has_high_recall(n: AsgiNode) -> None:
    n.ok("PUT", "/h", {"settings": {"index.knn": True, "index.knn.advanced.approximate_threshold": 100},
                       "mappings": {"properties": {"vec": {"type": "knn_vector", "dimension": 16,
                                                           "space_type": "innerproduct",
                                                           "method": {"name": "hnsw", "engine": "faiss"}}}}})
    rng = np.random.default_rng(0)
    data = rng.standard_normal((600, 16)).astype(np.float32)
    lines = []
    for i, v in enumerate(data):
        lines.append('{"index": {"_index": "h", "_id": "%d"}}' % i)
        lines.append('{"vec": [%s]}' % ",".join(f"{x:.6f}" for x in v))
    n.ok("POST", "/_bulk", raw="\n".join(lines) + "\n")
    vf = n.engine.indices["h"]._vectors["vec"]
    vf.wait_for_graph()
    assert vf._graph is not None and vf._graph.ntotal + vf._buf_n == 600
    q = rng.standard_normal(16).astype(np.float32)
    exact = [str(i) for i in np.argsort(-(data @ q))[:10]]
    res = _search(n, "h", {"query": {"knn": {"vec": {"vector": q.tolist(), "k": 10}}}})
    assert len(set(_ids(res)) & set(exact)) >= 9


def test_knn_mapping_rules(n: AsgiNode) -> None:
    r = n.request("PUT", "/x1", {"settings": {"index.knn": True}, "mappings": {"properties": {"v": {
        "type": "knn_vector", "dimension": 3, "method": {"name": "hnsw", "engine": "nmslib"}}}}})
    assert r.status_code == 400 and r.json()["error"]["type"] == "mapper_parsing_exception"
    assert "nmslib engine is deprecated" in r.json()["error"]["reason"]
    r = n.request("PUT", "/x2", {"mappings": {"properties": {"v": {
        "type": "knn_vector", "dimension": 3, "method": {"name": "hnsw", "engine": "faiss"}}}}})
    assert r.json()["error"]["reason"] == ("Failed to parse mapping [_doc]: Cannot set modelId or method parameters "
                                           "when index.knn setting is false")  # OpenSearch 2.19.6
    assert r.json()["error"]["caused_by"]["type"] == "illegal_argument_exception"
    _knn_index(n, "cosinesimil")  # faiss + cosinesimil is fine on 3.x
    r = n.request("PUT", "/v/_doc/1", {"vec": [1, 2]})
    err = r.json()["error"]
    assert r.status_code == 400 and err["type"] == "mapper_parsing_exception"
    assert err["caused_by"]["reason"] == "Vector dimension mismatch. Expected: 3, Given: 2"
    r = n.request("POST", "/v/_search", {"query": {"knn": {"vec": {"vector": [1, 2], "k": 1}}}})
    assert r.status_code == 400


def test_faiss_cosine_rejected_before_2_19(tmp_path: Path) -> None:
    old = AsgiNode(tmp_path / "old", version="2.17.0")
    try:
        r = old.request("PUT", "/v", {"settings": {"index.knn": True}, "mappings": {"properties": {"v": {
            "type": "knn_vector", "dimension": 3,
            "method": {"name": "hnsw", "engine": "faiss", "space_type": "cosinesimil"}}}}})
        assert r.status_code == 400 and "cosinesimil" in r.json()["error"]["reason"]
        assert old.ok("GET", "/")["version"]["number"] == "2.17.0"
    finally:
        old.close()


def test_neural_without_model_id_and_hybrid_without_pipeline(n: AsgiNode) -> None:
    _knn_index(n, "l2")
    n.ok("PUT", "/v/_doc/1", {"vec": [1, 0, 0]})
    r = n.request("POST", "/v/_search", {"query": {"neural": {"vec": {"query_text": "hi", "k": 1}}}})
    assert r.status_code == 400 and r.json()["error"]["reason"] == (
        "model id must be provided in neural query or a default model id must be set in search request processor")
    # without a combining search pipeline neural-search answers 200 with its raw compound format
    r = n.request("POST", "/v/_search", {"query": {"hybrid": {"queries": [{"match_all": {}}]}}})
    from kit.node.engine import HYBRID_START_STOP
    assert r.status_code == 200 and r.json()["hits"]["hits"][0]["_score"] == HYBRID_START_STOP


class _RecordingML:
    """Stands in for ML Commons at the engine.ml boundary: records the predict call, returns a vector."""

    def __init__(self, vector: list[float]) -> None:
        self.vector = vector
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def predict(self, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((model_id, body))
        return {"inference_results": [{"output": [{"name": "sentence_embedding", "data_type": "FLOAT32",
                                                   "shape": [len(self.vector)], "data": self.vector}]}]}


def test_neural_query_embeds_then_runs_knn(n: AsgiNode) -> None:
    _knn_index(n, "l2", dim=2)
    for i, (v, color) in enumerate([([0, 0], "red"), ([1, 0], "blue"), ([5, 5], "red")]):
        n.ok("PUT", f"/v/_doc/{i}", {"vec": v, "color": color})
    ml = _RecordingML([0.9, 0.0])
    real_ml = n.engine.ml
    n.engine.ml = ml
    try:
        res = _search(n, "v", {"query": {"neural": {"vec": {"query_text": "a cat", "model_id": "m1", "k": 2}}}})
        assert _ids(res) == ["1", "0"]
        assert ml.calls[-1] == ("m1", {"text_docs": ["a cat"], "target_response": ["sentence_embedding"]})
        res = _search(n, "v", {"query": {"neural": {"vec": {"query_image": "aW1n", "model_id": "m1", "k": 2,
                                                            "filter": {"term": {"color": "red"}}}}}})
        assert _ids(res) == ["0", "2"]
        assert ml.calls[-1][1]["text_docs"] == [None, "aW1n"]
    finally:
        n.engine.ml = real_ml
