"""Ingest throughput: images/s through node + ingest pipeline + model server, against the model
server's own throughput on the same images and the same work, measured in one run.

The pipeline asks the model server three things per image (/ocr, /tags, /clip/embed); the "own
throughput" run sends exactly those calls straight to the model server with the same concurrency
the ingest keeps in flight. The node additionally runs MiniLM on the OCR text, stores the document
and indexes its vectors; that is the overhead the ratio shows.

    python bench/ingest_throughput.py --n 200 --workers 2 --batch 16 [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures as cf
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_images(folder: Path, n: int, size: int, seed: int = 42) -> list[Path]:
    from kit.models.synth import make_scene, render

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"bench-{i:05d}.png"
        render(make_scene(seed * 1_000_000 + i), size).save(p)
        paths.append(p)
    return paths


def model_server_throughput(url: str, paths: list[Path], concurrency: int) -> float:
    import httpx

    payloads = [base64.b64encode(p.read_bytes()).decode() for p in paths]
    client = httpx.Client(timeout=300.0, limits=httpx.Limits(max_connections=concurrency * 3))

    def one(b64: str) -> None:
        for path, body in (("/ocr", {"inputImage": b64}), ("/tags", {"inputImage": b64}),
                           ("/clip/embed", {"inputText": None, "inputImage": b64})):
            r = client.post(url + path, json=body)
            r.raise_for_status()

    one(payloads[0])  # warm-up
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, payloads))
    seconds = time.perf_counter() - start
    client.close()
    return len(payloads) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="images")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=0, help="direct-call concurrency (default workers*batch)")
    ap.add_argument("--project", default=str(ROOT))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from kit.job.demo import start_stack
    from kit.job.ingest import ingest

    tmp = Path(tempfile.mkdtemp(prefix="oskit-bench-ingest-"))
    paths = make_images(tmp / "images", args.n, args.size)
    stack = start_stack(args.project, tmp / "data", device=args.device)
    try:
        conc = args.concurrency or args.workers * args.batch
        direct = model_server_throughput(stack.model_server_url, paths, conc)
        result = ingest(stack.client, [tmp / "images"], index="images", workers=args.workers, batch=args.batch)
        assert result.failed == 0, result.failures[:3]
        out = {
            "images": args.n, "size": args.size, "workers": args.workers, "batch": args.batch,
            "direct_concurrency": conc, "cpu_count": os.cpu_count(),
            "model_server_images_per_s": round(direct, 2),
            "ingest_images_per_s": round(result.rate, 2),
            "ratio": round(result.rate / direct, 3),
        }
    finally:
        stack.stop()
    print(json.dumps(out, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
