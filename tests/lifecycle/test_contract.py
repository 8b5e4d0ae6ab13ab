"""oskit test: pipeline contract tests against the node."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from kit.config.loader import load_project
from kit.lifecycle.contract import run_contract_tests, sample_documents
from lifeserve import LifeServe


def test_the_default_project_keeps_its_contracts(applied: Any, project_dir: Path) -> None:
    report = run_contract_tests(load_project(project_dir), applied)
    assert report.ok, report.render()
    names = [(c.suite, c.name) for c in report.cases]
    assert ("ingest-pipeline images-ingest", "image with text") in names
    assert ("ingest-pipeline images-ingest", "image without text") in names
    corrupt = next(c for c in report.cases if c.name == "corrupt image")
    assert corrupt.ok and "rejected as expected" in corrupt.message
    for probe in ("vector image_embedding", "image image_embedding", "vector ocr_embedding",
                  "hybrid caption, ocr_text, tags + image_embedding", "lexical caption, ocr_text, tags"):
        assert ("search-pipeline images-search", f"{probe} via search_pipeline=images-search") in names, probe
    # neural queries without model ids through the index's default search pipeline
    assert ("search-pipeline images-search", "vector image_embedding via default pipeline of images") in names
    assert [label for label, _, _ in sample_documents()] == ["image with text", "image without text", "corrupt image"]


def test_a_wrong_dimension_names_pipeline_processor_and_field(applied: Any, project_dir: Path,
                                                              life: LifeServe, tmp_path: Path) -> None:
    from kit.cli import cli

    life.dim = 256
    report = run_contract_tests(load_project(project_dir), applied)
    assert not report.ok
    bad = [c for c in report.cases if not c.ok]
    assert {c.field for c in bad} == {"image_embedding"}
    assert bad[0].message == ("pipeline images-ingest, processor processors[2].text_image_embedding (image-embedding), "
                              "field image_embedding: 256-d vector, the mapping says dimension 512 (index images)")
    junit = tmp_path / "oskit-test.xml"
    res = CliRunner().invoke(cli, ["test", "--project", str(project_dir), "--url", applied.url, "--junit", str(junit)])
    assert res.exit_code == 1
    assert "FAIL  ingest-pipeline images-ingest: image with text — pipeline images-ingest, processor " \
           "processors[2].text_image_embedding (image-embedding), field image_embedding: 256-d vector" in res.stdout
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and int(root.get("failures")) == len(bad)  # ingest docs + search probes
    failure = root.find(".//testcase/failure")
    assert failure is not None and "field image_embedding" in failure.get("message")


def test_a_search_pipeline_without_a_default_model_is_a_broken_contract(applied: Any, project_dir: Path) -> None:
    body = applied.request("GET", "/_search/pipeline/images-search")["images-search"]
    enrich = body["request_processors"][0]["neural_query_enricher"]
    enrich["neural_field_default_id"].pop("image_embedding")
    enrich.pop("default_model_id")
    applied.request("PUT", "/_search/pipeline/images-search", body=body)
    report = run_contract_tests(load_project(project_dir), applied)
    bad = [c for c in report.cases if not c.ok]
    assert bad and all(c.field == "image_embedding" and c.processor == "neural_query_enricher" for c in bad)
    assert "search pipeline images-search, processor neural_query_enricher, field image_embedding:" in bad[0].message
    assert "no default model for image_embedding" in bad[0].message


def test_cli_passes_on_a_healthy_project(applied: Any, project_dir: Path) -> None:
    from kit.cli import cli

    res = CliRunner().invoke(cli, ["test", "--project", str(project_dir), "--url", applied.url])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().endswith("passed") and "FAIL" not in res.stdout
