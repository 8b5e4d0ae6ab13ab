"""What ingest and search pipelines share: their store (a hidden system index), the REST handlers
(get-all, get, put, delete).

Both services keep their pipelines in a ``store`` (``all``/``match``/``get``/``delete``), a parse cache
``_parsed`` and a ``put(id, body)`` that validates; OpenSearch's two pipeline APIs answer alike.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import logging
from typing import TYPE_CHECKING, Any

from kit.node.errors import ApiError

if TYPE_CHECKING:
    from kit.node.engine import Engine
    from kit.node.routing import NodeRequest

__all__ = ["PipelineRest", "PipelineStore"]

log = logging.getLogger(__name__)


class PipelineStore:
    """Pipeline bodies kept as documents in a hidden system index, cached in memory.

    Each document is ``{"body": "<the PUT body as JSON text>"}`` so arbitrary processor configs
    never meet dynamic mapping. Without an engine (unit tests) it is memory only.
    """

    def __init__(self, engine: "Engine | None", index: str) -> None:
        self.engine = engine
        self.index = index
        self._cache: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._cache is not None:
            return self._cache
        cache: dict[str, dict[str, Any]] = {}
        if self.engine is not None and self.engine.index_exists(self.index):
            resp = self.engine.search(self.index, {"size": 10000, "query": {"match_all": {}}})
            for hit in resp.get("hits", {}).get("hits", []):
                try:
                    cache[hit["_id"]] = json.loads(hit["_source"]["body"])
                except (KeyError, ValueError, TypeError):
                    log.warning("skipping unreadable stored pipeline %s in %s", hit.get("_id"), self.index)
        self._cache = cache
        return cache

    def all(self) -> dict[str, dict[str, Any]]:
        return dict(self._load())

    def get(self, pipeline_id: str) -> dict[str, Any] | None:
        return self._load().get(pipeline_id)

    def put(self, pipeline_id: str, body: dict[str, Any]) -> None:
        cache = self._load()
        if self.engine is not None:
            self.engine.ensure_system_index(self.index, {"dynamic": False, "properties": {}})
            self.engine.index_doc(self.index, pipeline_id, {"body": json.dumps(body)}, refresh=True)
        cache[pipeline_id] = copy.deepcopy(body)

    def delete(self, pipeline_id: str) -> None:
        cache = self._load()
        if self.engine is not None and self.engine.index_exists(self.index):
            self.engine.delete_doc(self.index, pipeline_id, refresh=True)
        cache.pop(pipeline_id, None)

    def match(self, expr: str) -> list[str]:
        """Ids matching a comma list of names / wildcards, in stored order."""
        ids = list(self._load())
        out: list[str] = []
        for part in expr.split(","):
            part = part.strip()
            for pid in ids:
                if (fnmatch.fnmatchcase(pid, part) if "*" in part else pid == part) and pid not in out:
                    out.append(pid)
        return out


class PipelineRest:
    store: Any
    _parsed: dict[str, Any]

    def _rest_get_all(self, req: "NodeRequest") -> Any:
        from kit.node.routing import json_response

        pipelines = self.store.all()
        # GetPipelineResponse#isFound: an empty answer is a 404, as on a fresh cluster
        return pipelines if pipelines else json_response({}, status=404)

    def _rest_get(self, req: "NodeRequest") -> Any:
        from kit.node.routing import json_response

        ids = self.store.match(req.path_params["id"])
        if not ids:
            return json_response({}, status=404)
        return {pid: self.store.get(pid) for pid in ids}

    def _rest_put(self, req: "NodeRequest") -> Any:
        if not req.has_body():
            raise ApiError(400, "parse_exception", "request body or source parameter is required")
        return self.put(req.path_params["id"], req.json())  # type: ignore[attr-defined]  # each service's validating put

    def _rest_delete(self, req: "NodeRequest") -> Any:
        expr = req.path_params["id"]
        ids = self.store.match(expr)
        if not ids:
            raise ApiError(404, "resource_not_found_exception", f"pipeline [{expr}] is missing")
        for pid in ids:
            self.store.delete(pid)
            self._parsed.pop(pid, None)
        return {"acknowledged": True}
