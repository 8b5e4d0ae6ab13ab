"""Scroll, point in time, search_after and aggregations. Expected values are what OpenSearch 2.19.6
answered to the same requests (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.node._asgi import AsgiNode

DOCS = [
    {"k": "red", "n": 1, "f": 1.5, "d": "2024-01-01T10:00:00Z", "tags": ["a", "b"], "t": "quick fox"},
    {"k": "blue", "n": 5, "f": 2.25, "d": "2024-01-03T00:00:00Z", "tags": ["b"], "t": "lazy dog"},
    {"k": "red", "n": 10, "f": -3.0, "d": "2024-02-15T12:00:00Z", "tags": ["c"], "t": "quick dog"},
    {"k": "green", "n": 7, "d": "2024-03-01T00:00:00Z", "t": "fox"},
    {"n": 3, "f": 0.5, "tags": ["a"], "t": "quick"},
    {"k": "red", "f": 4.0, "d": "2023-12-31T23:59:59Z"},
]
MAPPING = {"properties": {"k": {"type": "keyword"}, "n": {"type": "integer"}, "f": {"type": "float"},
                          "d": {"type": "date"}, "tags": {"type": "keyword"}, "t": {"type": "text"}}}


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    node.ok("PUT", "/a1", {"mappings": MAPPING})
    for i, d in enumerate(DOCS):
        node.ok("PUT", f"/a1/_doc/{i}", d)
    yield node
    node.close()


def _agg(n: AsgiNode, agg: dict[str, Any]) -> Any:
    return n.ok("POST", "/a1/_search", {"size": 0, "aggs": {"x": agg}})["aggregations"]["x"]


def _ids(res: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in res["hits"]["hits"]]


def _error(n: AsgiNode, body: dict[str, Any], path: str = "/a1/_search", **params: str) -> tuple[int, str, str]:
    r = n.request("POST", path, body, params=params or None)
    err = r.json()["error"]
    return r.status_code, err["root_cause"][0]["type"], err["root_cause"][0]["reason"]


# ----------------------------------------------------------------------------------------- scroll
def test_scroll_keeps_order_and_frees_itself(n: AsgiNode) -> None:
    first = n.ok("POST", "/a1/_search", {"size": 2, "sort": [{"n": "desc"}], "_source": ["n"], "version": True},
                 params={"scroll": "1m"})
    assert list(first)[0] == "_scroll_id"
    assert [(h["_id"], h["sort"], h["_version"]) for h in first["hits"]["hits"]] == [("2", [10], 1), ("3", [7], 1)]
    sid = first["_scroll_id"]
    # without "scroll" the page comes back without an id and the context is gone (SearchScrollAction)
    second = n.ok("POST", "/_search/scroll", {"scroll_id": sid})
    assert "_scroll_id" not in second and _ids(second) == ["1", "4"]
    r = n.request("POST", "/_search/scroll", {"scroll_id": sid})
    assert r.status_code == 404
    assert r.json()["error"]["root_cause"][0]["type"] == "search_context_missing_exception"
    assert n.request("POST", "/_search/scroll", {"scroll_id": "garbage"}).json()["error"]["reason"] == \
        "Cannot parse scroll id"


def test_scroll_errors_as_opensearch(n: AsgiNode) -> None:
    assert _error(n, {"size": 3, "from": 1}, scroll="1m") == (
        400, "action_request_validation_exception", "Validation Failed: 1: using [from] is not allowed in a scroll context;")
    assert _error(n, {"size": 0}, scroll="1m")[2] == "Validation Failed: 1: [size] cannot be [0] in a scroll context;"
    assert _error(n, {"size": 3}, scroll="xyz")[2] == (
        "failed to parse setting [scroll] with value [xyz] as a time value: unit is missing or unrecognized")
    r = n.request("DELETE", "/_search/scroll", {"scroll_id": ["b3NraXQtc2Nyb2xsOjk5"]})
    assert (r.status_code, r.json()) == (404, {"succeeded": True, "num_freed": 0})


def test_clear_all_scrolls_counts_the_nodes_that_answered(n: AsgiNode) -> None:
    # ClearScrollController.cleanAllScrolls adds one per node, whatever it freed: real 2.19.6 answers 1
    # after story default/_core/search/scroll.yaml, whose two scrolls were both cleared before
    sids = [n.ok("POST", "/a1/_search", {"size": 1}, params={"scroll": "10m"})["_scroll_id"] for _ in range(2)]
    assert n.ok("DELETE", f"/_search/scroll/{sids[0]}") == {"succeeded": True, "num_freed": 1}
    assert n.ok("DELETE", "/_search/scroll", {"scroll_id": sids[1]}) == {"succeeded": True, "num_freed": 1}
    assert n.ok("DELETE", "/_search/scroll/_all") == {"succeeded": True, "num_freed": 1}
    sid = n.ok("POST", "/a1/_search", {"size": 1}, params={"scroll": "10m"})["_scroll_id"]
    assert n.ok("DELETE", "/_search/scroll", {"scroll_id": ["_all"]}) == {"succeeded": True, "num_freed": 1}
    assert n.request("POST", "/_search/scroll", {"scroll": "1m", "scroll_id": sid}).status_code == 404  # freed


def test_scan_reads_every_document_once(n: AsgiNode) -> None:
    for i in range(6, 57):
        n.ok("PUT", f"/a1/_doc/{i}", {"n": i})
    page = n.ok("POST", "/a1/_search", {"size": 5}, params={"scroll": "30s"})
    seen = _ids(page)
    while page["hits"]["hits"]:
        page = n.ok("POST", "/_search/scroll", {"scroll": "30s", "scroll_id": page["_scroll_id"]})
        seen += _ids(page)
    assert sorted(seen, key=int) == [str(i) for i in range(57)]
    assert n.ok("DELETE", "/_search/scroll/_all") == {"succeeded": True, "num_freed": 1}


# ----------------------------------------------------------------------------------------- PIT, search_after
def test_point_in_time_does_not_see_later_documents(n: AsgiNode) -> None:
    r = n.request("POST", "/a1/_search/point_in_time")
    assert r.json()["error"]["reason"] == "Validation Failed: 1: keep alive not specified;"
    pit = n.ok("POST", "/a1/_search/point_in_time", params={"keep_alive": "1m"})
    assert set(pit) == {"pit_id", "_shards", "creation_time"}
    n.ok("PUT", "/a1/_doc/late", {"n": 0})
    body = {"size": 2, "pit": {"id": pit["pit_id"], "keep_alive": "1m"}, "sort": [{"n": "asc"}]}
    res = n.ok("POST", "/_search", body)
    assert list(res)[0] == "pit_id" and res["hits"]["total"]["value"] == 6
    assert [(h["_id"], h["sort"]) for h in res["hits"]["hits"]] == [("0", [1]), ("4", [3])]
    res = n.ok("POST", "/_search", {**body, "search_after": [3]})
    assert [(h["_id"], h["sort"]) for h in res["hits"]["hits"]] == [("1", [5]), ("3", [7])]
    assert _error(n, body)[2] == "Validation Failed: 1: [indices] cannot be used with point in time;"
    listed = n.ok("GET", "/_search/point_in_time/_all")["pits"]
    assert [(p["pit_id"], p["keep_alive"]) for p in listed] == [(pit["pit_id"], 60000)]
    assert n.ok("DELETE", "/_search/point_in_time", {"pit_id": [pit["pit_id"]]}) == {
        "pits": [{"successful": True, "pit_id": pit["pit_id"]}]}
    assert _error(n, {"pit": {"id": "garbage"}}, path="/_search")[2] == "invalid id: [garbage]"


def test_search_after(n: AsgiNode) -> None:
    res = n.ok("POST", "/a1/_search", {"size": 2, "sort": [{"n": "desc"}, {"k": "asc"}], "search_after": [7, "green"]})
    assert [(h["_id"], h["sort"]) for h in res["hits"]["hits"]] == [("1", [5, "blue"]), ("4", [3, None])]
    assert _error(n, {"size": 2, "search_after": [2]}) == (400, "illegal_argument_exception",
                                                          "Sort must contain at least one field.")
    assert _error(n, {"sort": [{"n": "desc"}], "search_after": [2, 1]})[2] == "search_after has 2 value(s) but sort has 1."
    # a _score sort key shows the scores; max_score needs track_scores
    res = n.ok("POST", "/a1/_search", {"size": 2, "sort": ["_score", {"n": "asc"}], "search_after": [1.0, 3]})
    assert [(h["_id"], h["_score"], h["sort"]) for h in res["hits"]["hits"]] == [("1", 1.0, [1.0, 5]), ("3", 1.0, [1.0, 7])]
    assert res["hits"]["max_score"] is None


# ----------------------------------------------------------------------------------------- aggregations
def test_terms_and_metrics(n: AsgiNode) -> None:
    assert _agg(n, {"terms": {"field": "k"}}) == {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
        {"key": "red", "doc_count": 3}, {"key": "blue", "doc_count": 1}, {"key": "green", "doc_count": 1}]}
    assert _agg(n, {"terms": {"field": "tags", "size": 2}})["sum_other_doc_count"] == 1
    assert _agg(n, {"terms": {"field": "d"}})["buckets"][0] == {
        "key": 1704067199000, "key_as_string": "2023-12-31T23:59:59.000Z", "doc_count": 1}
    assert _agg(n, {"terms": {"field": "k", "missing": "none"}})["buckets"][-1] == {"key": "none", "doc_count": 1}
    assert _agg(n, {"avg": {"field": "n"}}) == {"value": 5.2}
    assert _agg(n, {"max": {"field": "d"}}) == {"value": 1709251200000.0, "value_as_string": "2024-03-01T00:00:00.000Z"}
    assert _agg(n, {"stats": {"field": "n"}}) == {"count": 5, "min": 1.0, "max": 10.0, "avg": 5.2, "sum": 26.0}
    assert _agg(n, {"stats": {"field": "nofield"}}) == {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0}
    assert _agg(n, {"value_count": {"field": "tags"}}) == {"value": 5}
    assert _agg(n, {"cardinality": {"field": "k"}}) == {"value": 3}
    assert _agg(n, {"avg": {"field": "n", "missing": 100}}) == {"value": 21.0}
    assert _agg(n, {"extended_stats": {"field": "n"}})["std_deviation_sampling"] == pytest.approx(3.4928498393145966)
    status, _, reason = _error(n, {"size": 0, "aggs": {"x": {"max": {"field": "k"}}}})
    assert (status, reason) == (400, "Field [k] of type [keyword] is not supported for aggregation [max]")


def test_bucket_aggregations(n: AsgiNode) -> None:
    assert _agg(n, {"histogram": {"field": "n", "interval": 5, "extended_bounds": {"min": 0, "max": 20}}}) == {
        "buckets": [{"key": 0.0, "doc_count": 2}, {"key": 5.0, "doc_count": 2}, {"key": 10.0, "doc_count": 1},
                    {"key": 15.0, "doc_count": 0}, {"key": 20.0, "doc_count": 0}]}
    assert _agg(n, {"date_histogram": {"field": "d", "calendar_interval": "1M", "format": "yyyy-MM-dd"}}) == {
        "buckets": [{"key_as_string": "2023-12-01", "key": 1701388800000, "doc_count": 1},
                    {"key_as_string": "2024-01-01", "key": 1704067200000, "doc_count": 2},
                    {"key_as_string": "2024-02-01", "key": 1706745600000, "doc_count": 1},
                    {"key_as_string": "2024-03-01", "key": 1709251200000, "doc_count": 1}]}
    assert _agg(n, {"range": {"field": "n", "ranges": [{"to": 5}, {"from": 5, "to": 8}, {"from": 8}]}}) == {
        "buckets": [{"key": "*-5.0", "to": 5.0, "doc_count": 2}, {"key": "5.0-8.0", "from": 5.0, "to": 8.0, "doc_count": 2},
                    {"key": "8.0-*", "from": 8.0, "doc_count": 1}]}
    assert _agg(n, {"date_range": {"field": "d", "ranges": [{"to": "2024-02-01"}]}})["buckets"] == [
        {"key": "*-2024-02-01T00:00:00.000Z", "to": 1706745600000.0, "to_as_string": "2024-02-01T00:00:00.000Z",
         "doc_count": 3}]
    assert _agg(n, {"filters": {"filters": {"reds": {"term": {"k": "red"}}, "blues": {"term": {"k": "blue"}}}}}) == {
        "buckets": {"blues": {"doc_count": 1}, "reds": {"doc_count": 3}}}
    assert _agg(n, {"missing": {"field": "k"}}) == {"doc_count": 1}
    assert _agg(n, {"filter": {"term": {"k": "red"}}, "aggs": {"s": {"sum": {"field": "n"}}}}) == {
        "doc_count": 3, "s": {"value": 11.0}}


def test_sub_aggregations_order_and_top_hits(n: AsgiNode) -> None:
    res = _agg(n, {"terms": {"field": "k", "order": {"avg_n": "desc"}}, "aggs": {"avg_n": {"avg": {"field": "n"}}}})
    assert [(b["key"], b["avg_n"]["value"]) for b in res["buckets"]] == [("green", 7.0), ("red", 5.5), ("blue", 5.0)]
    res = _agg(n, {"top_hits": {"size": 2, "sort": [{"n": "desc"}], "_source": ["n"]}})
    assert res == {"hits": {"total": {"value": 6, "relation": "eq"}, "max_score": None, "hits": [
        {"_index": "a1", "_id": "2", "_score": None, "_source": {"n": 10}, "sort": [10]},
        {"_index": "a1", "_id": "3", "_score": None, "_source": {"n": 7}, "sort": [7]}]}}
    res = _agg(n, {"terms": {"field": "k", "size": 1}, "aggs": {"top": {"top_hits": {"size": 1}}}})
    assert res["sum_other_doc_count"] == 2
    assert res["buckets"][0]["top"]["hits"]["hits"][0]["_id"] == "0"


def test_aggregations_ignore_post_filter_and_unknown_types_fail(n: AsgiNode) -> None:
    res = n.ok("POST", "/a1/_search", {"size": 0, "post_filter": {"term": {"k": "blue"}},
                                       "aggs": {"x": {"terms": {"field": "k"}}}})
    assert res["hits"]["total"]["value"] == 1 and len(res["aggregations"]["x"]["buckets"]) == 3
    assert _error(n, {"aggs": {"x": {"nope": {"field": "k"}}}})[2] == "Unknown aggregation type [nope]"


def test_float_doc_values_formats_and_count_errors(n: AsgiNode) -> None:
    n.ok("PUT", "/m", {"mappings": {"properties": {"v": {"type": "float"}, "y": {"type": "integer"},
                                                   "k": {"type": "keyword"}}}})
    for i, (v, y) in enumerate([(200.3, 1998), (90.2, 2011), (75.8, 1960)]):
        n.ok("PUT", f"/m/_doc/{i}", {"v": v, "y": y, "k": "x"})
    res = n.ok("POST", "/m/_search", {"size": 0, "aggs": {
        "mx": {"max": {"field": "v"}},  # a float field's doc values are float32: 200.3000030517578
        "h": {"histogram": {"field": "y", "interval": 100, "format": "##0.0"}},
        "t": {"terms": {"field": "k", "show_term_doc_count_error": True}}}})["aggregations"]
    assert res["mx"] == {"value": 200.3000030517578}
    assert res["h"]["buckets"] == [{"key_as_string": "1900.0", "key": 1900.0, "doc_count": 2},
                                   {"key_as_string": "2000.0", "key": 2000.0, "doc_count": 1}]
    assert res["t"]["buckets"] == [{"key": "x", "doc_count": 3, "doc_count_error_upper_bound": 0}]
