"""OCR with RapidOCR (``rapidocr-onnxruntime``: DBNet detection + CRNN recognition, ONNX models in the wheel).

The image is decoded with the same checks as the rest of the server (EXIF orientation, RGB) but
not cropped or resized: text at the edges matters, and RapidOCR scales for its detector itself.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kit.errors import ModelError
from kit.serve.images import DEFAULT_MAX_PIXELS, open_image, to_rgb

__all__ = ["OcrEngine"]

log = logging.getLogger(__name__)


class OcrEngine:
    """One RapidOCR instance; calls are serialised (RapidOCR keeps per-call state on the object)."""

    def __init__(self, min_confidence: float = 0.5, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ModuleNotFoundError as exc:
            raise ModelError("rapidocr-onnxruntime is not installed", hint="pip install 'oskit[ml]'") from exc
        try:
            self._ocr = RapidOCR()
        except Exception as exc:  # onnxruntime / model file errors
            raise ModelError(f"could not start RapidOCR: {exc}") from exc
        self.min_confidence = min_confidence
        self.max_pixels = max_pixels
        self._lock = threading.Lock()

    def read(self, data: bytes) -> dict[str, Any]:
        """Image bytes → ``{"text", "lines": [{"text", "box", "confidence"}]}`` (reading order).

        ``text`` is null when nothing was read: ml_inference copies it into the document, and a real
        cluster's text_embedding refuses an empty string ("map type field [ocr_text] has empty string
        value, cannot process it", failing the document) but skips a null.
        """
        img = to_rgb(open_image(data, max_pixels=self.max_pixels).image)
        with self._lock:
            result, _ = self._ocr(img, text_score=self.min_confidence)
        lines = []
        for box, text, score in result or []:
            lines.append({
                "text": str(text),
                "box": [[round(float(x), 1), round(float(y), 1)] for x, y in box],
                "confidence": round(float(score), 4),
            })
        text = "\n".join(line["text"] for line in lines).strip()
        return {"text": text or None, "lines": lines}

    def read_batch(self, items: list[bytes]) -> list[dict[str, Any] | Exception]:
        """Batch entry point for :class:`kit.serve.batching.Batcher`: per-item errors stay per item."""
        out: list[dict[str, Any] | Exception] = []
        for data in items:
            try:
                out.append(self.read(data))
            except Exception as exc:  # returned, re-raised in the request that sent this image
                out.append(exc)
        return out
