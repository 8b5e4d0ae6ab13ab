"""JPEG decode on the GPU's JPEG engines with nvImageCodec (the tensor path's fast decoder).

torchvision's ``decode_jpeg(device="cuda")`` (nvJPEG) does its Huffman step on one CPU core: on an
H100 that bounded the model server at ~7,000 JPEGs/s. nvImageCodec drives the hardware JPEG
decoders (``HW_GPU_ONLY``) and nvJPEG's hybrid CPU/GPU decoder (Huffman on a thread pool) from one
batched call that releases the GIL. It is optional: ``pip install nvidia-nvimgcodec-cu13
nvidia-nvjpeg`` (the cu12 pair on CUDA 12); without it the tensor path keeps torchvision's nvJPEG.

What it returns is what :func:`kit.serve.images.decode_jpegs` returns — ``uint8 [3, H, W]`` on the
device — so steps 2, 5 and 6 (:func:`kit.serve.images.tensor_preprocess`) are shared. An image the
library cannot decode comes back as ``None``; the caller sends it through the Pillow reference, so
the answer (or the 400) is the same as without the GPU.

``OSKIT_NVIMGCODEC_BACKENDS`` picks the backends (comma list of ``hw``, ``hybrid``, ``gpu``,
``cpu``; default ``hw,gpu``: the JPEG engines, then CUDA for what they cannot take — the hybrid
backend does its Huffman step on CPU threads, which the HTTP workers need; ``off`` keeps torchvision), ``OSKIT_NVIMGCODEC_THREADS`` its
CPU threads (default: nvImageCodec's, one per core). Measured choices: bench/README.md.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Sequence

from kit.errors import ModelError

__all__ = ["BACKENDS_ENV", "THREADS_ENV", "NvJpegDecoder", "nvimgcodec_available", "wanted_backends"]

log = logging.getLogger(__name__)

BACKENDS_ENV = "OSKIT_NVIMGCODEC_BACKENDS"
THREADS_ENV = "OSKIT_NVIMGCODEC_THREADS"
DEFAULT_BACKENDS = "hw,gpu"
_KINDS = {"hw": "HW_GPU_ONLY", "hybrid": "HYBRID_CPU_GPU", "gpu": "GPU_ONLY", "cpu": "CPU_ONLY"}


def nvimgcodec_available() -> bool:
    try:
        from nvidia import nvimgcodec  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def wanted_backends() -> list[str]:
    """The backends asked for in ``OSKIT_NVIMGCODEC_BACKENDS`` (empty: ``off``, keep torchvision).

    Opt-in until a served run shows it faster: on the H100 it served 4,863 img/s against 6,628 with
    torchvision (bench/README.md), its CPU threads competing with the HTTP workers."""
    text = os.environ.get(BACKENDS_ENV, "off").strip().lower()
    if text in ("off", "none", "torchvision", ""):
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in _KINDS]
    if unknown:
        raise ModelError(f"{BACKENDS_ENV}={text!r}: unknown backend(s) {', '.join(unknown)}",
                         hint=f"use a comma list of {', '.join(_KINDS)} (or off)")
    return names


class NvJpegDecoder:
    """Batched JPEG → ``uint8 [3, H, W]`` tensors on one CUDA device. One decode at a time per
    object (nvImageCodec's decoder is not re-entrant); the engine's single decode thread owns one."""

    def __init__(self, device: str, backends: Sequence[str] | None = None, cpu_threads: int | None = None,
                 options: str | None = None) -> None:
        import torch
        from nvidia import nvimgcodec

        self._nv = nvimgcodec
        dev = torch.device(device)
        if dev.type != "cuda":
            raise ModelError(f"nvImageCodec decodes on a CUDA device, not {device!r}")
        self.device = torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
        self.backends = list(backends) if backends is not None else wanted_backends() or DEFAULT_BACKENDS.split(",")
        threads = cpu_threads if cpu_threads is not None else int(os.environ.get(THREADS_ENV, "0") or 0)
        kinds = [getattr(nvimgcodec.BackendKind, _KINDS[name]) for name in self.backends]
        # in order, each taking what the ones before it cannot (library default load hint 1.0)
        backend_list = [nvimgcodec.Backend(kind) for kind in kinds]
        extra = {"options": options} if options is not None else {}
        self._decoder = nvimgcodec.Decoder(device_id=self.device.index, max_num_cpu_threads=threads,
                                           backends=backend_list, **extra)
        colour = getattr(nvimgcodec.ColorSpec, "SRGB", None) or getattr(nvimgcodec.ColorSpec, "RGB")
        # EXIF rotation never reaches this path (jpeg_job sends such JPEGs to Pillow); 8-bit RGB out
        self._params = nvimgcodec.DecodeParams(color_spec=colour, allow_any_depth=False,
                                               apply_exif_orientation=False)
        self._lock = threading.Lock()
        self.version = str(getattr(nvimgcodec, "__version__", "?"))

    def describe(self) -> dict[str, Any]:
        return {"library": "nvimgcodec", "version": self.version, "backends": self.backends}

    def decode(self, datas: Sequence[Any], stream: Any = None) -> list[Any]:
        """JPEG bytes (bytes, bytearray or memoryview) → ``uint8 [3, H, W]`` on the device, or
        ``None`` for each one the library could not decode. The work is ordered on ``stream``
        (default: the current torch stream), so tensor ops on that stream may use it at once."""
        import numpy as np
        import torch

        if not datas:
            return []
        stream = stream if stream is not None else torch.cuda.current_stream(self.device)
        # bytes as they are; buffers (the engine's receive chunks) as array views: no copy
        sources = [d if isinstance(d, bytes) else np.frombuffer(d, dtype=np.uint8) for d in datas]
        with self._lock:
            images = self._decoder.decode(sources, params=self._params, cuda_stream=stream.cuda_stream)
        if len(images) != len(datas):  # an older nvImageCodec drops failures instead of giving None
            raise RuntimeError(f"nvImageCodec returned {len(images)} images for {len(datas)}")
        out: list[Any] = []
        for img in images:
            if img is None:
                out.append(None)
                continue
            try:
                t = torch.as_tensor(img, device=self.device)  # zero-copy (__cuda_array_interface__), HWC
            except (TypeError, RuntimeError, ValueError):
                t = torch.from_dlpack(img)
            out.append(t.permute(2, 0, 1) if t.dim() == 3 and t.shape[2] == 3 else None)
        return out
