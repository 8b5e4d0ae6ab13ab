"""The node through a real client (opensearch-py) over a socket: the basic lifecycle."""

from __future__ import annotations

from typing import Any

import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, RequestError


@pytest.fixture()
def client(fresh_node: Any) -> OpenSearch:
    return OpenSearch(fresh_node.url)


def test_info_reports_opensearch_3(client: OpenSearch) -> None:
    info = client.info()
    assert info["version"]["distribution"] == "opensearch"
    assert info["version"]["number"] == "3.3.0"


def test_index_get_search_delete(client: OpenSearch) -> None:
    client.indices.create(index="docs", body={"mappings": {"properties": {
        "title": {"type": "text"}, "tag": {"type": "keyword"}, "n": {"type": "integer"}}}})
    r = client.index(index="docs", id="1", body={"title": "Red running shoes", "tag": "shoe", "n": 3})
    assert r["result"] == "created" and r["_version"] == 1
    client.index(index="docs", id="2", body={"title": "Blue hat", "tag": "hat", "n": 7})
    assert client.get(index="docs", id="1")["_source"]["tag"] == "shoe"
    hits = client.search(index="docs", body={"query": {"match": {"title": "red shoes"}}})["hits"]
    assert [h["_id"] for h in hits["hits"]] == ["1"]
    assert client.count(index="docs", body={"query": {"range": {"n": {"gt": 3}}}})["count"] == 1
    assert client.delete(index="docs", id="1")["result"] == "deleted"
    with pytest.raises(NotFoundError):
        client.get(index="docs", id="1")


def test_errors_have_real_types(client: OpenSearch) -> None:
    with pytest.raises(NotFoundError) as e1:
        client.search(index="missing", body={})
    assert e1.value.error == "index_not_found_exception"
    client.indices.create(index="x")
    with pytest.raises(RequestError) as e2:
        client.indices.create(index="x")
    assert e2.value.error == "resource_already_exists_exception"
    with pytest.raises(RequestError) as e3:
        client.search(index="x", body={"query": {"nope": {}}})
    assert e3.value.error == "parsing_exception"


def test_session_node_fixture_serves_opensearch_py(node: Any) -> None:
    c = OpenSearch(node.url)
    name = "session-fixture-smoke"
    if c.indices.exists(index=name):
        c.indices.delete(index=name)
    c.indices.create(index=name)
    c.index(index=name, id="1", body={"x": 1}, refresh=True)
    assert c.count(index=name)["count"] == 1
    c.indices.delete(index=name)
