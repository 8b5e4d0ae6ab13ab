"""Provisioning on a real OpenSearch: the default project through environments/real.yaml, via the CLI.

validate → plan → apply → diff --exit-code (0); a second apply changes nothing; an edit of each kind
(model, pipeline, mapping) gives the right plan label and diff exit 3; status; destroy. Then the fault
injection of tests/provision (a connection dropped after a write, a failed task) with a rerun that
converges without duplicate ML resources.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import kit.cluster as cluster
from kit.config.loader import load_project
from kit.errors import TaskFailed, Unreachable
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "provision"))

from clihelp import oskit  # noqa: E402
from provision_helpers import Faults, edit, faulty_client, owned_counts  # noqa: E402

ENV = "real"




def _labels(plan: Any) -> list[tuple[str, str, str]]:
    return [(c.action, c.kind, c.name) for c in plan.changes]


@pytest.fixture()
def clean(real_node: Any, serve_env: str, project_dir: Path) -> Iterator[Any]:
    """A client of the real node; whatever the test applied is destroyed afterwards (the node is shared)."""
    from kit.cluster.client import connect

    client = connect(real_node.url, timeout=120.0)
    try:
        yield client
    finally:
        cluster.destroy(load_project(project_dir, env=ENV), client)
        assert owned_counts(client) == {"groups": 0, "connectors": 0, "models": 0}
        client.close()


# Edits of each kind and the labels the plan must give them (as tests/provision/test_apply.py on the node).
EDITS = [
    ("models/clip.yaml", "read_timeout: 60", "read_timeout: 61",
     [("replace", "connector", "clip"), ("replace", "model", "clip"), ("update", "ingest-pipeline", "images-ingest"),
      ("update", "search-pipeline", "images-search")]),
    ("models/ocr.yaml", "description: OCR text lines of an image (oskit serve /ocr)", "description: OCR v2",
     [("update", "model", "ocr")]),
    ("environments/real.yaml", "read_timeout: 60", "read_timeout: 61",  # the overlay's MiniLM connector
     [("replace", "connector", "text"), ("replace", "model", "text"), ("update", "ingest-pipeline", "images-ingest"),
      ("update", "search-pipeline", "images-search")]),
    ("pipelines/images-ingest.yaml", "tag: drop-image", "tag: drop-base64-image",
     [("update", "ingest-pipeline", "images-ingest")]),
    ("pipelines/images-search.yaml", "technique: arithmetic_mean", "technique: harmonic_mean",
     [("update", "search-pipeline", "images-search")]),
    ("mappings/images.yaml", "    caption:\n      type: text\n", "    caption:\n      type: text\n    extra:\n      type: keyword\n",
     [("update", "index", "images")]),
    ("mappings/images.yaml", "ef_construction: 100\n    ocr_embedding", "ef_construction: 128\n    ocr_embedding",
     [("reindex", "index", "images")]),
]


def test_validate_plan_apply_diff_edits_status_destroy(real_node: Any, clean: Any, project_dir: Path,
                                                        spec_dir: Path) -> None:
    p, url = str(project_dir), real_node.url
    common = ("--project", p, "--url", url, "--env", ENV)

    res = oskit("validate", "--project", p, "--env", ENV, "--spec", str(spec_dir))
    assert res.exit_code == 0 and res.stdout.startswith("ok: project oskit is valid"), res.stdout + res.stderr
    res = oskit("plan", *common, "--detailed-exitcode")
    assert res.exit_code == 3, res.stdout + res.stderr
    res = oskit("plan", *common, "--json")
    changes = [(c["action"], c["kind"], c["name"]) for c in json.loads(res.stdout)["changes"]]
    # An earlier apply of this session set the cluster settings (destroy leaves them): the same ones (no
    # change) or with another model-server URL in the trusted-endpoint regex (the lifecycle tests: update).
    if changes[0][1] == "cluster-settings":
        changes[0] = ("create", "cluster-settings", "persistent")
    else:
        changes.insert(0, ("create", "cluster-settings", "persistent"))
    assert changes == [
        ("create", "cluster-settings", "persistent"), ("create", "model-group", "oskit-models"),
        *[("create", "connector", m) for m in ("clip", "hash", "ocr", "tags", "text")],
        *[("create", "model", m) for m in ("clip", "hash", "ocr", "tags", "text")],
        ("create", "ingest-pipeline", "images-ingest"), ("create", "search-pipeline", "images-search"),
        ("create", "index", "images")]
    res = oskit("apply", "--yes", *common)
    assert res.exit_code == 0, res.stderr
    assert re.search(r"Applied 1[45] changes", res.stdout), res.stdout
    res = oskit("diff", "--exit-code", *common)
    assert res.exit_code == 0, res.stdout
    res = oskit("apply", "--yes", *common)
    assert res.exit_code == 0 and "No changes" in res.stdout, res.stdout
    assert owned_counts(clean) == {"groups": 1, "connectors": 5, "models": 5}

    # The real overlay on the real node: Lucene HNSW fields.
    [index_body] = clean.request("GET", "/images/_mapping").values()  # `images` is an alias of a versioned index
    mapping = index_body["mappings"]["properties"]
    assert {mapping[f]["method"]["engine"] for f in ("image_embedding", "ocr_embedding", "caption_embedding")} == {"lucene"}

    for path, old, new, expected in EDITS:
        edit(project_dir / path, old, new)
        res = oskit("plan", *common, "--json")
        changes = json.loads(res.stdout)["changes"]
        assert [(c["action"], c["kind"], c["name"]) for c in changes] == expected, path
        res = oskit("diff", "--exit-code", *common)
        assert res.exit_code == 3, (path, res.stdout)
        res = oskit("apply", "--yes", "--allow-destroy", *common)
        if res.exit_code != 0:  # in full in pytest's captured output (an assertion message is cut)
            print(path, res.stderr, res.stdout, sep="\n")
        assert res.exit_code == 0, path
        res = oskit("diff", "--exit-code", *common)
        assert res.exit_code == 0, (path, res.stdout)
        assert owned_counts(clean) == {"groups": 1, "connectors": 5, "models": 5}, path  # old copies removed

    res = oskit("status", "--json", *common)
    rows = {(r["kind"], r["name"]): r["state"] for r in json.loads(res.stdout)["resources"]}
    assert {rows[("model", m)] for m in ("clip", "hash", "text", "ocr", "tags")} == {"DEPLOYED"}
    assert rows[("model", "captions")] == "disabled" and rows[("index", "images")] == "present"

    res = oskit("destroy", "--yes", *common)
    assert res.exit_code == 0, res.stderr
    assert "-   destroy   index" in res.stdout
    res = oskit("status", *common)
    assert "  index            images         missing" in res.stdout
    assert owned_counts(clean) == {"groups": 0, "connectors": 0, "models": 0}


def _shape(method: str, path: str) -> str:
    parts = path.split("/")
    if len(parts) > 4 and parts[3] == "models" and not parts[4].startswith("_"):
        parts[4] = "{id}"
    return f"{method} {'/'.join(parts)}"


def _writes(client_faults: Faults) -> list[tuple[str, str]]:
    return [(m, p) for m, p in client_faults.log if client_faults.writes_only(m, p)]


def test_a_lost_answer_after_each_kind_of_write_reruns_to_convergence(real_node: Any, clean: Any,
                                                                       project_dir: Path) -> None:
    """The connection drops after the server did a write (one of each kind), then apply runs again."""
    faults = Faults()
    with faulty_client(real_node.url, faults) as client:
        cluster.apply(cluster.plan(load_project(project_dir, env=ENV), client), client)
    writes = _writes(faults)
    cluster.destroy(load_project(project_dir, env=ENV), clean)
    kinds: list[str] = []
    for method, path in writes:
        if _shape(method, path) not in kinds:
            kinds.append(_shape(method, path))
    # group, connector, register, deploy, 2 pipelines, index (+ cluster settings unless already there:
    # destroy leaves cluster settings alone and the node is shared by the session)
    assert len(kinds) >= 7, writes

    # the embedding-fingerprint record (PUT <index>/_mapping with _meta) is best effort: apply notes a failure;
    # destroy leaves cluster settings, so no later apply writes them again
    kinds = [k for k in kinds if not k.endswith("/_mapping") and k != "PUT /_cluster/settings"]
    for kind in kinds:
        faults = Faults()
        dropped: list[str] = []

        def first_of_kind(i: int, m: str, p: str, kind: str = kind) -> bool:
            if not dropped and _shape(m, p) == kind:
                dropped.append(p)
                return True
            return False

        faults.drop_after = first_of_kind
        with faulty_client(real_node.url, faults) as client:
            try:
                cluster.apply(cluster.plan(load_project(project_dir, env=ENV), client), client)
                pytest.fail(f"{kind}: apply went through (dropped: {dropped}; writes: {_writes(faults)})")
            except Unreachable as exc:
                assert "cannot connect" in str(exc), (kind, exc)
            faults.drop_after = lambda i, m, p: False
            cluster.apply(cluster.plan(load_project(project_dir, env=ENV), client), client)
            assert cluster.plan(load_project(project_dir, env=ENV), client).in_sync, kind
            assert owned_counts(client) == {"groups": 1, "connectors": 5, "models": 5}, kind
        cluster.destroy(load_project(project_dir, env=ENV), clean)


def test_a_failed_deploy_task_then_a_rerun_converges(real_node: Any, clean: Any, project_dir: Path) -> None:
    faults = Faults()
    faults.fail_task = lambda path, task: task.get("task_type") == "DEPLOY_MODEL"
    with faulty_client(real_node.url, faults) as client:
        with pytest.raises(TaskFailed, match="injected: task failed"):
            cluster.apply(cluster.plan(load_project(project_dir, env=ENV), client), client)
        faults.fail_task = lambda path, task: False
        cluster.apply(cluster.plan(load_project(project_dir, env=ENV), client), client)
        assert cluster.plan(load_project(project_dir, env=ENV), client).in_sync
        assert owned_counts(client) == {"groups": 1, "connectors": 5, "models": 5}
