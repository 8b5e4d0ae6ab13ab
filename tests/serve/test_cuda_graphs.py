"""The CLIP image tower as CUDA graphs (kit/serve/clip.py, CudaGraphTower): buckets, config,
errors everywhere; equal vectors on a GPU (those tests are skipped without one)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kit.errors import ModelError
from kit.serve.clip import graph_buckets, load_clip_engine
from kit.serve.config import ClipConfig, load_serve_config

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "models" / "weights" / "oskit-clip-tiny.pt"
CUDA = __import__("torch").cuda.is_available()


def test_buckets_cover_every_batch_with_little_padding() -> None:
    assert graph_buckets(1) == [1]
    assert graph_buckets(32) == [1, 2, 4, 8, 16, 32]
    b = graph_buckets(256)
    assert b[:6] == [1, 2, 4, 8, 16, 32] and b[-1] == 256 and len(b) == 20
    for n in range(1, 257):  # the smallest bucket that holds n wastes < 16 rows (or < n: 3 → 4)
        pick = next(x for x in b if x >= n)
        assert pick - n < max(16, n)
        if n > 16:
            assert pick - n < 16
    assert graph_buckets(100)[-2:] == [96, 100]
    with pytest.raises(ModelError):
        graph_buckets(0)


def test_spec_key_is_read_and_checked(tmp_path: Path) -> None:
    spec = tmp_path / "clip.yaml"
    spec.write_text(json.dumps({"serve": {"kind": "clip", "open_clip": {"model": "oskit-clip-tiny"}, "cuda_graphs": "off"}}))
    assert load_serve_config(spec).clip.cuda_graphs == "off"  # type: ignore[union-attr]
    spec.write_text(json.dumps({"serve": {"kind": "clip", "open_clip": {"model": "oskit-clip-tiny"}, "cuda_graphs": "yes"}}))
    with pytest.raises(Exception) as info:
        load_serve_config(spec)
    assert "cuda_graphs" in str(info.value)
    assert ClipConfig(model="m").cuda_graphs == "auto"


@pytest.mark.skipif(CUDA, reason="checks the CPU behaviour")
def test_graphs_on_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="cuda_graphs: on needs a CUDA device"):
        load_clip_engine(ClipConfig(model="oskit-clip-tiny", cuda_graphs="on"), "cpu")
    engine, _ = load_clip_engine(ClipConfig(model="oskit-clip-tiny"), "cpu")  # auto: eager on a CPU
    assert engine.graphs is None


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_graph_vectors_equal_eager_vectors(precision: str) -> None:
    import torch

    from kit.serve.clip import ClipEngine, CudaGraphTower, load_open_clip

    loaded = load_open_clip("oskit-clip-tiny", str(WEIGHTS), device="cuda", precision=precision)
    eager, graphed = ClipEngine(loaded), ClipEngine(loaded)
    tower = CudaGraphTower(graphed, 64)
    graphed.graphs = tower
    assert tower.buckets == [1, 2, 4, 8, 16, 32, 48, 64]
    gen = torch.Generator().manual_seed(0)
    size = loaded.image_size
    tol = 1e-4 if precision == "fp32" else 3e-3  # fp16: a padded batch may pick other GEMM kernels
    for n in (1, 3, 16, 17, 64, 150):  # 150: three chunks through the largest bucket
        x = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8).cuda()
        want = eager.embed_uint8(x)
        got = graphed.embed_uint8(x)
        assert got.shape == (n, loaded.dim)
        assert np.abs(got - want).max() < tol, (n, np.abs(got - want).max())
    # rows left over from an earlier, larger batch do not leak into a smaller one
    x = torch.randint(0, 256, (5, 3, size, size), generator=gen, dtype=torch.uint8).cuda()
    first = graphed.embed_uint8(x)
    graphed.embed_uint8(torch.randint(0, 256, (8, 3, size, size), generator=gen, dtype=torch.uint8).cuda())
    assert np.allclose(graphed.embed_uint8(x), first, atol=1e-6, rtol=0)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_server_config_captures_graphs_and_reports_them() -> None:
    from kit.serve.clip import describe_clip

    cfg = ClipConfig(model="oskit-clip-tiny", pretrained=str(WEIGHTS), batching={"max_batch": 32})
    engine, device_decode = load_clip_engine(cfg, "cuda")
    assert engine.graphs is not None and engine.graphs.buckets[-1] == 32
    info = describe_clip(engine, device_decode=device_decode, batching={})
    assert info["cuda_graphs"] == [1, 2, 4, 8, 16, 32]
    off, _ = load_clip_engine(cfg.model_copy(update={"cuda_graphs": "off"}), "cuda")
    assert off.graphs is None
    pixels = [np.random.default_rng(i).integers(0, 256, (engine.image_size,) * 2 + (3,), dtype=np.uint8)
              for i in range(40)]  # 40 > 32: chunks
    assert np.allclose(engine.embed_pixels(pixels), off.embed_pixels(pixels), atol=3e-3)
