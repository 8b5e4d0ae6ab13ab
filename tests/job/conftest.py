"""One local stack per session for the main-job tests: the model server and the embedded node (threads on
free ports), the default project applied, and a small generated sample set ingested once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import ROOT

N_SAMPLES = 16


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from kit.job.demo import start_stack

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("OSKIT_", "OPENSEARCH_"))}
    os.environ["HF_HUB_OFFLINE"] = "1"
    data = tmp_path_factory.mktemp("stack")
    os.environ["OSKIT_DATA_DIR"] = str(data / "oskit-data")
    try:
        s = start_stack(ROOT, data, device="cpu")
    finally:
        os.environ.pop("OSKIT_DATA_DIR", None)
        os.environ.update(saved)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A generated set (images, metadata.jsonl, queries.yaml, phone photos) loaded as a QuerySet."""
    from kit.job.demo import write_samples
    from kit.job.evaluate import load_queries

    folder = write_samples(tmp_path_factory.mktemp("samples"), N_SAMPLES, seed=3)
    return load_queries(folder / "queries.yaml")


@pytest.fixture(scope="session")
def indexed(stack: Any, samples: Any) -> Any:
    """The sample set ingested into ``images`` (once per session)."""
    from kit.job.evaluate import ingest_eval_set

    result = ingest_eval_set(stack.client, samples, index="images", batch=8)
    assert result.failed == 0, result.failures
    return result
