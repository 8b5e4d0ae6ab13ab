"""Search pipelines through the real node: hybrid queries combined by normalization / RRF pipelines,
neural_query_enricher filling model ids, default pipelines, and the REST shapes and errors.

Expected hybrid scores are recomputed here from the node's own per-sub-query scores (a plain match
search and a plain knn search), with min-max / arithmetic mean and RRF worked out in the test.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import requests

from kit.node.server import NodeServer

from .test_ingest_helpers import model_server, ok, register_models, vec

DOCS = {"1": "red shoe", "2": "blue shoe", "3": "red car", "4": "blue car red red"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with NodeServer(tmp_path_factory.mktemp("node")) as node:
        for endpoint, _calls in model_server():
            url = node.url
            models = register_models(url, endpoint)
            ok(requests.put(f"{url}/_ingest/pipeline/embed", json={"processors": [
                {"text_embedding": {"model_id": models["text"], "field_map": {"title": "title_vec"}}}]}))
            ok(requests.put(f"{url}/shop", json={
                "settings": {"index.knn": True, "index.default_pipeline": "embed"},
                "mappings": {"properties": {"title": {"type": "text"}, "title_vec": {
                    "type": "knn_vector", "dimension": 5, "space_type": "cosinesimil",
                    "method": {"name": "hnsw", "engine": "faiss"}}}}}))
            for doc_id, title in DOCS.items():
                r = requests.put(f"{url}/shop/_doc/{doc_id}", json={"title": title})
                assert r.status_code == 201, r.text
            ok(requests.post(f"{url}/shop/_refresh"))
            yield {"url": url, "models": models}


def scores(url: str, query: dict[str, Any]) -> dict[str, float]:
    hits = ok(requests.post(f"{url}/shop/_search", json={"query": query, "size": 10}))["hits"]["hits"]
    return {h["_id"]: h["_score"] for h in hits}


def min_max(s: dict[str, float]) -> dict[str, float]:
    lo, hi = min(s.values()), max(s.values())
    out = {}
    for k, v in s.items():
        n = 1.0 if hi == lo else (v - lo) / (hi - lo)
        out[k] = 0.001 if n == 0 else n
    return out


MATCH = {"match": {"title": "red"}}
NEURAL_NO_MODEL = {"neural": {"title_vec": {"query_text": "red shoe", "k": 4}}}


def test_hybrid_min_max_arithmetic_with_enricher(env: dict[str, Any]) -> None:
    url, models = env["url"], env["models"]
    ok(requests.put(f"{url}/_search/pipeline/hybrid", json={
        "request_processors": [{"neural_query_enricher": {"default_model_id": models["text"]}}],
        "phase_results_processors": [{"normalization-processor": {
            "normalization": {"technique": "min_max"},
            "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.4, 0.6]}}}}]}))
    lexical = scores(url, MATCH)
    semantic = scores(url, {"knn": {"title_vec": {"vector": vec("red shoe"), "k": 4}}})
    assert set(lexical) == {"1", "3", "4"} and set(semantic) == {"1", "2", "3", "4"}
    nl, ns = min_max(lexical), min_max(semantic)
    expected = {d: 0.4 * nl.get(d, 0.0) + 0.6 * ns[d] for d in semantic}

    resp = ok(requests.post(f"{url}/shop/_search?search_pipeline=hybrid",
                            json={"query": {"hybrid": {"queries": [MATCH, NEURAL_NO_MODEL]}}}))
    hits = resp["hits"]["hits"]
    assert [h["_id"] for h in hits] == sorted(expected, key=lambda d: -expected[d])
    for h in hits:
        assert h["_score"] == pytest.approx(expected[h["_id"]], rel=1e-5)
    assert resp["hits"]["max_score"] == pytest.approx(max(expected.values()), rel=1e-5)


def test_default_pipeline_none_and_inline_rrf(env: dict[str, Any]) -> None:
    url, models = env["url"], env["models"]
    ok(requests.put(f"{url}/_search/pipeline/rrf-default", json={
        "request_processors": [{"neural_query_enricher": {"neural_field_default_id": {"title_vec": models["text"]}}}],
        "phase_results_processors": [{"score-ranker-processor": {"combination": {"technique": "rrf"}}}]}))
    ok(requests.put(f"{url}/shop/_settings", json={"index.search.default_pipeline": "rrf-default"}))
    try:
        lexical = scores(url, MATCH)
        semantic = scores(url, {"knn": {"title_vec": {"vector": vec("red shoe"), "k": 4}}})
        rank_l = {d: i + 1 for i, d in enumerate(sorted(lexical, key=lambda d: -lexical[d]))}
        rank_s = {d: i + 1 for i, d in enumerate(sorted(semantic, key=lambda d: -semantic[d]))}
        expected = {d: (1 / (60 + rank_l[d]) if d in rank_l else 0.0) + 1 / (60 + rank_s[d]) for d in semantic}
        hits = ok(requests.post(f"{url}/shop/_search",
                                json={"query": {"hybrid": {"queries": [MATCH, NEURAL_NO_MODEL]}}}))["hits"]["hits"]
        assert {h["_id"]: h["_score"] for h in hits} == pytest.approx(expected, rel=1e-5)

        none = requests.post(f"{url}/shop/_search?search_pipeline=_none",
                             json={"query": {"hybrid": {"queries": [MATCH, MATCH]}}})
        from kit.node.engine import HYBRID_START_STOP
        assert none.status_code == 200 and none.json()["hits"]["hits"][0]["_score"] == HYBRID_START_STOP

        inline = ok(requests.post(f"{url}/shop/_search", json={  # inline beats the index default
            "query": {"hybrid": {"queries": [MATCH, {"neural": {"title_vec": {
                "query_text": "red shoe", "k": 4, "model_id": models["text"]}}}]}},
            "search_pipeline": {"phase_results_processors": [{"normalization-processor": {
                "combination": {"technique": "geometric_mean"}}}]}}))
        nl, ns = min_max(lexical), min_max(semantic)
        geo = {d: (nl[d] * ns[d]) ** 0.5 if d in nl else ns[d] for d in semantic}
        assert {h["_id"]: h["_score"] for h in inline["hits"]["hits"]} == pytest.approx(geo, rel=1e-5)
    finally:
        ok(requests.put(f"{url}/shop/_settings", json={"index.search.default_pipeline": None}))


def test_search_pipeline_rest_shapes_and_errors(env: dict[str, Any]) -> None:
    url = env["url"]
    body = {"description": "d", "phase_results_processors": [{"normalization-processor": {
        "normalization": {"technique": "min_max"},
        "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.3, 0.7]}}}}]}
    assert ok(requests.put(f"{url}/_search/pipeline/shape", json=body)) == {"acknowledged": True}
    assert ok(requests.get(f"{url}/_search/pipeline/shape")) == {"shape": body}
    assert "shape" in ok(requests.get(f"{url}/_search/pipeline"))
    missing = requests.get(f"{url}/_search/pipeline/missing-one")
    assert (missing.status_code, missing.json()) == (404, {})

    bad = requests.put(f"{url}/_search/pipeline/bad", json={"phase_results_processors": [{"normalization-processor": {
        "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.3, 0.8]}}}}]})
    assert bad.status_code == 400
    assert bad.json()["error"]["root_cause"][0] == {
        "type": "illegal_argument_exception",
        "reason": "sum of weights for combination must be equal to 1.0, submitted weights: [0.3, 0.8]"}
    assert requests.get(f"{url}/_search/pipeline/bad").status_code == 404

    three = requests.post(f"{url}/shop/_search?search_pipeline=shape",
                          json={"query": {"hybrid": {"queries": [MATCH, MATCH, MATCH]}}})
    assert three.status_code == 400
    assert three.json()["error"]["reason"] == "number of weights [2] must match number of sub-queries [3] in hybrid query"

    undefined = requests.post(f"{url}/shop/_search?search_pipeline=ghost", json={"query": MATCH})
    assert (undefined.status_code, undefined.json()["error"]["reason"]) == (400, "Pipeline ghost is not defined")

    assert ok(requests.delete(f"{url}/_search/pipeline/shape")) == {"acknowledged": True}
    gone = requests.delete(f"{url}/_search/pipeline/shape")
    assert (gone.status_code, gone.json()["error"]["type"]) == (404, "resource_not_found_exception")
