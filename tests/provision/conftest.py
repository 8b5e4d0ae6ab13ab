"""Fixtures for provisioning tests: a fake model server and project copies (helpers: provision_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeserve import FakeServe  # noqa: E402
from provision_helpers import copy_default_project  # noqa: E402

@pytest.fixture(scope="session")
def fake_serve() -> Iterator[FakeServe]:
    server = FakeServe()
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def serve_env(monkeypatch: pytest.MonkeyPatch, fake_serve: FakeServe) -> str:
    monkeypatch.setenv("OSKIT_MODEL_SERVER_URL", fake_serve.url)
    return fake_serve.url


@pytest.fixture()
def project_dir(tmp_path: Path) -> Path:
    return copy_default_project(tmp_path / "project")


# ------------------------------------------------------------------------------- fault injection


