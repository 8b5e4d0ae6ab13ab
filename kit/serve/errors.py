"""The one mapping from exceptions to the model server's HTTP errors (:class:`ApiError` and the JSON
error shape), used by the app (:mod:`kit.serve.app`) and the engine (:mod:`kit.serve.engine`) alike."""

from __future__ import annotations

import json
import logging

import orjson
from starlette.responses import JSONResponse

from kit.errors import KitError, ModelError, ServeError
from kit.serve.batching import QueueFull
from kit.serve.captions import CaptionsUnavailable, UpstreamError
from kit.serve.images import BadImage

__all__ = ["ApiError", "error_response"]

log = logging.getLogger(__name__)


class ApiError(ServeError):
    """An error with an HTTP status and a stable ``code`` for the JSON error shape."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, status_code=status,
                        headers=headers)


def _error_body(err: "ApiError") -> bytes:
    """The bytes :func:`error_response` sends (Starlette's JSONResponse: compact, non-ASCII kept)."""
    content = {"error": {"code": err.code, "message": err.message, "status": err.status}}
    try:
        return orjson.dumps(content)
    except TypeError:  # a lone surrogate in a message: the stdlib writes it, as JSONResponse did
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _as_api_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BadImage):
        return ApiError(exc.status, exc.code, exc.message)
    if isinstance(exc, QueueFull):
        return ApiError(429, "overloaded", exc.message, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, CaptionsUnavailable):
        return ApiError(503, "captions_not_configured", exc.message)
    if isinstance(exc, UpstreamError):
        return ApiError(502, "upstream_error", exc.message)
    if isinstance(exc, KitError):
        return ApiError(500, "model_error" if isinstance(exc, ModelError) else "server_error", exc.message)
    log.exception("unexpected error", exc_info=exc)
    return ApiError(500, "internal_error", f"{type(exc).__name__}: {exc}")
