"""OpenSearch's error envelope, raised anywhere inside the node and rendered by the app.

Types and statuses follow the real server (``OpenSearchException#getExceptionName`` snake-cases the
Java class name), so clients that branch on ``error.type`` behave the same against both.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError", "SimpleApiError", "bad_request", "body_required", "failed_to_parse_mapping",
    "index_already_exists", "json_parse_error", "mapper_parsing", "not_found_index", "on_shard",
    "parsing_error", "shard_failure", "status_exception", "unsupported", "version_conflict",
]


class ApiError(Exception):
    """An error answered as ``{"error": {...}, "status": N}``; ``extra`` keys go into the error object."""

    def __init__(self, status: int, type: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.type = type
        self.reason = reason
        self.extra = extra
        self.caused_by: dict[str, Any] | None = extra.pop("caused_by", None)
        self.root_cause: dict[str, Any] | None = extra.pop("root_cause", None)  # when not this error itself

    def error_object(self) -> dict[str, Any]:
        """The inner ``error`` object (also used for per-item ``_bulk`` errors)."""
        cause: dict[str, Any] = {"type": self.type, "reason": self.reason, **self.extra}
        err: dict[str, Any] = {"root_cause": [self.root_cause or cause], **cause}
        if self.caused_by is not None:
            err["caused_by"] = self.caused_by
        return err

    def item_error(self) -> dict[str, Any]:
        """The compact shape used inside ``_bulk`` items and ``_mget`` docs (no root_cause)."""
        err: dict[str, Any] = {"type": self.type, "reason": self.reason, **self.extra}
        if self.caused_by is not None:
            err["caused_by"] = self.caused_by
        return err

    def body(self) -> dict[str, Any]:
        return {"error": self.error_object(), "status": self.status}

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.type!r}, {self.reason!r})"


class SimpleApiError(ApiError):
    """RestController's own answers (no handler, wrong method): ``{"error": "<message>", "status": N}``
    (``BytesRestResponse.createSimpleErrorResponse``), with an ``Allow`` header on 405."""

    def __init__(self, status: int, reason: str, *, allow: list[str] | None = None, with_status: bool = True) -> None:
        super().__init__(status, "simple_error", reason)
        self.allow = allow
        self.with_status = with_status

    def body(self) -> dict[str, Any]:
        # RestController#handleBadRequest answers "no handler found" without a status key
        return {"error": self.reason, "status": self.status} if self.with_status else {"error": self.reason}


def body_required() -> ApiError:
    """OpenSearch's answer to a missing request body (``OpenSearchParseException``)."""
    return ApiError(400, "parse_exception", "request body is required")


def bad_request(reason: str, **extra: Any) -> ApiError:
    return ApiError(400, "illegal_argument_exception", reason, **extra)


def status_exception(status: int, reason: str) -> ApiError:
    return ApiError(status, "status_exception", reason)


def not_found_index(name: str) -> ApiError:
    return ApiError(
        404, "index_not_found_exception", f"no such index [{name}]",
        index=name, **{"resource.id": name, "resource.type": "index_or_alias", "index_uuid": "_na_"},
    )


def index_already_exists(name: str, uuid: str) -> ApiError:
    return ApiError(
        400, "resource_already_exists_exception", f"index [{name}/{uuid}] already exists",
        index=name, index_uuid=uuid,
    )


def mapper_parsing(reason: str, caused_by: dict[str, Any] | None = None, *, cause_type: str | None = None) -> ApiError:
    """``cause_type``: the exception OpenSearch really throws here (a field mapper's IllegalArgumentException),
    which index creation shows as the cause of "Failed to parse mapping [_doc]: …"."""
    err = ApiError(400, "mapper_parsing_exception", reason, caused_by=caused_by)
    err.cause_type = cause_type  # type: ignore[attr-defined]
    return err


def failed_to_parse_mapping(exc: ApiError) -> ApiError:
    """Index creation's wrapper around a mapping error (MapperService: "Failed to parse mapping [_doc]")."""
    inner_type = getattr(exc, "cause_type", None) or exc.type
    inner: dict[str, Any] = {"type": inner_type, "reason": exc.reason, **exc.extra}
    if exc.caused_by is not None:
        inner["caused_by"] = exc.caused_by
    wrapper = ApiError(400, "mapper_parsing_exception", f"Failed to parse mapping [_doc]: {exc.reason}", caused_by=inner)
    if inner_type == "mapper_parsing_exception":  # the deepest OpenSearch exception is the root cause
        wrapper.root_cause = {"type": inner_type, "reason": exc.reason, **exc.extra}
    return wrapper


def parsing_error(reason: str, line: int = 1, col: int = 1) -> ApiError:
    return ApiError(400, "parsing_exception", reason, line=line, col=col)


def json_parse_error(reason: str) -> ApiError:
    return ApiError(400, "json_parse_exception", reason)


def version_conflict(index: str, doc_id: str, reason: str, index_uuid: str = "_na_") -> ApiError:
    return ApiError(
        409, "version_conflict_engine_exception", f"[{doc_id}]: {reason}",
        index=index, shard="0", index_uuid=index_uuid,
    )


def shard_failure(status: int, type: str, reason: str, *, index: str | None, node: str | None,
                  shard: int = 0, nested: bool = True) -> ApiError:
    """A query-phase failure on the (one) shard: ``search_phase_execution_exception`` "all shards failed"
    around the shard's own error, as ``AbstractSearchAsyncAction`` renders it."""
    cause = {"type": type, "reason": reason}
    failed: dict[str, Any] = {"shard": shard, "index": index}
    if node is not None:
        failed["node"] = node
    failed["reason"] = cause
    return ApiError(status, "search_phase_execution_exception", "all shards failed", phase="query", grouped=True,
                    failed_shards=[failed], caused_by={**cause, "caused_by": cause} if nested else cause,
                    root_cause=cause)


def on_shard(exc: ApiError, *, index: str, node: str | None) -> ApiError:
    """An error raised while the (one) shard builds or runs the query, as the search action answers it:
    ``search_phase_execution_exception`` "all shards failed" around it. Request-level errors (already
    wrapped, or outside the node's subset) pass through."""
    if exc.type == "search_phase_execution_exception" or exc.status != 400 or getattr(exc, "outside_subset", False) \
            or "is not supported by the oskit embedded node" in exc.reason:
        return exc
    if exc.type != "query_shard_exception":
        return shard_failure(exc.status, exc.type, exc.reason, index=index, node=node)
    shard: dict[str, Any] = {"type": exc.type, "reason": exc.reason, **exc.extra}
    full = {**shard, "caused_by": exc.caused_by} if exc.caused_by is not None else shard
    return ApiError(exc.status, "search_phase_execution_exception", "all shards failed", phase="query", grouped=True,
                    failed_shards=[{"shard": 0, "index": index, **({"node": node} if node else {}), "reason": full}],
                    caused_by=full, root_cause=shard)


def unsupported(feature: str) -> ApiError:
    """Anything outside the node's subset: name the feature, never answer wrongly."""
    err = ApiError(
        400, "illegal_argument_exception",
        f"[{feature}] is not supported by the oskit embedded node (see COMPATIBILITY.md)",
    )
    err.outside_subset = True  # type: ignore[attr-defined]
    return err
