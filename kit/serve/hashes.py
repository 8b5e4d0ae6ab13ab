"""Perceptual hashes of an image for the similar-photo labels (``POST /hash``).

With imagehash (a well-kept library): ``phash`` — 64 bits of the image's lowest DCT frequencies
(structure; unchanged by recompression and resizing) — and ``colour`` — imagehash's ``colorhash``
with 3 bits per bin (the share of each hue and grey level; the only signal a plain colour field has,
whose pHash is all but empty). Crops and rotations move a pHash, so two more lists make them
comparable: ``phash_crops``, the pHash of the centre 90 % and 80 % (stored with each document), and
``phash_probes``, the pHash of the image's quarter turns and of its ±6° / ±12° rotations and plain
80 % centre crop (used for the query); ``mean``, the average colour (``rrggbb``), which is all a plain
colour field is. The distance of two images is the smallest Hamming distance
between a query hash (``phash`` + probes) and a stored one (``phash`` + crops).

The model server computes them — called by the index's ingest pipeline, and by ``oskit similar``
for the query through ML Commons' predict API — so documents and queries are hashed by one
implementation whatever client sent them; see docs/similar-bands.md.
"""

from __future__ import annotations

from typing import Any

from kit.serve.images import DEFAULT_MAX_PIXELS, open_image

__all__ = ["HASH_VERSION", "hash_image"]

HASH_VERSION = "oskit-hash-v3"
_WORK_SIDE = 256  # pHash looks at 32×32 pixels; rotating and cropping a 12 MP photo would waste time
_CROPS = (0.9, 0.8)
_ANGLES = (-12, -6, 6, 12)


def _centre(img: Any, share: float) -> Any:
    w, h = img.size
    dx, dy = int(w * (1 - share) / 2), int(h * (1 - share) / 2)
    return img.crop((dx, dy, w - dx, h - dy))


def hash_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """Image bytes → ``{"phash", "colour", "mean", "phash_crops", "phash_probes", "hash_version"}`` (hex)."""
    import imagehash
    from PIL import Image, ImageStat

    img = open_image(data, max_pixels=max_pixels).image.convert("RGB")  # type: ignore[attr-defined]
    small = img.copy()
    small.thumbnail((_WORK_SIDE, _WORK_SIDE), Image.Resampling.LANCZOS)

    def ph(im: Any) -> str:
        return str(imagehash.phash(im))

    probes = [ph(small.transpose(t)) for t in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                                                Image.Transpose.ROTATE_270)]
    probes += [ph(_centre(small.rotate(a, resample=Image.Resampling.BILINEAR), 0.8)) for a in _ANGLES]
    probes.append(ph(_centre(small, 0.8)))
    mean = ImageStat.Stat(small).mean
    return {"phash": ph(img), "colour": str(imagehash.colorhash(img, binbits=3)),
            "mean": "".join(f"{min(255, round(v)):02x}" for v in mean[:3]),
            "phash_crops": [ph(_centre(small, s)) for s in _CROPS], "phash_probes": probes,
            "hash_version": HASH_VERSION}
