"""OCR with RapidOCR (``rapidocr-onnxruntime``: DBNet detection + CRNN recognition, ONNX models in the wheel).

The image is decoded with the same checks as the rest of the server (EXIF orientation, RGB) but
not cropped or resized: text at the edges matters, and RapidOCR scales for its detector itself.
RapidOCR rounds each side to a multiple of 32 after scaling the long side to 2000 px, so a strip
such as 10×4000 becomes 0 px wide and it raises ``ResizeImgError``: such images are padded with
white on the right/bottom (boxes keep their coordinates) up to :data:`MAX_ASPECT`, and an image
OCR still cannot run on yields no text, never an error (every valid image must be indexable).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kit.errors import ModelError
from kit.serve.images import DEFAULT_MAX_PIXELS, open_image, to_rgb

__all__ = ["MAX_ASPECT", "OcrEngine", "pad_to_aspect"]

log = logging.getLogger(__name__)

# Long side / short side after padding: RapidOCR scales the short side up to 736 px for detection, so a
# ratio of 4 keeps that image near 2 MP (20 made a 1×2000 strip a 736×14720 detection, 50 s on a CPU).
MAX_ASPECT = 4


def pad_to_aspect(img: Any, max_aspect: int = MAX_ASPECT) -> Any:
    """A PIL RGB image padded with white on the right or bottom so long/short ≤ ``max_aspect``."""
    from PIL import Image

    w, h = img.size
    if max(w, h) <= max_aspect * min(w, h):
        return img
    new = (max(w, -(-h // max_aspect)), max(h, -(-w // max_aspect)))  # ceil division
    canvas = Image.new("RGB", new, (255, 255, 255))
    canvas.paste(img, (0, 0))
    return canvas


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
        img = pad_to_aspect(to_rgb(open_image(data, max_pixels=self.max_pixels).image))
        try:
            with self._lock:
                result, _ = self._ocr(img, text_score=self.min_confidence)
        except Exception as exc:  # noqa: BLE001 - RapidOCR's own errors (ResizeImgError, cv2.error, …)
            if type(exc).__module__.split(".")[0] not in ("rapidocr_onnxruntime", "cv2"):
                raise
            log.warning("OCR could not run on a %dx%d image (%s: %s); no text", *img.size, type(exc).__name__, exc)
            result = []
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
