"""Plan / apply / diff against the embedded node: convergence, idempotence, labels, safety."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

import kit.cluster as cluster
from provision_helpers import edit, owned_counts
from kit.cluster.client import connect
from kit.config.loader import load_project
from kit.errors import Conflict, DestroyRefused, PlanStale, Unsupported


def _labels(plan: Any) -> list[tuple[str, str, str]]:
    return [(c.action, c.kind, c.name) for c in plan.changes]




@pytest.fixture()
def applied(fresh_node: Any, serve_env: str, project_dir: Path) -> Iterator[tuple[Any, Path]]:
    with connect(fresh_node.url) as client:
        plan = cluster.plan(load_project(project_dir), client)
        cluster.apply(plan, client)
        yield client, project_dir


@pytest.fixture()
def client(fresh_node: Any) -> Iterator[Any]:
    with connect(fresh_node.url) as c:
        yield c


def test_first_plan_lists_everything_in_dependency_order(client: Any, serve_env: str, project_dir: Path) -> None:
    plan = cluster.plan(load_project(project_dir), client)
    assert _labels(plan) == [
        ("create", "cluster-settings", "persistent"),
        ("create", "model-group", "oskit-models"),
        ("create", "connector", "clip"),
        ("create", "connector", "hash"),
        ("create", "connector", "ocr"),
        ("create", "connector", "tags"),
        ("create", "connector", "text"),
        ("create", "model", "clip"),
        ("create", "model", "hash"),
        ("create", "model", "ocr"),
        ("create", "model", "tags"),
        ("create", "model", "text"),
        ("create", "ingest-pipeline", "images-ingest"),
        ("create", "search-pipeline", "images-search"),
        ("create", "index", "images"),
    ]
    assert plan.notes == ["pipelines/images-ingest.yaml: processors[2].ml_inference left out (model captions is disabled)"]


def test_apply_converges_and_second_apply_changes_nothing(applied: tuple[Any, Path], fake_serve: Any) -> None:
    client, project_dir = applied
    again = cluster.plan(load_project(project_dir), client)
    assert again.in_sync, _labels(again)
    assert cluster.apply(again, client).applied == []
    assert owned_counts(client) == {"groups": 1, "connectors": 5, "models": 5}
    # the pipeline names models by id, resolved at apply time
    body = client.request("GET", "/_ingest/pipeline/images-ingest")["images-ingest"]
    ids = {c: m for c, m in again.model_ids.items()}
    assert body["processors"][2]["text_image_embedding"]["model_id"] == ids["clip"]
    assert "/clip/embed" in fake_serve.calls  # the probe ran through the connector


@pytest.mark.parametrize("path, old, new, expected", [
    ("models/clip.yaml", "read_timeout: 60", "read_timeout: 61",
     [("replace", "connector", "clip"), ("replace", "model", "clip"), ("update", "ingest-pipeline", "images-ingest"),
      ("update", "search-pipeline", "images-search")]),
    ("models/ocr.yaml", "description: OCR text lines of an image (oskit serve /ocr)", "description: OCR v2",
     [("update", "model", "ocr")]),
    ("pipelines/images-ingest.yaml", "tag: drop-image", "tag: drop-base64-image",
     [("update", "ingest-pipeline", "images-ingest")]),
    ("pipelines/images-search.yaml", "technique: arithmetic_mean", "technique: harmonic_mean",
     [("update", "search-pipeline", "images-search")]),
    ("mappings/images.yaml", "    caption:\n      type: text\n", "    caption:\n      type: text\n    extra:\n      type: keyword\n",
     [("update", "index", "images")]),
    ("mappings/images.yaml", "index.number_of_replicas: 0", "index.number_of_replicas: 1",
     [("update", "index", "images")]),
    ("mappings/images.yaml", "ef_construction: 100\n    ocr_embedding", "ef_construction: 128\n    ocr_embedding",
     [("reindex", "index", "images")]),
    ("cluster.yaml", "native_memory_threshold: 99", "native_memory_threshold: 98",
     [("update", "cluster-settings", "persistent")]),
])
def test_editing_a_file_is_drift_with_the_right_label(applied: tuple[Any, Path], path: str, old: str, new: str,
                                                      expected: list[tuple[str, str, str]]) -> None:
    client, project_dir = applied
    edit(project_dir / path, old, new)
    plan = cluster.diff(load_project(project_dir), client)
    assert _labels(plan) == expected
    cluster.apply(plan, client, allow_destroy=True)
    after = cluster.plan(load_project(project_dir), client)
    assert after.in_sync, _labels(after)
    assert owned_counts(client) == {"groups": 1, "connectors": 5, "models": 5}  # old copies removed


def test_undeployed_model_is_redeployed(applied: tuple[Any, Path]) -> None:
    client, project_dir = applied
    plan = cluster.plan(load_project(project_dir), client)
    client.request("POST", f"/_plugins/_ml/models/{plan.model_ids['ocr']}/_undeploy")
    again = cluster.plan(load_project(project_dir), client)
    assert _labels(again) == [("redeploy", "model", "ocr")]
    cluster.apply(again, client)
    assert cluster.plan(load_project(project_dir), client).in_sync


def test_plan_is_stale_when_the_cluster_changed(applied: tuple[Any, Path]) -> None:
    client, project_dir = applied
    edit(project_dir / "pipelines/images-search.yaml", "min_max", "l2")
    plan = cluster.plan(load_project(project_dir), client)
    client.request("PUT", "/images/_settings", body={"index": {"number_of_replicas": 2}})
    with pytest.raises(PlanStale):
        cluster.apply(plan, client)


def test_destroy_needs_allow_destroy_and_reindex_of_data_too(applied: tuple[Any, Path]) -> None:
    client, project_dir = applied
    client.request("PUT", "/images/_doc/a", body={"file_name": "a.png"}, params={"refresh": "true",
                                                                                 "pipeline": "_none"})
    edit(project_dir / "mappings/images.yaml", "ef_construction: 100\n    ocr_embedding",
         "ef_construction: 128\n    ocr_embedding")
    plan = cluster.plan(load_project(project_dir), client)
    assert _labels(plan) == [("reindex", "index", "images")]
    assert "1 document must be ingested again" in plan.changes[0].reason
    with pytest.raises(DestroyRefused, match="reindex index images"):
        cluster.apply(plan, client)
    (project_dir / "mappings/images.yaml").unlink()
    plan = cluster.plan(load_project(project_dir), client)
    assert _labels(plan) == [("destroy", "index", "images")]
    with pytest.raises(DestroyRefused):
        cluster.apply(plan, client)
    cluster.apply(plan, client, allow_destroy=True)
    assert client.request("GET", "/images", ignore=(404,)) is None


def test_resources_of_others_are_never_touched(client: Any, serve_env: str, project_dir: Path) -> None:
    client.request("PUT", "/_ingest/pipeline/images-ingest", body={"description": "theirs", "processors": []})
    plan = cluster.plan(load_project(project_dir), client)
    assert ("unmanaged", "ingest-pipeline", "images-ingest") in _labels(plan)
    with pytest.raises(Conflict, match="were not created by oskit project 'oskit': ingest-pipeline images-ingest"):
        cluster.apply(plan, client)
    client.request("DELETE", "/_ingest/pipeline/images-ingest")
    client.request("PUT", "/_ingest/pipeline/someone-else", body={"description": "theirs", "processors": []})
    client.request("PUT", "/other-index", body={})
    cluster.apply(cluster.plan(load_project(project_dir), client), client)
    cluster.destroy(load_project(project_dir), client)
    assert client.request("GET", "/_ingest/pipeline/someone-else")["someone-else"]["description"] == "theirs"
    assert client.request("GET", "/other-index", ignore=(404,)) is not None
    assert client.request("GET", "/images", ignore=(404,)) is None
    assert owned_counts(client) == {"groups": 0, "connectors": 0, "models": 0}


def test_old_form_markers_plan_in_sync_and_the_new_form_passes_3x_validation(
        tmp_path: Path, serve_env: str, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """oskit wrote ``[oskit:…]`` markers before ML Commons 3.1's description check refused brackets: a 2.19
    cluster provisioned that way stays managed and in sync (no spurious drift, nothing rewritten)."""
    import kit.cluster.desired as desired_mod
    from kit.node.server import NodeServer

    new_marker = desired_mod.marker
    with NodeServer(tmp_path / "n219", version="2.19.0") as node, connect(node.url) as client:
        monkeypatch.setattr(desired_mod, "marker", lambda p, m=None, fp=None: new_marker(p, m, fp).replace(
            "(", "[", 1).replace(")", "]", 1))
        cluster.apply(cluster.plan(load_project(project_dir), client), client)
        group = client.request("POST", "/_plugins/_ml/model_groups/_search", body={"query": {"match_all": {}}})
        assert group["hits"]["hits"][0]["_source"]["description"].startswith("[oskit:oskit]")
        monkeypatch.setattr(desired_mod, "marker", new_marker)
        again = cluster.plan(load_project(project_dir), client)
        assert again.in_sync, _labels(again)
        assert owned_counts(client) == {"groups": 1, "connectors": 5, "models": 5}
    # 3.x (the embedded node's default, 3.3.0) refuses brackets in ML descriptions; the new form goes through
    with NodeServer(tmp_path / "n33") as node, connect(node.url) as client:
        with pytest.raises(Exception, match=r"Model group description can only contain letters, numbers, spaces"):
            client.request("POST", "/_plugins/_ml/model_groups/_register",
                           body={"name": "g", "description": "[oskit:oskit] model group"})
        cluster.apply(cluster.plan(load_project(project_dir), client), client)
        assert cluster.plan(load_project(project_dir), client).in_sync


def test_unsafe_ml_descriptions_are_refused_before_any_write_on_3x(client: Any, serve_env: str,
                                                                   project_dir: Path) -> None:
    edit(project_dir / "models/ocr.yaml", "description: OCR text lines of an image (oskit serve /ocr)",
         "description: OCR [v2] + more")
    with pytest.raises(Unsupported) as err:
        cluster.plan(load_project(project_dir), client)
    assert "models/ocr.yaml: description: OpenSearch 3.1+ refuses '+[]' in ML descriptions" in str(err.value)
    assert client.request("GET", "/_cluster/settings")["persistent"] == {}


def test_old_targets_are_refused_before_any_write(tmp_path: Path, serve_env: str, project_dir: Path) -> None:
    from kit.node.server import NodeServer

    with NodeServer(tmp_path / "old", version="2.15.0") as node, connect(node.url) as client:
        with pytest.raises(Unsupported) as err:
            cluster.plan(load_project(project_dir), client)
        text = str(err.value)
        assert "models/clip.yaml: the built-in connector function connector.pre_process.bedrock.multimodal_embedding " \
               "needs OpenSearch 2.16+ (target is OpenSearch 2.15.0)" in text
        assert "mappings/images.yaml: mappings.properties.image_embedding: faiss with cosinesimil needs OpenSearch " \
               "2.19 (target 2.15.0)" in text
        assert client.request("GET", "/_cluster/settings")["persistent"] == {}


def test_secrets_stay_out_of_logs_and_plans(client: Any, serve_env: str, project_dir: Path,
                                            caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import logging

    edit(project_dir / "models/ocr.yaml", "  protocol: http\n", "  protocol: http\n  credential:\n"
         "    api_key: ${env:OCR_API_KEY}\n")
    monkeypatch.setenv("OCR_API_KEY", "sup3r-s3cret-value")
    caplog.set_level(logging.DEBUG)
    plan = cluster.plan(load_project(project_dir), client)
    cluster.apply(plan, client)
    assert "sup3r-s3cret-value" not in caplog.text
    assert "sup3r-s3cret-value" not in json.dumps(plan.to_dict())
    assert cluster.plan(load_project(project_dir), client).in_sync
