"""Fidelity fixes driven over HTTP: ``_id``/``ids`` queries, ``_bulk`` ids and pipeline batching,
truncate_hits' size fallback, and hybrid queries without a combining search pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from kit.node.engine import HYBRID_DELIMITER, HYBRID_START_STOP
from tests.node._asgi import AsgiNode


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    yield node
    node.close()


def _bulk(n: AsgiNode, lines: list[dict[str, Any]], path: str = "/_bulk", **params: str) -> dict[str, Any]:
    raw = "".join(json.dumps(line) + "\n" for line in lines)
    r = n.request("POST", path, raw=raw, params={"refresh": "true", **params},
                  headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _ids(res: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in res["hits"]["hits"]]


def _books(n: AsgiNode) -> None:
    n.ok("PUT", "/books", {"mappings": {"properties": {"title": {"type": "text"}, "year": {"type": "integer"}}}})
    _bulk(n, [{"index": {"_index": "books", "_id": "book1"}}, {"title": "To Kill a Mockingbird", "year": 1960},
              {"index": {"_index": "books", "_id": "book2"}}, {"title": "1984", "year": 1949},
              {"index": {"_index": "books", "_id": "book3"}}, {"title": "The Great Gatsby", "year": 1925}])


# ---- _id / ids (ML Commons searches model groups and connectors this way)


def test_term_terms_and_ids_match_document_ids(n: AsgiNode) -> None:
    _books(n)

    def search(query: dict[str, Any]) -> dict[str, Any]:
        res: dict[str, Any] = n.ok("POST", "/books/_search", {"query": query})
        return res

    res = search({"term": {"_id": "book2"}})
    assert _ids(res) == ["book2"] and res["hits"]["hits"][0]["_score"] == 1.0
    assert sorted(_ids(search({"terms": {"_id": ["book1", "book3", "nope"]}}))) == ["book1", "book3"]
    res = search({"ids": {"values": ["book3", "book1"], "boost": 2.0}})
    assert sorted(_ids(res)) == ["book1", "book3"] and {h["_score"] for h in res["hits"]["hits"]} == {2.0}
    assert search({"ids": {"values": []}})["hits"]["total"]["value"] == 0
    # in a bool filter, as ML Commons' model group search does
    res = search({"bool": {"filter": [{"terms": {"_id": ["book2"]}}], "must": [{"match_all": {}}]}})
    assert _ids(res) == ["book2"]
    assert sorted(_ids(search({"term": {"_index": "bo*"}}))) == ["book1", "book2", "book3"]
    assert n.ok("POST", "/books/_count", {"query": {"ids": {"values": ["book1"]}}})["count"] == 1
    bad = n.request("POST", "/books/_search", {"query": {"ids": {"value": ["book1"]}}})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "parsing_exception"


# ---- _bulk


def test_bulk_without_id_returns_the_generated_id(n: AsgiNode) -> None:
    out = _bulk(n, [{"index": {"_index": "gen"}}, {"a": 1}, {"create": {}}, {"a": 2}], path="/gen/_bulk")
    ids = [next(iter(item.values()))["_id"] for item in out["items"]]
    assert all(isinstance(i, str) and len(i) == 20 for i in ids) and len(set(ids)) == 2
    for i in ids:
        assert n.ok("GET", f"/gen/_doc/{i}")["found"] is True
    # a source that does not parse is rejected on the shard, after the id was generated
    raw = '{"index":{"_index":"gen"}}\n{not json}\n'
    r = n.request("POST", "/_bulk", raw=raw, headers={"content-type": "application/x-ndjson"})
    item = r.json()["items"][0]["index"]
    assert item["status"] == 400 and isinstance(item["_id"], str)


def test_bulk_dropped_item_keeps_op_type_and_placeholder_id(n: AsgiNode) -> None:
    n.ok("PUT", "/_ingest/pipeline/drop", {"processors": [{"drop": {}}]})
    out = _bulk(n, [{"create": {"_index": "d"}}, {"a": 1}, {"index": {"_index": "d", "_id": "x"}}, {"a": 2}],
                pipeline="drop")
    assert out["items"][0] == {"create": {"_index": "d", "_id": "auto-generated", "_version": -3, "result": "noop",
                                          "_shards": {"total": 0, "successful": 0, "failed": 0}, "status": 200}}
    assert out["items"][1]["index"]["_id"] == "x" and out["items"][1]["index"]["result"] == "noop"


class _RecordingML:
    """Stands in for ML Commons at the engine.ml boundary: one vector per text, calls recorded."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict(self, model_id: str, body: dict[str, Any], *, algorithm: str = "text_embedding") -> dict[str, Any]:
        texts = list(body["text_docs"])
        self.calls.append(texts)
        return {"inference_results": [{"output": [{"name": "sentence_embedding", "data_type": "FLOAT32",
                                                    "shape": [2], "data": [float(len(t)), 1.0]}]} for t in texts]}


def test_bulk_runs_text_embedding_in_batches_of_batch_size(n: AsgiNode) -> None:
    ml = _RecordingML()
    n.engine.ml = ml
    n.ok("PUT", "/_ingest/pipeline/emb", {"processors": [
        {"text_embedding": {"model_id": "m", "field_map": {"t": "v"}, "batch_size": 2}}]})
    n.ok("PUT", "/_ingest/pipeline/fin", {"processors": [{"set": {"field": "final", "value": True}}]})
    n.ok("PUT", "/e", {"settings": {"index.default_pipeline": "emb", "index.final_pipeline": "fin"}})
    lines: list[dict[str, Any]] = []
    for i, text in enumerate(["aaaa", "b", "cc", "ddd", "eeeee"]):
        lines += [{"index": {"_index": "e", "_id": str(i)}}, {"t": text}]
    lines += [{"index": {"_index": "e", "_id": "bad"}}, {"t": 7}]
    out = _bulk(n, lines)
    # five texts, batch_size 2: three predict calls (each batch sent shortest first), not five
    assert ml.calls == [["b", "aaaa"], ["cc", "ddd"], ["eeeee"]]
    assert [next(iter(i.values()))["status"] for i in out["items"]] == [201] * 5 + [400]
    assert out["errors"] is True and out["items"][5]["index"]["_id"] == "bad"
    assert n.ok("GET", "/e/_doc/3")["_source"] == {"t": "ddd", "v": [3.0, 1.0], "final": True}


# ---- search pipeline response processors


def test_truncate_hits_falls_back_to_request_size(n: AsgiNode) -> None:
    _books(n)
    n.ok("PUT", "/_search/pipeline/trunc", {"response_processors": [{"truncate_hits": {}}]})
    res = n.ok("POST", "/books/_search", {"size": 2, "query": {"match_all": {}}},
               params={"search_pipeline": "trunc"})
    assert len(res["hits"]["hits"]) == 2
    res = n.ok("POST", "/books/_search", {"query": {"match_all": {}}},
               params={"search_pipeline": "trunc", "size": "1"})
    assert len(res["hits"]["hits"]) == 1


# ---- hybrid without a normalization/score-ranker pipeline: neural-search's raw compound format


def test_hybrid_without_pipeline_returns_raw_compound_format(n: AsgiNode) -> None:
    _books(n)
    kill = n.ok("POST", "/books/_search", {"query": {"match": {"title": "Kill"}}})["hits"]["hits"][0]["_score"]
    gatsby = n.ok("POST", "/books/_search", {"query": {"match": {"title": "Gatsby"}}})["hits"]["hits"][0]["_score"]
    body = {"query": {"hybrid": {"queries": [{"match": {"title": "Kill"}}, {"match": {"title": "Gatsby"}}],
                                 "pagination_depth": 10}}}
    res = n.ok("POST", "/books/_search", body)
    hits = res["hits"]
    # start, delimiter, sub-query 1, delimiter, sub-query 2, stop; markers carry the first hit's document
    assert [(h["_id"], h["_score"]) for h in hits["hits"]] == [
        ("book1", HYBRID_START_STOP), ("book1", HYBRID_DELIMITER), ("book1", kill),
        ("book1", HYBRID_DELIMITER), ("book3", gatsby), ("book1", HYBRID_START_STOP)]
    assert HYBRID_START_STOP == -9.549512e9 and HYBRID_DELIMITER == -4.4224404e9
    assert hits["total"] == {"value": 2, "relation": "eq"} and hits["max_score"] == max(kill, gatsby)
    assert hits["hits"][0]["_source"]["title"] == "To Kill a Mockingbird"
    # size cuts the raw list; on one shard the plugin resets from to 0
    res = n.ok("POST", "/books/_search", {**body, "size": 3, "from": 2})
    assert [h["_score"] for h in res["hits"]["hits"]] == [HYBRID_START_STOP, HYBRID_DELIMITER, kill]
    none = n.ok("POST", "/books/_search", {"query": {"hybrid": {"queries": [{"match": {"title": "zzz"}}]}}})
    assert none["hits"] == {"total": {"value": 0, "relation": "eq"}, "max_score": 0.0, "hits": []}


def test_hybrid_pagination_depth_rules(n: AsgiNode) -> None:
    _books(n)
    q = {"hybrid": {"queries": [{"match_all": {}}]}}

    def err(body: dict[str, Any]) -> str:
        r = n.request("POST", "/books/_search", body)
        assert r.status_code == 400, r.text
        reason: str = r.json()["error"]["reason"]
        return reason

    assert err({"from": 1, "query": q}) == "pagination_depth param is missing in the search request"
    assert err({"query": {"hybrid": {**q["hybrid"], "pagination_depth": -1}}}) == \
        "pagination_depth should be greater than 0"
    assert err({"query": {"hybrid": {**q["hybrid"], "pagination_depth": 10001}}}) == \
        "pagination_depth should be less than or equal to index.max_result_window setting"
    assert err({"query": {"hybrid": {**q["hybrid"], "foo": 1}}}) == "Field is not supported by [hybrid] query"
    # pagination_depth bounds what each sub-query contributes (here: 1 hit each)
    res = n.ok("POST", "/books/_search", {"query": {"hybrid": {**q["hybrid"], "pagination_depth": 1}}})
    assert len(res["hits"]["hits"]) == 4
    # with a normalization pipeline, from/size page over the combined results
    n.ok("PUT", "/_search/pipeline/norm", {"phase_results_processors": [{"normalization-processor": {}}]})
    body = {"from": 1, "size": 1, "query": {"hybrid": {"queries": [{"match": {"title": "Kill Gatsby"}}],
                                                        "pagination_depth": 5}}}
    res = n.ok("POST", "/books/_search", body, params={"search_pipeline": "norm"})
    assert len(res["hits"]["hits"]) == 1 and res["hits"]["total"]["value"] == 2


# ---- template query (TemplateQueryBuilder): content rewritten with the pipeline's context variables


def test_template_query_runs_its_content(n: AsgiNode) -> None:
    _books(n)
    res = n.ok("POST", "/books/_search", {"query": {"template": {"match": {"title": "Gatsby"}}}})
    plain = n.ok("POST", "/books/_search", {"query": {"match": {"title": "Gatsby"}}})
    assert _ids(res) == ["book3"] and res["hits"]["max_score"] == plain["hits"]["max_score"]
    res = n.ok("POST", "/books/_search", {"query": {"bool": {"filter": [{"template": {"ids": {"values": ["book2"]}}}]}}})
    assert _ids(res) == ["book2"]
    # no ml_inference processor sets variables: a placeholder stays a literal string, as in OpenSearch
    assert n.ok("POST", "/books/_search", {"query": {"template": {"match": {"title": "${text}"}}}})[
        "hits"]["total"]["value"] == 0
    r = n.request("POST", "/books/_search", {"query": {"template": {"range": {"year": "${y}"}}}})
    assert r.status_code == 500 and r.json()["error"]["type"] == "i_o_exception"
    assert r.json()["error"]["reason"] == 'Failed to rewrite template query: {"range":{"year":"${y}"}}'
    assert r.json()["error"]["caused_by"]["type"] == "parsing_exception"


def test_over_a_socket_ids_bulk_ids_and_raw_hybrid(node: Any) -> None:
    """The same fixes through the real server (uvicorn on a free port), as clients see them."""
    import requests

    url = node.url
    index = "fidelity-socket"
    requests.delete(f"{url}/{index}", timeout=30)
    raw = "".join(json.dumps(x) + "\n" for x in [
        {"index": {"_index": index}}, {"title": "red shoe"}, {"index": {"_index": index, "_id": "k"}},
        {"title": "blue shoe"}])
    r = requests.post(f"{url}/_bulk?refresh=true", data=raw, timeout=30,
                      headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200
    generated = r.json()["items"][0]["index"]["_id"]
    assert isinstance(generated, str)
    res = requests.post(f"{url}/{index}/_search", json={"query": {"ids": {"values": [generated]}}}, timeout=30).json()
    assert [h["_id"] for h in res["hits"]["hits"]] == [generated]
    red = requests.post(f"{url}/{index}/_search", json={"query": {"match": {"title": "red"}}},
                        timeout=30).json()["hits"]["hits"][0]["_score"]
    res = requests.post(f"{url}/{index}/_search", timeout=30, json={"query": {"hybrid": {"queries": [
        {"match": {"title": "red"}}, {"term": {"_id": "k"}}]}}}).json()
    assert [(h["_id"], h["_score"]) for h in res["hits"]["hits"]] == [
        (generated, HYBRID_START_STOP), (generated, HYBRID_DELIMITER), (generated, red),
        (generated, HYBRID_DELIMITER), ("k", 1.0), (generated, HYBRID_START_STOP)]
    requests.delete(f"{url}/{index}", timeout=30)
