"""Legacy ``_template`` get/put/delete/exists and how index creation applies them (answers as
OpenSearch 2.19.6 gave them for the same requests)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.node._asgi import AsgiNode

T1 = {"index_patterns": ["logs*"], "order": 1, "settings": {"number_of_shards": 2},
      "mappings": {"properties": {"a": {"type": "keyword"}}}, "aliases": {"al-{index}": {}}}
T0 = {"index_patterns": "log*", "version": 3, "settings": {"index.number_of_shards": 3, "number_of_replicas": 0},
      "mappings": {"properties": {"a": {"type": "text"}, "b": {"type": "long"}}},
      "aliases": {"x": {"filter": {"term": {"a": "v"}}}}}


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    assert node.ok("PUT", "/_template/t1", T1) == {"acknowledged": True}
    assert node.ok("PUT", "/_template/t0", T0) == {"acknowledged": True}
    yield node
    node.close()


def test_get_all_and_one(n: AsgiNode) -> None:
    assert n.ok("GET", "/_template") == {
        "t0": {"order": 0, "version": 3, "index_patterns": ["log*"],
               "settings": {"index": {"number_of_shards": "3", "number_of_replicas": "0"}},
               "mappings": {"properties": {"a": {"type": "text"}, "b": {"type": "long"}}},
               "aliases": {"x": {"filter": {"term": {"a": "v"}}}}},
        "t1": {"order": 1, "index_patterns": ["logs*"], "settings": {"index": {"number_of_shards": "2"}},
               "mappings": {"properties": {"a": {"type": "keyword"}}}, "aliases": {"al-{index}": {}}}}
    assert n.ok("GET", "/_template/t1", params={"flat_settings": "true"})["t1"]["settings"] == \
        {"index.number_of_shards": "2"}
    # a list keeps what exists; nothing found (name or pattern) is 404 with an empty object
    assert list(n.ok("GET", "/_template/t1,nope")) == ["t1"]
    for name in ("nope", "zz*"):
        r = n.request("GET", f"/_template/{name}")
        assert (r.status_code, r.json()) == (404, {})
    assert n.request("HEAD", "/_template/t0").status_code == 200
    assert n.request("HEAD", "/_template/nope").status_code == 404


def test_index_creation_applies_templates_by_order(n: AsgiNode) -> None:
    n.ok("PUT", "/logs1")
    got = n.ok("GET", "/logs1")["logs1"]
    assert got["aliases"] == {"al-logs1": {}, "x": {"filter": {"term": {"a": "v"}}}}
    assert got["mappings"] == {"properties": {"a": {"type": "keyword"}, "b": {"type": "long"}}}
    assert got["settings"]["index"]["number_of_shards"] == "2"  # order 1 wins over order 0
    assert got["settings"]["index"]["number_of_replicas"] == "0"
    # the request wins over every template
    n.ok("PUT", "/logs2", {"settings": {"number_of_shards": 1}, "mappings": {"properties": {"a": {"type": "text"}}},
                          "aliases": {"x": {}}})
    got = n.ok("GET", "/logs2")["logs2"]
    assert got["aliases"] == {"al-logs2": {}, "x": {}}
    assert got["mappings"] == {"properties": {"a": {"type": "text"}, "b": {"type": "long"}}}
    assert got["settings"]["index"]["number_of_shards"] == "1"
    # auto-created indices too
    n.ok("PUT", "/logs3/_doc/1", {"a": "v", "b": 4})
    assert n.ok("GET", "/logs3")["logs3"]["mappings"]["properties"]["a"] == {"type": "keyword"}


def test_composable_template_wins_over_legacy(n: AsgiNode) -> None:
    n.ok("PUT", "/_index_template/v2", {"index_patterns": ["logsv*"], "template": {"settings": {"number_of_shards": 1}}})
    n.ok("PUT", "/logsv1")
    got = n.ok("GET", "/logsv1")["logsv1"]
    assert got["aliases"] == {} and got["mappings"] == {}
    assert got["settings"]["index"]["number_of_shards"] == "1"


def test_put_errors(n: AsgiNode) -> None:
    def err(name: str, body: object, params: dict[str, str] | None = None) -> tuple[int, str, str]:
        r = n.request("PUT", f"/_template/{name}", body, params=params)
        e = r.json()["error"]
        return r.status_code, e["type"], e["reason"]

    assert err("t1", {"index_patterns": ["logs*"]}, {"create": "true"}) == \
        (400, "illegal_argument_exception", "index_template [t1] already exists")
    assert err("t2", {"settings": {}}) == \
        (400, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;")
    assert err("t2", {"index_patterns": ["q"], "foo": 1}) == \
        (400, "parse_exception", "unknown key [foo] in the template ")
    assert err("Upper", {"index_patterns": ["up*"]}) == \
        (400, "invalid_index_template_exception",
         "index_template [Upper] invalid, cause [Validation Failed: 1: name must be lower cased;]")
    assert err("typed", {"index_patterns": ["t*"], "mappings": {"_doc": {"properties": {}}}}) == \
        (400, "illegal_argument_exception", "The mapping definition cannot be nested under a type")
    code, typ, reason = err("bs", {"index_patterns": ["bs*"], "settings": {"index.nosuch": 1}})
    assert (code, typ) == (400, "illegal_argument_exception") and reason.startswith("unknown setting [index.nosuch]")
    assert err("bm", {"index_patterns": ["bm*"], "mappings": {"properties": {"c": {"type": "nosuch"}}}})[:2] == \
        (400, "mapper_parsing_exception")
    # the legacy key "template" is a single pattern
    n.ok("PUT", "/_template/old", {"template": "old*"})
    assert n.ok("GET", "/_template/old") == {"old": {"order": 0, "index_patterns": ["old*"], "settings": {},
                                                     "mappings": {}, "aliases": {}}}


def test_delete(n: AsgiNode) -> None:
    assert n.ok("DELETE", "/_template/t0") == {"acknowledged": True}
    r = n.request("DELETE", "/_template/t0")
    assert r.status_code == 404
    assert r.json()["error"]["reason"] == "index_template [t0] missing"
    assert r.json()["error"]["type"] == "index_template_missing_exception"
    assert list(n.ok("GET", "/_template")) == ["t1"]


def test_survives_restart(tmp_path: Path) -> None:
    node = AsgiNode(tmp_path / "d")
    node.ok("PUT", "/_template/t1", T1)
    node.close()
    node = AsgiNode(tmp_path / "d")
    try:
        assert node.ok("GET", "/_template/t1")["t1"]["order"] == 1
    finally:
        node.close()


def test_a_global_pattern_skips_hidden_indices(n: AsgiNode) -> None:
    # findV1Templates: a hidden index takes no template whose patterns include "*"
    n.ok("PUT", "/_template/all", {"index_patterns": ["*"], "order": 9, "settings": {"number_of_replicas": 3}})
    n.ok("PUT", "/visible")
    n.ok("PUT", "/hidden", {"settings": {"index.hidden": True}})
    assert n.ok("GET", "/visible")["visible"]["settings"]["index"]["number_of_replicas"] == "3"
    assert n.ok("GET", "/hidden")["hidden"]["settings"]["index"]["number_of_replicas"] != "3"
