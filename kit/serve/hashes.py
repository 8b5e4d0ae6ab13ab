"""Perceptual hashes of an image for the similar-photo labels (``POST /hash``).

Two hashes from imagehash (a well-kept library: pHash as in Zauner 2010, and its colour histogram
hash): ``phash`` — 64 bits of the image's low DCT frequencies (structure; unchanged by
recompression and resizing, moved by crops and rotations) — and ``colour`` — imagehash's
``colorhash`` with 3 bits per bin (the share of each hue / grey level; the only signal a plain colour
field has, whose pHash is all but empty). Distances are Hamming distances of the hex strings.

The model server computes them (called by the index's ingest pipeline, and by ``oskit similar``
for the query through ML Commons' predict API) so documents and queries are hashed by one
implementation whatever client sent them; see docs/similar-bands.md.
"""

from __future__ import annotations

from typing import Any

from kit.serve.images import DEFAULT_MAX_PIXELS, open_image

__all__ = ["HASH_VERSION", "hash_image"]

HASH_VERSION = "oskit-hash-v1"


def hash_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """Image bytes → ``{"phash": 16 hex, "colour": hex, "hash_version": "oskit-hash-v1"}``."""
    import imagehash

    img = open_image(data, max_pixels=max_pixels).image.convert("RGB")  # type: ignore[attr-defined]
    return {"phash": str(imagehash.phash(img)), "colour": str(imagehash.colorhash(img, binbits=3)),
            "hash_version": HASH_VERSION}
