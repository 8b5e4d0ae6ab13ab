"""CLIP through open_clip's normal API: load once, embed batches of images (uint8) and texts.

Any open_clip architecture works: ``oskit-clip-tiny`` with the project's weights (after
``kit.models.clip_arch.register_oskit_configs()``), or ``ViT-B-32`` with a pretrained tag/path.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from kit.errors import ModelError
from kit.serve.images import DEFAULT_MAX_PIXELS, JpegJob, decode_jpegs, jpeg_job, preprocess, tensor_preprocess

__all__ = ["ClipEngine", "LoadedClip", "Prepared", "check_device_decode", "describe_clip", "load_clip_engine", "load_open_clip",
           "resolve_device", "warm_up_clip"]

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for but no CUDA GPU is visible", hint="use --device auto or cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ModelError(f"unknown device {device!r} (known: auto, cpu, cuda)")
    return device


def prefer_blocking_sync(device: str) -> bool:
    """Ask the CUDA driver to let host threads *sleep* while they wait for the GPU (the default
    spins a core at 100%). Several server workers share one GPU, so their waits are long, and the
    spinning threads take the cores that HTTP, base64 and JPEG Huffman decoding need. Sets the
    primary context's flags through the driver API (``CU_CTX_SCHED_BLOCKING_SYNC``), best before
    torch first touches the GPU; returns whether the driver accepted it."""
    import ctypes

    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    dev = ctypes.c_int()
    if lib.cuInit(0) != 0 or lib.cuDeviceGet(ctypes.byref(dev), index) != 0:
        return False
    set_flags = getattr(lib, "cuDevicePrimaryCtxSetFlags_v2", None) or getattr(lib, "cuDevicePrimaryCtxSetFlags")
    rc = int(set_flags(dev, 0x04))  # CU_CTX_SCHED_BLOCKING_SYNC
    if rc != 0:
        log.debug("cuDevicePrimaryCtxSetFlags returned %d; CUDA waits keep spinning", rc)
    return rc == 0


@dataclass
class LoadedClip:
    """An open_clip model ready for inference plus what preprocessing needs to know."""

    model: Any
    tokenizer: Any
    name: str
    pretrained: str | None
    device: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    dtype: Any


def load_open_clip(model_name: str, pretrained: str | None, *, device: str = "cpu",
                   precision: str = "fp32") -> LoadedClip:
    """Load ``model_name`` (+ ``pretrained`` tag or local checkpoint; ``None`` = random weights)."""
    import torch

    try:
        import open_clip
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on extras
        raise ModelError("open_clip_torch is not installed", hint="pip install 'oskit[ml]'") from exc
    try:  # the project's own architectures (oskit-clip-tiny …), written by the offline-CLIP part
        from kit.models.clip_arch import register_oskit_configs
    except ModuleNotFoundError:
        pass
    else:
        register_oskit_configs()
    if model_name not in open_clip.list_models():
        raise ModelError(f"open_clip has no model config {model_name!r}",
                         hint="see open_clip.list_models(); project architectures live in kit/models/clip_configs/")
    if not pretrained:
        log.warning("CLIP %s has no pretrained weights configured: using RANDOM weights", model_name)
    if device.startswith("cuda"):
        prefer_blocking_sync(device)
    try:
        model, _, _ = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained or None, device=device, precision=precision,
        )
        tokenizer = open_clip.get_tokenizer(model_name)
    except Exception as exc:  # open_clip raises RuntimeError/FileNotFoundError/HF errors
        raise ModelError(f"could not load open_clip {model_name} (pretrained={pretrained!r}): {exc}",
                         hint="a pretrained tag needs the weights in the local cache (no downloads here); "
                              "a path must point at a checkpoint file") from exc
    model.eval()
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    with torch.no_grad():
        probe = tokenizer(["a"]).to(device)
        dim = int(model.encode_text(probe).shape[-1])
    # open_clip's low-precision modes keep some parameters (norms, embeddings) in fp32: take the
    # dtype of the vision tower's matrix weights, which is what its input must match.
    dtype = next(m.weight.dtype for m in model.visual.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    return LoadedClip(model=model, tokenizer=tokenizer, name=model_name, pretrained=pretrained, device=device,
                      image_size=size, mean=tuple(cfg.get("mean")), std=tuple(cfg.get("std")),  # type: ignore[arg-type]
                      dim=dim, dtype=dtype)


@dataclass
class Prepared:
    """A batch decoded and preprocessed on the device, waiting for the model (:meth:`ClipEngine.prepare`):
    ``x`` holds the images in ``order`` (item indices); ``results`` the answers known already."""

    x: Any
    order: list[int]
    results: list[Any]


class ClipEngine:
    """Thread-safe batched inference on a :class:`LoadedClip` (one forward pass at a time)."""

    def __init__(self, loaded: LoadedClip) -> None:
        import torch

        self.loaded = loaded
        self._lock = threading.Lock()
        self._mean = torch.tensor(loaded.mean, device=loaded.device).view(1, 3, 1, 1)
        self._std = torch.tensor(loaded.std, device=loaded.device).view(1, 3, 1, 1)
        self.graphs: CudaGraphTower | None = None
        self.decoder: Any = None  # kit.serve.nvdecode.NvJpegDecoder when nvImageCodec decodes the JPEGs

    @property
    def dim(self) -> int:
        return self.loaded.dim

    @property
    def image_size(self) -> int:
        return self.loaded.image_size

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature, ``exp(logit_scale)`` (zero-shot tags use it)."""
        return float(self.loaded.model.logit_scale.exp().item())

    def embed_pixels(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """``uint8 [H, W, 3]`` arrays (already ``oskit-image-v1``-preprocessed) → L2-normalised vectors."""
        import torch

        if not pixels:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = torch.from_numpy(np.stack(pixels))
        x = batch.to(self.loaded.device, non_blocking=True).permute(0, 3, 1, 2)
        return self.embed_uint8(x)

    def tower(self, x: Any) -> Any:
        """``uint8 [n, 3, S, S]`` on the model's device → normalised float32 vectors on that device
        (normalisation: step 7 of ``oskit-image-v1``). What a CUDA graph captures."""
        x = x.float().div_(255.0)
        x = ((x - self._mean) / self._std).to(self.loaded.dtype)
        return self.loaded.model.encode_image(x, normalize=True).float()

    def enable_cuda_graphs(self, max_batch: int) -> list[int]:
        """Capture the image tower as CUDA graphs (see :class:`CudaGraphTower`); returns the buckets."""
        self.graphs = CudaGraphTower(self, max_batch)
        return self.graphs.buckets

    def embed_uint8(self, x: Any) -> np.ndarray:
        """``uint8 [n, 3, S, S]`` tensor on the model's device → normalised vectors (numpy)."""
        import torch

        with self._lock, torch.inference_mode():
            out = self.graphs.run(x) if self.graphs is not None else self.tower(x)
            if not out.is_cuda:
                return out.numpy()
            # Wait for the GPU by polling an event instead of a blocking copy: CUDA's default wait
            # spins a core at 100%, and with several workers those spinning threads take the cores
            # that decode and HTTP need. (A blocking-sync event measured no better on the H100:
            # 4,371 and 4,494 images/s served against 4,797 and 5,079 with this loop.) The copy is
            # made under the lock: a graph's output is overwritten by the next replay.
            host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
            host.copy_(out, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            while not done.query():
                time.sleep(0.0002)
            return host.numpy()

    def decode_jobs(self, jobs: Sequence[JpegJob]) -> tuple[Any, list[int], list[BaseException | np.ndarray]]:
        """Tensor path for ``jobs``: ``(uint8 [k, 3, S, S] on device, indices of those k, fallbacks)``.

        One batched decode: nvImageCodec when :attr:`decoder` is set (a JPEG it cannot take goes
        to the reference path), else torchvision's nvJPEG / libjpeg-turbo (if the batch fails, each
        JPEG alone); any JPEG still undecoded goes through the reference :func:`preprocess` — which either reads it (an array
        in ``fallbacks``) or says exactly why not (a :class:`BadImage` there); ``fallbacks``
        follows the failed indices in ascending order. Runs on the current (torch) CUDA stream."""
        device = self.loaded.device
        images: list[Any] = []
        ok: list[int] = []
        todo = list(range(len(jobs)))
        if self.decoder is not None:
            try:
                decoded = self.decoder.decode([job.data for job in jobs])
            except Exception:  # the whole call failed: every image takes the reference path
                log.warning("nvImageCodec failed on a batch of %d; decoding it with Pillow", len(jobs),
                            exc_info=True)
                decoded = [None] * len(jobs)
            ok = [i for i, img in enumerate(decoded) if img is not None]
            images = [decoded[i] for i in ok]
            # What nvImageCodec refuses goes straight to Pillow: its backends cover what nvJPEG
            # decodes, and torchvision's CUDA decode of a corrupt JPEG crashed the process (H100,
            # 2026-12-07: a segfault in decode_jpegs on headers without scan data).
            todo = []
        elif todo:
            try:
                images, ok, todo = decode_jpegs(jobs, device), todo, []
            except Exception:  # torchvision raises RuntimeError subclasses; find the bad member(s)
                pass
        for i in todo:  # one by one (progressive on the hardware path, odd subsampling, corrupt data …)
            try:
                images.extend(decode_jpegs([jobs[i]], device))
                ok.append(i)
            except Exception:
                log.debug("tensor decode failed for item %d; using the reference path", i)
        if ok != sorted(ok):  # one-by-one successes were appended after the batch's: restore the order
            pairs = sorted(zip(ok, images), key=lambda p: p[0])
            ok, images = [p[0] for p in pairs], [p[1] for p in pairs]
        fallbacks: list[BaseException | np.ndarray] = []
        for i in sorted(set(range(len(jobs))) - set(ok)):
            try:
                fallbacks.append(preprocess(jobs[i].data, self.image_size, DEFAULT_MAX_PIXELS))
            except Exception as exc:  # BadImage: the caller's 400
                fallbacks.append(exc)
        return tensor_preprocess([jobs[i] for i in ok], images, self.image_size), ok, fallbacks

    def prepare(self, items: Sequence[Any]) -> "Prepared":
        """The first half of :meth:`embed_items`: decode and preprocess every item into one
        ``uint8 [n, 3, S, S]`` batch on the model's device (queued on the current CUDA stream),
        plus the per-item answers already known (a bad image's exception)."""
        import torch

        items = list(items)
        results: list[Any] = [None] * len(items)
        job_idx = [i for i, it in enumerate(items) if isinstance(it, JpegJob)]
        pix_idx = [i for i, it in enumerate(items) if not isinstance(it, JpegJob)]
        parts, order = [], []
        if job_idx:
            decoded, ok, fallbacks = self.decode_jobs([items[i] for i in job_idx])
            if ok:
                parts.append(decoded)
            order.extend(job_idx[k] for k in ok)
            failed = sorted(set(range(len(job_idx))) - set(ok))
            for k, res in zip(failed, fallbacks):
                if isinstance(res, np.ndarray):
                    pix_idx.append(job_idx[k])
                    items[job_idx[k]] = res
                else:
                    results[job_idx[k]] = res
        if pix_idx:
            batch = torch.from_numpy(np.stack([items[i] for i in pix_idx]))
            parts.append(batch.to(self.loaded.device, non_blocking=True).permute(0, 3, 1, 2))
            order.extend(pix_idx)
        x = None
        if order:
            x = parts[0] if len(parts) == 1 else torch.cat([p.to(self.loaded.device) for p in parts])
        return Prepared(x=x, order=order, results=results)

    def run_prepared(self, prepared: "Prepared") -> list[Any]:
        """The second half of :meth:`embed_items`: the model on a prepared batch (current stream)."""
        results = prepared.results
        if prepared.x is not None:
            vectors = self.embed_uint8(prepared.x)
            for i, vec in zip(prepared.order, vectors):
                results[i] = vec
        return results

    def embed_items(self, items: Sequence[Any]) -> list[Any]:
        """The image batcher's function: arrays and :class:`JpegJob` s → one vector (or the exception
        that image raised) per item, in order. Both kinds share one model batch."""
        return self.run_prepared(self.prepare(items))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts → L2-normalised vectors (open_clip's tokenizer: 77 tokens, truncated)."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock, torch.inference_mode():
            tokens = self.loaded.tokenizer(list(texts)).to(self.loaded.device)
            out = self.loaded.model.encode_text(tokens, normalize=True)
            return out.float().cpu().numpy()


def graph_buckets(max_batch: int) -> list[int]:
    """The batch sizes captured as CUDA graphs: 1, 2, 4, 8, 16, then every 16 up to ``max_batch``
    (which is always one). A batch runs in the smallest bucket that holds it, so the padding costs
    at most 15 images' worth of model time (< 7% of a batch above 224)."""
    if max_batch < 1:
        raise ModelError(f"max_batch must be ≥ 1 to capture CUDA graphs, not {max_batch}")
    sizes = {b for b in (1, 2, 4, 8, 16) if b < max_batch}
    sizes.update(range(32, max_batch, 16))
    sizes.add(max_batch)
    return sorted(sizes)


class CudaGraphTower:
    """The image tower (``ClipEngine.tower``) captured as one CUDA graph per batch-size bucket.

    Run eagerly, ViT-B-32 launches a few hundred kernels from Python per batch: on an H100 that
    costs milliseconds whatever the batch size (one image: 6.3 ms), which is what bounds the model
    server with few clients. A graph replay launches them all in one call. Inputs are copied into
    one static ``uint8`` buffer (rows past the batch keep whatever an earlier batch left there:
    every image is computed independently — ViT has no batch-wide operations — so they change
    nothing), the smallest bucket that holds the batch is replayed, and the first ``n`` rows of its
    static output are the answer. Batches above the largest bucket run in chunks.

    The graphs share one memory pool, captured largest first (the pattern vLLM uses). So a replay
    may overwrite another bucket's output: callers copy the output out before the next replay (the
    engine's lock makes that so). Not thread-safe by itself."""

    def __init__(self, engine: "ClipEngine", max_batch: int) -> None:
        import torch

        device = torch.device(engine.loaded.device)
        if device.type != "cuda":
            raise ModelError(f"CUDA graphs need a CUDA device, not {engine.loaded.device!r}",
                             hint="set cuda_graphs: off (or auto) in the clip spec's serve block")
        self.buckets = graph_buckets(max_batch)
        self.device = device
        size = engine.image_size
        t0 = time.perf_counter()
        with torch.cuda.device(device):  # capture and replay on the model's GPU, whichever is current
            self._capture(engine, size)
        self.capture_s = time.perf_counter() - t0
        log.info("CLIP image tower: %d CUDA graphs (batch %s) captured in %.1f s", len(self.buckets),
                 ",".join(map(str, self.buckets)), self.capture_s)

    def _capture(self, engine: "ClipEngine", size: int) -> None:
        import torch

        device = self.device
        self.static_in = torch.full((self.buckets[-1], 3, size, size), 127, dtype=torch.uint8, device=device)
        self._graphs: dict[int, Any] = {}
        self._outs: dict[int, Any] = {}
        with torch.inference_mode():
            # warm up every shape off the capture (cuBLAS/cuDNN pick and allocate their workspaces)
            side = torch.cuda.Stream(device=device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for b in reversed(self.buckets):
                    engine.tower(self.static_in[:b])
            torch.cuda.current_stream(device).wait_stream(side)
            torch.cuda.synchronize(device)
            pool = None
            for b in reversed(self.buckets):
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    self._outs[b] = engine.tower(self.static_in[:b])
                pool = graph.pool() if pool is None else pool
                self._graphs[b] = graph
            torch.cuda.synchronize(device)

    def bucket(self, n: int) -> int:
        return next(b for b in self.buckets if b >= n)

    def run(self, x: Any) -> Any:
        """``uint8 [n, 3, S, S]`` on the device → float32 ``[n, dim]`` on the device. For ``n`` up
        to the largest bucket this is a view of a static output: valid until the next ``run``."""
        import torch

        largest = self.buckets[-1]
        if x.shape[0] > largest:  # chunks; each copied out of the static output before the next
            return torch.cat([self.run(x[i: i + largest]).clone() for i in range(0, x.shape[0], largest)])
        n = x.shape[0]
        b = self.bucket(n)
        with torch.cuda.device(self.device):
            self.static_in[:n].copy_(x)
            self._graphs[b].replay()
        return self._outs[b][:n]


# --- what a worker's start and the model engine's start both do -----------------------------------


def check_device_decode(device: str) -> None:
    """Fail at start, not on the first image, when torchvision cannot decode JPEGs on ``device``."""
    try:
        import torch
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError as exc:
        raise ModelError(f"decode: device needs torchvision's image IO ({exc})", hint="set decode: cpu") from exc
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("decode: device on CUDA but no GPU is visible", hint="set decode: cpu")


def load_nvimgcodec(device: str) -> Any:
    """nvImageCodec's decoder for the tensor path on ``device``, or ``None`` (not installed, turned
    off with ``OSKIT_NVIMGCODEC_BACKENDS=off``, or it failed to start: then torchvision's nvJPEG)."""
    from kit.serve.nvdecode import NvJpegDecoder, nvimgcodec_available, wanted_backends

    backends = wanted_backends()  # a misspelt backend is an error at start, installed or not
    if not backends:
        return None
    if not nvimgcodec_available():
        log.info("nvImageCodec is not installed: JPEGs are decoded with torchvision's nvJPEG "
                 "(pip install nvidia-nvimgcodec-cu13 nvidia-nvjpeg for the GPU's JPEG engines)")
        return None
    try:
        return NvJpegDecoder(device, backends)
    except Exception as exc:
        log.warning("nvImageCodec could not start (%s); JPEGs are decoded with torchvision's nvJPEG", exc)
        return None


def load_clip_engine(clip: Any, device: str) -> tuple["ClipEngine", bool]:
    """The configured CLIP (a ``ClipConfig``) on ``device`` (auto/cpu/cuda) → (engine, whether JPEGs
    are decoded on the model's device). ``precision: auto`` is fp16 on CUDA, fp32 on CPU."""
    device = resolve_device(device)
    precision = clip.precision
    if precision == "auto":
        precision = "fp16" if device.startswith("cuda") else "fp32"
    graphs = clip.cuda_graphs
    if graphs == "on" and not device.startswith("cuda"):
        raise ModelError(f"cuda_graphs: on needs a CUDA device, and the model server runs on {device!r}",
                         hint="use cuda_graphs: auto (graphs on CUDA, eager elsewhere) or run with --device cuda")
    engine = ClipEngine(load_open_clip(clip.model, clip.pretrained, device=device, precision=precision))
    device_decode = clip.decode == "device" or (clip.decode == "auto" and device.startswith("cuda"))
    if device_decode:
        check_device_decode(device)
        if device.startswith("cuda"):
            engine.decoder = load_nvimgcodec(device)
    if graphs != "off" and device.startswith("cuda"):
        try:
            engine.enable_cuda_graphs(clip.batching.max_batch)
        except Exception as exc:
            if graphs == "on":
                raise ModelError(f"could not capture the CLIP image tower as CUDA graphs: {exc}",
                                 hint="set cuda_graphs: off in the clip spec's serve block") from exc
            log.warning("CUDA graphs could not be captured (%s); the image tower runs eagerly", exc)
    return engine, device_decode


def warm_up_clip(engine: Any, device_decode: bool) -> None:
    """Run each path once (pixels, the tensor path — nvJPEG's first call initialises its handles,
    hundreds of ms — and text) so the first real request does not pay for lazy initialisation."""
    import io

    from PIL import Image

    size = engine.image_size
    engine.embed_items([np.full((size, size, 3), 127, dtype=np.uint8)])
    if device_decode:
        buf = io.BytesIO()
        Image.new("RGB", (2 * size, 2 * size), "grey").save(buf, "JPEG")
        job = jpeg_job(buf.getvalue(), size)
        if job is not None:
            engine.embed_items([job])
            if engine.decoder is not None:  # the fallback decoder's handles too
                decode_jpegs([job], engine.loaded.device)
    engine.embed_texts(["warm up sentence"])


def describe_clip(engine: ClipEngine, *, device_decode: bool, batching: dict[str, Any]) -> dict[str, Any]:
    """The ``clip`` entry of ``/health``'s models (``cuda_graphs``: the captured batch sizes, or null)."""
    from kit.serve.images import PREPROCESS_VERSION

    loaded, graphs = engine.loaded, engine.graphs

    return {
        "model": loaded.name, "pretrained": loaded.pretrained, "random_weights": not loaded.pretrained,
        "dimension": loaded.dim, "image_size": loaded.image_size, "device": loaded.device,
        "dtype": str(loaded.dtype).replace("torch.", ""), "preprocess": PREPROCESS_VERSION,
        "decode": "device" if device_decode else "cpu", "batching": batching,
        "decoder": (engine.decoder.describe() if engine.decoder is not None
                    else {"library": "torchvision"} if device_decode else {"library": "pillow"}),
        "cuda_graphs": graphs.buckets if graphs is not None else None,
    }
