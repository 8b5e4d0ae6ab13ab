"""Helpers for the provisioning tests: project copies, edits, clients with fault injection.

A uniquely named module (not conftest) so tests can import it whatever other conftest.py files a
full run has loaded."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeserve import FakeServe  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

# A remote text model (default.embedding contract) instead of the MiniLM package: the same project
# shape without building and deploying a TorchScript model in every test.
REMOTE_TEXT = """\
description: text embeddings through a remote endpoint (test double of models/text.yaml)
type: remote
task: embedding
modality: text
dimension: 384
space_type: cosinesimil
normalized: true
group: oskit-models
connector:
  protocol: http
  actions:
    - action_type: predict
      method: POST
      url: ${env:OSKIT_MODEL_SERVER_URL:-http://127.0.0.1:8765}/embed-texts
      headers:
        content-type: application/json
      request_body: '{"input": ${parameters.input}}'
      pre_process_function: connector.pre_process.default.embedding
      post_process_function: connector.post_process.default.embedding
probe:
  text: hello
"""


def copy_default_project(dest: Path, *, remote_text: bool = True) -> Path:
    for part in ("models", "pipelines", "mappings", "environments"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("*.pt", "weights"))
    shutil.copy(ROOT / "cluster.yaml", dest / "cluster.yaml")
    if remote_text:
        (dest / "models" / "text.yaml").write_text(REMOTE_TEXT, encoding="utf-8")
    return dest


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


class Faults:
    """Decides, per HTTP request, whether to drop the connection before sending or after the server answered,
    or to rewrite an ML task as FAILED. Shared by every connection of a client."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.requests: list[tuple[str, str, Any, Any]] = []  # method, path, params, body (bytes or str)
        self.drop_before: Callable[[int, str, str], bool] = lambda i, m, p: False
        self.drop_after: Callable[[int, str, str], bool] = lambda i, m, p: False
        self.fail_task: Callable[[str, dict[str, Any]], bool] = lambda p, body: False
        self.writes = 0

    def writes_only(self, method: str, path: str) -> bool:
        return method in ("PUT", "POST", "DELETE") and not path.endswith(("/_search", "/_refresh")) \
            and "_predict" not in path and "/_count" not in path


def faulty_client(url: str, faults: Faults) -> Any:
    """A kit client whose HTTP connection obeys ``faults`` (no transport retries, so faults surface)."""
    import json

    from opensearchpy import RequestsHttpConnection
    from opensearchpy.exceptions import ConnectionError as OSConnectionError

    from kit.cluster.client import connect

    class FaultyConnection(RequestsHttpConnection):  # type: ignore[misc]
        def perform_request(self, method: str, url: str, params: Any = None, body: Any = None, timeout: Any = None,
                            ignore: Any = (), headers: Any = None) -> Any:
            path = url.split("?")[0]
            is_write = faults.writes_only(method, path)
            index = faults.writes
            if is_write:
                faults.writes += 1
            faults.log.append((method, path))
            faults.requests.append((method, path, dict(params or {}), body))
            if is_write and faults.drop_before(index, method, path):
                raise OSConnectionError("N/A", f"injected: connection dropped before {method} {path}", None)
            status, headers_out, data = super().perform_request(method, url, params, body, timeout=timeout,
                                                                ignore=ignore, headers=headers)
            if is_write and faults.drop_after(index, method, path):
                raise OSConnectionError("N/A", f"injected: connection dropped after {method} {path}", None)
            if method == "GET" and re.match(r"^/_plugins/_ml/tasks/[^/_]", path):
                task = json.loads(data)
                if faults.fail_task(path, task):
                    task.update(state="FAILED", error="injected: task failed")
                    data = json.dumps(task)
            return status, headers_out, data

    return connect(url, max_retries=0, connection_class=FaultyConnection)


def owned_counts(client: Any) -> dict[str, int]:
    """ML resources the kit made (descriptions carry its ownership marker), in any state."""
    from kit.cluster.desired import parse_marker

    def count(path: str, query: dict[str, Any]) -> int:
        hits = client.request("POST", path, body={"query": query, "size": 1000})["hits"]["hits"]
        return sum(1 for h in hits if parse_marker(h["_source"].get("description")))

    return {
        "groups": count("/_plugins/_ml/model_groups/_search", {"match_all": {}}),
        "connectors": count("/_plugins/_ml/connectors/_search", {"match_all": {}}),
        "models": count("/_plugins/_ml/models/_search", {"bool": {"must_not": [{"exists": {"field": "chunk_number"}}]}}),
    }
