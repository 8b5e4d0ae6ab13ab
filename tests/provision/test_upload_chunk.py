"""Real OpenSearch answers 406 "Content-Type header [application/octet-stream] is not supported" to a
model chunk sent as octet-stream (its REST layer takes only x-content types): chunks go as JSON-typed
bytes, as opensearch-py-ml sends them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import kit.cluster as cluster
from kit.cluster.client import connect
from kit.config.loader import load_project
from kit.node.server import NodeServer

pytestmark = pytest.mark.slow  # builds the MiniLM TorchScript package


def test_model_chunks_are_sent_as_json_content(tmp_path: Path, project_dir: Path, serve_env: str) -> None:
    import shutil

    from opensearchpy import RequestsHttpConnection

    from provision_helpers import ROOT

    sent: list[str] = []

    class Recording(RequestsHttpConnection):  # type: ignore[misc]
        def perform_request(self, method: str, url: str, params: Any = None, body: Any = None, timeout: Any = None,
                            ignore: Any = (), headers: Any = None) -> Any:
            if "/upload_chunk/" in url:
                sent.append(str((headers or {}).get("Content-Type") or (headers or {}).get("content-type")))
            return super().perform_request(method, url, params, body, timeout=timeout, ignore=ignore, headers=headers)

    shutil.copy(ROOT / "models" / "text.yaml", project_dir / "models" / "text.yaml")  # the real MiniLM package
    with NodeServer(tmp_path / "node") as node, connect(node.url, connection_class=Recording) as client:
        cluster.apply(cluster.plan(load_project(project_dir), client), client)
    assert sent and set(sent) == {"application/json"}
