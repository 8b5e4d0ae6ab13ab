"""Search latency: ``kit.search.search`` (what ``oskit search`` runs, minus interpreter start-up) p50,
a raw ``neural`` query through the node p50/p90, and the ``oskit search`` command end to end.

The index is filled in two parts: ``--real`` generated images go through the full ingest pipeline
(real CLIP vectors, OCR, tags); the rest, up to ``--n``, are copies of those documents with their
image vector perturbed by small Gaussian noise and re-normalised, written with ``pipeline=_none``
(running CLIP on 100k images would take hours on a 2-core machine; the query path, which is what is
measured, is the same).

    python bench/search_latency.py --n 100000 --real 200 --queries 200 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = ["red circle", "blue star", "striped square", "a small green heart", "yellow", "triangle",
           "a large purple hexagon on a white background", "dotted", "sign that says STOP", "orange cross"]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def fill(client: object, n: int, rng: np.random.Generator, batch: int = 2000) -> None:
    """Add synthetic neighbours of the real documents until the index holds ``n``."""
    resp = client.request("POST", "/images/_search", body={"size": 10000, "query": {"match_all": {}},  # type: ignore[attr-defined]
                                                           "_source": {"excludes": ["thumbnail"]}})
    base = [h["_source"] for h in resp["hits"]["hits"]]
    have = len(base)
    i = 0
    while have < n:
        lines = []
        for _ in range(min(batch, n - have)):
            src = dict(base[i % len(base)])
            vec = np.asarray(src["image_embedding"], dtype=np.float32)
            vec = vec + rng.normal(0, 0.05, vec.shape).astype(np.float32)
            src["image_embedding"] = (vec / np.linalg.norm(vec)).tolist()
            src["file_name"] = f"synthetic-{have:06d}.png"
            doc_id = f"synthetic-{have:06d}"
            lines.append(json.dumps({"index": {"_index": "images", "_id": doc_id}}))
            lines.append(json.dumps(src))
            have += 1
            i += 1
        r = client.request("POST", "/_bulk", body="\n".join(lines) + "\n",  # type: ignore[attr-defined]
                           params={"pipeline": "_none", "request_timeout": 600},
                           headers={"Content-Type": "application/x-ndjson"})
        if r.get("errors"):
            bad = next(it for it in r["items"] if it["index"].get("error"))
            raise SystemExit(f"bulk error: {bad}")
        print(f"  {have}/{n} documents", file=sys.stderr, flush=True)
    client.request("POST", "/images/_refresh")  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--real", type=int, default=200)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cli-runs", type=int, default=10)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--project", default=str(ROOT))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from bench.ingest_throughput import make_images
    from kit.demo import start_stack
    from kit.ingest import ingest
    from kit.search import search

    tmp = Path(tempfile.mkdtemp(prefix="oskit-bench-search-"))
    make_images(tmp / "images", args.real, 256)
    stack = start_stack(args.project, tmp / "data", device=args.device)
    try:
        t = time.perf_counter()
        ingest(stack.client, [tmp / "images"], index="images", workers=2, batch=16)
        fill(stack.client, args.n, np.random.default_rng(0))
        fill_s = time.perf_counter() - t
        count = stack.client.request("GET", "/images/_count")["count"]

        qs = [QUERIES[i % len(QUERIES)] for i in range(args.queries)]
        for q in QUERIES:  # warm-up: first-call costs (model load paths, caches) are excluded
            search(stack.client, q, k=args.k)
        lib = []
        for q in qs:
            t = time.perf_counter()
            search(stack.client, q, k=args.k)
            lib.append((time.perf_counter() - t) * 1000)
        raw = []
        for q in qs:
            body = {"size": args.k, "_source": False,
                    "query": {"neural": {"image_embedding": {"query_text": q, "k": args.k}}}}
            t = time.perf_counter()
            stack.client.request("POST", "/images/_search", body=body)
            raw.append((time.perf_counter() - t) * 1000)
        cli = []
        for i in range(args.cli_runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from kit.cli import main; main()", "search", QUERIES[i % len(QUERIES)], "-k", str(args.k),
                            "--url", stack.node_url], check=True, capture_output=True, cwd=ROOT)
            cli.append((time.perf_counter() - t) * 1000)
        out = {
            "documents": count, "real_documents": args.real, "fill_seconds": round(fill_s, 1), "k": args.k,
            "queries": len(qs), "cpu_count": os.cpu_count(),
            "search_ms": {"p50": round(pct(lib, 50), 2), "p90": round(pct(lib, 90), 2), "p99": round(pct(lib, 99), 2)},
            "neural_query_ms": {"p50": round(pct(raw, 50), 2), "p90": round(pct(raw, 90), 2),
                                "p99": round(pct(raw, 99), 2)},
            "oskit_search_cli_ms": {"p50": round(statistics.median(cli), 1), "runs": len(cli)} if cli else None,
        }
    finally:
        stack.stop()
    print(json.dumps(out, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
