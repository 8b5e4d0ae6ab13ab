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


def test_a_description_dropped_by_register_meta_is_set_again(tmp_path: Path, project_dir: Path,
                                                            serve_env: str) -> None:
    """Real ML Commons 2.19.6 stores no description from _register_meta: the kit's ownership marker was
    lost, the model looked foreign and every plan planned it again. The kit sets it with an update."""
    import json
    import shutil

    from opensearchpy import RequestsHttpConnection

    from provision_helpers import ROOT

    class DropsDescription(RequestsHttpConnection):  # type: ignore[misc]
        def perform_request(self, method: str, url: str, params: Any = None, body: Any = None, timeout: Any = None,
                            ignore: Any = (), headers: Any = None) -> Any:
            if url.split("?")[0].endswith("/_register_meta"):
                sent = json.loads(body)
                sent.pop("description", None)
                body = json.dumps(sent)
            return super().perform_request(method, url, params, body, timeout=timeout, ignore=ignore, headers=headers)

    shutil.copy(ROOT / "models" / "text.yaml", project_dir / "models" / "text.yaml")
    with NodeServer(tmp_path / "node") as node, connect(node.url, connection_class=DropsDescription) as client:
        cluster.apply(cluster.plan(load_project(project_dir), client), client)
        assert cluster.plan(load_project(project_dir), client).in_sync


class _LateReindex:
    """Real ML Commons after the last chunk: the model document is re-indexed *after* the chunk's answer,
    without the description. Here it happens on the third GET; a description put before it is lost."""

    def __init__(self) -> None:
        self.doc = {"model_state": "REGISTERING", "description": None}
        self.gets = 0
        self.puts_while_registering = 0

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        if method == "GET":
            self.gets += 1
            if self.gets == 3:  # the late re-index lands
                self.doc = {"model_state": "REGISTERED", "description": None}
            return dict(self.doc)
        assert method == "PUT", (method, path)
        if self.doc["model_state"] == "REGISTERING":
            self.puts_while_registering += 1
        self.doc["description"] = body["description"]
        return {"result": "updated"}


def test_the_description_is_put_back_after_the_late_reindex_of_the_last_chunk() -> None:
    from kit.cluster.mlcommons import _restore_description

    client = _LateReindex()
    _restore_description(client, "m1", "text (oskit:p:text:abc)", name="text", timeout=30)  # type: ignore[arg-type]
    assert client.doc == {"model_state": "REGISTERED", "description": "text (oskit:p:text:abc)"}
    assert client.puts_while_registering == 0  # a put before the re-index would be overwritten


def test_a_model_that_stays_registering_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from kit.cluster import mlcommons
    from kit.errors import ModelError

    class Stuck(_LateReindex):
        def request(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
            self.gets = 0  # never re-indexed
            return super().request(method, path, body, **kw)

    monkeypatch.setattr(mlcommons.time, "sleep", lambda s: None)
    with pytest.raises(ModelError, match="model 'text' is REGISTERING"):
        mlcommons._restore_description(Stuck(), "m1", "d", name="text", timeout=0.01)  # type: ignore[arg-type]
