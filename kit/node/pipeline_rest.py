"""The REST handlers that ingest and search pipelines share (get-all, get, put, delete).

Both services keep their pipelines in a ``store`` (``all``/``match``/``get``/``delete``), a parse cache
``_parsed`` and a ``put(id, body)`` that validates; OpenSearch's two pipeline APIs answer alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kit.node.errors import ApiError

if TYPE_CHECKING:
    from kit.node.routing import NodeRequest


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
