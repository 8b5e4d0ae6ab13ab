"""Fixtures for the hardening tests (issue 17): the provisioning helpers and a node with basic auth."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "provision"))  # clihelp, fakeserve

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
