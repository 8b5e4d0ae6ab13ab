"""The real-cluster suite (`make test-real`): one real OpenSearch node for the whole session, assembled from
Maven Central by kit.realnode, and the model server with environments/real.yaml (MiniLM on /text/embed).

A node that cannot be assembled or started is an error of every test here, never a skip. The suite runs
only when asked for (``pytest tests/real`` or ``make test-real``); a plain ``pytest`` leaves it out
(deselected, and says so), since it downloads ~450 MB once and starts a JVM.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import ROOT

HERE = Path(__file__).resolve().parent
# Read at import: the autouse fixture of tests/conftest.py clears OSKIT_* inside each test.
VERSION = os.environ.get("OSKIT_REAL_VERSION") or None
HEAP = os.environ.get("OSKIT_REAL_HEAP") or None
ENV = "real"


def _asked_for(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(str(arg).split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _asked_for(config):
        return
    ours = [i for i in items if HERE in Path(str(i.fspath)).resolve().parents]
    if ours:
        config.hook.pytest_deselected(items=ours)
        items[:] = [i for i in items if i not in ours]


def pytest_report_header(config: pytest.Config) -> str | None:
    if not _asked_for(config):
        return "tests/real: not asked for (run `make test-real`), deselected"
    from kit.realnode import DEFAULT_VERSION, cache_root

    return f"real node: OpenSearch {VERSION or DEFAULT_VERSION}, cache {cache_root()}"


# -------------------------------------------------------------------------------------------- the node
@pytest.fixture(scope="session")
def real_node() -> Iterator[Any]:
    """One real node per session (no skip: a node that cannot start fails every test that needs it)."""
    from kit.realnode import DEFAULT_VERSION, RealNode

    node = RealNode(VERSION or DEFAULT_VERSION, heap=HEAP)
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def model_server() -> Iterator[str]:
    """`oskit serve --env real` in a thread on a free port: CLIP, OCR, tags and MiniLM (/text/embed)."""
    from kit.job.demo import ServerThread, _wait_healthy
    from kit.serve.app import create_app
    from kit.serve.config import load_serve_config

    config = load_serve_config(ROOT / "models", device="cpu", env=ENV)
    server = ServerThread(create_app(config), name="model server")
    url = server.start(timeout=600)
    try:
        _wait_healthy(url, 600)
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def oskit_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One OSKIT_DATA_DIR for the session: the MiniLM TorchScript package is built once, not per test."""
    return tmp_path_factory.mktemp("oskit-data")


@pytest.fixture(autouse=True)
def _shared_data_dir(_hermetic_env: None, oskit_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSKIT_DATA_DIR", str(oskit_data))


@pytest.fixture()
def serve_env(monkeypatch: pytest.MonkeyPatch, model_server: str) -> str:
    monkeypatch.setenv("OSKIT_MODEL_SERVER_URL", model_server)
    return model_server


def copy_project(dest: Path) -> Path:
    """The default project, unchanged, with its environments (the real overlay among them)."""
    for part in ("models", "pipelines", "mappings", "environments"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("*.pt", "weights"))
    shutil.copy(ROOT / "cluster.yaml", dest / "cluster.yaml")
    return dest


@pytest.fixture()
def project_dir(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")
