"""Issue 14's silent differences: each answered 200 with a wrong result before (values from OpenSearch 2.19.6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.node._asgi import AsgiNode

DOCS = ["the quick brown fox", "lazy dog jumps", "quick quick fox", "a b c d e f"]


def _load(n: AsgiNode) -> None:
    n.ok("PUT", "/p1", {"mappings": {"properties": {"t": {"type": "text"}, "k": {"type": "keyword"}}}})
    for i, t in enumerate(DOCS):
        n.ok("PUT", f"/p1/_doc/d{i}", {"t": t, "k": f"k{i % 2}"})


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    _load(node)
    yield node
    node.close()


@pytest.fixture()
def n2(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data2", version="2.19.0")
    _load(node)
    yield node
    node.close()


def _hits(res: dict[str, Any]) -> list[tuple[str, float]]:
    return [(h["_id"], h["_score"]) for h in res["hits"]["hits"]]


def test_match_on_id_finds_the_document(n: AsgiNode) -> None:
    res = n.ok("POST", "/p1/_search", {"query": {"match": {"_id": "d1"}}})
    assert _hits(res) == [("d1", 1.0)]
    # the whole query string is one id, as on a keyword field (no analysis)
    assert n.ok("POST", "/p1/_search", {"query": {"match": {"_id": {"query": "d1 d2"}}}})["hits"]["hits"] == []
    assert _hits(n.ok("POST", "/p1/_search", {"query": {"term": {"_id": "d2"}}})) == [("d2", 1.0)]


def test_bm25_follows_the_reported_version(n: AsgiNode, n2: AsgiNode) -> None:
    q = {"query": {"match": {"t": "quick fox"}}}
    assert _hits(n2.ok("POST", "/p1/_search", q)) == [("d2", pytest.approx(1.7972722, abs=1e-6)),
                                                        ("d0", pytest.approx(1.3862942, abs=1e-6))]
    three = _hits(n.ok("POST", "/p1/_search", q))
    assert three == [("d2", pytest.approx(1.7972722 / 2.2, abs=1e-6)), ("d0", pytest.approx(1.3862942 / 2.2, abs=1e-6))]
    # keyword terms too (OpenSearch 2.19.6: 0.6931471)
    kw = _hits(n2.ok("POST", "/p1/_search", {"query": {"term": {"k": "k1"}}}))
    assert kw == [("d1", pytest.approx(0.6931471, abs=1e-6)), ("d3", pytest.approx(0.6931471, abs=1e-6))]


def test_scroll_returns_a_scroll_id_and_pages_through_everything(n: AsgiNode) -> None:
    first = n.ok("POST", "/p1/_search", {"size": 3, "sort": ["_doc"]}, params={"scroll": "1m"})
    sid = first["_scroll_id"]
    seen = [h["_id"] for h in first["hits"]["hits"]]
    while True:
        page = n.ok("POST", "/_search/scroll", {"scroll": "1m", "scroll_id": sid})
        if not page["hits"]["hits"]:
            break
        seen += [h["_id"] for h in page["hits"]["hits"]]
        sid = page["_scroll_id"]
    assert sorted(seen) == ["d0", "d1", "d2", "d3"]
    assert n.ok("DELETE", "/_search/scroll", {"scroll_id": [sid]}) == {"succeeded": True, "num_freed": 1}


def test_analyze_routes(n: AsgiNode) -> None:
    expected = {"tokens": [
        {"token": "hello", "start_offset": 0, "end_offset": 5, "type": "<ALPHANUM>", "position": 0},
        {"token": "world", "start_offset": 6, "end_offset": 11, "type": "<ALPHANUM>", "position": 1}]}
    assert n.ok("POST", "/p1/_analyze", {"text": "Hello World", "field": "t"}) == expected
    assert n.ok("GET", "/_analyze", {"text": "Hello World", "analyzer": "standard"}) == expected


def test_get_mappings_plural(n: AsgiNode) -> None:
    assert n.ok("GET", "/p1/_mappings") == {"p1": {"mappings": {"properties": {"k": {"type": "keyword"},
                                                                                "t": {"type": "text"}}}}}


def test_analyze_matches_opensearch(n: AsgiNode) -> None:
    # OpenSearch 2.19.6's answers: multi-valued text continues offsets (+1) and positions (+100)
    res = n.ok("POST", "/p1/_analyze", {"text": ["The dogs' running", "U.S.A 3.14 日本 カタカナ"], "analyzer": "english"})
    assert [(t["token"], t["start_offset"], t["end_offset"], t["type"], t["position"]) for t in res["tokens"]] == [
        ("dog", 4, 8, "<ALPHANUM>", 1), ("run", 10, 17, "<ALPHANUM>", 2), ("u.s.a", 18, 23, "<ALPHANUM>", 103),
        ("3.14", 24, 28, "<NUM>", 104), ("日", 29, 30, "<IDEOGRAPHIC>", 105), ("本", 30, 31, "<IDEOGRAPHIC>", 106),
        ("カタカナ", 32, 36, "<KATAKANA>", 107)]
    # the gap between texts is the analyzer's: 0 for a global analyzer or a tokenizer chain (the story
    # default/_core/analyze.yaml on 2.19.6: 6, 7, ...), 100 for an index's analyzers and text fields
    two = ["Drive, directed by Nicolas Winding Refn", "Moneyball, directed by Bennett Miller"]
    positions = [t["position"] for t in n.ok("GET", "/_analyze", {"text": two, "analyzer": "standard"})["tokens"]]
    assert positions == list(range(11))
    assert [t["position"] for t in n.ok("POST", "/_analyze", {"text": two})["tokens"]] == positions
    assert [t["position"] for t in n.ok("POST", "/p1/_analyze", {"text": two, "tokenizer": "standard"})["tokens"]] \
        == positions
    assert [t["position"] for t in n.ok("POST", "/p1/_analyze", {"text": ["a b", "c"], "field": "t"})["tokens"]] \
        == [0, 1, 102]
    assert [t["position"] for t in n.ok("POST", "/p1/_analyze", {"text": ["a b", "c"]})["tokens"]] == [0, 1, 102]
    assert [t["position"] for t in n.ok("POST", "/p1/_analyze", {"text": ["a b", "c"], "field": "k"})["tokens"]] \
        == [0, 1]
    assert n.ok("POST", "/p1/_analyze", {"text": "Hello World", "field": "k"})["tokens"] == [
        {"token": "Hello World", "start_offset": 0, "end_offset": 11, "type": "word", "position": 0}]
    assert n.ok("POST", "/_analyze", {"text": "a the b", "analyzer": "stop"})["tokens"] == [
        {"token": "b", "start_offset": 6, "end_offset": 7, "type": "word", "position": 2}]
    r = n.request("POST", "/_analyze", {"text": "Hi", "field": "t"})
    assert (r.status_code, r.json()["error"]["reason"]) == (400, "analysis based on a specific field requires an index")
    r = n.request("POST", "/_analyze", {"text": "Hi", "analyzer": "nope"})
    assert (r.status_code, r.json()["error"]["reason"]) == (400, "failed to find global analyzer [nope]")
