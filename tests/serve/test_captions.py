"""Captions through an OpenAI-compatible vision chat endpoint — a tiny fake one on a real socket."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from _serve_helpers import ThreadedServer, b64, image_bytes
from kit.serve.config import CaptionsConfig, ServeConfig


def fake_openai(seen: list[dict[str, Any]], *, fail: bool = False) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append({"body": body, "auth": request.headers.get("authorization")})
        if fail:
            return JSONResponse({"error": {"message": "model overloaded"}}, status_code=500)
        image_url = body["messages"][0]["content"][1]["image_url"]["url"]
        return JSONResponse({"id": "x", "object": "chat.completion", "model": body["model"], "choices": [
            {"index": 0, "finish_reason": "stop",
             "message": {"role": "assistant", "content": f" a test caption ({image_url[:14]}) "}}]})

    return Starlette(routes=[Route("/health", health), Route("/v1/chat/completions", chat, methods=["POST"])])


def test_caption_from_openai_compatible_endpoint(serve_client: Any) -> None:
    seen: list[dict[str, Any]] = []
    with ThreadedServer(fake_openai(seen)) as url:
        cfg = ServeConfig(captions=CaptionsConfig(url=url + "/v1", model="llava-test", api_key="sk-test"), device="cpu")

        async def go() -> None:
            async with serve_client(cfg) as (c, _):
                health = (await c.get("/health")).json()
                assert health["models"]["captions"] == {"configured": True, "model": "llava-test"}
                img = image_bytes(fmt="PNG")
                r = await c.post("/captions", json={"inputImage": b64(img)})
                assert r.status_code == 200, r.text
                assert r.json() == {"caption": "a test caption (data:image/png)"}
                r = await c.post("/captions", json={"inputImage": b64(b"not an image")})
                assert r.status_code == 400 and r.json()["error"]["code"] == "bad_image"

        asyncio.run(go())
    assert len(seen) == 1  # the corrupt image never reached the captioner
    body = seen[0]["body"]
    assert body["model"] == "llava-test" and seen[0]["auth"] == "Bearer sk-test"
    content = body["messages"][0]["content"]
    assert content[0]["type"] == "text" and content[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_upstream_failure_is_502(serve_client: Any) -> None:
    seen: list[dict[str, Any]] = []
    with ThreadedServer(fake_openai(seen, fail=True)) as url:
        cfg = ServeConfig(captions=CaptionsConfig(url=url + "/v1", model="m"), device="cpu")

        async def go() -> None:
            async with serve_client(cfg) as (c, _):
                r = await c.post("/captions", json={"inputImage": b64(image_bytes())})
                assert r.status_code == 502
                assert r.json()["error"]["code"] == "upstream_error" and "500" in r.json()["error"]["message"]

        asyncio.run(go())


def test_not_configured_is_503_never_a_caption(serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(ServeConfig(device="cpu")) as (c, _):
            r = await c.post("/captions", json={"inputImage": b64(image_bytes())})
            assert r.status_code == 503
            err = r.json()["error"]
            assert err["code"] == "captions_not_configured" and "OSKIT_CAPTIONS_URL" in err["message"]
            assert "caption" not in r.json()

    asyncio.run(go())
