"""The CLIP image tower as CUDA graphs vs eager, per batch size, in one process (GPU only).

For each batch size: the model alone (``embed_uint8`` on pixels already on the GPU) and JPEG bytes →
vectors (``embed_items``: nvJPEG decode, crop/resize, model), eager and graphed alternating round by
round so drift hits both alike; medians of ``--rounds``. Also the largest difference between the
two paths' vectors. One model, two ``ClipEngine`` s over it (one with the graphs).

    python bench/cuda_graphs.py --json /tmp/graphs.json       # ViT-B-32 shapes, random weights, fp16
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _timed(fn: Any, sync: Any) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--batches", default="1,4,16,32,64,128,256")
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    from kit.serve.clip import ClipEngine, load_open_clip
    from kit.serve.images import jpeg_job
    from serve_throughput import make_jpegs, report

    if not torch.cuda.is_available():
        raise SystemExit("cuda_graphs.py needs a CUDA GPU")
    loaded = load_open_clip(args.model, None, device="cuda", precision=args.precision)
    eager, graphed = ClipEngine(loaded), ClipEngine(loaded)
    t0 = time.perf_counter()
    buckets = graphed.enable_cuda_graphs(args.max_batch)
    capture_s = time.perf_counter() - t0
    sizes = [int(x) for x in args.batches.split(",")]
    jpegs = make_jpegs(max(sizes), (640, 480))
    jobs = [jpeg_job(j, loaded.image_size) for j in jpegs]
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (max(sizes), 3, loaded.image_size, loaded.image_size), generator=gen,
                           dtype=torch.uint8).cuda()
    sync = torch.cuda.synchronize
    rows = []
    for n in sizes:
        x, items = pixels[:n], jobs[:n]
        for e in (eager, graphed):  # warm
            e.embed_uint8(x)
            e.embed_items(items)
        times: dict[str, list[float]] = {k: [] for k in ("model_eager", "model_graph", "jpeg_eager", "jpeg_graph")}
        for _ in range(args.rounds):
            times["model_eager"].append(_timed(lambda: eager.embed_uint8(x), sync))
            times["model_graph"].append(_timed(lambda: graphed.embed_uint8(x), sync))
            times["jpeg_eager"].append(_timed(lambda: eager.embed_items(items), sync))
            times["jpeg_graph"].append(_timed(lambda: graphed.embed_items(items), sync))
        diff = float(np.abs(np.stack(eager.embed_items(items)) - np.stack(graphed.embed_items(items))).max())
        med = {k: 1000 * statistics.median(v) for k, v in times.items()}
        row = {"batch": n, **{f"{k}_ms": round(v, 3) for k, v in med.items()},
               "model_speedup": round(med["model_eager"] / med["model_graph"], 2),
               "jpeg_speedup": round(med["jpeg_eager"] / med["jpeg_graph"], 2),
               "jpeg_graph_images_per_s": round(1000 * n / med["jpeg_graph"], 1),
               "jpeg_eager_images_per_s": round(1000 * n / med["jpeg_eager"], 1),
               "max_abs_diff": diff}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    result = {"device": torch.cuda.get_device_name(), "model": args.model, "precision": args.precision,
              "buckets": buckets, "capture_s": round(capture_s, 2), "rounds": args.rounds, "rows": rows}
    return report(result, args.json)


if __name__ == "__main__":
    main()
