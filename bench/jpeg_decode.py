"""JPEG → ``uint8 [n, 3, S, S]`` on the GPU: torchvision's nvJPEG against nvImageCodec's backends.

For each decoder: images/s of decode alone and of decode + the tensor path's crop/resize (each
batch synchronised, medians of ``--rounds``), then the pixels against the Pillow reference
(``oskit-image-v1``: mean and 99th percentile of |difference| in grey levels, max). GPU only.

    python bench/jpeg_decode.py --images 2048 --batch 256 --json /tmp/jpeg_decode.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from serve_throughput import make_jpegs, report  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2048)
    p.add_argument("--image-size", default="640x480")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=224, help="model input side")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", default="torchvision,hw,hybrid,hw+hybrid,hw+hybrid+gpu,hw+hybrid+gpu:fancy",
                   help="decoders: torchvision, or nvImageCodec backends joined by + (':fancy' = fancy upsampling)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    from kit.serve.images import decode_jpegs, jpeg_job, preprocess, tensor_preprocess
    from kit.serve.nvdecode import NvJpegDecoder

    w, h = (int(x) for x in args.image_size.split("x"))
    jpegs = make_jpegs(args.images, (w, h), threads=8)
    jobs = [jpeg_job(d, args.size) for d in jpegs]
    assert all(j is not None for j in jobs)
    ref = np.stack([preprocess(d, args.size) for d in jpegs[:64]]).astype(np.int16)
    device = "cuda"
    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "images": args.images, "image_size": args.image_size,
                           "batch": args.batch, "size": args.size, "variants": {}}
    for name in args.variants.split(","):
        try:
            if name == "torchvision":
                decode: Callable[[list[Any]], list[Any]] = lambda chunk: decode_jpegs(chunk, device)
            else:
                backends, _, opt = name.partition(":")
                dec = NvJpegDecoder(device, backends.split("+"),
                                    options=":fancy_upsampling=1" if opt == "fancy" else None)
                decode = lambda chunk, dec=dec: dec.decode([j.data for j in chunk])  # type: ignore[misc]
            decode(jobs[: args.batch])  # warm
            torch.cuda.synchronize()
            dec_rates, full_rates = [], []
            failed = 0
            for _ in range(args.rounds):
                t_dec = t_full = 0.0
                for start in range(0, len(jobs), args.batch):
                    chunk = jobs[start:start + args.batch]
                    t0 = time.perf_counter()
                    imgs = decode(chunk)
                    torch.cuda.synchronize()
                    t1 = time.perf_counter()
                    good = [(j, im) for j, im in zip(chunk, imgs) if im is not None]
                    failed += len(chunk) - len(good)
                    tensor_preprocess([g[0] for g in good], [g[1] for g in good], args.size)
                    torch.cuda.synchronize()
                    t2 = time.perf_counter()
                    t_dec += t1 - t0
                    t_full += t2 - t0
                dec_rates.append(len(jobs) / t_dec)
                full_rates.append(len(jobs) / t_full)
            imgs = decode(jobs[:64])
            px = tensor_preprocess(jobs[:64], imgs, args.size).permute(0, 2, 3, 1).cpu().numpy().astype(np.int16)
            diff = np.abs(px - ref)
            res = {"decode_images_per_s": round(statistics.median(dec_rates), 1),
                   "decode_resize_images_per_s": round(statistics.median(full_rates), 1),
                   "failed": failed, "pixel_diff_mean": round(float(diff.mean()), 3),
                   "pixel_diff_p99": float(np.percentile(diff, 99)), "pixel_diff_max": int(diff.max())}
        except Exception as exc:  # one variant failing must not hide the others
            res = {"error": f"{type(exc).__name__}: {exc}"}
        out["variants"][name] = res
        print(name, res, file=sys.stderr, flush=True)
    return report(out, args.json)


if __name__ == "__main__":
    main()
