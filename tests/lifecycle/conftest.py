"""Fixtures for the lifecycle tests (fingerprints, migrate, contract tests, CI, Dashboards): a model server
whose weights can be swapped at run time, a fresh node per test and the default project applied to it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "provision"))

from lifeserve import LifeServe  # noqa: E402
from provision_helpers import copy_default_project  # noqa: E402


@pytest.fixture()
def life() -> Iterator[LifeServe]:
    server = LifeServe()
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def project_dir(tmp_path: Path, life: LifeServe, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OSKIT_MODEL_SERVER_URL", life.url)
    return copy_default_project(tmp_path / "project")


@pytest.fixture()
def client(fresh_node: Any) -> Iterator[Any]:
    from kit.cluster.client import connect

    with connect(fresh_node.url) as c:
        yield c


@pytest.fixture()
def applied(client: Any, project_dir: Path) -> Any:
    """The default project applied (fresh node), returns the client."""
    import kit.cluster as cluster
    from kit.config.loader import load_project

    project = load_project(project_dir)
    cluster.apply(cluster.plan(project, client), client)
    return client
