"""Differences the oracle found between the embedded node and OpenSearch 2.19.6 (coord NODE_DIFFS.md):
each test pins the real node's answer (values taken from a real 2.19.6 node)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.node._asgi import AsgiNode


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data", version="2.19.6")
    node.ok("PUT", "/r0", {"settings": {"number_of_replicas": 0},
                           "mappings": {"properties": {"n": {"type": "integer"}, "t": {"type": "text"}}}})
    yield node
    node.close()


# ------------------------------------------------------------------ writes
def test_shards_total_is_one_plus_replicas(n: AsgiNode) -> None:
    assert n.ok("PUT", "/r0/_doc/1", {"n": 1})["_shards"] == {"total": 1, "successful": 1, "failed": 0}
    assert n.ok("POST", "/r0/_refresh")["_shards"] == {"total": 1, "successful": 1, "failed": 0}
    n.ok("PUT", "/r2", {"settings": {"number_of_replicas": 2}})
    assert n.ok("PUT", "/r2/_doc/1", {"n": 1})["_shards"] == {"total": 3, "successful": 1, "failed": 0}
    assert n.ok("DELETE", "/r2/_doc/1")["_shards"]["total"] == 3
    n.ok("PUT", "/r1/_doc/1", {"n": 1})  # auto-created: 1 replica
    assert n.ok("POST", "/r1/_refresh")["_shards"] == {"total": 2, "successful": 1, "failed": 0}
    assert n.ok("POST", "/r0,r1/_refresh")["_shards"] == {"total": 3, "successful": 2, "failed": 0}


def test_knn_warmup_counts_replicas(n: AsgiNode) -> None:
    n.ok("PUT", "/kv", {"settings": {"index.knn": True, "number_of_replicas": 1},
                        "mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 2}}}})
    assert n.ok("GET", "/_plugins/_knn/warmup/kv")["_shards"] == {"total": 2, "successful": 1, "failed": 0}


def test_refresh_true_answers_forced_refresh_after_result(n: AsgiNode) -> None:
    res = n.ok("PUT", "/r0/_doc/1?refresh=true", {"n": 1})
    assert list(res)[:5] == ["_index", "_id", "_version", "result", "forced_refresh"]
    assert res["forced_refresh"] is True
    assert n.ok("POST", "/r0/_update/1?refresh=true", {"doc": {"n": 2}})["forced_refresh"] is True
    assert n.ok("POST", "/r0/_update/9?refresh=true", {"doc": {"n": 2}, "doc_as_upsert": True})["forced_refresh"]
    assert n.ok("DELETE", "/r0/_doc/1?refresh=true")["forced_refresh"] is True
    assert "forced_refresh" not in n.ok("PUT", "/r0/_doc/2?refresh=wait_for", {"n": 1})
    assert "forced_refresh" not in n.ok("PUT", "/r0/_doc/3", {"n": 1})
    bulk = ('{"index":{"_index":"r0","_id":"5"}}\n{"n":5}\n{"delete":{"_index":"r0","_id":"5"}}\n'
            '{"update":{"_index":"r0","_id":"2"}}\n{"doc":{"n":7}}\n')
    items = n.ok("POST", "/_bulk?refresh=true", raw=bulk)["items"]
    assert [next(iter(it.values()))["forced_refresh"] for it in items] == [True, True, True]
    items = n.ok("POST", "/_bulk", raw=bulk)["items"]
    assert all("forced_refresh" not in next(iter(it.values())) for it in items)


def test_delete_versions_continue_past_the_tombstone(n: AsgiNode) -> None:
    n.ok("PUT", "/r0/_doc/2", {"n": 2})
    assert n.ok("DELETE", "/r0/_doc/2")["_version"] == 2
    r = n.request("DELETE", "/r0/_doc/2")
    assert (r.status_code, r.json()["result"], r.json()["_version"]) == (404, "not_found", 3)
    assert n.request("DELETE", "/r0/_doc/2").json()["_version"] == 4
    assert n.ok("PUT", "/r0/_doc/2", {"n": 2})["_version"] == 5  # indexing again continues too
    # an id never seen: the not_found delete itself leaves a tombstone
    assert n.request("DELETE", "/r0/_doc/9").json()["_version"] == 1
    assert n.request("DELETE", "/r0/_doc/9").json()["_version"] == 2


def test_version_tombstones_expire_after_gc_deletes(n: AsgiNode, monkeypatch: pytest.MonkeyPatch) -> None:
    import kit.node.documents as documents

    n.request("DELETE", "/r0/_doc/7")
    monkeypatch.setattr(documents, "GC_DELETES_S", -1.0)
    assert n.ok("PUT", "/r0/_doc/7", {"n": 7})["_version"] == 1


def test_version_conflicts_name_the_index_uuid(n: AsgiNode) -> None:
    uuid = n.ok("GET", "/r0/_settings")["r0"]["settings"]["index"]["uuid"]
    n.ok("PUT", "/r0/_doc/1", {"n": 1})
    for method, path, body in (("PUT", "/r0/_create/1", {"n": 1}), ("PUT", "/r0/_doc/1?op_type=create", {"n": 1}),
                               ("PUT", "/r0/_doc/1?if_seq_no=9&if_primary_term=1", {"n": 1}),
                               ("DELETE", "/r0/_doc/1?if_seq_no=9&if_primary_term=1", None),
                               ("POST", "/r0/_update/1?if_seq_no=9&if_primary_term=1", {"doc": {"n": 3}})):
        r = n.request(method, path, body)
        assert r.status_code == 409, (path, r.text)
        assert r.json()["error"]["index_uuid"] == uuid
        assert r.json()["error"]["root_cause"][0]["index_uuid"] == uuid


def test_bulk_action_without_a_source_line_is_not_added(n: AsgiNode) -> None:
    r = n.request("POST", "/_bulk", raw='{"index":{"_index":"r0","_id":"3"}}\n')
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "action_request_validation_exception"
    assert r.json()["error"]["reason"] == "Validation Failed: 1: no requests added;"
    # after other items the trailing action is dropped silently, as BulkRequestParser stops there
    res = n.ok("POST", "/_bulk", raw='{"delete":{"_index":"r0","_id":"4"}}\n{"index":{"_index":"r0","_id":"3"}}\n')
    assert [list(it) for it in res["items"]] == [["delete"]]
    # an empty source line is the item's own failure
    res = n.ok("POST", "/_bulk", raw='{"index":{"_index":"r0","_id":"3"}}\n\n{"index":{"_index":"r0","_id":"4"}}\n'
                                     '{"n":4}\n')
    assert res["errors"] is True
    assert res["items"][0]["index"]["error"] == {"type": "mapper_parsing_exception",
                                                  "reason": "failed to parse, document is empty"}
    assert res["items"][1]["index"]["status"] == 201


def test_bulk_through_a_pipeline_answers_ingest_took(n: AsgiNode) -> None:
    n.ok("PUT", "/_ingest/pipeline/p", {"processors": [{"set": {"field": "s", "value": "x"}}]})
    res = n.ok("POST", "/_bulk?pipeline=p", raw='{"index":{"_index":"r0","_id":"1"}}\n{"n":1}\n')
    assert list(res)[:3] == ["took", "ingest_took", "errors"]
    assert isinstance(res["ingest_took"], int) and res["ingest_took"] >= 0
    assert "ingest_took" not in n.ok("POST", "/_bulk", raw='{"index":{"_index":"r0","_id":"2"}}\n{"n":1}\n')


# ------------------------------------------------------------------ search
@pytest.fixture()
def s(n: AsgiNode) -> AsgiNode:
    n.ok("PUT", "/s1", {"settings": {"index.knn": True, "number_of_replicas": 0},
                        "mappings": {"properties": {"n": {"type": "integer"}, "t": {"type": "text"},
                                                    "v": {"type": "knn_vector", "dimension": 4}}}})
    n.ok("PUT", "/s1/_doc/1", {"n": 1, "t": "quick fox", "v": [1, 2, 3, 4]})
    return n


def test_unrecognized_search_parameters_are_refused(s: AsgiNode) -> None:
    r = s.request("POST", "/s1/_search?nosuchparam=1", {})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "root_cause": [{"type": "illegal_argument_exception",
                        "reason": "request [/s1/_search] contains unrecognized parameter: [nosuchparam]"}],
        "type": "illegal_argument_exception",
        "reason": "request [/s1/_search] contains unrecognized parameter: [nosuchparam]"}
    r = s.request("POST", "/s1/_search?zzz=1&aaa=2", {})
    assert r.json()["error"]["reason"] == "request [/s1/_search] contains unrecognized parameters: [aaa], [zzz]"
    r = s.request("POST", "/s1/_search?routin=x", {})
    assert r.json()["error"]["reason"] == ("request [/s1/_search] contains unrecognized parameter: [routin] -> "
                                           "did you mean [routing]?")
    r = s.request("POST", "/s1/_count?nosuchparam=1", {})
    assert r.json()["error"]["reason"] == "request [/s1/_count] contains unrecognized parameter: [nosuchparam]"
    # what OpenSearch reads is still fine
    s.ok("POST", "/s1/_search?size=1&from=0&track_total_hits=true&rest_total_hits_as_int=true&typed_keys=true"
                 "&filter_path=hits&pretty=true&ignore_unavailable=true&preference=_local&routing=a", {})


def _shard_failure(r: Any, root_type: str, reason: str) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["type"], err["reason"], err["phase"], err["grouped"]) == (
        "search_phase_execution_exception", "all shards failed", "query", True)
    assert err["root_cause"][0]["type"] == root_type
    assert err["root_cause"][0]["reason"] == reason
    assert err["failed_shards"][0]["shard"] == 0 and err["failed_shards"][0]["index"] == "s1"
    assert err["failed_shards"][0]["reason"]["type"] == root_type
    return err


def test_sort_on_an_unmapped_field_fails_on_the_shard(s: AsgiNode) -> None:
    err = _shard_failure(s.request("POST", "/s1/_search", {"sort": [{"nosuchfield": "asc"}]}),
                         "query_shard_exception", "No mapping found for [nosuchfield] in order to sort on")
    assert err["root_cause"][0]["index"] == "s1" and "index_uuid" in err["root_cause"][0]
    # also with no hits at all, and unmapped_type still sorts
    _shard_failure(s.request("POST", "/s1/_search", {"query": {"term": {"n": 9}}, "sort": ["nosuchfield"]}),
                   "query_shard_exception", "No mapping found for [nosuchfield] in order to sort on")
    s.ok("POST", "/s1/_search", {"sort": [{"nosuchfield": {"order": "asc", "unmapped_type": "long"}}]})


def test_query_time_errors_are_shard_failures(s: AsgiNode) -> None:
    err = _shard_failure(s.request("POST", "/s1/_search", {"query": {"term": {"n": "abc"}}}),
                         "query_shard_exception", 'failed to create query: For input string: "abc"')
    assert err["caused_by"]["caused_by"] == {"type": "number_format_exception", "reason": 'For input string: "abc"'}
    _shard_failure(s.request("POST", "/s1/_count", {"query": {"term": {"n": "abc"}}}),
                   "query_shard_exception", 'failed to create query: For input string: "abc"')
    _shard_failure(s.request("POST", "/s1/_search", {"query": {"knn": {"t": {"vector": [1, 2], "k": 2}}}}),
                   "query_shard_exception", "failed to create query: Field 't' is not knn_vector type.")
    err = _shard_failure(s.request("POST", "/s1/_search", {"query": {"knn": {"v": {"vector": [1, 2, 3], "k": 2}}}}),
                         "query_shard_exception",
                         "failed to create query: Query vector has invalid dimension: 3. Dimension should be: 4")
    assert err["root_cause"][0]["index"] == "s1"
    _shard_failure(s.request("POST", "/s1/_search", {"from": 10001}), "illegal_argument_exception",
                   "Result window is too large, from + size must be less than or equal to: [10000] but was [10011]. "
                   "See the scroll api for a more efficient way to request large data sets. This limit can be set "
                   "by changing the [index.max_result_window] index level setting.")


def test_search_body_parse_errors_say_what_opensearch_says(s: AsgiNode) -> None:
    r = s.request("POST", "/s1/_search", {"query": {"match_all": {}}, "nosuchkey": 1})
    assert r.json()["error"]["reason"] == "Unknown key for a VALUE_NUMBER in [nosuchkey]."
    r = s.request("POST", "/s1/_search", {"query": {"match_all": {}}, "nosuchkey": [1]})
    assert r.json()["error"]["reason"] == "Unknown key for a START_ARRAY in [nosuchkey]."
    r = s.request("POST", "/s1/_search", {"query": {"match": {}}})
    assert (r.status_code, r.json()["error"]["type"], r.json()["error"]["reason"]) == (
        400, "parsing_exception", "No text specified for text query")


# ------------------------------------------------------------------ ML Commons
ML = "/_plugins/_ml"
CONNECTOR = {"name": "c", "description": "d", "version": 1, "protocol": "http",
             "parameters": {"endpoint": "127.0.0.1:9"}, "credential": {"key": "secret"},
             "actions": [{"action_type": "predict", "method": "POST", "url": "http://127.0.0.1:9/embed",
                          "request_body": '{"x": 1}'}]}


@pytest.fixture()
def ml(n: AsgiNode) -> AsgiNode:
    n.ok("PUT", "/_cluster/settings", {"persistent": {"plugins.ml_commons.trusted_connector_endpoints_regex": [".*"],
                                                      "plugins.ml_commons.only_run_on_ml_node": False}})
    return n


def test_connector_action_type_is_upper_case_and_client_config_shows_defaults(ml: AsgiNode) -> None:
    cid = ml.ok("POST", f"{ML}/connectors/_create", CONNECTOR)["connector_id"]
    got = ml.ok("GET", f"{ML}/connectors/{cid}")
    assert got["actions"][0]["action_type"] == "PREDICT"
    assert "client_config" not in got and "credential" not in got
    upd = ml.ok("PUT", f"{ML}/connectors/{cid}", {"client_config": {"max_connection": 5}})
    assert "forced_refresh" not in upd and upd["_shards"] == {"total": 1, "successful": 1, "failed": 0}
    assert ml.ok("GET", f"{ML}/connectors/{cid}")["client_config"] == {
        "max_connection": 5, "connection_timeout": 30000, "read_timeout": 30000, "retry_backoff_millis": 200,
        "retry_timeout_seconds": 30, "max_retry_times": 0, "retry_backoff_policy": "constant"}
    cid2 = ml.ok("POST", f"{ML}/connectors/_create",
                 {**CONNECTOR, "client_config": {"read_timeout": 5, "retry_backoff_policy": "exponential_full_jitter"}}
                 )["connector_id"]
    cc = ml.ok("GET", f"{ML}/connectors/{cid2}")["client_config"]
    assert (cc["read_timeout"], cc["retry_backoff_policy"], cc["max_connection"]) == (5, "exponential_full_jitter", 30)


def test_connector_search_hits_show_the_client_config_defaults_as_get_does(ml: AsgiNode) -> None:
    cc = {"max_connection": 10, "connection_timeout": 10, "read_timeout": 60}
    cid = ml.ok("POST", f"{ML}/connectors/_create", {**CONNECTOR, "name": "cc", "client_config": cc})["connector_id"]
    ml.ok("POST", f"{ML}/connectors/_create", CONNECTOR)
    full = {**cc, "retry_backoff_millis": 200, "retry_timeout_seconds": 30, "max_retry_times": 0,
            "retry_backoff_policy": "constant"}
    query = {"query": {"term": {"name.keyword": "cc"}}}
    hits = ml.ok("POST", f"{ML}/connectors/_search", query)["hits"]["hits"]
    assert [h["_id"] for h in hits] == [cid]
    assert hits[0]["_source"] == ml.ok("GET", f"{ML}/connectors/{cid}")
    assert hits[0]["_source"]["client_config"] == full and "credential" not in hits[0]["_source"]
    # the request's _source filter applies to what GET shows, defaults included; credentials stay out
    src = ml.ok("POST", f"{ML}/connectors/_search", {**query, "_source": ["client_config.max_retry_times",
                                                                           "credential"]})["hits"]["hits"][0]
    assert src["_source"] == {"client_config": {"max_retry_times": 0}}
    hit = ml.ok("POST", f"{ML}/connectors/_search?_source=false", query)["hits"]["hits"][0]
    assert "_source" not in hit and hit["_version"] == 1
    nocc = ml.ok("POST", f"{ML}/connectors/_search", {"query": {"term": {"name.keyword": "c"}}})["hits"]["hits"]
    assert "client_config" not in nocc[0]["_source"]


def test_remote_model_fields_through_deploy_and_undeploy(ml: AsgiNode) -> None:
    cid = ml.ok("POST", f"{ML}/connectors/_create", CONNECTOR)["connector_id"]
    mid = ml.ok("POST", f"{ML}/models/_register", {"name": "m", "function_name": "remote",
                                                     "connector_id": cid})["model_id"]
    assert "last_registered_time" not in ml.ok("GET", f"{ML}/models/{mid}")
    ml.ok("POST", f"{ML}/models/{mid}/_deploy")
    deployed = ml.ok("GET", f"{ML}/models/{mid}")
    assert deployed["auto_redeploy_retry_times"] == 0 and deployed["deploy_to_all_nodes"] is True
    und = ml.ok("POST", f"{ML}/models/{mid}/_undeploy")
    assert list(und.values()) == [{"stats": {mid: "undeployed"}}]
    model = ml.ok("GET", f"{ML}/models/{mid}")
    assert model["model_state"] == "UNDEPLOYED"
    assert "planning_worker_nodes" not in model and "last_undeployed_time" not in model
    assert (model["planning_worker_node_count"], model["current_worker_node_count"]) == (0, 0)
    assert model["deploy_to_all_nodes"] is True
    assert model["last_updated_time"] == deployed["last_updated_time"]


def test_ml_writes_and_missing_ids_as_ml_commons_2_19(ml: AsgiNode) -> None:
    r = ml.request("POST", f"{ML}/models/_register", {"name": "m", "function_name": "remote",
                                                        "connector_id": "doesnotexist123456789"})
    assert (r.status_code, r.json()["error"]["reason"]) == (404, "Failed to find connector:doesnotexist123456789")
    for path, index in ((f"{ML}/connectors/doesnotexist1", ".plugins-ml-connector"),
                        (f"{ML}/model_groups/doesnotexist1", ".plugins-ml-model-group")):
        r = ml.request("DELETE", path)
        assert r.status_code == 200, r.text
        assert r.json() == {"_index": index, "_id": "doesnotexist1", "_version": 1, "result": "not_found",
                            "forced_refresh": True, "_shards": {"total": 1, "successful": 1, "failed": 0},
                            "_seq_no": r.json()["_seq_no"], "_primary_term": 1}
    gid = ml.ok("POST", f"{ML}/model_groups/_register", {"name": "g1"})["model_group_id"]
    res = ml.ok("DELETE", f"{ML}/model_groups/{gid}")
    assert (res["result"], res["forced_refresh"], res["_shards"]["total"]) == ("deleted", True, 1)


def test_neural_query_checks_its_model_before_the_index(ml: AsgiNode) -> None:
    # TransportSearchAction rewrites the query (neural-search asks ML Commons for the embedding) before it
    # resolves the indices: story plugins/ml/ingest/pipeline/search_by_image.yaml #0 on a real 2.19.6 node
    query = {"query": {"neural": {"passage_embedding": {"query_image": "aW1n", "model_id": "invalid", "k": 100}}}}
    r = ml.request("POST", "/movies/_search", query)
    assert r.status_code == 404
    assert (r.json()["error"]["type"], r.json()["error"]["reason"]) == ("status_exception", "Failed to find model")
    # an ordinary query on a missing index still names the index
    r = ml.request("POST", "/movies/_search", {"query": {"match_all": {}}})
    assert (r.status_code, r.json()["error"]["type"]) == (404, "index_not_found_exception")


def test_ml_missing_ids_stay_404_on_3x(tmp_path: Path) -> None:
    node = AsgiNode(tmp_path / "d3", version="3.1.0")
    try:
        assert node.request("DELETE", f"{ML}/connectors/doesnotexist1").status_code == 404
        assert node.request("DELETE", f"{ML}/model_groups/doesnotexist1").status_code == 404
    finally:
        node.close()


# ------------------------------------------------------------------ REST layer
def test_a_body_of_a_media_type_opensearch_does_not_parse_is_406(n: AsgiNode) -> None:
    for ct in ("application/octet-stream", "text/plain", "text/json", "*/*"):
        r = n.request("POST", "/r0/_count", raw=b"{}", headers={"content-type": ct})
        assert (r.status_code, r.json()) == (406, {"error": f"Content-Type header [{ct}] is not supported",
                                                   "status": 406})
    for ct in ("application/json; charset=UTF-8", "APPLICATION/JSON", "application/x-ndjson", "application/*",
               "application/vnd.opensearch+json;compatible-with=7"):
        assert n.request("POST", "/r0/_count", raw=b"{}", headers={"content-type": ct}).status_code == 200, ct
    # no body: the media type does not matter
    assert n.request("POST", "/r0/_count", headers={"content-type": "text/plain"}).status_code == 200


# ------------------------------------------------------------------ indices and mappings
def test_new_indices_record_replication_type(n: AsgiNode) -> None:
    flat = n.ok("GET", "/r0/_settings?flat_settings=true")["r0"]["settings"]
    assert flat["index.replication.type"] == "DOCUMENT"


def test_get_mapping_renders_as_opensearch_stores_it(n: AsgiNode) -> None:
    n.ok("PUT", "/m1", {"settings": {"index.knn": True}, "mappings": {"properties": {
        "w": {"type": "knn_vector", "dimension": 4, "space_type": "l2", "method": {"name": "hnsw", "engine": "lucene"}},
        "v": {"type": "knn_vector", "dimension": 4,
              "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}},
        "meta": {"type": "object", "dynamic": True}, "n": {"type": "integer"}}}})
    props = n.ok("GET", "/m1/_mapping")["m1"]["mappings"]["properties"]
    assert list(props) == ["meta", "n", "v", "w"]
    assert props["meta"]["dynamic"] == "true"
    assert props["v"]["method"] == {"engine": "lucene", "space_type": "cosinesimil", "name": "hnsw", "parameters": {}}
    assert list(props["w"]["method"].items()) == [("engine", "lucene"), ("space_type", "l2"), ("name", "hnsw"),
                                                  ("parameters", {})]
    assert props["w"]["space_type"] == "l2"


def test_create_index_mapping_errors_say_failed_to_parse_mapping(n: AsgiNode) -> None:
    err = n.request("PUT", "/m2", {"mappings": {"properties": {"x": {"type": "nosuchtype"}}}}).json()["error"]
    assert err["reason"] == "Failed to parse mapping [_doc]: No handler for type [nosuchtype] declared on field [x]"
    assert err["caused_by"] == {"type": "mapper_parsing_exception",
                                "reason": "No handler for type [nosuchtype] declared on field [x]"}
    assert err["root_cause"] == [err["caused_by"]]
    err = n.request("PUT", "/m3", {"settings": {"index.knn": True}, "mappings": {"properties": {"x": {
        "type": "knn_vector", "dimension": 4,
        "method": {"name": "hnsw", "engine": "lucene", "space_type": "hamming"}}}}}).json()["error"]
    reason = "Space type [hamming] is not supported with [float] data type"
    assert err["reason"] == f"Failed to parse mapping [_doc]: {reason}"
    assert err["caused_by"] == {"type": "illegal_argument_exception", "reason": reason}
    assert err["root_cause"] == [{"type": "mapper_parsing_exception", "reason": err["reason"]}]
    # PUT _mapping on an existing index has no such wrapper
    err = n.request("PUT", "/r0/_mapping", {"properties": {"x": {"type": "nosuchtype"}}}).json()["error"]
    assert err["reason"] == "No handler for type [nosuchtype] declared on field [x]"


def test_document_field_errors_carry_the_java_cause(n: AsgiNode) -> None:
    err = n.request("PUT", "/r0/_doc/1", {"n": "abc"}).json()["error"]
    assert err["caused_by"] == {"type": "number_format_exception", "reason": 'For input string: "abc"'}
    n.ok("PUT", "/kv", {"settings": {"index.knn": True},
                        "mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 4}}}})
    err = n.request("PUT", "/kv/_doc/bad", {"v": [1, 2, 3]}).json()["error"]
    assert err["reason"].endswith("Preview of field's value: 'null'")


def test_a_string_that_is_no_number_names_the_java_cause_of_the_field_type(n: AsgiNode) -> None:
    # NumberType.parse: long and unsigned_long go through Numbers.toLong/toUnsignedLong
    # (IllegalArgumentException); the others through Double/Float.parseDouble (NumberFormatException)
    types = ("long", "unsigned_long", "integer", "short", "byte", "double", "float")
    n.ok("PUT", "/nums", {"mappings": {"properties": {t: {"type": t} for t in types}}})
    reason = 'For input string: "not a number"'
    for i, t in enumerate(types):
        want = {"type": "illegal_argument_exception" if "long" in t else "number_format_exception", "reason": reason}
        err = n.request("PUT", f"/nums/_doc/{i}", {t: "not a number"}).json()["error"]
        assert err["caused_by"] == want, t
        bulk = f'{{"index":{{"_index":"nums","_id":"b{i}"}}}}\n{{"{t}":"not a number"}}\n'
        item = n.ok("POST", "/_bulk", raw=bulk)["items"][0]["index"]
        assert item["error"]["caused_by"] == want, t


def test_single_document_apis_name_a_missing_index_an_index_expression(n: AsgiNode) -> None:
    for method, path in (("GET", "/missing/_doc/1"), ("DELETE", "/missing/_doc/1"), ("GET", "/missing/_source/1")):
        r = n.request(method, path)
        assert r.status_code == 404 and r.json()["error"]["resource.type"] == "index_expression", path
    assert n.request("GET", "/missing/_mapping").json()["error"]["resource.type"] == "index_or_alias"
    assert "missing" not in n.ok("GET", "/_cat/indices?format=json&expand_wildcards=all").__repr__()
    # an update auto-creates the index, then finds no document
    r = n.request("POST", "/missing2/_update/1", {"doc": {"a": 1}})
    assert (r.status_code, r.json()["error"]["type"]) == (404, "document_missing_exception")
    assert n.request("HEAD", "/missing2").status_code == 200


def test_no_handler_answer_has_no_status_key(n: AsgiNode) -> None:
    r = n.request("GET", "/r0/_nosuchendpoint")
    assert (r.status_code, r.json()) == (400, {"error": "no handler found for uri [/r0/_nosuchendpoint] and "
                                                        "method [GET]"})


# ------------------------------------------------------------------ from the spec's stories
def test_index_template_settings_read_back_as_index_settings(n: AsgiNode) -> None:
    n.ok("PUT", "/_index_template/daily", {"index_patterns": ["daily-*"],
                                           "template": {"settings": {"number_of_shards": 4, "number_of_replicas": 4}}})
    t = n.ok("GET", "/_index_template/daily")["index_templates"][0]["index_template"]
    assert t["template"]["settings"] == {"index": {"number_of_shards": "4", "number_of_replicas": "4"}}
    assert t["composed_of"] == []


def test_cluster_health_human_adds_readable_values(n: AsgiNode) -> None:
    h = n.ok("GET", "/_cluster/health/r0?human=true")
    keys = list(h)
    assert keys.index("task_max_waiting_in_queue") + 1 == keys.index("task_max_waiting_in_queue_millis")
    assert (h["task_max_waiting_in_queue"], h["active_shards_percent"]) == ("0s", "100.0%")
    assert "active_shards_percent" not in n.ok("GET", "/_cluster/health/r0")


def test_cluster_health_awareness_attributes_level(n: AsgiNode) -> None:
    h = n.ok("GET", "/_cluster/health?level=awareness_attributes&awareness_attribute=zone")
    assert list(h)[-1] == "awareness_attributes" and h["awareness_attributes"] == {"zone": {}}
    assert n.ok("GET", "/_cluster/health?level=awareness_attributes")["awareness_attributes"] == {}
    assert "awareness_attributes" not in n.ok("GET", "/_cluster/health")
    n.ok("PUT", "/_cluster/settings", {"persistent": {"cluster.routing.allocation.awareness.attributes": "zone,rack"}})
    assert n.ok("GET", "/_cluster/health?level=awareness_attributes")["awareness_attributes"] == {"zone": {}, "rack": {}}
    r = n.request("GET", "/_cluster/health/r0?level=awareness_attributes")
    assert (r.status_code, r.json()["error"]["type"], r.json()["error"]["reason"]) == (
        400, "action_request_validation_exception",
        "Validation Failed: 1: awareness_attribute is not a supported parameter with index health;")
    r = n.request("GET", "/_cluster/health?awareness_attribute=zone")
    assert (r.status_code, r.json()["error"]["reason"]) == (
        400, "Validation Failed: 1: level=awareness_attributes is required with awareness_attribute parameter;")


def test_phase_took_and_count_terminate_after(n: AsgiNode) -> None:
    for i in range(3):
        n.ok("PUT", f"/r0/_doc/{i}", {"n": i})
    res = n.ok("POST", "/r0/_search?phase_took=true", {})
    assert list(res)[:2] == ["took", "phase_took"]
    assert set(res["phase_took"]) == {"dfs_pre_query", "query", "fetch", "dfs_query", "expand", "can_match"}
    assert "phase_took" not in n.ok("POST", "/r0/_search", {})
    assert n.ok("POST", "/r0/_count?terminate_after=1", {"query": {"match_all": {}}}) == {
        "terminated_early": True, "count": 1, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}}
    res = n.ok("POST", "/r0/_count?terminate_after=3", {})
    assert (res["terminated_early"], res["count"]) == (False, 3)
    assert "terminated_early" not in n.ok("POST", "/r0/_count", {})


def test_search_terminate_after_collects_in_doc_order(n: AsgiNode) -> None:
    for i, v in ((1, 5), (2, 1), (3, 3)):
        n.ok("PUT", f"/r0/_doc/{i}", {"n": v})
    res = n.ok("POST", "/r0/_search", {"terminate_after": 2, "sort": [{"n": "desc"}]})
    assert list(res)[:3] == ["took", "timed_out", "terminated_early"] and res["terminated_early"] is True
    assert res["hits"]["total"]["value"] == 2
    assert [(h["_id"], h["sort"]) for h in res["hits"]["hits"]] == [("1", [5]), ("2", [1])]  # doc 3 never collected
    res = n.ok("POST", "/r0/_search?terminate_after=5", {})
    assert (res["terminated_early"], res["hits"]["total"]["value"]) == (False, 3)
    assert "terminated_early" not in n.ok("POST", "/r0/_search", {})


def test_cat_plugins_lists_the_job_scheduler_and_four_part_versions(n: AsgiNode) -> None:
    rows = n.ok("GET", "/_cat/plugins?format=json")
    assert [r["component"] for r in rows] == ["opensearch-job-scheduler", "opensearch-knn", "opensearch-ml",
                                              "opensearch-neural-search"]
    assert {r["version"] for r in rows} == {"2.19.6.0"}


def test_knn_stats_name_every_stat_of_the_2_19_plugin(n: AsgiNode) -> None:
    # story plugins/knn/knn/stats.yaml: KNNStats 2.19 also has graph_stats, indexing_from_model_degraded,
    # training_requests and script_compilation_errors (values as a real 2.19.6 node without graphs answers)
    n.ok("PUT", "/kv", {"settings": {"index.knn": True},
                        "mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 2}}}})
    n.ok("PUT", "/kv/_doc/1?refresh=true", {"v": [1, 0]})
    script = {"source": "other", "lang": "knn", "params": {}}
    r = n.request("POST", "/kv/_search", {"query": {"script_score": {"query": {"match_all": {}}, "script": script}}})
    assert r.status_code == 400  # KNNScoringScriptEngine.compile: "Unknown script name other"
    for path in ("/_plugins/_knn/stats", "/_plugins/_knn/_all/stats"):
        (stats,) = n.ok("GET", path)["nodes"].values()
        assert stats["graph_stats"] == {
            "merge": {"current": 0, "current_docs": 0, "current_size_in_bytes": 0, "total": 0,
                      "total_time_in_millis": 0, "total_docs": 0, "total_size_in_bytes": 0},
            "refresh": {"total": 0, "total_time_in_millis": 0}}
        assert stats["indexing_from_model_degraded"] is False and stats["training_requests"] == 0
        assert (stats["script_compilations"], stats["script_compilation_errors"]) == (1, 1)
    (one,) = n.ok("GET", "/_plugins/_knn/stats/training_requests,graph_stats")["nodes"].values()
    assert sorted(one) == ["graph_stats", "training_requests"]


def test_knn_query_of_a_wrong_dimension_is_counted(n: AsgiNode) -> None:
    # KNNQueryBuilder.doToQuery counts the request (updateQueryStats) before it checks the dimension:
    # corpus 05-knn's 3-dimension query made real 2.19.6 say knn_query_requests 11 where the node said 10
    n.ok("PUT", "/kv", {"settings": {"index.knn": True},
                        "mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 4}}}})
    n.ok("PUT", "/kv/_doc/1?refresh=true", {"v": [1, 0, 0, 0]})
    n.ok("POST", "/kv/_search", {"query": {"knn": {"v": {"vector": [1, 0, 0, 0], "k": 1}}}})
    r = n.request("POST", "/kv/_search", {"query": {"knn": {"v": {"vector": [1, 0, 0], "k": 3,
                                                                  "filter": {"match_all": {}}}}}})
    assert r.status_code == 400 and "Query vector has invalid dimension: 3" in r.text
    (stats,) = n.ok("GET", "/_plugins/_knn/stats")["nodes"].values()
    assert (stats["knn_query_requests"], stats["knn_query_with_filter_requests"]) == (2, 1)
