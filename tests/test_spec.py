"""kit.spec: loading the OpenSearch API spec, finding operations, strict validation, the allow-list."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kit.errors import ConfigError, SpecError
from kit.spec import ALLOW_LIST, Spec, load_raw_files, load_spec, satisfies
from kit.spec import allow_list_still_needed, allow_list_target


@pytest.fixture(scope="module")
def spec(spec_dir: Path) -> Spec:
    return load_spec(spec_dir, cache_dir=False)


@pytest.fixture(scope="module")
def strict_spec(spec_dir: Path) -> Spec:
    """The spec as published, for OpenSearch 3.3.0 (what conformance runs use)."""
    return load_spec(spec_dir, version="3.3.0", distribution="opensearch.org", allow_list=False, cache_dir=False)


CLIP_PIPELINE = {
    "description": "images",
    "processors": [
        {"text_image_embedding": {"model_id": "abc", "embedding": "image_embedding", "field_map": {"image": "image"}}},
        {"text_embedding": {"model_id": "def", "field_map": {"ocr_text": "ocr_embedding"}}},
        {"remove": {"field": "image"}},
    ],
}


# ---- loading -------------------------------------------------------------------------------------


def test_load_merges_all_namespaces(spec: Spec) -> None:
    groups = {op.group for op in spec.operations}
    for group in ("ml.register_model", "ingest.put_pipeline", "search_pipeline.put", "indices.create",
                  "bulk", "search", "cluster.health", "knn.stats", "neural.stats"):
        assert group in groups
    assert len(spec.operations) > 700


def test_load_accepts_the_spec_subfolder_and_caches(spec_dir: Path, tmp_path: Path) -> None:
    first = load_spec(spec_dir / "spec", cache_dir=tmp_path)
    assert list(tmp_path.glob("opensearch-api-spec-*.pickle")), "the processed spec is cached on disk"
    assert load_spec(spec_dir / "spec", cache_dir=tmp_path) is first  # in-process cache
    from kit import spec as spec_module

    spec_module._load_cached.cache_clear()
    started = time.perf_counter()
    again = load_spec(spec_dir / "spec", cache_dir=tmp_path)
    assert time.perf_counter() - started < 1.0, "loading from the disk cache is fast"
    assert again.find_operation("GET", "/_cluster/health").group == "cluster.health"


def test_unreadable_spec_dir_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nowhere")
    assert isinstance(info.value, ConfigError)
    assert "not an OpenSearch API spec folder" in str(info.value)
    (tmp_path / "spec" / "namespaces").mkdir(parents=True)
    (tmp_path / "spec" / "schemas").mkdir()
    (tmp_path / "spec" / "_info.yaml").write_text("{title: x\n")  # broken YAML
    with pytest.raises(SpecError, match="invalid YAML"):
        load_spec(tmp_path, cache_dir=False)


def test_version_extraction_drops_newer_operations(spec_dir: Path, strict_spec: Spec) -> None:
    old = load_spec(spec_dir, version="2.11.0", distribution="opensearch.org", allow_list=False, cache_dir=False)
    # semantic fields / agentic search arrived in 3.x; neural stats in 3.0
    assert old.operation("GET", "/_plugins/_neural/stats") is None
    assert strict_spec.operation("GET", "/_plugins/_neural/stats") is not None


# ---- finding operations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "template", "group"),
    [
        ("PUT", "/_ingest/pipeline/images-ingest", "/_ingest/pipeline/{id}", "ingest.put_pipeline"),
        ("POST", "/_ingest/pipeline/_simulate", "/_ingest/pipeline/_simulate", "ingest.simulate"),
        ("POST", "/_plugins/_ml/models/_register", "/_plugins/_ml/models/_register", "ml.register_model"),
        ("POST", "/_plugins/_ml/models/_search", "/_plugins/_ml/models/_search", "ml.search_models"),
        ("GET", "/_plugins/_ml/models/abc123", "/_plugins/_ml/models/{model_id}", "ml.get_model"),
        ("POST", "/_plugins/_ml/models/abc/_deploy", "/_plugins/_ml/models/{model_id}/_deploy", "ml.deploy_model"),
        ("GET", "/images/_doc/1", "/{index}/_doc/{id}", "get"),
        ("POST", "/images/_search?search_pipeline=p", "/{index}/_search", "search"),
        ("PUT", "/images", "/{index}", "indices.create"),
        ("GET", "/_cluster/health", "/_cluster/health", "cluster.health"),
        ("PUT", "/_search/pipeline/{id}", "/_search/pipeline/{id}", "search_pipeline.put"),
    ],
)
def test_find_operation(spec: Spec, method: str, path: str, template: str, group: str) -> None:
    op = spec.find_operation(method, path)
    assert (op.path, op.group) == (template, group)
    assert op.method == method
    assert [o for o in spec.operations_in_group(group) if o.path == template]


def test_find_operation_unknown_path_or_method(spec: Spec) -> None:
    with pytest.raises(SpecError, match="no such operation"):
        spec.find_operation("GET", "/_plugins/_nope/things/1/2/3/4")
    with pytest.raises(SpecError) as info:
        spec.find_operation("PATCH", "/_cluster/health")
    assert info.value.hint and "GET" in info.value.hint


# ---- validate_request ----------------------------------------------------------------------------


def test_valid_requests_have_no_problems(spec: Spec) -> None:
    assert spec.validate_request("PUT", "/_ingest/pipeline/images-ingest", body=CLIP_PIPELINE) == []
    assert spec.validate_request("POST", "/_plugins/_ml/model_groups/_register",
                                 body={"name": "oskit", "description": "models"}) == []
    assert spec.validate_request("PUT", "/images", body={
        "settings": {"index.knn": True, "index.default_pipeline": "images-ingest"},
        "mappings": {"properties": {"image_embedding": {"type": "knn_vector", "dimension": 512, "method": {
            "name": "hnsw", "engine": "faiss", "space_type": "cosinesimil",
            "parameters": {"m": 16, "ef_construction": 128}}}}}}) == []
    # a query string value is coerced the way the server parses it
    assert spec.validate_request("GET", "/images/_search", params={"size": "10", "search_pipeline": "p"},
                                 body={"query": {"match_all": {}}, "sort": [{"year": "asc"}]}) == []


def test_unknown_body_key_is_reported(spec: Spec) -> None:
    problems = spec.validate_request("POST", "/_plugins/_ml/models/_register",
                                     body={"name": "x", "modle_group_id": "abc"})
    assert problems == ["POST /_plugins/_ml/models/_register: body: unknown field(s) 'modle_group_id': "
                        "not defined in the spec"]


def test_unknown_nested_key_is_reported_at_its_path(spec: Spec) -> None:
    body = {"processors": [{"text_embedding": {"model_id": "m", "field_map": {"a": "b"}, "batchsize": 3}}]}
    problems = spec.validate_request("PUT", "/_ingest/pipeline/p", body=body)
    assert len(problems) == 1
    assert "body.processors[0].text_embedding" in problems[0] and "'batchsize'" in problems[0]


def test_wrong_type_is_reported(spec: Spec) -> None:
    problems = spec.validate_request("POST", "/_plugins/_ml/models/_register", body={"name": "x", "model_group_id": 5})
    assert problems == ["POST /_plugins/_ml/models/_register: body.model_group_id: 5 is not of type 'string'"]


def test_unknown_query_parameter_and_bad_value(spec: Spec) -> None:
    problems = spec.validate_request("GET", "/images/_search", params={"sise": 10})
    assert len(problems) == 1 and "'sise'" in problems[0] and "did you mean size" in problems[0]
    problems = spec.validate_request("GET", "/images/_search", params={"size": "ten"})
    assert len(problems) == 1 and "query parameter 'size'" in problems[0]


def test_unknown_operation_and_missing_body(spec: Spec) -> None:
    assert "no such operation" in spec.validate_request("POST", "/_plugins/_nope")[0]
    assert spec.validate_request("PUT", "/_ingest/pipeline/p") == [
        "PUT /_ingest/pipeline/{id}: body: a request body is required"]
    assert "declares no request body" in spec.validate_request("GET", "/_cluster/health", body={"a": 1})[0]


def test_bulk_ndjson_body(spec: Spec) -> None:
    body = [{"index": {"_index": "images", "_id": "1"}}, {"file_name": "a.png"}]
    assert spec.validate_request("POST", "/_bulk", body=body, content_type="application/x-ndjson") == []
    assert "content type application/json not accepted" in spec.validate_request("POST", "/_bulk", body=body)[0]


# ---- validate_response ---------------------------------------------------------------------------


def test_validate_response(spec: Spec) -> None:
    ok = {"cluster_name": "oskit", "status": "green", "timed_out": False, "number_of_nodes": 1,
          "number_of_data_nodes": 1, "active_primary_shards": 0, "active_shards": 0, "relocating_shards": 0,
          "initializing_shards": 0, "unassigned_shards": 0, "delayed_unassigned_shards": 0,
          "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0, "task_max_waiting_in_queue_millis": 0,
          "active_shards_percent_as_number": 100.0, "discovered_cluster_manager": True}
    assert spec.validate_response("GET", "/_cluster/health", 200, ok) == []
    bad = spec.validate_response("GET", "/_cluster/health", 200, {**ok, "status": "purple", "extra": 1})
    assert any("'purple'" in p for p in bad) and any("'extra'" in p for p in bad)
    assert "not declared" in spec.validate_response("GET", "/_cluster/health", 418, {})[0]


# ---- strictness as upstream's tester -------------------------------------------------------------


def test_sort_shorthand_is_not_ambiguous(strict_spec: Spec) -> None:
    # Without unevaluatedProperties, {year: asc} matches two oneOf branches and fails (README).
    op = strict_spec.find_operation("POST", "/movies/_search")
    assert strict_spec.validate_pointer(op.request_body["application/json"], {"sort": [{"year": "asc"}]}) == []


def test_published_spec_rejects_what_the_allow_list_accepts(spec: Spec, strict_spec: Spec) -> None:
    assert spec.validate_request("PUT", "/_ingest/pipeline/p", body=CLIP_PIPELINE) == []
    problems = strict_spec.validate_request("PUT", "/_ingest/pipeline/p", body=CLIP_PIPELINE)
    assert problems and "'embedding'" in problems[0]


# ---- the allow-list ------------------------------------------------------------------------------

# One request per allow-list entry that real OpenSearch accepts and the published spec rejects.
ALLOWED_REQUESTS: dict[str, tuple[str, str, dict[str, object] | None, dict[str, object]]] = {
    "text_image_embedding.embedding": ("PUT", "/_ingest/pipeline/p", None, CLIP_PIPELINE),
    "model_config.pooling_mode": ("POST", "/_plugins/_ml/models/_register", None, {
        "name": "m", "model_config": {"model_type": "bert", "embedding_dimension": 384,
                                      "framework_type": "sentence_transformers", "pooling_mode": "mean"}}),
    "model_config.normalize_result": ("POST", "/_plugins/_ml/models/_register", None, {
        "name": "m", "model_config": {"model_type": "bert", "normalize_result": True}}),
    "model_config.model_max_length": ("POST", "/_plugins/_ml/models/_register", None, {
        "name": "m", "model_config": {"model_type": "bert", "model_max_length": 256}}),
    "model_config.query_prefix": ("POST", "/_plugins/_ml/models/_register", None, {
        "name": "m", "model_config": {"model_type": "bert", "query_prefix": "query: "}}),
    "model_config.passage_prefix": ("POST", "/_plugins/_ml/models/_register", None, {
        "name": "m", "model_config": {"model_type": "bert", "passage_prefix": "passage: "}}),
    "register_model.deploy": ("POST", "/_plugins/_ml/models/_register", {"deploy": "true"}, {"name": "m"}),
    "register_model.connector": ("POST", "/_plugins/_ml/models/_register", None, {
        "name": "clip", "function_name": "remote", "connector": {
            "name": "c", "description": "d", "version": 1, "protocol": "http", "credential": {"key": "x"},
            "parameters": {"endpoint": "127.0.0.1"},
            "actions": [{"action_type": "predict", "method": "POST", "url": "http://127.0.0.1:8765/clip/embed",
                         "request_body": "{}"}]}}),
    "deploy_model.body": ("POST", "/_plugins/_ml/models/abc/_deploy", None, {"node_ids": ["n1"]}),
    "predict_model.return_number": ("POST", "/_plugins/_ml/models/abc/_predict", None, {
        "text_docs": ["hi"], "return_number": True}),
    "predict_model.target_response": ("POST", "/_plugins/_ml/models/abc/_predict", None, {
        "text_docs": ["hi"], "target_response": ["sentence_embedding"]}),
    "ingest.ml_inference": ("PUT", "/_ingest/pipeline/p", None, {"processors": [{"ml_inference": {
        "model_id": "ocr", "input_map": [{"inputImage": "image"}], "output_map": [{"ocr_text": "text"}],
        "ignore_failure": True}}]}),
    "search_request.ml_inference": ("PUT", "/_search/pipeline/p", None, {"request_processors": [{"ml_inference": {
        "model_id": "m", "input_map": [{"text": "query.match.title.query"}], "output_map": [{"q": "response"}],
        "query_template": "{}"}}]}),
    "search_response.ml_inference": ("PUT", "/_search/pipeline/p", None, {"response_processors": [{"ml_inference": {
        "model_id": "m", "input_map": [{"inputImage": "image"}], "output_map": [{"tags": "tags"}],
        "one_to_one": True}}]}),
}


def test_every_allow_list_entry_has_a_reason_and_a_test_request() -> None:
    assert set(ALLOWED_REQUESTS) == set(ALLOW_LIST)
    for key, entry in ALLOW_LIST.items():
        assert len(entry.reason) > 30, f"{key}: say why the spec is wrong here"
        assert entry.kind in ("property", "query_parameter", "request_body", "one_of")


def test_allow_list_entries_are_still_needed(spec_dir: Path) -> None:
    """Fails when the upstream spec gains what an entry adds: then delete the entry."""
    files = load_raw_files(spec_dir)
    for key, entry in ALLOW_LIST.items():
        try:
            allow_list_target(files, entry)
        except (KeyError, IndexError, TypeError):
            pytest.fail(f"allow-list {key}: {entry.file}#{entry.pointer} no longer exists; revisit the entry")
        assert allow_list_still_needed(files, entry), f"allow-list {key}: the spec has it now; remove the entry"


@pytest.mark.parametrize("key", sorted(ALLOW_LIST))
def test_allow_list_entry_is_what_makes_the_request_valid(spec: Spec, spec_dir: Path, key: str) -> None:
    method, path, params, body = ALLOWED_REQUESTS[key]
    assert spec.validate_request(method, path, body=body, params=params) == []
    published = load_spec(spec_dir, allow_list=False, cache_dir=False)
    assert published.validate_request(method, path, body=body, params=params), \
        f"{key}: the published spec accepts this request, so the entry is not needed for it"


# ---- versions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "range_", "expected"),
    [("3.3.0", ">= 2.11", True), ("3.3.0", "< 2.0", False), ("3.3.0", ">2.0.0", True), ("3.3.0", ">= 3.3", True),
     ("3.3.0", ">=3.4", False), ("2.19.2", ">=2.19", True), ("1.3.17", ">= 1.2 < 2.0", True),
     ("2.5.1", "2.x", True), ("3.3.0", "<2.0 || >=3.0", True), ("2.0.0", ">2.0.0", False)],
)
def test_satisfies(version: str, range_: str, expected: bool) -> None:
    assert satisfies(version, range_) is expected


# ---- the fast validator gives the plain jsonschema validator's verdicts --------------------------

_TEXT_WITH_FIELDS = {"type": "text", "analyzer": "english", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}}
_PROPERTY = "/components/schemas/_common.mapping___Property"
_AGGREGATION = "/components/schemas/_common.aggregations___AggregationContainer"
# (where: "METHOD /path" for a request body, else a schema pointer; instance; valid?). Plain jsonschema
# needs seconds for every nesting of one mapping property in another, so those cases start lower down.
_SAME_VERDICT_CASES: list[tuple[str, Any, bool]] = [
    ("PUT /images", {"mappings": {"properties": {"tag": {"type": "keyword"}}}}, True),
    ("PUT /images", {"mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 4}}}}, True),
    # unknown key in a mapping property; wrong type; unknown mapping type; non-string discriminator
    ("PUT /images", {"mappings": {"properties": {"tag": {"type": "keyword", "ignore_abuve": 5}}}}, False),
    ("PUT /images", {"mappings": {"properties": {"tag": {"type": "keyword", "ignore_above": "x"}}}}, False),
    ("PUT /images", {"mappings": {"properties": {"tag": {"type": "keywrd"}}}}, False),
    ("PUT /images", {"mappings": {"properties": {"tag": {"type": 5}}}}, False),
    ("PUT /images", {"mappings": {"properties": {"tag": "keyword"}}}, False),
    # multi-fields: a good one, and an unknown key one level down
    (_PROPERTY, {"type": "keyword", "fields": {"raw": {"type": "keyword"}}}, True),
    (_PROPERTY, {"type": "keyword", "fields": {"raw": {"type": "keyword", "bogus": 1}}}, False),
    # aggregations: valid, nested, unknown kind, two kinds in one container, wrong type
    ("POST /images/_search", {"size": 0, "aggs": {"t": {"terms": {"field": "tag"}}}}, True),
    (_AGGREGATION, {"terms": {"field": "tag"}, "aggs": {"a": {"avg": {"field": "year"}}}}, True),
    ("POST /images/_search", {"aggs": {"t": {"termz": {"field": "tag"}}}}, False),
    ("POST /images/_search", {"aggs": {"t": {"terms": {"field": "tag"}, "avg": {"field": "y"}}}}, False),
    (_AGGREGATION, {"terms": "tag"}, False),
    ("POST /images/_search", {"query": {"match": {"caption": "cat"}}, "sort": [{"year": "asc"}]}, True),
    ("POST /images/_search", {"query": {"match": {"caption": {"query": "cat", "fuzzyness": 1}}}}, False),
]


@pytest.mark.parametrize(("where", "instance", "valid"), _SAME_VERDICT_CASES,
                         ids=[f"{i}-{'good' if c[2] else 'bad'}" for i, c in enumerate(_SAME_VERDICT_CASES)])
def test_fast_validator_agrees_with_plain_jsonschema(strict_spec: Spec, where: str, instance: Any,
                                                     valid: bool) -> None:
    from jsonschema import Draft202012Validator

    from kit.spec import SPEC_URI, _memoised

    if where.startswith("/"):
        pointer = where
    else:
        method, path = where.split(" ")
        pointer = str(strict_spec.find_operation(method, path).request_body["application/json"])
    plain = Draft202012Validator({"$ref": f"{SPEC_URI}#{pointer}"}, registry=strict_spec._registry,
                                 format_checker=strict_spec._format_checker)
    fast = strict_spec._validator(pointer)
    assert type(fast) is not Draft202012Validator
    expected = sorted((list(e.absolute_path), e.validator, e.message) for e in plain.iter_errors(instance))
    with _memoised():
        got = sorted((list(e.absolute_path), e.validator, e.message) for e in fast.iter_errors(instance))
    assert got == expected  # the same top-level errors, at the same places, saying the same
    assert (not got) is valid
    assert (strict_spec.validate_pointer(pointer, instance) == []) is valid


def test_big_mapping_validates_fast(strict_spec: Spec) -> None:
    """A text field with multi-fields and nested aggregations took seconds each with plain jsonschema."""
    mapping = {"mappings": {"properties": {
        **{f"text{i}": _TEXT_WITH_FIELDS for i in range(6)},
        "obj": {"properties": {"inner": _TEXT_WITH_FIELDS, "n": {"type": "nested", "properties": {
            "deep": _TEXT_WITH_FIELDS}}}},
        "v": {"type": "knn_vector", "dimension": 512, "method": {"name": "hnsw", "engine": "faiss"}}}}}
    aggs = {"aggs": {"a": {"terms": {"field": "t"}, "aggs": {"b": {"date_histogram": {
        "field": "d", "calendar_interval": "month"}, "aggs": {"c": {"avg": {"field": "x"}},
                                                            "d": {"top_hits": {"size": 1}}}}}}}}
    started = time.perf_counter()
    assert strict_spec.validate_request("PUT", "/images", body=mapping) == []
    assert strict_spec.validate_request("POST", "/images/_search", body=aggs) == []
    bad = {**mapping, "mappings": {"properties": {**mapping["mappings"]["properties"],
                                                  "obj": {"properties": {"inner": {**_TEXT_WITH_FIELDS, "x": 1}}}}}}
    problems = strict_spec.validate_request("PUT", "/images", body=bad)
    assert problems and all("body.mappings.properties" in p for p in problems)
    assert time.perf_counter() - started < 2.0
