"""The one image preprocessing spec, ``oskit-image-v1``, used at ingest and at query time alike.

Steps, in order (changing any of them means a new version string, and re-embedding the index):

1. Decode with Pillow; only JPEG, PNG, WebP, GIF (first frame), BMP and TIFF are accepted.
2. JPEG only: ``draft()`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale, never below the model's
   input size on the short side — most of the decode time for large photos is saved.
3. EXIF orientation applied (``ImageOps.exif_transpose``).
4. RGB: alpha is composited over white; palette/greyscale/CMYK converted.
5. Square centre crop on the short side.
6. Resize to the model's input size (bicubic).
7. The model's normalisation ``(x/255 - mean) / std`` — done on the batch in :mod:`kit.serve.clip`
   so the uint8 pixels travel to the GPU (4× less data than float32).

Two implementations of the one spec:

* :func:`preprocess` — the reference: Pillow on the CPU, any accepted format.
* :func:`jpeg_job` + :func:`tensor_preprocess` — plain JPEGs (3 components, no EXIF rotation, ending
  in an EOI marker) decoded as a batch with ``torchvision.io.decode_jpeg`` (nvJPEG on a GPU,
  libjpeg-turbo on the CPU), then steps 2, 5 and 6 as tensor ops: libjpeg's draft scale (the same
  1/2, 1/4, 1/8 that Pillow's ``draft()`` picks) as an average pool, the same centre crop, and an
  antialiased bicubic resize (PyTorch's antialias kernels are Pillow's, a = -0.5). Pixels differ
  from the reference by a few grey levels (scaled IDCT vs box average, IDCT rounding); the
  embeddings agree to cosine ≥ 0.99 (tests/serve/test_serve_perf_tensor_path.py), which is why
  both carry the version ``oskit-image-v1``. Every other image goes through :func:`preprocess`.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from kit.errors import ServeError
from kit.limits import DEFAULT_MAX_IMAGE_PIXELS

__all__ = [
    "ALLOWED_FORMATS",
    "PREPROCESS_VERSION",
    "BadImage",
    "DecodedImage",
    "JpegJob",
    "decode_b64",
    "decode_b64_buffer",
    "draft_scale",
    "jpeg_job",
    "open_image",
    "preprocess",
    "tensor_preprocess",
]

try:  # optional (the serve extra): SIMD base64, same results and the same refusals as binascii's
    import pybase64 as _pybase64
except ImportError:  # pragma: no cover - depends on the environment
    _pybase64 = None  # type: ignore[assignment]

PREPROCESS_VERSION = "oskit-image-v1"
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
# Images above this many pixels are refused (a decompression bomb guard; kit/limits.py is the one default).
DEFAULT_MAX_PIXELS = DEFAULT_MAX_IMAGE_PIXELS


class BadImage(ServeError):
    """The bytes are not an image we can read (corrupt, unsupported, too large). Rendered as 400."""

    def __init__(self, message: str, *, code: str = "bad_image", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class DecodedImage:
    """A checked image: the Pillow object and its original format and size."""

    image: object  # PIL.Image.Image (kept untyped so importing this module stays cheap for mypy users)
    format: str
    width: int
    height: int


def decode_b64(value: object, field: str = "inputImage") -> bytes:
    """Base64 (standard or URL-safe, optional ``data:`` URL prefix) → bytes, or :class:`BadImage`."""
    if not isinstance(value, str) or not value:
        raise BadImage(f"{field} must be a non-empty base64 string")
    text = value
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    if len(text) % 4 == 0 and "-" not in text and "_" not in text:
        # Fast path for what connectors send (one line of padded standard base64): one C pass, no
        # copies. Both decoders refuse whitespace and bad characters; those fall through to the
        # lenient path below, which says exactly what is wrong. pybase64 (SIMD) decodes a 128 kB
        # image in ~7 µs where binascii takes ~290 µs — on a GPU server that was the largest
        # single cost of a request.
        try:
            if _pybase64 is not None:
                return _pybase64.b64decode(text, validate=True)
            return binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            pass
    text = "".join(text.split())
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadImage(f"{field} is not valid base64: {exc}") from exc


def decode_b64_buffer(buf: bytes | memoryview) -> bytes | None:
    """Padded standard base64 in a bytes-like object (a slice of the request body) → bytes, or
    ``None`` when it is anything else — then :func:`decode_b64` on the string says what is wrong."""
    try:
        if _pybase64 is not None:
            return _pybase64.b64decode(buf, validate=True)
        return binascii.a2b_base64(buf, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _identify(data: bytes, max_pixels: int) -> tuple[Any, str, int, int]:
    """Open ``data`` lazily (headers only) and check format and size: ``(image, format, w, h)``."""
    from PIL import Image

    if not data:
        raise BadImage("empty image")
    img = Image.open(io.BytesIO(data))
    fmt = (img.format or "").upper()
    if fmt not in ALLOWED_FORMATS:
        raise BadImage(f"unsupported image format {fmt or 'unknown'} (supported: JPEG, PNG, WebP, GIF, BMP, TIFF)",
                       code="unsupported_image")
    width, height = img.size
    if width * height > max_pixels:
        raise BadImage(f"image is {width}x{height} = {width * height} pixels, above the limit of {max_pixels}",
                       code="image_too_large", status=413)
    return img, fmt, width, height


def open_image(data: bytes, *, draft_size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Open and fully decode ``data`` (steps 1–2), raising :class:`BadImage` with the reason."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadImage("empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img, fmt, width, height = _identify(data, max_pixels)
            if fmt in ("JPEG", "MPO") and draft_size:
                img.draft("RGB", (draft_size, draft_size))
            img.load()
    except BadImage:
        raise
    except UnidentifiedImageError as exc:
        raise BadImage("not an image Pillow can identify (corrupt or unsupported format)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(f"image too large: {exc}", code="image_too_large", status=413) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImage(f"corrupt image: {exc}") from exc
    return DecodedImage(image=img, format=fmt, width=width, height=height)


def to_rgb(img: object) -> object:
    """EXIF orientation + RGB (steps 3–4)."""
    from PIL import Image, ImageOps

    assert isinstance(img, Image.Image)
    try:
        # exif_transpose copies the image even when there is nothing to do; look at the tag first
        if img.getexif().get(0x0112, 1) != 1:
            img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not lose the image; orientation is then left as stored
        pass
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def preprocess(data: bytes, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``oskit-image-v1``: bytes → ``uint8`` array ``[size, size, 3]`` (normalisation happens per batch)."""
    from PIL import Image

    decoded = open_image(data, draft_size=size, max_pixels=max_pixels)
    img = to_rgb(decoded.image)
    assert isinstance(img, Image.Image)
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    box = (left, top, left + side, top + side)
    if side != size or (w, h) != (side, side):
        img = img.resize((size, size), Image.Resampling.BICUBIC, box=box)
    return np.asarray(img, dtype=np.uint8)


# --- the tensor implementation (batched JPEG decode: nvJPEG on a GPU) ------------------------------


@dataclass(frozen=True)
class JpegJob:
    """A JPEG admitted to the tensor path: its bytes and the draft scale the spec gives it."""

    data: bytes | bytearray | memoryview
    width: int
    height: int
    scale: int  # 1, 2, 4 or 8: what Pillow's draft() picks for this size (step 2)


def draft_scale(width: int, height: int, size: int) -> int:
    """The libjpeg reduction Pillow's ``JpegImageFile.draft`` chooses for a ``(size, size)`` request."""
    fit = min(width // size, height // size)
    return next((s for s in (8, 4, 2) if fit >= s), 1)


_SOF_OK = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended, progressive Huffman: what nvJPEG decodes
_SOF_ALL = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # every start-of-frame marker


def _exif_orientation(payload: bytes) -> int | None:
    """Orientation (tag 0x0112) from an APP1 ``Exif`` payload; 1 when absent, ``None`` if unreadable."""
    tiff = payload[6:]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return None
    for k in range(int.from_bytes(tiff[ifd:ifd + 2], order)):
        entry = tiff[ifd + 2 + 12 * k: ifd + 14 + 12 * k]
        if len(entry) < 12:
            return None
        if int.from_bytes(entry[:2], order) == 0x0112:
            return int.from_bytes(entry[8:10], order)
    return 1


def jpeg_job(data: bytes, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> JpegJob | None:
    """A :class:`JpegJob` when the tensor path reproduces the spec for ``data``; ``None`` when only
    :func:`preprocess` does: not a JPEG, not 3 components of 8 bits, arithmetic/lossless coding, EXIF
    rotation, Adobe or multi-picture segments, anything after the EOI marker (a truncated file must
    fail the way Pillow fails) or headers this small parser does not follow. An image above
    ``max_pixels`` raises the same :class:`BadImage` (413) as :func:`open_image`.

    Only the marker segments before the scan are read (a few µs in pure Python, about 20× less
    than opening the file with Pillow): this runs on the event loop for every image."""
    from PIL import Image

    if data[:3] != b"\xff\xd8\xff" or not data.endswith(b"\xff\xd9"):
        return None
    pos, end = 2, len(data)
    width = height = 0
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2 or pos + 2 + length > end:
            return None
        payload = data[pos + 4: pos + 2 + length]
        if marker == 0xDA:  # start of scan: the headers are done
            break
        if marker in _SOF_ALL:
            if marker not in _SOF_OK or len(payload) < 6 or payload[0] != 8 or payload[5] != 3:
                return None
            height, width = (payload[1] << 8) | payload[2], (payload[3] << 8) | payload[4]
        elif marker == 0xE1 and payload[:6] == b"Exif\x00\x00":
            if _exif_orientation(payload) != 1:
                return None
        elif (marker == 0xEE and payload[:5] == b"Adobe") or (marker == 0xE2 and payload[:4] == b"MPF\x00"):
            return None
        pos += 2 + length
    else:
        return None
    if not width or not height:
        return None
    if width * height > max_pixels:
        raise BadImage(f"image is {width}x{height} = {width * height} pixels, above the limit of {max_pixels}",
                       code="image_too_large", status=413)
    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        return None  # Pillow's own bomb guard answers for the reference path
    return JpegJob(data=data, width=width, height=height, scale=draft_scale(width, height, size))


def decode_jpegs(jobs: Sequence[JpegJob], device: str) -> list[Any]:
    """Batched decode to ``uint8 [3, H, W]`` tensors on ``device`` (nvJPEG for CUDA). Raises on any
    undecodable member: the caller retries one by one to find it."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    # writable buffers (the model engine's receive buffers) are shared; bytes are copied (frombuffer
    # wants a writable buffer; the tensor is only read)
    tensors = [torch.frombuffer(job.data if isinstance(job.data, (bytearray, memoryview)) else bytearray(job.data),
                                dtype=torch.uint8) for job in jobs]
    with warnings.catch_warnings():
        # torchvision ≥ 0.29 warns that its image IO moves to TorchCodec; the function is unchanged
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torchvision\.io\.image")
        out = decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
    return list(out) if isinstance(out, (list, tuple)) else [out]


def tensor_preprocess(jobs: Sequence[JpegJob], images: Sequence[Any], size: int) -> Any:
    """Steps 2, 5, 6 on decoded ``uint8 [3, H, W]`` tensors → ``uint8 [n, 3, size, size]`` (same device).

    Images of one shape are processed as one stacked batch (a photo collection has few shapes)."""
    import torch
    import torch.nn.functional as F

    if not images:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8)
    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8, device=images[0].device)
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, (job, img) in enumerate(zip(jobs, images)):
        groups.setdefault((int(img.shape[1]), int(img.shape[2]), job.scale), []).append(i)
    for (h, w, scale), idx in groups.items():
        # the centre crop is taken before the box filter, in full-size pixels (the filter's windows
        # are scale-aligned, so the result is the same): a 4:3 photo converts and filters 25% less
        hs, ws = -(-h // scale), -(-w // scale)  # libjpeg's scaled output size (ceil)
        side = min(ws, hs)
        top, left = (hs - side) // 2, (ws - side) // 2
        x = torch.stack([images[i][:, top * scale:(top + side) * scale, left * scale:(left + side) * scale]
                         for i in idx]).float()
        if scale > 1:  # libjpeg's scaled IDCT ≈ a box filter; ceil like libjpeg's output size
            x = F.avg_pool2d(x, kernel_size=scale, stride=scale, ceil_mode=True)
        if side != size:
            x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        x = x.round_().clamp_(0, 255).to(torch.uint8)
        if idx[-1] - idx[0] == len(idx) - 1:  # contiguous (always, for one shape): a slice, no index upload
            out[idx[0]:idx[-1] + 1] = x
        else:
            out[torch.tensor(idx).to(out.device, non_blocking=True)] = x
    return out
