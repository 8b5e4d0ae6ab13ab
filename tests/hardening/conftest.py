"""Fixtures for the hardening tests (issue 17): the provisioning helpers and a node with basic auth."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "provision"))  # clihelp, fakeserve

from clihelp import oskit  # noqa: E402
from provision_helpers import copy_default_project  # noqa: E402


@pytest.fixture()
def project_dir(tmp_path: Path) -> Path:
    return copy_default_project(tmp_path / "project")


@pytest.fixture(scope="module")
def auth_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A node that wants basic auth admin / S3cret-pw (``.url`` has no credentials)."""
    from kit.node.server import NodeServer

    server = NodeServer(tmp_path_factory.mktemp("auth-node"), auth=("admin", "S3cret-pw"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def plain_index(fresh_node: object) -> tuple[object, str]:
    """A fresh node with an index ``images`` without pipelines: ingest runs without a model server."""
    from kit.cluster.client import connect

    client = connect(fresh_node.url)  # type: ignore[attr-defined]
    client.request("PUT", "/images", body={"mappings": {"properties": {"file_name": {"type": "keyword"}}}})
    return client, fresh_node.url  # type: ignore[attr-defined]


def png(path: Path, size: tuple[int, int] = (64, 48), colour: str = "red") -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "PNG")
    return path


@pytest.fixture()
def applied(fresh_node: Any, project_dir: Path) -> Iterator[tuple[Any, Any, Any]]:
    """(client, fake model server thread, a factory for another on the same port) after `oskit apply`."""
    from fakeserve import create_app

    from kit.cluster.client import connect
    from kit.job.demo import ServerThread

    serve = ServerThread(create_app(), name="fake model server")
    serve.start()
    res = oskit("apply", "--project", str(project_dir), "--url", fresh_node.url, "--yes",
                env={"OSKIT_MODEL_SERVER_URL": serve.url})
    assert res.exit_code == 0, res.stderr
    again = lambda: ServerThread(create_app(), port=serve.port, name="fake model server")  # noqa: E731
    client = connect(fresh_node.url)
    try:
        yield client, serve, again
    finally:
        serve.stop()
        client.close()
