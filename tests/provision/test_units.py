"""Unit tests without a cluster: env references, secrets, normalised diff, markers, task waits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provision_helpers import ROOT, edit
from kit.cluster.desired import build_desired, current_marker_form, marker, parse_marker
from kit.cluster.diff import compare_mappings, compare_settings
from kit.cluster.state import flatten_settings
from kit.cluster.tasks import wait_for_task
from kit.config.envsubst import EnvResolver, find_refs, mask
from kit.config.loader import load_project
from kit.errors import ConfigError, TaskFailed, TaskTimeout


def test_env_references_resolve_with_defaults_and_report_missing() -> None:
    r = EnvResolver({"A": "x", "EMPTY": ""})
    assert r.resolve("${env:A}/${env:B:-b}/${env:EMPTY:-e}") == "x/b/e"
    assert r.resolve({"k": ["${env:NOPE}"]}) == {"k": ["${env:NOPE}"]}
    assert r.missing == [(("k", 0), "NOPE")]
    assert find_refs({"a": "${env:X:-1}"}) == [(("a",), "X", "1")]


def test_secrets_are_masked_and_never_in_plans(project_dir: Path) -> None:
    edit(project_dir / "models/clip.yaml", "  protocol: http\n",
         "  protocol: http\n  credential:\n    api_key: ${env:CLIP_API_KEY}\n")
    edit(project_dir / "models/clip.yaml", "content-type: application/json",
         "content-type: application/json\n        Authorization: Bearer ${credential.api_key}")
    desired = build_desired(load_project(project_dir), {"CLIP_API_KEY": "sup3r-s3cret"})
    assert desired.models["clip"].connector["credential"] == {"api_key": "sup3r-s3cret"}  # type: ignore[index]
    assert desired.secrets == {"sup3r-s3cret"}
    assert mask({"x": ["a sup3r-s3cret b"]}, desired.secrets) == {"x": ["a *** b"]}
    # the fingerprint depends on the variable's name, never on the secret
    other = build_desired(load_project(project_dir), {"CLIP_API_KEY": "another"})
    assert other.models["clip"].fingerprint == desired.models["clip"].fingerprint
    with pytest.raises(ConfigError, match="environment variable CLIP_API_KEY is not set"):
        build_desired(load_project(project_dir), {})


def test_disabled_models_and_their_processors_are_left_out(project_dir: Path) -> None:
    off = build_desired(load_project(project_dir), {})
    assert off.disabled == ["captions"] and "captions" not in off.models
    on = build_desired(load_project(project_dir), {"OSKIT_CAPTIONS_URL": "http://captioner:9000/v1"})
    assert on.disabled == [] and "captions" in on.models
    tags = [next(iter(p.values())).get("tag") for p in on.ingest["images-ingest"]["processors"]]
    assert tags == ["ocr", "tags", "caption", "image-embedding", "text-embeddings", "hash", "drop-image"]
    assert len(off.ingest["images-ingest"]["processors"]) == 6


def test_markers() -> None:
    assert marker("oskit", "clip", "0123456789ab") == "(oskit:oskit:clip:0123456789ab)"
    assert marker("oskit") == "(oskit:oskit)"
    assert parse_marker("(oskit:oskit:clip:0123456789ab) CLIP") == ("oskit", "clip", "0123456789ab", "CLIP")
    assert parse_marker("(oskit:oskit) group") == ("oskit", None, None, "group")
    # the form earlier oskit wrote is still ours
    assert parse_marker("[oskit:oskit:clip:0123456789ab] CLIP") == ("oskit", "clip", "0123456789ab", "CLIP")
    assert parse_marker("[oskit:oskit] group") == ("oskit", None, None, "group")
    assert parse_marker("someone else's") is None and parse_marker(None) is None
    assert parse_marker("(oskit:oskit] mixed") is None and parse_marker("[oskit:oskit) mixed") is None
    assert current_marker_form("[oskit:oskit:clip:0123456789ab] CLIP") == "(oskit:oskit:clip:0123456789ab) CLIP"
    assert current_marker_form("[oskit:oskit]") == "(oskit:oskit)"
    assert current_marker_form("(oskit:oskit) group") == "(oskit:oskit) group"
    assert current_marker_form("[other] x") == "[other] x" and current_marker_form(None) is None


def test_settings_compare_normalises_spellings() -> None:
    desired = {"plugins.ml_commons.only_run_on_ml_node": False, "plugins.ml_commons.native_memory_threshold": 99,
               "plugins.ml_commons.trusted_connector_endpoints_regex": ["^http://x/.*$"]}
    live = {"plugins.ml_commons.only_run_on_ml_node": "false", "plugins.ml_commons.native_memory_threshold": "99",
            "plugins.ml_commons.trusted_connector_endpoints_regex": ["^http://x/.*$"], "other.setting": "1"}
    assert compare_settings(desired, live) == []
    assert flatten_settings({"plugins": {"ml_commons": {"a": "1", "r": {"0": "x", "1": "y"}}}}) == \
        {"plugins.ml_commons.a": "1", "plugins.ml_commons.r": ["x", "y"]}
    [d] = compare_settings({"index.number_of_shards": 2}, {"index.number_of_shards": "1"},
                           static=("index.number_of_shards",))
    assert (d.path, d.live, d.desired, d.in_place) == ("index.number_of_shards", "1", "2", False)


def test_mappings_compare_ignores_server_defaults_and_dynamic_fields() -> None:
    desired = {"properties": {
        "v": {"type": "knn_vector", "dimension": 4, "space_type": "cosinesimil",
              "method": {"name": "hnsw", "engine": "faiss"}},
        "meta": {"type": "object", "dynamic": True},
        "t": {"type": "text", "fields": {"raw": {"type": "keyword"}}}}}
    live = {"properties": {
        "v": {"type": "knn_vector", "dimension": 4, "data_type": "float", "mode": "in_memory",
              "compression_level": "1x",
              "method": {"engine": "faiss", "space_type": "cosinesimil", "name": "hnsw",
                         "parameters": {"ef_construction": 100, "m": 16, "encoder": {"name": "flat"}}}},
        "meta": {"dynamic": "true", "properties": {"camera": {"type": "keyword"}}},
        "t": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        "added_dynamically": {"type": "long"}}}
    assert compare_mappings(desired, live) == []
    live["properties"]["v"]["dimension"] = 8
    [d] = compare_mappings(desired, live)
    assert (d.path, d.live, d.desired, d.in_place) == ("mappings.properties.v.dimension", "8", "4", False)
    desired["properties"]["new"] = {"type": "keyword"}
    assert [(x.path, x.in_place) for x in compare_mappings(desired, live)] == [
        ("mappings.properties.new", True), ("mappings.properties.v.dimension", False)]


class _FakeTasks:
    def __init__(self, states: list[dict[str, Any]]) -> None:
        self.states = states
        self.url = "http://fake"

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


def test_wait_for_task_backoff_failure_and_deadline() -> None:
    sleeps: list[float] = []
    done = wait_for_task(_FakeTasks([{"state": "CREATED"}, {"state": "RUNNING"}, {"state": "RUNNING"},
                                     {"state": "COMPLETED", "model_id": "m"}]),  # type: ignore[arg-type]
                         "t1", sleep=sleeps.append)
    assert done["model_id"] == "m" and sleeps == [0.05, 0.1, 0.2]
    with pytest.raises(TaskFailed) as failed:
        wait_for_task(_FakeTasks([{"state": "FAILED", "error": "model content changed"}]), "t2",  # type: ignore[arg-type]
                      sleep=sleeps.append)
    assert str(failed.value) == "task ended FAILED (task t2: model content changed)"
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    with pytest.raises(TaskTimeout) as late:
        wait_for_task(_FakeTasks([{"state": "RUNNING"}]), "t3", timeout=5, sleep=lambda s: None,  # type: ignore[arg-type]
                      clock=clock)
    assert late.value.last_state == "RUNNING" and late.value.task_id == "t3"


def test_plan_json_has_no_secret(project_dir: Path) -> None:
    from kit.cluster.capabilities import Target
    from kit.cluster.plan import Change, Plan

    edit(project_dir / "models/clip.yaml", "  protocol: http\n",
         "  protocol: http\n  credential:\n    api_key: ${env:CLIP_API_KEY}\n")
    project = load_project(project_dir)
    desired = build_desired(project, {"CLIP_API_KEY": "sup3r-s3cret"})
    plan = Plan(project=project, desired=desired, target=Target("http://x", "3.3.0"), fingerprint="f",
                changes=[Change("update", "connector", "clip", "x", internal={})], model_ids={},
                notes=["token sup3r-s3cret"])
    assert "sup3r-s3cret" not in json.dumps(plan.to_dict())


@pytest.mark.parametrize("distribution, version, expected", [
    ("aos", "2.19.0", ["models/text.yaml: registering custom local models from a file (chunk upload) is not available "
                       "on Amazon OpenSearch Service 2.19.0 (use a remote model (connector) on Amazon OpenSearch "
                       "Service)",
                       "cluster.yaml: the cluster setting plugins.ml_commons.allow_registering_model_via_local_file "
                       "is not available on Amazon OpenSearch Service 2.19.0 (remove it from cluster.yaml for managed "
                       "services (use an environment overlay))"]),
    ("aoss", "serverless", ["pipelines/images-ingest.yaml: the ml_inference ingest processor is not available on "
                            "OpenSearch Serverless"]),
    ("opensearch", "2.10.0", ["the project: oskit needs OpenSearch 2.11+ (target is OpenSearch 2.10.0)"]),
])
def test_capability_refusals_name_the_feature_and_version(distribution: str, version: str,
                                                          expected: list[str]) -> None:
    from kit.cluster.capabilities import Target, check
    from kit.errors import Unsupported

    with pytest.raises(Unsupported) as err:
        check(load_project(ROOT), Target("https://x", version, distribution=distribution), {})
    lines = [line.strip() for line in str(err.value).splitlines()[1:]]
    for line in expected:
        assert line in lines, lines
