"""The HTTP side of a story run: requests as the upstream tester sends them, responses as it reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote

from kit.node.conformance.values import _UNDEFINED, _js_str

__all__ = ["HttpTransport", "Response"]


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------


@dataclass
class Response:
    """What a chapter saw; ``payload`` is :data:`_UNDEFINED`-free: None means no payload."""

    status: int | None
    content_type: str | None
    payload: Any = None
    has_payload: bool = False
    message: str | None = None
    error: str | None = None


class HttpTransport:
    """Sends chapter requests with httpx, serialising like upstream's ChapterReader (axios + qs)."""

    def __init__(self, url: str, *, timeout: float = 120.0, auth: tuple[str, str] | None = None,
                 transport: Any = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        # ``transport``: an httpx transport, e.g. httpx.MockTransport in tests
        self._client = httpx.Client(base_url=self.url, timeout=timeout, auth=auth, transport=transport)

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, str],
                body: bytes | None) -> Response:
        import httpx

        query = "&".join(f"{quote(str(k), safe='')}={quote(_qs_value(v), safe=',')}"
                         for k, v in params.items() if v is not _UNDEFINED)
        url = path + (f"?{query}" if query else "")
        try:
            r = self._client.request(method, url, headers=dict(headers), content=body)
        except httpx.HTTPError as exc:
            return Response(status=None, content_type=None, message=str(exc) or type(exc).__name__,
                            error=type(exc).__name__)
        content_type = (r.headers.get("content-type") or "").split(";")[0].strip() or None
        resp = Response(status=r.status_code, content_type=content_type)
        if method.upper() != "HEAD" or r.content or content_type is not None:
            resp.payload, resp.has_payload = _deserialize(r.content, content_type)
        if r.status_code >= 400:
            reason = None
            if isinstance(resp.payload, dict) and isinstance(resp.payload.get("error"), dict):
                reason = resp.payload["error"].get("reason")
            resp.message = str(reason) if reason is not None else r.reason_phrase
        return resp


def _qs_value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_js_str(v) for v in value)
    if value is None:
        return ""
    return _js_str(value)


def _deserialize(raw: bytes, content_type: str | None) -> tuple[Any, bool]:
    if content_type is None:
        return (raw.decode("utf-8", "replace"), True) if raw else (None, False)
    if content_type == "application/json":
        return ({} if not raw else json.loads(raw)), True
    if content_type in ("application/yaml", "application/x-yaml"):
        import yaml

        return ({} if not raw else yaml.safe_load(raw)), True
    return raw.decode("utf-8", "replace"), True


def _serialize_payload(payload: Any, content_type: str) -> bytes:
    if content_type == "application/x-ndjson" and isinstance(payload, list):
        return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in payload).encode()
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, ensure_ascii=False).encode()
