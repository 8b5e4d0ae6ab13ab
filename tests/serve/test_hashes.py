"""POST /hash: the perceptual hashes behind the similar-photo labels (kit/serve/hashes.py)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from PIL import Image

from kit.job.similar import QueryHashes, hamming
from kit.serve.config import HashConfig, ServeConfig
from kit.serve.hashes import HASH_VERSION, hash_image
from _serve_helpers import b64, image_bytes


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _stop_sign() -> Image.Image:
    from kit.models.heldout import heldout_images

    return next(im.image for im in heldout_images(0) if im.name.startswith("sign-stop"))


def test_hash_endpoint_shape_and_errors(serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(ServeConfig(hash=HashConfig(), device="cpu")) as (c, _):
            body = (await c.post("/hash", json={"inputImage": b64(image_bytes("red"))})).json()
            assert set(body) == {"phash", "colour", "mean", "phash_crops", "phash_probes", "hash_version"}
            assert body["mean"] == "fe0000" or len(body["mean"]) == 6
            assert len(body["phash"]) == 16 and len(body["phash_crops"]) == 2 and len(body["phash_probes"]) == 8
            assert body["hash_version"] == HASH_VERSION
            assert (await c.get("/health")).json()["models"]["hash"]["library"] == "imagehash"
            bad = await c.post("/hash", json={"inputImage": b64(b"not an image")})
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_image"
            missing = await c.post("/hash", json={})
            assert missing.status_code == 400

    asyncio.run(go())


def test_hash_endpoint_needs_its_spec(serve_client: Any) -> None:
    async def go() -> None:
        async with serve_client(ServeConfig(device="cpu", captions={})) as (c, _):
            r = await c.post("/hash", json={"inputImage": b64(image_bytes("red"))})
            assert r.status_code == 503 and "kind: hash" in r.json()["error"]["message"]

    asyncio.run(go())


def test_copies_are_close_and_other_pictures_far() -> None:
    stop = _stop_sign()
    stored = hash_image(_png(stop))
    doc = {"phash": stored["phash"], "phash_crops": stored["phash_crops"], "colour_hash": stored["colour"]}

    def dist(img: Image.Image) -> tuple[int | None, int | None]:
        q = hash_image(_png(img))
        return QueryHashes([q["phash"], *q["phash_probes"]], q["colour"]).distances(doc)

    buf = io.BytesIO()
    stop.save(buf, "JPEG", quality=35)
    assert dist(Image.open(io.BytesIO(buf.getvalue())))[0] <= 4  # recompressed
    assert dist(stop.rotate(90, expand=True))[0] == 0  # a phone held sideways: a quarter-turn probe
    assert dist(stop.rotate(10, resample=Image.Resampling.BILINEAR))[0] <= 16
    w, h = stop.size
    assert dist(stop.crop((25, 25, w - 25, h - 25)))[0] <= 16  # the stored centre crops
    square = dist(Image.new("RGB", (8, 8), (230, 0, 200)))  # the magenta square
    assert square[0] is not None and square[0] >= 20


def test_flat_fields_are_told_apart_by_their_colour() -> None:
    from kit.job.similar import Bands

    def hashed(colour: tuple[int, int, int], fmt: str = "PNG") -> dict[str, Any]:
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), colour).save(buf, fmt)
        return hash_image(buf.getvalue())

    red, magenta, red_jpeg = hashed((220, 30, 35)), hashed((230, 0, 200)), hashed((220, 30, 35), "JPEG")
    assert hamming(red["phash"], magenta["phash"]) == 0  # pHash sees no structure in either
    q = QueryHashes([red["phash"]], red["colour"], red["mean"])

    def doc(h: dict[str, Any]) -> dict[str, Any]:
        return {"phash": h["phash"], "colour_hash": h["colour"], "colour_mean": h["mean"]}

    assert q.both_flat(doc(magenta)) and q.mean_distance(doc(magenta)) > 100
    assert q.mean_distance(doc(red_jpeg)) <= 6
    bands = Bands(identical=0.99, near_identical=0.9, similar=0.7, identical_phash=2, identical_colour=9,
                  near_phash=26, near_colour=9)
    # a score of 0.936 and equal hashes: the kind of mistake, unless the colour decides
    assert bands.label(0.936, 0, 0, flat=q.mean_distance(doc(magenta))) == "similar"
    assert bands.label(0.999, 0, 0, flat=q.mean_distance(doc(red_jpeg))) == "identical"
    assert Bands().label(0.5, 0, 0, flat=q.mean_distance(doc(red_jpeg))) == "identical"  # uncalibrated
