"""The issue's "Done when", on the repository's own project (MiniLM built as a real TorchScript package,
uploaded in 10,000,000-byte chunks and deployed on the embedded node), through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import kit.cluster as cluster
from clihelp import oskit
from provision_helpers import Faults, copy_default_project, edit, faulty_client
from kit.config.loader import load_project
from kit.errors import TaskFailed, Unreachable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oskit-data")  # the MiniLM package is built once per module


def test_done_when(tmp_path: Path, fresh_node: Any, serve_env: str, package_cache: Path,
                   monkeypatch: pytest.MonkeyPatch, spec_dir: Path, request: pytest.FixtureRequest) -> None:
    monkeypatch.setenv("OSKIT_DATA_DIR", str(package_cache))
    project = copy_default_project(tmp_path / "project", remote_text=False)
    p, url = str(project), fresh_node.url

    res = oskit("validate", "--project", p, "--spec", str(spec_dir))
    assert (res.exit_code, res.stdout) == (0, "ok: project oskit is valid (10 files; 38 requests checked against "
                                              "the OpenSearch API spec)\n")

    # An apply interrupted in the middle of the chunk upload leaves a REGISTERING model behind …
    faults = Faults()
    faults.drop_after = lambda i, m, path: path.endswith("/upload_chunk/1")
    client = faulty_client(url, faults)
    request.addfinalizer(client.close)
    with pytest.raises(Unreachable):
        cluster.apply(cluster.plan(load_project(project), client), client)
    plan = cluster.plan(load_project(project), client)
    text_change = [c for c in plan.changes if c.kind == "model"]
    assert [(c.action, c.name) for c in text_change] == [("replace", "text")]
    assert "incomplete (REGISTERING)" in text_change[0].reason

    # … a deploy task that fails surfaces as TaskFailed …
    faults.drop_after = lambda i, m, path: False
    faults.fail_task = lambda path, task: task.get("task_type") == "DEPLOY_MODEL"
    with pytest.raises(TaskFailed, match="injected: task failed"):
        cluster.apply(plan, client)

    # … and `oskit apply --yes` converges; `oskit diff --exit-code` is 0; a second apply changes nothing.
    res = oskit("apply", "--yes", "--project", p, "--url", url)
    assert res.exit_code == 0, res.stderr
    res = oskit("diff", "--exit-code", "--project", p, "--url", url)
    assert res.exit_code == 0, res.stdout
    assert res.stdout.endswith("No changes: the cluster matches the project.\n"
                               "note: pipelines/images-ingest.yaml: processors[2].ml_inference left out "
                               "(model captions is disabled)\n")
    res = oskit("apply", "--yes", "--project", p, "--url", url)
    assert res.exit_code == 0 and "No changes" in res.stdout
    counts = client.request("POST", "/_plugins/_ml/models/_search", body={
        "query": {"bool": {"must_not": [{"exists": {"field": "chunk_number"}}]}}, "size": 100})["hits"]["hits"]
    assert sorted(h["_source"]["name"] for h in counts) == ["oskit.clip", "oskit.hash", "oskit.ocr", "oskit.tags", "oskit.text"]
    states = {h["_source"]["name"]: h["_source"]["model_state"] for h in counts}
    assert set(states.values()) == {"DEPLOYED"}

    # Editing the model spec is drift, labelled replace.
    edit(project / "models/text.yaml", "version: 1.0.0", "version: 1.0.1")
    res = oskit("diff", "--exit-code", "--project", p, "--url", url)
    assert res.exit_code == 3
    res = oskit("plan", "--detailed-exitcode", "--json", "--project", p, "--url", url)
    assert res.exit_code == 3
    import json

    changes = json.loads(res.stdout)["changes"]
    assert [(c["action"], c["kind"], c["name"]) for c in changes] == [
        ("replace", "model", "text"), ("update", "ingest-pipeline", "images-ingest"),
        ("update", "search-pipeline", "images-search")]


def test_local_package_registered_by_url(tmp_path: Path, fresh_node: Any, serve_env: str, package_cache: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSKIT_DATA_DIR", str(package_cache))
    project = copy_default_project(tmp_path / "project", remote_text=False)
    loaded = load_project(project)
    from kit.cluster.desired import build_desired
    from kit.cluster.mlcommons import ensure_package

    info = ensure_package(build_desired(loaded, {}).models["text"])  # built once per module, then cached
    edit(project / "models/text.yaml", "  format: TORCH_SCRIPT\n",
         f"  format: TORCH_SCRIPT\n  register: url\n  url: file://{info.zip_path}\n")
    edit(project / "cluster.yaml", "allow_registering_model_via_local_file: true",
         "allow_registering_model_via_local_file: true\n  plugins.ml_commons.allow_registering_model_via_url: true")
    faults = Faults()
    with faulty_client(fresh_node.url, faults) as client:
        cluster.apply(cluster.plan(load_project(project), client), client)
        assert cluster.plan(load_project(project), client).in_sync
    assert ("POST", "/_plugins/_ml/models/_register_meta") not in faults.log
