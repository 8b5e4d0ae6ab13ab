"""Search ``highlight`` (unified and plain): every answer below is OpenSearch 2.19.6's for the same
request, captured with kit.realnode (tests/node/realnode/highlight_*.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from kit.node.highlight import intro_sort, sentence_breaks
from tests.node._asgi import AsgiNode

HERE = Path(__file__).parent / "realnode"
CASES = json.loads((HERE / "highlight_cases_2.19.6.json").read_text())
RANDOM = json.loads((HERE / "highlight_random_2.19.6.json").read_text())


@pytest.fixture(scope="module")
def n(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path_factory.mktemp("hl") / "data", version="2.19.6")
    node.ok("PUT", "/hl", {"mappings": {"properties": {"t": {"type": "text"}, "e": {"type": "text", "analyzer": "english"},
                                                       "k": {"type": "keyword"}, "n": {"type": "long"}}}})
    for i, d in CASES["docs"].items():
        node.ok("PUT", f"/hl/_doc/{i}", d)
    node.ok("PUT", "/hr", {"mappings": {"properties": {"t": {"type": "text"}, "e": {"type": "text", "analyzer": "english"}}}})
    for i, d in RANDOM["docs"].items():
        node.ok("PUT", f"/hr/_doc/{i}", {"t": d["t"], "e": d["t"]})
    node.ok("PUT", "/sb", {"mappings": {"properties": {"t": {"type": "text"}}}})
    for i, text in enumerate(CASES["sentences"]["probes"]):
        node.ok("PUT", f"/sb/_doc/{i}", {"t": text})
    yield node
    node.close()


def _reason(err: dict[str, Any]) -> tuple[str, str]:
    rc = err["error"]["root_cause"][0]
    return rc["type"], re.sub(r"^\[\d+:\d+\] ", "", rc["reason"])  # the node reports no parse positions


@pytest.mark.parametrize("name", sorted(CASES["cases"]))
def test_same_answer_as_opensearch(n: AsgiNode, name: str) -> None:
    case = CASES["cases"][name]
    r = n.request("POST", "/hl/_search", {"query": case["query"], "highlight": case["highlight"], "_source": False})
    expected = case["result"]
    if isinstance(expected, dict):
        assert r.status_code == expected["status"]
        assert _reason(r.json()) == _reason(expected)
        assert r.json()["error"]["type"] == expected["error"]["type"]
        return
    assert r.status_code == 200, r.text
    got = {h["_id"]: h.get("highlight") for h in r.json()["hits"]["hits"]}
    assert got == {i: hl for i, hl in expected}


@pytest.mark.parametrize("i", range(len(RANDOM["cases"])))
def test_random_texts_as_opensearch(n: AsgiNode, i: int) -> None:
    case = RANDOM["cases"][i]
    r = n.ok("POST", "/hr/_search", {"size": 30, "_source": False, "query": {"match": {case["field"]: case["q"]}},
                                    "highlight": {"fields": {case["field"]: case["h"]}}})
    got = {h["_id"]: h.get("highlight") for h in r["hits"]["hits"]}
    assert {k: got.get(k) for k in case["hits"]} == case["hits"]


def test_sentence_boundaries_as_java(n: AsgiNode) -> None:
    r = n.ok("POST", "/sb/_search", {"size": 100, "_source": False, "query": {"match": {"t": "zz"}}, "highlight": {
        "fields": {"t": {"fragment_size": 0, "number_of_fragments": 10, "pre_tags": ["["], "post_tags": ["]"]}}}})
    got = {h["_id"]: h["highlight"]["t"] for h in r["hits"]["hits"]}
    assert got == CASES["sentences"]["res"]
    assert sentence_breaks("Hi there. Next one! and more? e.g. this.") == [0, 10, 20, 30, 40]


def test_response_shape(n: AsgiNode) -> None:
    r = n.ok("POST", "/hl/_search", {"query": {"match": {"t": "fox"}}, "sort": [{"k": "asc"}, "_score"],
                                    "highlight": {"fields": {"t": {"number_of_fragments": 1}, "k": {}}}})
    hit = r["hits"]["hits"][0]
    assert list(hit) == ["_index", "_id", "_score", "_source", "highlight", "sort"]
    assert hit["highlight"] == {"t": ["third <em>fox</em> value <em>fox</em>"]}
    # nothing to highlight: no highlight key at all
    r = n.ok("POST", "/hl/_search", {"query": {"match_all": {}}, "highlight": {"fields": {"t": {}}}})
    assert all("highlight" not in h for h in r["hits"]["hits"])


def test_highlight_in_a_scroll_and_with_painless_named(n: AsgiNode) -> None:
    first = n.ok("POST", "/hl/_search", {"size": 1, "query": {"match": {"t": "fox"}}, "highlight": {"fields": {"t": {}}}},
                 params={"scroll": "1m"})
    nxt = n.ok("POST", "/_search/scroll", {"scroll": "1m", "scroll_id": first["_scroll_id"]})
    assert "highlight" in first["hits"]["hits"][0] and "highlight" in nxt["hits"]["hits"][0]
    r = n.request("POST", "/hl/_search", {"script_fields": {"x": {"script": "1"}}})
    assert r.status_code == 400 and "Painless" in r.json()["error"]["reason"]


def test_intro_sort_keeps_lucenes_order_of_ties() -> None:
    items = [(i % 3, i) for i in range(40)]
    intro_sort(items, lambda a, b: b[0] - a[0])
    assert [x[0] for x in items] == sorted((x[0] for x in items), reverse=True)
    assert len({x[1] for x in items}) == 40


H3 = CASES["h3"]


@pytest.fixture(scope="module")
def n3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path_factory.mktemp("h3") / "data", version="2.19.6")
    node.ok("PUT", "/h3", {"mappings": H3["mappings"]})
    for i, d in H3["docs"].items():
        node.ok("PUT", f"/h3/_doc/{i}", d)
    yield node
    node.close()


@pytest.mark.parametrize("name", sorted(H3["cases"]))
def test_queries_fields_and_paths_as_opensearch(n3: AsgiNode, name: str) -> None:
    # multi_match, terms, term on text, boosts, object paths (nested objects, dotted keys), multi-fields,
    # wildcard field names, numbers in text fields, _source filtering, no_match_size, script_score's inner query
    case = H3["cases"][name]
    r = n3.request("POST", "/h3/_search", {"query": case["query"], "highlight": case["highlight"],
                                          "_source": case["source"]})
    expected = case["result"]
    if isinstance(expected, dict):
        assert r.json()["error"]["root_cause"][0]["reason"] == expected["error"]["root_cause"][0]["reason"]
        return
    got = {h["_id"]: [h.get("highlight"), h.get("_source")] for h in r.json()["hits"]["hits"]}
    assert got == {i: [hl, src] for i, hl, src in expected}
