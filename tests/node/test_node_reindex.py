"""_reindex (with dest.pipeline), _update_by_query and _delete_by_query without scripts (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.node._asgi import AsgiNode

COUNTERS = ["took", "timed_out", "total", "updated", "created", "deleted", "batches", "version_conflicts", "noops",
            "retries", "throttled_millis", "requests_per_second", "throttled_until_millis", "failures"]


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    for i in range(5):
        node.ok("PUT", f"/movies/_doc/{i}", {"title": f"film {i}", "year": 1990 + i})
    yield node
    node.close()


def _src(n: AsgiNode, index: str, doc_id: str) -> Any:
    return n.ok("GET", f"/{index}/_doc/{doc_id}")["_source"]


def test_reindex_copies_through_the_dest_pipeline(n: AsgiNode) -> None:
    n.ok("PUT", "/_ingest/pipeline/tag", {"processors": [{"set": {"field": "copied", "value": True}}]})
    res = n.ok("POST", "/_reindex", {"source": {"index": "movies", "query": {"range": {"year": {"gte": 1992}}}},
                                     "dest": {"index": "films", "pipeline": "tag"}})
    assert list(res) == COUNTERS
    assert (res["total"], res["created"], res["updated"], res["batches"], res["failures"]) == (3, 3, 0, 1, [])
    assert _src(n, "films", "3") == {"title": "film 3", "year": 1993, "copied": True}
    again = n.ok("POST", "/_reindex", {"source": {"index": "movies"}, "dest": {"index": "films"}})
    assert (again["created"], again["updated"]) == (2, 3)


def test_reindex_op_type_create_conflicts(n: AsgiNode) -> None:
    n.ok("PUT", "/films/_doc/1", {"title": "kept"})
    body = {"source": {"index": "movies"}, "dest": {"index": "films", "op_type": "create"}}
    res = n.ok("POST", "/_reindex", body)
    # the batch is written, then the conflict ends the request and is reported (conflicts: abort)
    assert (res["created"], res["version_conflicts"], len(res["failures"])) == (4, 1, 1)
    assert res["failures"][0]["status"] == 409 and res["failures"][0]["cause"]["type"] == "version_conflict_engine_exception"
    n.ok("DELETE", "/films")
    n.ok("PUT", "/films/_doc/1", {"title": "kept"})
    res = n.ok("POST", "/_reindex", {**body, "conflicts": "proceed"})
    assert (res["created"], res["version_conflicts"], res["failures"]) == (4, 1, [])
    assert _src(n, "films", "1") == {"title": "kept"}


def test_reindex_refuses_what_it_cannot_do(n: AsgiNode) -> None:
    for body, feature in [({"source": {"index": "movies"}, "dest": {"index": "f"}, "script": {"source": "x"}}, "Painless"),
                          ({"source": {"index": "movies", "remote": {"host": "http://x:9200"}}, "dest": {"index": "f"}},
                           "remote")]:
        r = n.request("POST", "/_reindex", body)
        assert r.status_code == 400 and feature in r.json()["error"]["reason"]


def test_update_by_query_reindexes_in_place(n: AsgiNode) -> None:
    n.ok("PUT", "/_ingest/pipeline/up", {"processors": [{"uppercase": {"field": "title"}}]})
    res = n.ok("POST", "/movies/_update_by_query", {"query": {"term": {"year": 1991}}}, params={"pipeline": "up"})
    assert list(res) == [k for k in COUNTERS if k != "created"]
    assert (res["total"], res["updated"]) == (1, 1)
    doc = n.ok("GET", "/movies/_doc/1")
    assert (doc["_source"]["title"], doc["_version"]) == ("FILM 1", 2)
    assert n.ok("POST", "/movies/_update_by_query")["updated"] == 5
    r = n.request("POST", "/movies/_update_by_query", {"script": {"source": "ctx._source.x = 1"}})
    assert r.status_code == 400 and "Painless" in r.json()["error"]["reason"]


def test_delete_by_query_with_max_docs(n: AsgiNode) -> None:
    res = n.ok("POST", "/movies/_delete_by_query", {"query": {"match_all": {}}, "max_docs": 2})
    assert list(res) == [k for k in COUNTERS if k not in ("created", "updated")]
    assert (res["total"], res["deleted"]) == (2, 2)
    assert n.ok("GET", "/movies/_count")["count"] == 3
