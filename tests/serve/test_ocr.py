"""OCR with RapidOCR on rendered text."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from _serve_helpers import b64
from kit.serve.config import OcrConfig, ServeConfig


def text_image(text: str) -> bytes:
    img = Image.new("RGB", (420, 120), "white")
    ImageDraw.Draw(img).text((20, 30), text, fill="black", font=ImageFont.load_default(size=48))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_ocr_reads_text_with_boxes_and_confidences(serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(ServeConfig(ocr=OcrConfig(), device="cpu")) as (c, _):
            r = await c.post("/ocr", json={"inputImage": b64(text_image("HOTEL 42"))})
            assert r.status_code == 200, r.text
            body = r.json()
            assert "HOTEL" in body["text"].upper().replace(" ", "") or "HOTEL" in body["text"]
            line = body["lines"][0]
            assert set(line) == {"text", "box", "confidence"}
            assert len(line["box"]) == 4 and all(len(p) == 2 for p in line["box"])
            assert 0.5 <= line["confidence"] <= 1
            blank = await c.post("/ocr", json={"inputImage": b64(text_image(""))})
            assert blank.json() == {"text": None, "lines": []}  # null, not "": see OcrEngine.read
            bad = await c.post("/ocr", json={"inputImage": b64(b"garbage")})
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_image"

    asyncio.run(go())
