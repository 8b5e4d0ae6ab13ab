"""The model server's request limits: one source of truth for the server and the ingest client.

``oskit serve`` refuses bodies over ``max_body_bytes`` and images over ``max_image_pixels`` and
reports both in ``GET /health`` (``limits``). The ingest client reads them from there
(:func:`fetch_limits`), so a file the server would refuse is reported once with the reason and never
sent; these defaults apply when the server cannot be asked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_IMAGE_PIXELS", "Limits", "fetch_limits"]

log = logging.getLogger("kit.limits")

DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
# A decompression bomb guard; 64 MP covers big photos.
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
# What a connector adds around the base64 image in a request body (JSON keys, a text field).
_BODY_OVERHEAD = 4096


@dataclass(frozen=True)
class Limits:
    """What one image may be so that the model server accepts it; ``source`` says where they came from."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    source: str = "defaults"

    @property
    def max_file_bytes(self) -> int:
        """The largest file whose base64 form (4/3 of its size) fits one request body."""
        return max(0, (self.max_body_bytes - _BODY_OVERHEAD) * 3 // 4)

    def to_json(self) -> dict[str, Any]:
        return {"max_body_bytes": self.max_body_bytes, "max_image_pixels": self.max_image_pixels,
                "max_file_bytes": self.max_file_bytes, "source": self.source}


def fetch_limits(model_server_url: str, *, timeout: float = 5.0) -> Limits:
    """The limits the model server at ``model_server_url`` reports in ``GET /health``; the defaults
    (with ``source`` saying why) when it cannot be asked or is older than the ``limits`` report."""
    import httpx

    url = model_server_url.rstrip("/") + "/health"
    try:
        body = httpx.get(url, timeout=timeout).json()
    except (httpx.HTTPError, ValueError) as exc:
        log.info("could not read the model server's limits from %s (%s); using the defaults", url, exc)
        return Limits(source=f"defaults (the model server at {model_server_url} did not answer)")
    limits = body.get("limits") if isinstance(body, dict) else None
    if not isinstance(limits, dict):
        return Limits(source=f"defaults (the model server at {model_server_url} reports no limits)")
    try:
        return Limits(max_body_bytes=int(limits["max_body_bytes"]), max_image_pixels=int(limits["max_image_pixels"]),
                      source=f"the model server at {model_server_url}")
    except (KeyError, TypeError, ValueError):
        return Limits(source=f"defaults (the model server at {model_server_url} reports unreadable limits)")
