"""Legacy index templates (``_template``), as OpenSearch 2.19.6 answered the same requests (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.node._asgi import AsgiNode


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    yield node
    node.close()


def test_legacy_templates_merge_by_order_on_index_creation(n: AsgiNode) -> None:
    n.ok("PUT", "/_template/t1", {"index_patterns": ["lg-*"], "order": 1, "version": 3,
                                  "settings": {"number_of_shards": 1, "index.number_of_replicas": 0},
                                  "mappings": {"properties": {"x": {"type": "keyword"}}}, "aliases": {"lg-alias": {}}})
    n.ok("PUT", "/_template/t0", {"index_patterns": "lg-*", "order": 0,
                                  "mappings": {"properties": {"x": {"type": "text"}, "y": {"type": "integer"}}}})
    assert n.ok("GET", "/_template/t1") == {"t1": {
        "order": 1, "version": 3, "index_patterns": ["lg-*"],
        "settings": {"index": {"number_of_shards": "1", "number_of_replicas": "0"}},
        "mappings": {"properties": {"x": {"type": "keyword"}}}, "aliases": {"lg-alias": {}}}}
    assert list(n.ok("GET", "/_template/t*")) == ["t0", "t1"]
    assert n.request("HEAD", "/_template/t1").status_code == 200
    assert (n.request("GET", "/_template/nope").status_code, n.request("HEAD", "/_template/nope").status_code) == (404, 404)
    n.ok("PUT", "/lg-1")
    assert n.ok("GET", "/lg-1/_mapping") == {"lg-1": {"mappings": {"properties": {"x": {"type": "keyword"},
                                                                                 "y": {"type": "integer"}}}}}
    assert n.ok("GET", "/lg-1/_alias") == {"lg-1": {"aliases": {"lg-alias": {}}}}
    # a matching composable template wins over legacy ones
    n.ok("PUT", "/_index_template/c", {"index_patterns": ["lg-c*"], "template": {"mappings": {"properties": {
        "z": {"type": "keyword"}}}}})
    n.ok("PUT", "/lg-c1")
    assert n.ok("GET", "/lg-c1/_mapping")["lg-c1"]["mappings"]["properties"] == {"z": {"type": "keyword"}}


def test_legacy_template_errors(n: AsgiNode) -> None:
    r = n.request("PUT", "/_template/bad", {"order": 1})
    assert r.json()["error"]["reason"] == "Validation Failed: 1: index patterns are missing;"
    r = n.request("PUT", "/_template/bad", {"index_patterns": ["z"], "foo": 1})
    assert (r.status_code, r.json()["error"]["type"]) == (400, "parse_exception")
    n.ok("PUT", "/_template/t", {"index_patterns": ["z"]})
    r = n.request("PUT", "/_template/t", {"index_patterns": ["z"]}, params={"create": "true"})
    assert r.json()["error"]["reason"] == "index_template [t] already exists"
    n.ok("DELETE", "/_template/t")
    r = n.request("DELETE", "/_template/t")
    assert (r.status_code, r.json()["error"]["type"]) == (404, "index_template_missing_exception")
