"""REST behaviour of the node in-process (httpx.ASGITransport): shapes, errors, settings, mappings, aliases."""

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


def _err(r: object) -> tuple[int, str, str]:
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "status"}
    assert body["error"]["root_cause"][0]["type"] == body["error"]["type"]
    return body["status"], body["error"]["type"], body["error"]["reason"]


def test_root_and_head(n: AsgiNode) -> None:
    body = n.ok("GET", "/")
    assert body["version"]["distribution"] == "opensearch" and body["version"]["number"] == "3.3.0"
    assert {"name", "cluster_name", "cluster_uuid", "tagline"} <= set(body)
    r = n.request("HEAD", "/")
    assert r.status_code == 200 and r.content == b""


def test_malformed_json_is_json_parse_exception(n: AsgiNode) -> None:
    r = n.request("PUT", "/idx", raw=b'{"settings": ')
    assert r.status_code == 400
    assert _err(r)[1] == "json_parse_exception"
    # nothing was created, and the node keeps serving
    assert n.request("HEAD", "/idx").status_code == 404
    assert n.ok("GET", "/")["version"]["number"] == "3.3.0"


def test_unknown_route_and_wrong_method(n: AsgiNode) -> None:
    """RestController's simple string errors (createSimpleErrorResponse), Allow on 405."""
    r = n.request("GET", "/_nope/x/y/z")
    assert r.status_code == 400
    assert r.json() == {"error": "no handler found for uri [/_nope/x/y/z] and method [GET]"}  # no status (2.19.6)
    r = n.request("DELETE", "/_cluster/settings")
    assert r.status_code == 405
    assert r.json() == {"error": "Incorrect HTTP method for uri [/_cluster/settings] and method [DELETE], "
                                 "allowed: [GET, PUT]", "status": 405}
    assert r.headers["allow"] == "GET,PUT"


def test_cluster_settings_flat_and_nested(n: AsgiNode) -> None:
    r = n.ok("PUT", "/_cluster/settings", {"persistent": {"plugins.ml_commons.only_run_on_ml_node": False},
                                           "transient": {"plugins": {"ml_commons": {"model_auto_redeploy": {
                                               "enable": True}}}}})
    assert r["acknowledged"] is True
    assert r["persistent"] == {"plugins": {"ml_commons": {"only_run_on_ml_node": "false"}}}
    flat = n.ok("GET", "/_cluster/settings", params={"flat_settings": "true"})
    assert flat["persistent"] == {"plugins.ml_commons.only_run_on_ml_node": "false"}
    assert flat["transient"] == {"plugins.ml_commons.model_auto_redeploy.enable": "true"}
    assert n.engine.settings.get("plugins.ml_commons.only_run_on_ml_node") is False
    # transient wins over persistent, as in OpenSearch
    n.ok("PUT", "/_cluster/settings", {"persistent": {"search.max_buckets": 10}, "transient": {"search.max_buckets": 20}})
    assert n.engine.settings.get("search.max_buckets") == 20
    n.ok("PUT", "/_cluster/settings", {"persistent": {"plugins.ml_commons.only_run_on_ml_node": None}})
    assert n.ok("GET", "/_cluster/settings")["persistent"] == {"search": {"max_buckets": "10"}}
    r = n.request("PUT", "/_cluster/settings", {"persistent": {"no.such.setting": 1}})
    assert _err(r)[:2] == (400, "illegal_argument_exception")


def test_cat_plugins_and_indices(n: AsgiNode) -> None:
    plugins = n.ok("GET", "/_cat/plugins", params={"format": "json"})
    assert {p["component"] for p in plugins} == {"opensearch-job-scheduler", "opensearch-ml", "opensearch-neural-search",
                                                 "opensearch-knn"}
    n.ok("PUT", "/books")
    n.ok("PUT", "/books/_doc/1", {"t": "x"})
    rows = n.ok("GET", "/_cat/indices", params={"format": "json"})
    assert [(r["index"], r["docs.count"]) for r in rows] == [("books", "1")]
    text = n.request("GET", "/_cat/indices", params={"v": "true"}).text
    assert text.splitlines()[0].split()[:3] == ["health", "status", "index"]
    nodes = n.ok("GET", "/_nodes")
    assert nodes["_nodes"]["total"] == 1 and len(nodes["nodes"]) == 1


def test_index_lifecycle_and_errors(n: AsgiNode) -> None:
    r = n.ok("PUT", "/movies", {"settings": {"index": {"number_of_shards": 1}}})
    assert r == {"acknowledged": True, "shards_acknowledged": True, "index": "movies"}
    status, etype, reason = _err(n.request("PUT", "/movies"))
    assert (status, etype) == (400, "resource_already_exists_exception") and reason.startswith("index [movies/")
    status, etype, reason = _err(n.request("GET", "/nope"))
    assert (status, etype, reason) == (404, "index_not_found_exception", "no such index [nope]")
    assert _err(n.request("PUT", "/BadName"))[1] == "invalid_index_name_exception"
    got = n.ok("GET", "/movies")["movies"]
    assert got["settings"]["index"]["number_of_shards"] == "1" and got["settings"]["index"]["uuid"]
    assert n.ok("DELETE", "/movies") == {"acknowledged": True}
    assert n.request("HEAD", "/movies").status_code == 404


def test_mapping_put_is_additive_conflicts_rejected(n: AsgiNode) -> None:
    n.ok("PUT", "/m", {"mappings": {"properties": {"title": {"type": "text"}}}})
    n.ok("PUT", "/m/_mapping", {"properties": {"year": {"type": "integer"}}})
    props = n.ok("GET", "/m/_mapping")["m"]["mappings"]["properties"]
    assert props == {"title": {"type": "text"}, "year": {"type": "integer"}}
    status, etype, reason = _err(n.request("PUT", "/m/_mapping", {"properties": {"year": {"type": "keyword"}}}))
    assert (status, etype) == (400, "illegal_argument_exception")
    assert reason == "mapper [year] cannot be changed from type [integer] to [keyword]"
    assert _err(n.request("PUT", "/x", {"mappings": {"properties": {"a": {"type": "nosuch"}}}}))[:2] == \
        (400, "mapper_parsing_exception")


def test_dynamic_mapping(n: AsgiNode) -> None:
    n.ok("PUT", "/d/_doc/1", {"s": "hello", "i": 3, "f": 1.5, "b": True, "o": {"x": "2024-01-02"}})
    props = n.ok("GET", "/d/_mapping")["d"]["mappings"]["properties"]
    assert props["s"] == {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    assert props["i"] == {"type": "long"} and props["f"] == {"type": "float"} and props["b"] == {"type": "boolean"}
    assert props["o"] == {"properties": {"x": {"type": "date"}}}
    hits = n.ok("POST", "/d/_search", {"query": {"term": {"s.keyword": "hello"}}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["1"]
    r = n.request("PUT", "/d/_doc/2", {"i": "not a number"})
    status, etype, _ = _err(r)
    assert (status, etype) == (400, "mapper_parsing_exception")


def test_strict_dynamic(n: AsgiNode) -> None:
    n.ok("PUT", "/s", {"mappings": {"dynamic": "strict", "properties": {"a": {"type": "keyword"}}}})
    r = n.request("PUT", "/s/_doc/1", {"b": 1})
    assert _err(r)[:2] == (400, "strict_dynamic_mapping_exception")


def test_settings_get_put(n: AsgiNode) -> None:
    n.ok("PUT", "/s1", {"settings": {"index.knn": True}})
    n.ok("PUT", "/s1/_settings", {"index": {"search.default_pipeline": "p1", "knn.algo_param.ef_search": 200}})
    s = n.ok("GET", "/s1/_settings", params={"flat_settings": "true"})["s1"]["settings"]
    assert s["index.search.default_pipeline"] == "p1" and s["index.knn.algo_param.ef_search"] == "200"
    assert s["index.knn"] == "true"
    status, _, reason = _err(n.request("PUT", "/s1/_settings", {"index.number_of_shards": 2}))
    assert status == 400 and "non dynamic settings" in reason


def test_aliases(n: AsgiNode) -> None:
    n.ok("PUT", "/a1")
    n.ok("PUT", "/a2")
    n.ok("POST", "/_aliases", {"actions": [{"add": {"index": "a1", "alias": "both"}},
                                           {"add": {"index": "a2", "alias": "both"}}]})
    n.ok("PUT", "/a1/_alias/one")
    n.ok("PUT", "/a1/_doc/1", {"x": 1})
    n.ok("PUT", "/one/_doc/2", {"x": 2})  # writes through a single-index alias
    assert n.ok("GET", "/both/_count")["count"] == 2
    assert n.ok("GET", "/_alias/one") == {"a1": {"aliases": {"one": {}}}}
    n.ok("DELETE", "/a1/_alias/one")
    assert n.request("GET", "/_alias/one").status_code == 404


def test_index_template_applies_on_create(n: AsgiNode) -> None:
    n.ok("PUT", "/_index_template/logs", {"index_patterns": ["logs-*"], "template": {
        "settings": {"number_of_replicas": 0}, "mappings": {"properties": {"level": {"type": "keyword"}}}}})
    n.ok("PUT", "/logs-1/_doc/1", {"level": "INFO", "msg": "hi"})
    got = n.ok("GET", "/logs-1")["logs-1"]
    assert got["mappings"]["properties"]["level"] == {"type": "keyword"}
    assert got["settings"]["index"]["number_of_replicas"] == "0"
    assert n.ok("GET", "/_index_template/logs")["index_templates"][0]["name"] == "logs"
    n.ok("DELETE", "/_index_template/logs")
    assert n.request("GET", "/_index_template/logs").status_code == 404


def test_doc_crud_versions_and_conflicts(n: AsgiNode) -> None:
    r = n.request("PUT", "/c/_doc/1", {"a": 1}, params={"refresh": "true"})
    assert r.status_code == 201 and r.json()["result"] == "created" and r.json()["forced_refresh"] is True
    r = n.request("PUT", "/c/_doc/1", {"a": 2})
    assert r.status_code == 200 and r.json()["_version"] == 2 and r.json()["result"] == "updated"
    r = n.request("PUT", "/c/_create/1", {"a": 3})
    assert _err(r)[:2] == (409, "version_conflict_engine_exception")
    r = n.request("PUT", "/c/_doc/1", {"a": 3}, params={"op_type": "create"})
    assert _err(r)[0] == 409
    r = n.request("POST", "/c/_doc", {"a": 9})
    assert r.status_code == 201 and len(r.json()["_id"]) == 20
    upd = n.ok("POST", "/c/_update/1", {"doc": {"b": {"c": 1}}})
    assert upd["result"] == "updated" and upd["_version"] == 3
    assert n.ok("GET", "/c/_doc/1")["_source"] == {"a": 2, "b": {"c": 1}}
    assert n.ok("POST", "/c/_update/1", {"doc": {"a": 2}})["result"] == "noop"
    r = n.request("POST", "/c/_update/nope", {"doc": {"a": 1}})
    assert _err(r)[:2] == (404, "document_missing_exception")
    r = n.request("POST", "/c/_update/1", {"script": {"source": "ctx._source.a++"}})
    assert _err(r)[0] == 400 and "painless" in _err(r)[2]
    r = n.request("GET", "/c/_doc/zzz")
    assert r.status_code == 404 and r.json() == {"_index": "c", "_id": "zzz", "found": False}
    r = n.request("DELETE", "/c/_doc/zzz")
    assert r.status_code == 404 and r.json()["result"] == "not_found"
    assert n.ok("GET", "/c/_source/1") == {"a": 2, "b": {"c": 1}}


def test_bulk_per_item_results_and_errors(n: AsgiNode) -> None:
    n.ok("PUT", "/b", {"mappings": {"properties": {"n": {"type": "integer"}}}})
    body = "\n".join([
        '{"index": {"_index": "b", "_id": "1"}}', '{"n": 1}',
        '{"create": {"_index": "b", "_id": "1"}}', '{"n": 2}',
        '{"index": {"_index": "b", "_id": "2"}}', '{"n": "x"}',
        '{"update": {"_index": "b", "_id": "1"}}', '{"doc": {"n": 5}}',
        '{"delete": {"_index": "b", "_id": "9"}}',
        '{"index": {"_index": "b", "_id": "3"}}', '{"n": ',
    ]) + "\n"
    r = n.ok("POST", "/_bulk", raw=body, headers={"content-type": "application/x-ndjson"})
    assert r["errors"] is True
    got = [(next(iter(i)), i[next(iter(i))]["status"]) for i in r["items"]]
    assert got == [("index", 201), ("create", 409), ("index", 400), ("update", 200), ("delete", 404), ("index", 400)]
    assert r["items"][2]["index"]["error"]["type"] == "mapper_parsing_exception"
    assert n.ok("GET", "/b/_doc/1")["_source"] == {"n": 5}
    assert n.ok("GET", "/b/_count")["count"] == 1
    r = n.request("POST", "/_bulk", raw='{"index": {"_index": "b"}}\n{"n": 1}')
    assert _err(r)[0] == 400  # must end with a newline


def test_mget(n: AsgiNode) -> None:
    n.ok("PUT", "/g/_doc/1", {"a": 1, "b": 2})
    r = n.ok("POST", "/_mget", {"docs": [{"_index": "g", "_id": "1", "_source": ["a"]}, {"_index": "g", "_id": "2"},
                                         {"_index": "nope", "_id": "1"}]})
    docs = r["docs"]
    assert docs[0]["_source"] == {"a": 1} and docs[1]["found"] is False
    assert docs[2]["error"]["type"] == "index_not_found_exception"
    assert n.ok("POST", "/g/_mget", {"ids": ["1"]})["docs"][0]["found"] is True


def test_filtered_alias_limits_search_and_count(n: AsgiNode) -> None:
    n.ok("PUT", "/f/_doc/1", {"color": "red"})
    n.ok("PUT", "/f/_doc/2", {"color": "blue"})
    n.ok("PUT", "/f/_alias/reds", {"filter": {"term": {"color.keyword": "red"}}})
    assert [h["_id"] for h in n.ok("POST", "/reds/_search", {})["hits"]["hits"]] == ["1"]
    assert n.ok("GET", "/reds/_count")["count"] == 1
    assert n.ok("GET", "/f/_count")["count"] == 2
    assert n.ok("GET", "/_alias/reds")["f"]["aliases"]["reds"]["filter"] == {"term": {"color.keyword": "red"}}


def test_nested_settings_keep_dotted_keys_when_a_prefix_is_a_value(n: AsgiNode) -> None:
    n.ok("PUT", "/k", {"settings": {"index.knn": True, "index.knn.algo_param.ef_search": 50}})
    s = n.ok("GET", "/k/_settings")["k"]["settings"]["index"]
    assert s["knn"] == "true" and s["knn.algo_param"] == {"ef_search": "50"}


def test_bulk_mixing_vector_index_and_update(n: AsgiNode) -> None:
    n.ok("PUT", "/bv", {"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": 2}}}})
    body = "\n".join(['{"index": {"_index": "bv", "_id": "1"}}', '{"v": [1, 0]}',
                      '{"index": {"_index": "bv", "_id": "2"}}', '{"v": [0, 1]}',
                      '{"update": {"_index": "bv", "_id": "1"}}', '{"doc": {"v": [1, 1]}}',
                      '{"index": {"_index": "bv", "_id": "3"}}', '{"v": [2, 2]}']) + "\n"
    assert n.ok("POST", "/_bulk", raw=body)["errors"] is False
    hits = n.ok("POST", "/bv/_search", {"query": {"knn": {"v": {"vector": [1, 1], "k": 3}}}})["hits"]["hits"]
    # l2: [1,1] (updated doc 1) d=0 → 1.0; [0,1] d=1 → 0.5; [2,2] d=2 → 1/3
    assert [(h["_id"], round(h["_score"], 4)) for h in hits] == [("1", 1.0), ("2", 0.5), ("3", 0.3333)]
