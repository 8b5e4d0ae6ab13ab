"""Captions through an OpenAI-compatible vision chat endpoint (GPT-4o, vLLM/Ollama serving Qwen-VL, LLaVA…).

No endpoint configured → :class:`CaptionsUnavailable` (HTTP 503): the server never makes a caption up.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx

from kit.errors import ServeError
from kit.serve.config import CaptionsConfig

__all__ = ["Captioner", "CaptionsUnavailable", "UpstreamError"]

log = logging.getLogger(__name__)

_MIME = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
         "BMP": "image/bmp", "TIFF": "image/tiff"}


class CaptionsUnavailable(ServeError):
    """No captioner is configured (503)."""


class UpstreamError(ServeError):
    """The captioning endpoint failed or answered something that is not a chat completion (502)."""


class Captioner:
    """Calls ``POST {url}/chat/completions`` with the image as a ``data:`` URL."""

    def __init__(self, config: CaptionsConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def configured(self) -> bool:
        return self.config.configured

    async def start(self) -> None:
        if self.configured and self._client is None:
            headers = {}
            if self.config.api_key is not None:
                headers["Authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
            self._client = httpx.AsyncClient(timeout=self.config.timeout_s, headers=headers, transport=self._transport)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def caption(self, data: bytes, image_format: str) -> dict[str, Any]:
        if not self.configured:
            raise CaptionsUnavailable(
                "no captioner is configured: set OSKIT_CAPTIONS_URL (an OpenAI-compatible base URL such as "
                "http://127.0.0.1:8000/v1) and OSKIT_CAPTIONS_MODEL, or a 'serve: {kind: captions}' block")
        await self.start()
        assert self._client is not None and self.config.url and self.config.model
        url = self.config.url.rstrip("/") + "/chat/completions"
        data_url = f"data:{_MIME.get(image_format, 'image/jpeg')};base64," + base64.b64encode(data).decode("ascii")
        body = {
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "temperature": 0,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": self.config.prompt},
                {"type": "image_url", "image_url": {"url": data_url}},
            ]}],
        }
        try:
            resp = await self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"captioner at {url} unreachable: {exc}") from exc
        if resp.status_code >= 400:
            raise UpstreamError(f"captioner at {url} answered {resp.status_code}: {resp.text[:300]}")
        try:
            payload = resp.json()
            content = payload["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise UpstreamError(f"captioner at {url} answered something that is not a chat completion") from exc
        if isinstance(content, list):  # some servers return content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        caption = str(content or "").strip()
        if not caption:
            raise UpstreamError(f"captioner at {url} returned an empty caption")
        return {"caption": caption}
