"""Hermetic tests: no OSKIT_*/OPENSEARCH_* from the caller's environment, data dirs under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SPEC_DIR = SHARED / "opensearch-api-spec"


def pytest_configure(config: pytest.Config) -> None:
    # Recording the kit's requests for the differential oracle (kit/oracle) is instrumentation, not
    # configuration: start it before the hermetic fixture clears OSKIT_* from the environment.
    path = os.environ.get("OSKIT_RECORD_REQUESTS")
    if path:
        from kit.cluster.recording import start_recording

        start_recording(path)


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("OSKIT_", "OPENSEARCH_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OSKIT_DATA_DIR", str(tmp_path / "oskit-data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    if not SPEC_DIR.is_dir():
        pytest.fail(f"the OpenSearch API spec is missing at {SPEC_DIR} (it lives in ../shared)")
    return SPEC_DIR


# ---------------------------------------------------------------------------------------------- embedded node
@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One embedded node for the whole session (NodeServer on a free port, tmp data dir); has ``.url``."""
    from kit.node.server import NodeServer

    server = NodeServer(tmp_path_factory.mktemp("node-data"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def fresh_node(tmp_path: Path) -> Iterator[object]:
    """A node of its own for one test (empty data dir); has ``.url``."""
    from kit.node.server import NodeServer

    server = NodeServer(tmp_path / "fresh-node-data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
