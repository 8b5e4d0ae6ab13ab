"""oskit dashboards export, and the Dev Tools queries of docs/dashboards.md run against the node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kit.config.loader import load_project
from kit.lifecycle.dashboards import export_ndjson
from devtools import DOC, devtools_requests
from lifeserve import write_images

def test_export_writes_importable_saved_objects(project_dir: Path, tmp_path: Path) -> None:
    from kit.cli import cli

    out = tmp_path / "oskit.ndjson"
    res = CliRunner().invoke(cli, ["dashboards", "export", "--project", str(project_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    objects = [json.loads(line) for line in out.read_text().splitlines()]
    assert out.read_text() == export_ndjson(load_project(project_dir))
    pattern = objects[0]
    assert pattern["type"] == "index-pattern" and pattern["id"] == "oskit-oskit-images"
    attrs = pattern["attributes"]
    assert attrs["title"] == "images"
    fmt = json.loads(attrs["fieldFormatMap"])["thumbnail"]
    assert fmt["id"] == "url" and fmt["params"]["type"] == "img"
    assert fmt["params"]["urlTemplate"] == "data:image/jpeg;base64,{{rawValue}}"
    hidden = {f["value"] for f in json.loads(attrs["sourceFilters"])}
    assert {"image_embedding", "ocr_embedding", "caption_embedding"} <= hidden
    fields = {f["name"]: f for f in json.loads(attrs["fields"])}
    assert not any(n.endswith("_embedding") for n in fields)
    assert fields["tags.raw"]["aggregatable"] and fields["tags.raw"]["subType"] == {"multi": {"parent": "tags"}}
    assert fields["thumbnail"]["esTypes"] == ["binary"] and not fields["thumbnail"]["searchable"]
    searches = [o for o in objects if o["type"] == "search"]
    assert [s["attributes"]["title"] for s in searches] == [
        "images: all documents", "images: images with text (OCR)", "images: tagged images"]
    for s in searches:
        ref = s["references"][0]
        assert ref["id"] == pattern["id"] and ref["type"] == "index-pattern"
        source = json.loads(s["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        assert source["indexRefName"] == ref["name"]
        assert s["attributes"]["columns"][0] == "thumbnail"
    # every line is one object; the same export twice is byte-identical (stable ids)
    assert len(out.read_text().splitlines()) == len(objects) == 4
    assert export_ndjson(load_project(project_dir)) == out.read_text()


@pytest.mark.parametrize("n", range(3))
def test_devtools_queries_of_the_docs_run_without_model_ids(applied: Any, tmp_path: Path, n: int) -> None:
    from kit.job.ingest import ingest

    requests = devtools_requests(DOC.read_text(encoding="utf-8"))
    assert len(requests) == 3
    write_images(tmp_path / "photos", 8)
    ingest(applied, [tmp_path / "photos"], index="images")
    method, path, body = requests[n]
    assert "model_id" not in json.dumps(body)
    resp = applied.request(method, path, body=body)
    hits = resp["hits"]["hits"]
    assert hits, resp
    if n < 2:  # CLIP: "a red square" finds the red images first
        assert hits[0]["_source"]["file_name"].startswith("red-")
    assert not any(k.endswith("_embedding") for h in hits for k in h["_source"])
