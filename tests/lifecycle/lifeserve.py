"""A stand-in for `oskit serve` whose "weights" can be swapped while it runs (same URL, same connector).

``variant`` decides what /clip/embed returns:

- ``"colour"``: images map to a basis vector for their dominant colour and texts to the basis vector of
  the colour word they contain (a model that *works*: "red" finds the red images);
- ``"colour-v2"``: the same, on other basis vectors (another good model: all its vectors differ);
- ``"random"``: a hash of the input (a model that finds nothing).

OCR answers the text ``SERIAL <n>`` when the image's green channel encodes n; tags the colour name.
"""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fakeserve import FakeServe  # tests/provision (on sys.path wherever this is imported)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (240, 220, 20)}


def _hash_vector(seed: str, dim: int) -> list[float]:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little"))
    v = rng.standard_normal(dim)
    return [float(x) for x in v / np.linalg.norm(v)]


def colour_of(image_b64: str) -> str | None:
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(base64.b64decode(image_b64))).convert("RGB").resize((8, 8))
    except Exception:  # noqa: BLE001 - a bad image gets no colour
        return None
    r, g, b = np.asarray(im, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return min(COLOURS, key=lambda c: sum((x - y) ** 2 for x, y in zip(COLOURS[c], (r, g, b))))


def _basis(colour: str, variant: str, dim: int, noise_seed: str) -> list[float]:
    idx = list(COLOURS).index(colour) * (7 if variant == "colour-v2" else 1) + (100 if variant == "colour-v2" else 0)
    v = np.zeros(dim)
    v[idx] = 1.0
    v += 0.05 * np.asarray(_hash_vector(noise_seed, dim))
    return [float(x) for x in v / np.linalg.norm(v)]


class LifeServe(FakeServe):
    """tests/provision's FakeServe (uvicorn in a daemon thread) answering as above; ``variant`` can be
    changed at any time."""

    def __init__(self, variant: str = "colour", variant2: str = "colour-v2") -> None:
        self.variant = variant
        self.variant2 = variant2  # what /clip/embed-v2 serves: the "new model" of a migration
        self.dim = 512  # a broken model answers another dimension
        self.hash_version = "oskit-hash-v2"  # /hash: another algorithm answers another version …
        self.phash = "8000000000000000"  # … and other bits
        super().__init__()
        self.calls = 0  # type: ignore[assignment]  # here: a count of /clip/embed calls

    def embed(self, text: str | None, image: str | None, variant: str | None = None) -> list[float]:
        variant = variant or self.variant
        if variant == "random":
            return _hash_vector(f"{text}|{image}", 512)
        if image:
            colour = colour_of(image)
            return _basis(colour, variant, 512, image[:64]) if colour else _hash_vector(image, 512)
        words = (text or "").lower()
        colour = next((c for c in COLOURS if c in words), None)
        return _basis(colour, variant, 512, words) if colour else _hash_vector(f"{variant}|{words}", 512)

    def app(self) -> Starlette:
        async def clip_embed(request: Request) -> JSONResponse:
            body = await request.json()
            variant = self.variant2 if request.url.path.endswith("-v2") else self.variant
            self.calls += 1
            text = body.get("inputText") if body.get("inputText") not in (None, "null") else None
            image = body.get("inputImage") if body.get("inputImage") not in (None, "null") else None
            if text is None and image is None:
                return JSONResponse({"error": {"code": "bad_request", "message": "no input", "status": 400}}, 400)
            return JSONResponse({"embedding": self.embed(text, image, variant)[:self.dim]})

        async def ocr(request: Request) -> JSONResponse:
            body = await request.json()
            colour = colour_of(str(body.get("inputImage") or ""))
            if colour is None:
                return JSONResponse({"error": {"code": "bad_image", "message": "not an image", "status": 400}}, 400)
            return JSONResponse({"text": f"{colour.upper()} SIGN", "lines": []})

        async def tags(request: Request) -> JSONResponse:
            body = await request.json()
            colour = colour_of(str(body.get("inputImage") or ""))
            if colour is None:
                return JSONResponse({"error": {"code": "bad_image", "message": "not an image", "status": 400}}, 400)
            return JSONResponse({"tags": [colour], "scores": {colour: 0.9}})

        async def embed_texts(request: Request) -> JSONResponse:
            body = await request.json()
            texts = body.get("input") if isinstance(body, dict) else body
            return JSONResponse([_hash_vector(str(t), 384) for t in texts or []])

        async def hashes(request: Request) -> JSONResponse:  # models/hash.yaml (issue 15): fixed hashes do here
            colour = colour_of(str((await request.json()).get("inputImage") or ""))
            if colour is None:
                return JSONResponse({"error": {"code": "bad_image", "message": "not an image", "status": 400}}, 400)
            return JSONResponse({"phash": self.phash, "colour": "00000000700", "mean": "%02x%02x%02x" % COLOURS[colour],
                                 "phash_crops": [self.phash, self.phash], "phash_probes": [],
                                 "hash_version": self.hash_version})

        async def health(request: Request) -> JSONResponse:
            return JSONResponse({"status": "ok", "models": {}})

        return Starlette(routes=[Route("/clip/embed", clip_embed, methods=["POST"]),
                                 Route("/clip/embed-v2", clip_embed, methods=["POST"]),
                                 Route("/ocr", ocr, methods=["POST"]), Route("/tags", tags, methods=["POST"]),
                                 Route("/embed-texts", embed_texts, methods=["POST"]),
                                 Route("/hash", hashes, methods=["POST"]),
                                 Route("/text/embed", embed_texts, methods=["POST"]),  # environments/real.yaml
                                 Route("/health", health)])


def write_images(folder: Any, n: int, *, size: int = 24) -> list[str]:
    """``n`` small PNGs cycling through the colours, each unique (a pixel encodes its number)."""
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        im = Image.new("RGB", (size, size), COLOURS[colour])
        im.putpixel((0, 0), (i % 256, (i // 256) % 256, 7))
        name = f"{colour}-{i:05d}.png"
        im.save(folder / name)
        names.append(name)
    return names


def write_queries(path: Any, names: list[str]) -> None:
    import yaml

    queries = []
    for colour in COLOURS:
        queries.append({"id": f"q-{colour}", "type": "text", "text": f"a {colour} square",
                        "relevant": [n for n in names if n.startswith(colour + "-")]})
    path.write_text(yaml.safe_dump({"index": "images", "queries": queries}), encoding="utf-8")
