"""The tensor implementation of ``oskit-image-v1`` (batched torchvision / nvJPEG decode + tensor
resize) against the Pillow reference: same routing rules, near-identical pixels, and the same
embeddings (cosine ≥ 0.99) with the project's trained CLIP. The CUDA test runs where a GPU is."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from _serve_helpers import b64, image_bytes
from kit.serve.images import BadImage, JpegJob, decode_jpegs, draft_scale, jpeg_job, preprocess, tensor_preprocess

WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "weights" / "oskit-clip-tiny.pt"


def _photo(size: tuple[int, int], seed: int) -> bytes:
    """A photo-like JPEG: gradients, noise and a few blocks (flat colours would hide resize errors)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 255, yy / h * 255, np.full_like(xx, rng.uniform(0, 255))], axis=-1)
    base += rng.normal(0, 10, base.shape)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
        base[y0:y0 + h // 4, x0:x0 + w // 4] = rng.integers(0, 255, 3)
    buf = io.BytesIO()
    Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _tensor_pixels(datas: list[bytes], size: int, device: str = "cpu") -> np.ndarray:
    jobs = [jpeg_job(d, size) for d in datas]
    assert all(isinstance(j, JpegJob) for j in jobs)
    out = tensor_preprocess(jobs, decode_jpegs(jobs, device), size)  # type: ignore[arg-type]
    return out.permute(0, 2, 3, 1).cpu().numpy()


@pytest.mark.parametrize("w,h", [(640, 480), (333, 517), (1200, 800), (100, 90)])
@pytest.mark.parametrize("size", [64, 224])
def test_draft_scale_is_pillows(w: int, h: int, size: int) -> None:
    img = Image.open(io.BytesIO(image_bytes("red", size=(w, h))))
    img.draft("RGB", (size, size))
    scale = draft_scale(w, h, size)
    assert img.size == ((w + scale - 1) // scale, (h + scale - 1) // scale)


@pytest.mark.parametrize("w,h,size", [(640, 480, 64), (640, 480, 224), (333, 517, 64), (1200, 800, 224), (100, 90, 224)])
def test_tensor_pixels_match_the_reference(w: int, h: int, size: int) -> None:
    datas = [_photo((w, h), seed) for seed in range(4)]
    ref = np.stack([preprocess(d, size) for d in datas]).astype(np.int16)
    diff = np.abs(ref - _tensor_pixels(datas, size).astype(np.int16))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 8  # a few grey levels: scaled IDCT vs box filter


@pytest.mark.parametrize("h,w", [(480, 640), (481, 643), (640, 480), (1000, 999), (451, 677), (2000, 1501), (225, 225)])
def test_cropping_before_the_box_filter_changes_no_pixel(h: int, w: int) -> None:
    """tensor_preprocess crops in full-size pixels before the box filter; the same as filtering the
    whole image first and cropping after (the order it had before), to the last bit."""
    import torch
    import torch.nn.functional as F

    size = 224
    g = torch.Generator().manual_seed(h * w)
    images = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for _ in range(2)]
    jobs = [JpegJob(data=b"", width=w, height=h, scale=draft_scale(w, h, size)) for _ in images]
    x = torch.stack(images).float()
    scale = jobs[0].scale
    if scale > 1:
        x = F.avg_pool2d(x, kernel_size=scale, stride=scale, ceil_mode=True)
    hs, ws = int(x.shape[2]), int(x.shape[3])
    side = min(hs, ws)
    top, left = (hs - side) // 2, (ws - side) // 2
    x = x[:, :, top:top + side, left:left + side]
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    expected = x.round_().clamp_(0, 255).to(torch.uint8)
    assert torch.equal(tensor_preprocess(jobs, images, size), expected)


def test_routing_only_plain_jpegs_take_the_tensor_path() -> None:
    assert isinstance(jpeg_job(image_bytes(size=(80, 60)), 32), JpegJob)
    assert jpeg_job(image_bytes(fmt="PNG"), 32) is None
    grey = io.BytesIO()
    Image.new("L", (40, 40), 128).save(grey, "JPEG")
    assert jpeg_job(grey.getvalue(), 32) is None
    cmyk = io.BytesIO()
    Image.new("CMYK", (40, 40)).save(cmyk, "JPEG")
    assert jpeg_job(cmyk.getvalue(), 32) is None
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = io.BytesIO()
    Image.new("RGB", (40, 30)).save(rotated, "JPEG", exif=exif)
    assert jpeg_job(rotated.getvalue(), 32) is None
    assert jpeg_job(image_bytes()[:-10], 32) is None  # truncated: Pillow's error is the answer
    good = image_bytes(size=(90, 70))
    assert jpeg_job(good[:good.index(b"\xff\xda")] + b"\xff\xd9", 32) is None  # no scan
    for w, h in [(640, 480), (333, 517), (7, 5)]:
        job = jpeg_job(_photo((w, h), 1) if w > 8 else image_bytes(size=(w, h)), 32)
        assert job is not None and (job.width, job.height) == (w, h)
    with pytest.raises(BadImage) as e:
        jpeg_job(image_bytes(size=(100, 100)), 32, max_pixels=50 * 50)
    assert e.value.status == 413


def _engine() -> Any:
    from kit.serve.clip import ClipEngine, load_open_clip

    if not WEIGHTS.is_file():
        pytest.skip("the project's oskit-clip-tiny weights are not present")
    return ClipEngine(load_open_clip("oskit-clip-tiny", str(WEIGHTS), device="cpu"))


def test_embeddings_agree_and_bad_items_fail_alone() -> None:
    engine = _engine()
    datas = [_photo((640, 480), seed) for seed in range(10, 22)]
    ref = engine.embed_pixels([preprocess(d, engine.image_size) for d in datas])
    good = image_bytes(size=(90, 70))
    corrupt = good[:good.index(b"\xff\xda")] + b"\xff\xd9"  # headers fine, no scan data
    items: list[Any] = [jpeg_job(d, engine.image_size) for d in datas]
    # headers that look fine (jpeg_job itself sends this one to the reference path), no scan data
    items += [JpegJob(data=corrupt, width=90, height=70, scale=1), preprocess(good, engine.image_size)]
    out = engine.embed_items(items)
    vecs = np.stack(out[:12])
    assert (vecs * ref).sum(axis=1).min() >= 0.99
    assert isinstance(out[12], BadImage) and "corrupt" in out[12].message
    assert np.allclose(out[13], engine.embed_pixels([preprocess(good, engine.image_size)])[0], atol=1e-5)
    only_bad = engine.embed_items([items[12], items[13]])  # no JPEG decodes at all in this batch
    assert isinstance(only_bad[0], BadImage) and np.allclose(only_bad[1], out[13], atol=1e-5)


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU (nvJPEG)")
def test_nvjpeg_matches_the_reference_on_cuda() -> None:
    import torch

    from kit.serve.clip import ClipEngine, load_open_clip

    datas = [_photo((640, 480), seed) for seed in range(30, 46)] + [_photo((333, 517), 50)]
    for size in (64, 224):
        ref = np.stack([preprocess(d, size) for d in datas]).astype(np.int16)
        diff = np.abs(ref - _tensor_pixels(datas, size, "cuda").astype(np.int16))
        assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 8
    if not WEIGHTS.is_file():
        pytest.skip("the project's oskit-clip-tiny weights are not present")
    engine = ClipEngine(load_open_clip("oskit-clip-tiny", str(WEIGHTS), device="cuda", precision="fp32"))
    ref_vecs = engine.embed_pixels([preprocess(d, engine.image_size) for d in datas])
    vecs = np.stack(engine.embed_items([jpeg_job(d, engine.image_size) for d in datas]))
    assert (vecs * ref_vecs).sum(axis=1).min() >= 0.99
    torch.cuda.empty_cache()


def test_server_with_device_decode(tiny_clip: str, serve_client: Any) -> None:
    """decode: device on the CPU (torchvision's libjpeg-turbo): JPEGs go through the batch, PNGs
    through Pillow, a corrupt JPEG is still a 400 with the reason, and /health says which decode."""
    from kit.serve.config import BatchingConfig, ClipConfig, ServeConfig

    cfg = ServeConfig(clip=ClipConfig(model=tiny_clip, decode="device",
                                      batching=BatchingConfig(max_batch=8, max_wait_ms=20)), device="cpu")
    good = image_bytes(size=(90, 70))
    corrupt = good[:good.index(b"\xff\xda")] + b"\xff\xd9"

    async def go() -> None:
        async with serve_client(cfg) as (c, app):
            health = (await c.get("/health")).json()
            assert health["models"]["clip"]["decode"] == "device"
            bodies = [{"inputImage": b64(_photo((120, 90), i))} for i in range(6)]
            bodies += [{"inputImage": b64(image_bytes(fmt="PNG"))}, {"inputImage": b64(corrupt)}]
            rs = await asyncio.gather(*(c.post("/clip/embed", json=b) for b in bodies))
            assert [r.status_code for r in rs] == [200] * 7 + [400]
            assert rs[7].json()["error"]["code"] == "bad_image"
            assert all(len(r.json()["embedding"]) == 64 for r in rs[:7])
            engine = app.state.runtime.clip
            direct = engine.embed_pixels([preprocess(_photo((120, 90), 0), engine.image_size)])[0]
            assert float(np.dot(direct, rs[0].json()["embedding"])) >= 0.99

    asyncio.run(go())


def test_mixed_shapes_keep_their_order() -> None:
    """Images of several shapes in one batch are grouped by shape and written back in order."""
    datas = [_photo((640, 480), 60), _photo((333, 517), 61), _photo((640, 480), 62), _photo((200, 150), 63)]
    together = _tensor_pixels(datas, 48)
    alone = np.concatenate([_tensor_pixels([d], 48) for d in datas])
    assert np.array_equal(together, alone)
