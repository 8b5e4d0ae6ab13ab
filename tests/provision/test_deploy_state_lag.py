"""Real ML Commons completes a deploy task before the model document says DEPLOYED (the state is written
by a separate update): apply waits for the model's own state instead of failing on DEPLOYING."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kit.cluster as cluster
from kit.cluster.client import connect
from kit.config.loader import load_project
from kit.node.server import NodeServer


def test_apply_waits_while_the_model_still_says_deploying(tmp_path: Path, serve_env: str, project_dir: Path) -> None:
    from opensearchpy import RequestsHttpConnection

    lagging: dict[str, int] = {}

    class Lagging(RequestsHttpConnection):  # type: ignore[misc]
        """The first two GETs of a model after its deploy answer DEPLOYING, as a real cluster may."""

        def perform_request(self, method: str, url: str, *args: Any, **kw: Any) -> Any:
            status, headers, data = super().perform_request(method, url, *args, **kw)
            path = url.split("?")[0]
            if method == "POST" and path.endswith("/_deploy"):
                lagging[path.split("/")[-2]] = 2
            m = re.match(r"^/_plugins/_ml/models/([^/_][^/]*)$", path)
            if method == "GET" and m and lagging.get(m.group(1), 0) > 0:
                lagging[m.group(1)] -= 1
                body = json.loads(data)
                body["model_state"] = "DEPLOYING"
                data = json.dumps(body)
            return status, headers, data

    with NodeServer(tmp_path / "node") as node, connect(node.url, connection_class=Lagging) as client:
        cluster.apply(cluster.plan(load_project(project_dir), client), client)
        assert cluster.plan(load_project(project_dir), client).in_sync
    assert lagging and set(lagging.values()) == {0}

