"""Highlighting (unified and plain) as OpenSearch 2.19.6 answered the same requests (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.node._asgi import AsgiNode

LONG = ("The quick brown fox jumps over the lazy dog. A second sentence mentions nothing. Then the fox runs away "
        "quickly! Foxes are clever animals, and a fox is quick. ") * 3


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    node.ok("PUT", "/hl", {"mappings": {"properties": {"t": {"type": "text"}, "e": {"type": "text", "analyzer": "english"},
                                                      "k": {"type": "keyword"}, "m": {"type": "text"}}}})
    node.ok("PUT", "/hl/_doc/1", {"t": "The quick brown fox jumps over the lazy dog", "e": "Running foxes were running",
                                  "k": "fox", "m": ["a fox here", "nothing", "another Fox"]})
    node.ok("PUT", "/hl/_doc/2", {"t": LONG})
    yield node
    node.close()


def _hl(n: AsgiNode, query: dict[str, Any], highlight: dict[str, Any]) -> dict[str, Any]:
    res = n.ok("POST", "/hl/_search", {"query": query, "highlight": highlight, "_source": False})
    return {h["_id"]: h.get("highlight") for h in res["hits"]["hits"]}


def test_unified_whole_values_and_analysis(n: AsgiNode) -> None:
    assert _hl(n, {"match": {"e": "run fox"}}, {"fields": {"e": {}}}) == {
        "1": {"e": ["<em>Running</em> <em>foxes</em> were <em>running</em>"]}}
    assert _hl(n, {"match": {"m": "fox"}}, {"fields": {"m": {}}}) == {"1": {"m": ["a <em>fox</em> here", "another <em>Fox</em>"]}}
    assert _hl(n, {"term": {"k": "fox"}}, {"fields": {"k": {}}}) == {"1": {"k": ["<em>fox</em>"]}}
    assert _hl(n, {"match": {"t": "fox"}}, {"require_field_match": False, "fields": {"t": {}, "m": {}}})["1"] == {
        "t": ["The quick brown <em>fox</em> jumps over the lazy dog"], "m": ["a <em>fox</em> here", "another <em>Fox</em>"]}
    q = {"bool": {"must": [{"match": {"t": "quick"}}], "should": [{"match": {"t": "lazy"}}],
                  "must_not": [{"match": {"t": "cat"}}]}}
    assert _hl(n, q, {"fields": {"t": {}}})["1"] == {"t": ["The <em>quick</em> brown fox jumps over the <em>lazy</em> dog"]}


def test_fragments(n: AsgiNode) -> None:
    got = _hl(n, {"match": {"t": "fox dog"}}, {"fields": {"t": {}}})["2"]["t"]
    assert got[:2] == ["The quick brown <em>fox</em> jumps over the lazy <em>dog</em>. A second sentence mentions nothing.",
                       "Then the <em>fox</em> runs away quickly! Foxes are clever animals, and a <em>fox</em> is quick."]
    assert len(got) == 5
    assert _hl(n, {"match": {"t": "fox"}}, {"fields": {"t": {"fragment_size": 30, "number_of_fragments": 2}}})["2"] == {
        "t": ["The quick brown <em>fox</em> jumps over", "Then the <em>fox</em> runs away quickly!"]}
    assert _hl(n, {"match": {"t": "fox"}}, {"fields": {"t": {"type": "plain", "fragment_size": 30,
                                                             "number_of_fragments": 2}}}) == {
        "2": {"t": ["The quick brown <em>fox</em> jumps", " <em>fox</em> runs away quickly! Foxes"]},
        "1": {"t": ["The quick brown <em>fox</em> jumps over the lazy dog"]}}
    whole = _hl(n, {"match": {"t": "fox"}}, {"pre_tags": ["<b>"], "post_tags": ["</b>"],
                                             "fields": {"t": {"number_of_fragments": 0}}})["2"]["t"]
    assert len(whole) == 1 and whole[0].endswith("a <b>fox</b> is quick.")
    r = n.request("POST", "/hl/_search", {"query": {"match": {"t": "fox"}}, "highlight": {"fields": {"t": {"type": "fvh"}}}})
    assert r.status_code == 400 and "fast vector highlighter" in r.json()["error"]["reason"]
