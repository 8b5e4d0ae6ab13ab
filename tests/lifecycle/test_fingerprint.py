"""Embedding fingerprints: recorded at apply and ingest, checked by plan/diff and ingest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import kit.cluster as cluster
from kit.cluster.fingerprint import META_KEY, PROBE_SET, check_index, fingerprinted_fields, index_record, vector_fields
from kit.config.loader import load_project
from kit.errors import IngestError
from lifeserve import LifeServe, write_images


def _labels(plan: Any) -> list[tuple[str, str, str]]:
    return [(c.action, c.kind, c.name) for c in plan.changes]


def test_vector_fields_of_a_pipeline() -> None:
    body = {"processors": [
        {"text_image_embedding": {"model_id": "m1", "embedding": "image_embedding", "field_map": {"image": "image"}}},
        {"text_embedding": {"model_id": "m2", "field_map": {"ocr_text": "ocr_embedding", "caption": "caption_embedding"}}},
        {"remove": {"field": "image"}}]}
    assert vector_fields(body) == {"image_embedding": ("m1", "image+text"), "ocr_embedding": ("m2", "text"),
                                   "caption_embedding": ("m2", "text")}
    hashed = {"processors": [*body["processors"], {"ml_inference": {
        "model_id": "m3", "output_map": [{"phash": "phash", "colour_hash": "colour"}]}}]}
    assert fingerprinted_fields(hashed) == {**vector_fields(body), "phash": ("m3", "hash")}
    assert fingerprinted_fields(body) == vector_fields(body)  # no hash model: nothing more


def test_apply_records_model_identity_content_hash_and_outputs(applied: Any) -> None:
    _, meta, rec = index_record(applied, "images")
    assert rec["probe_set"] == PROBE_SET
    assert set(rec["fields"]) == {"image_embedding", "ocr_embedding", "caption_embedding", "phash"}
    clip = rec["fields"]["image_embedding"]
    assert clip["model"] == "clip" and clip["model_id"] and len(clip["spec_fingerprint"]) == 12
    assert clip["modality"] == "image+text" and len(clip["outputs"]) == 12
    assert set(clip["probe"]) == {"text0", "text1", "text2", "image0", "image1"}
    assert all(len(v) == 64 for v in clip["probe"].values())
    assert "content_hash" in clip  # None for a remote model: its outputs are the evidence
    hashes = rec["fields"]["phash"]
    assert hashes["model"] == "hash" and hashes["modality"] == "hash"
    assert set(hashes["probe"]) == {"image0", "image1", "version"}
    assert len(hashes["probe"]["image0"]) == 4 * (16 + 11 + 2 * 16)  # phash, colour, two crops: ±1 per bit
    assert meta["oskit"]["project"] == "oskit"  # the rest of _meta survives the record
    assert all(c.matches for c in check_index(applied, "images"))


def test_swapped_weights_behind_the_same_connector_are_drift_naming_the_model(
        applied: Any, life: LifeServe, project_dir: Path) -> None:
    project = load_project(project_dir)
    assert cluster.plan(project, applied).in_sync
    life.variant = "colour-v2"  # new weights, same URL, no YAML change
    plan = cluster.diff(project, applied)
    assert _labels(plan) == [("reindex", "index", "images")]
    reason = plan.changes[0].reason
    assert "model clip's outputs no longer match what index images was built with" in reason
    assert "field image_embedding" in reason and "oskit migrate" in reason

    from kit.cli import cli

    res = CliRunner().invoke(cli, ["diff", "--exit-code", "--project", str(project_dir), "--url",
                                   applied.url])
    assert res.exit_code == 3, res.output
    assert "model clip's outputs no longer match" in res.stdout
    life.variant = "colour"  # the old weights back: in sync again
    assert cluster.diff(project, applied).in_sync


def test_ingest_refuses_to_mix_vectors_of_two_models(applied: Any, life: LifeServe, tmp_path: Path) -> None:
    from kit.job.ingest import ingest

    write_images(tmp_path / "a", 4)
    assert ingest(applied, [tmp_path / "a"], index="images").indexed == 4
    life.variant = "colour-v2"
    write_images(tmp_path / "b", 6)
    with pytest.raises(IngestError, match="model clip's outputs no longer match what index images was built with"):
        ingest(applied, [tmp_path / "b"], index="images")
    assert applied.request("GET", "/images/_count")["count"] == 4  # nothing mixed in


def test_another_hash_algorithm_is_drift_and_a_flipped_bit_is_not(applied: Any, life: LifeServe, project_dir: Path,
                                                                  tmp_path: Path) -> None:
    from kit.job.ingest import ingest

    project = load_project(project_dir)
    write_images(tmp_path / "a", 4)
    assert ingest(applied, [tmp_path / "a"], index="images").indexed == 4
    life.phash = "8000000000000001"  # one bit in each of its 3 pHashes (3 of 236 per probe): not drift
    assert cluster.diff(project, applied).in_sync
    life.hash_version = "oskit-hash-v9"  # the same bits under another algorithm's name
    plan = cluster.diff(project, applied)
    assert _labels(plan) == [("reindex", "index", "images")]
    reason = plan.changes[0].reason
    assert "model hash's perceptual hashes no longer match what index images was built with" in reason
    assert "field phash" in reason and "oskit migrate" in reason
    write_images(tmp_path / "b", 3)
    with pytest.raises(IngestError, match="perceptual hashes no longer match"):
        ingest(applied, [tmp_path / "b"], index="images")
    life.hash_version, life.phash = "oskit-hash-v2", "ffff000000000000"  # other bits under the old name
    assert _labels(cluster.diff(project, applied)) == [("reindex", "index", "images")]
    life.phash = "8000000000000000"
    assert cluster.diff(project, applied).in_sync
    assert applied.request("GET", "/images/_count")["count"] == 4


def test_ingest_records_an_index_that_has_no_record(applied: Any, tmp_path: Path) -> None:
    from kit.job.ingest import ingest

    concrete, meta, _ = index_record(applied, "images")
    meta.pop(META_KEY)
    applied.request("PUT", "/images/_mapping", body={"_meta": meta})
    assert index_record(applied, "images")[2] == {}
    write_images(tmp_path / "a", 2)
    ingest(applied, [tmp_path / "a"], index="images")
    assert set(index_record(applied, "images")[2]["fields"]) == {"image_embedding", "ocr_embedding",
                                                                 "caption_embedding", "phash"}


def _url(client: Any) -> str:
    return client.url
