"""oskit migrate: a model change carried out behind the alias, gated, atomic, resumable, reversible."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import kit.cluster as cluster
from kit.cluster.fingerprint import index_record
from kit.config.loader import load_project
from kit.lifecycle.migrate import MigrationError, migrate, rollback
from lifeserve import LifeServe, write_images, write_queries
from provision_helpers import edit

N = 48


def _labels(plan: Any) -> list[tuple[str, str, str]]:
    return [(c.action, c.kind, c.name) for c in plan.changes]


@pytest.fixture()
def loaded(applied: Any, tmp_path: Path, project_dir: Path) -> dict[str, Any]:
    from kit.job.ingest import ingest

    names = write_images(tmp_path / "photos", N)
    assert ingest(applied, [tmp_path / "photos"], index="images").indexed == N
    queries = tmp_path / "queries.yaml"
    write_queries(queries, names)
    return {"client": applied, "queries": queries, "photos": tmp_path / "photos", "names": names}


def _new_model(project_dir: Path) -> None:
    edit(project_dir / "models/clip.yaml", "/clip/embed\n", "/clip/embed-v2\n")


def _alias(client: Any, name: str = "images") -> list[str]:
    return sorted(client.request("GET", f"/_alias/{name}"))


def _search(client: Any, text: str = "red") -> list[str]:
    from kit.job.search import search

    return [h.source["file_name"] for h in search(client, text, index="images", k=5).hits]


def test_plan_shows_a_model_change_as_a_migration(loaded: dict[str, Any], project_dir: Path) -> None:
    _new_model(project_dir)
    plan = cluster.plan(load_project(project_dir), loaded["client"])
    assert ("reindex", "index", "images") in _labels(plan)
    reindex = next(c for c in plan.changes if c.action == "reindex")
    assert "model clip changes" in reindex.reason and f"the {N} documents' vectors cannot mix" in reindex.reason
    assert "carried out without downtime by oskit migrate" in reindex.reason
    from kit.errors import DestroyRefused

    with pytest.raises(DestroyRefused, match="reindex index images") as err:
        cluster.apply(plan, loaded["client"])
    assert "oskit migrate" in str(err.value.hint)


def test_migrate_swaps_behind_the_alias_with_queries_answering_throughout(
        loaded: dict[str, Any], project_dir: Path, fresh_node: Any) -> None:
    from kit.cluster.client import connect

    client = loaded["client"]
    _new_model(project_dir)
    project = load_project(project_dir)
    stop = threading.Event()
    stats = {"ok": 0, "failed": 0, "errors": []}

    def loop() -> None:
        with connect(fresh_node.url) as c:
            while not stop.is_set():
                try:
                    hits = _search(c)
                    assert hits, "no hits"
                    stats["ok"] += 1
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    stats["failed"] += 1
                    stats["errors"].append(repr(exc))

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        result = migrate(project, client, queries=loaded["queries"], fail_under=["vector:map=0.3"], batch=16)
    finally:
        stop.set()
        t.join(timeout=30)
    assert stats["failed"] == 0, stats["errors"][:3]
    assert stats["ok"] > 0
    assert result.swapped and (result.old, result.new) == ("images-v1", "images-v2")
    assert result.reembedded == N and result.copied == 0 and not result.failures  # apply made images-v1 + alias
    assert result.eval_new is not None and result.eval_new["mAP@30"] >= 0.3
    assert _alias(client) == ["images-v2"]
    assert client.request("GET", "/images-v1/_count")["count"] == N
    # the vectors of images-v2 come from the new model, and the record says so
    rec = index_record(client, "images")[2]["fields"]["image_embedding"]
    assert rec["model_id"] != index_record(client, "images-v1")[2]["fields"]["image_embedding"]["model_id"]
    assert all(h.startswith("red-") for h in _search(client))
    # the project and the cluster agree again; the old version is a note, not a destroy
    plan = cluster.plan(project, client)
    assert plan.in_sync, _labels(plan)
    assert any("images-v1 (an earlier version of images) is kept" in n for n in plan.notes)

    # rollback: the old version answers with the old model (its pinned pipelines)
    back = rollback(project, client)
    assert (back.from_index, back.to_index) == ("images-v2", "images-v1")
    assert _alias(client) == ["images-v1"]
    assert all(h.startswith("red-") for h in _search(client))
    plan = cluster.plan(project, client)
    assert _labels(plan) == [("reindex", "index", "images")]
    assert "serves images-v1, which keeps its own pipelines" in plan.changes[0].reason


def test_gate_refuses_a_worse_model_unless_forced(loaded: dict[str, Any], project_dir: Path, life: LifeServe) -> None:
    client = loaded["client"]
    life.variant2 = "random"  # the new model finds nothing
    _new_model(project_dir)
    project = load_project(project_dir)
    with pytest.raises(MigrationError, match="the new version images-v2 misses the gate"):
        migrate(project, client, queries=loaded["queries"], fail_under=["vector:map=0.3"], batch=16)
    assert _alias(client) == ["images-v1"]
    assert all(h.startswith("red-") for h in _search(client))  # still the old index, old model
    with pytest.raises(MigrationError, match="is worse than images-v1"):
        migrate(project, client, queries=loaded["queries"], batch=16)
    result = migrate(project, client, queries=loaded["queries"], force=True, batch=16)
    assert result.forced and result.swapped and result.skipped == N  # resumed: nothing re-embedded twice
    assert _alias(client) == ["images-v2"]


def test_interrupted_migration_resumes(loaded: dict[str, Any], project_dir: Path) -> None:
    client = loaded["client"]
    _new_model(project_dir)
    project = load_project(project_dir)
    first = migrate(project, client, no_eval=True, batch=16, stop_after="build")
    assert first.reembedded == N and not first.swapped
    assert _alias(client) == ["images-v1"]  # not swapped
    again = migrate(project, client, no_eval=True, batch=16)
    assert again.new == "images-v2" and again.reembedded == 0 and again.skipped == N and again.swapped


def test_missing_sources_stop_the_migration_unless_thumbnails_may_stand_in(
        loaded: dict[str, Any], project_dir: Path) -> None:
    client = loaded["client"]
    gone = loaded["photos"] / loaded["names"][3]
    gone.unlink()
    _new_model(project_dir)
    project = load_project(project_dir)
    with pytest.raises(MigrationError, match="1 document\\(s\\) could not be re-embedded .*is missing or changed"):
        migrate(project, client, no_eval=True, batch=16)
    assert _alias(client) == ["images-v1"]
    result = migrate(project, client, no_eval=True, batch=16, thumbnail_fallback=True)
    assert result.swapped and result.from_thumbnail == 1
    assert client.request("GET", "/images/_count")["count"] == N


def test_cli_migrate_and_rollback(loaded: dict[str, Any], project_dir: Path) -> None:
    from kit.cli import cli

    client = loaded["client"]
    _new_model(project_dir)
    base = ["--project", str(project_dir), "--url", client.url]
    res = CliRunner().invoke(cli, ["migrate", *base, "--queries", str(loaded["queries"]), "--fail-under",
                                   "vector:map=0.3", "--mode", "vector"])
    assert res.exit_code == 0, res.output
    assert "Migrated images: images-v1 → images-v2 (48 re-embedded" in res.stdout
    assert "gate: vector text+ocr mAP@30: old" in res.stdout
    res = CliRunner().invoke(cli, ["migrate", *base, "--rollback"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "Rolled back: images → images-v1 (was images-v2)."
    res = CliRunner().invoke(cli, ["migrate", *base, "--no-eval"])  # nothing left? there is: the plan says reindex
    assert res.exit_code == 0, res.output
    assert "images-v1 → images-v3" in res.stdout


def test_a_plain_index_made_before_versions_is_copied_to_v1_first(applied: Any, tmp_path: Path,
                                                                   project_dir: Path) -> None:
    """Indices created by an older oskit are plain: the first migration keeps a copy as images-v1 and
    replaces the index by the alias in one _aliases request (remove_index + add)."""
    from kit.job.ingest import ingest

    from kit.cluster.desired import build_desired

    client = applied
    client.request("DELETE", "/images-v1")
    client.request("PUT", "/images", body=build_desired(load_project(project_dir)).indices["images"].body)
    write_images(tmp_path / "photos", 12)
    assert ingest(client, [tmp_path / "photos"], index="images").indexed == 12
    _new_model(project_dir)
    result = migrate(load_project(project_dir), client, no_eval=True, batch=8)
    assert result.copied == 12 and result.reembedded == 12 and result.swapped
    assert _alias(client) == ["images-v2"]
    assert client.request("GET", "/images-v1/_count")["count"] == 12
    assert rollback(load_project(project_dir), client).to_index == "images-v1"
