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



def test_destroy_waits_while_ml_commons_still_sees_deleted_models(tmp_path: Path, serve_env: str,
                                                                  project_dir: Path) -> None:
    """ML Commons checks for a group's models (and a connector's) with a search, which a real cluster
    refreshes each second: right after the models are deleted it answers 409 for a moment."""
    from opensearchpy import RequestsHttpConnection

    refused: list[str] = []

    class Lagging(RequestsHttpConnection):  # type: ignore[misc]
        def perform_request(self, method: str, url: str, *args: Any, **kw: Any) -> Any:
            path = url.split("?")[0]
            kind = next((k for k in ("model_groups", "connectors") if f"/_plugins/_ml/{k}/" in path), None)
            if method == "DELETE" and kind and path not in refused:
                refused.append(path)
                reason = ("Cannot delete the model group when it has associated model versions" if kind == "model_groups"
                          else "1 models are still using this connector, please delete or update the models first")
                from opensearchpy.exceptions import ConflictError
                raise ConflictError(409, "status_exception", {"error": {"type": "status_exception", "reason": reason},
                                                              "status": 409})
            return super().perform_request(method, url, *args, **kw)

    with NodeServer(tmp_path / "node") as node:
        with connect(node.url) as client:
            cluster.apply(cluster.plan(load_project(project_dir), client), client)
        with connect(node.url, connection_class=Lagging) as client:
            cluster.destroy(load_project(project_dir), client)
            assert client.request("POST", "/_plugins/_ml/model_groups/_search", body={"query": {"match_all": {}}})[
                "hits"]["total"]["value"] == 0
    assert len(refused) == 6  # the group and the five connectors, each refused once


def test_a_plan_right_after_apply_sees_what_apply_made(tmp_path: Path, serve_env: str, project_dir: Path) -> None:
    """ML Commons' _search is near-real-time and its writes do not all refresh: on a real cluster a plan
    right after an apply did not find the models it had just registered (and planned them again)."""
    from opensearchpy import RequestsHttpConnection

    state = {"stale": False, "refreshed": 0}

    class NearRealTime(RequestsHttpConnection):  # type: ignore[misc]
        """Until the ML indices are refreshed, _plugins/_ml/*/_search answers as before the last apply."""

        def perform_request(self, method: str, url: str, *args: Any, **kw: Any) -> Any:
            path = url.split("?")[0]
            if method == "POST" and path.endswith("/_refresh") and ".plugins-ml-model" in path:
                state["refreshed"] += 1
                state["stale"] = False
            status, headers, data = super().perform_request(method, url, *args, **kw)
            if state["stale"] and method in ("GET", "POST") and re.match(r"^/_plugins/_ml/\w+/_search$", path):
                body = json.loads(data)
                body["hits"]["hits"], body["hits"]["total"]["value"] = [], 0
                data = json.dumps(body)
            return status, headers, data

    with NodeServer(tmp_path / "node") as node, connect(node.url, connection_class=NearRealTime) as client:
        cluster.apply(cluster.plan(load_project(project_dir), client), client)
        state["stale"] = True
        assert cluster.plan(load_project(project_dir), client).in_sync
    assert state["refreshed"] >= 1
