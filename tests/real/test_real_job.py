"""The main job on a real OpenSearch: the same tests as tests/job (ingest of good and corrupt images with
OCR, tags and CLIP through the real ingest pipeline and `oskit serve` as the connectors' endpoint; search
in every mode and field; similar; eval with its gates; the search page in Chromium), run against the real
node with the default project applied through environments/real.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from kit.job.search import FIELDS, MODES
from tests.conftest import ROOT
# The main-job tests themselves, collected here again with this module's fixtures (a real stack).
from tests.job.test_job_e2e import (  # noqa: F401
    test_corrupt_files_fail_alone,
    test_eval_cli_thresholds_and_exit_codes,
    test_ingest_indexes_documents_as_the_contract_says,
    test_ingest_of_a_missing_index_is_a_clear_error,
    test_ocr_field_search_finds_the_serial,
    test_phone_photo_finds_its_source,
    test_rerun_skips_everything,
    test_same_file_is_identical_and_cli_labels,
    test_search_cli_json_and_html,
    test_search_cli_table,
    test_similar_rejects_a_non_image,
    test_text_search_modes,
)
from tests.job.test_job_ui import page_url, test_search_page_in_chromium  # noqa: F401

N_SAMPLES = 16
ENV = "real"


class RealStack:
    """What tests/job's ``stack`` offers: ``client``, ``node_url``, ``model_server_url``."""

    def __init__(self, node: Any, client: Any, model_server_url: str) -> None:
        self.node = node
        self.node_url = node.url
        self.client = client
        self.model_server_url = model_server_url


@pytest.fixture(scope="module")
def stack(real_node: Any, model_server: str, oskit_data: Path) -> Iterator[RealStack]:
    """The default project applied to the real node (real overlay), destroyed after this module."""
    import os

    import kit.cluster as cluster
    from kit.cluster.client import connect
    from kit.config.loader import load_project

    environ = {**os.environ, "OSKIT_MODEL_SERVER_URL": model_server}
    client = connect(real_node.url, timeout=120.0)
    project = load_project(ROOT, env=ENV)
    saved = os.environ.get("OSKIT_DATA_DIR")
    os.environ["OSKIT_DATA_DIR"] = str(oskit_data)  # where the MiniLM package is built (module scope)
    try:
        cluster.apply(cluster.plan(project, client, environ=environ), client)
    finally:
        if saved is None:
            os.environ.pop("OSKIT_DATA_DIR", None)
        else:
            os.environ["OSKIT_DATA_DIR"] = saved
    try:
        yield RealStack(real_node, client, model_server)
    finally:
        cluster.destroy(project, client)
        client.close()


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from kit.job.demo import write_samples
    from kit.job.evaluate import load_queries

    folder = write_samples(tmp_path_factory.mktemp("samples"), N_SAMPLES, seed=3)
    return load_queries(folder / "queries.yaml")


@pytest.fixture(scope="module")
def indexed(stack: RealStack, samples: Any) -> Any:
    from kit.job.evaluate import ingest_eval_set

    result = ingest_eval_set(stack.client, samples, index="images", batch=8)
    assert result.failed == 0, result.failures
    return result


def test_every_mode_and_field_answers(stack: RealStack, samples: Any, indexed: Any) -> None:
    from kit.job.search import search

    text = {"image": next(q for q in samples.queries if q.kind == "word").text,
            "ocr_text": next(q for q in samples.queries if q.type == "ocr").text,
            "caption": "a photo"}
    for mode in MODES:
        for field in FIELDS:
            hits = search(stack.client, text[field], k=5, mode=mode, field=field).hits
            if field == "caption":  # no captioner configured: no captions, no caption vectors
                assert all(h.source.get("caption") for h in hits), (mode, field)
            else:
                assert hits, (mode, field)


def test_documents_carry_ocr_tags_and_all_vectors(stack: RealStack, samples: Any, indexed: Any) -> None:
    """What the real ingest pipeline wrote: OCR text from /ocr, tags from /tags, CLIP and MiniLM vectors."""
    q = next(q for q in samples.queries if q.type == "ocr")
    hits = stack.client.request("POST", "/images/_search", body={
        "size": 50, "query": {"match": {"ocr_text": q.text}}, "_source": {"excludes": ["thumbnail"]}})["hits"]["hits"]
    assert hits, q.text
    src = hits[0]["_source"]
    assert Path(src["file_name"]).stem in q.relevant
    assert len(src["image_embedding"]) == 512 and len(src["ocr_embedding"]) == 384
    assert src["tags"] and "image" not in src
