"""Search latency over a large index: ``kit.job.search.search`` (what ``oskit search`` runs, minus interpreter
start-up) p50/p90, the same in hybrid mode, a raw ``neural`` query through the node p50/p90, and the
``oskit search`` command end to end.

The index is filled in two parts, so that a 100k run fits in about 15 minutes on a 2-core machine:

1. ``--real`` generated images go through the full ingest pipeline (OCR, tags, CLIP image vector,
   MiniLM OCR vector, through the model server), exactly as ``oskit ingest`` does;
2. the rest, up to ``--n``, are written by ``_bulk`` with ``pipeline=_none`` and precomputed
   plausible fields: the image vector is a mix of two real documents' vectors plus a little noise
   (re-normalised), the tags are drawn from the real documents' tag vocabulary, and the OCR text and
   its vector are taken from a real document (in the same proportion of documents as the real ones
   have text). Running CLIP and OCR on 100k images would take hours here; the query path, which is
   what is measured, is the same. Thumbnails are left out of the synthetic documents (22 KB each;
   search responses exclude them anyway).

After the fill it waits for the HNSW graphs (``_plugins/_knn/warmup``), then warms each query up
once (first-call costs are excluded), then times. Progress goes to stderr; the result (JSON) to
stdout, with the load average before and after so noisy numbers can be recognised.

    python bench/search_latency.py --n 100000 --real 200 --queries 200 --json /tmp/search_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = ["red circle", "blue star", "striped square", "a small green heart", "yellow", "triangle",
           "a large purple hexagon on a white background", "dotted", "sign that says STOP", "orange cross"]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def stats(values: list[float]) -> dict[str, float]:
    return {"p50": round(pct(values, 50), 2), "p90": round(pct(values, 90), 2), "p99": round(pct(values, 99), 2)}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Progress:
    """One stderr line per phase, redrawn in place on a terminal: count, rate and ETA."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.start, self.last = label, total, time.perf_counter(), 0.0
        self.tty = sys.stderr.isatty()

    def update(self, done: int, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < (0.5 if self.tty else 10.0) and done < self.total:
            return
        self.last = now
        el = now - self.start
        rate = done / el if el > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        line = (f"{self.label}: {done:,}/{self.total:,} ({100 * done / max(self.total, 1):.0f}%) "
                f"{rate:,.1f}/s, elapsed {el:.0f}s, eta {eta:.0f}s")
        print(("\r" + line + "\x1b[K") if self.tty else line, end="" if self.tty else "\n", file=sys.stderr,
              flush=True)

    def done(self, count: int) -> float:
        self.update(count, force=True)
        if self.tty:
            print(file=sys.stderr)
        return time.perf_counter() - self.start


def phase(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg} (load {' '.join(map(str, load()))})", file=sys.stderr, flush=True)


def _fmt(vec: np.ndarray) -> str:
    # 5 decimals keep cosine scores to ~1e-5 and make the _bulk body ~2.5x smaller than repr()
    return "[" + ",".join("%.5f" % x for x in vec) + "]"


def fill(client: Any, index: str, n: int, rng: np.random.Generator, batch: int = 1000,
         report: Callable[[int], None] | None = None) -> int:
    """Add synthetic documents with plausible fields until ``index`` holds ``n``; returns how many were added."""
    resp = client.request("POST", f"/{index}/_search", body={
        "size": 10_000, "query": {"match_all": {}},
        "_source": {"includes": ["image_embedding", "tags", "ocr_text", "ocr_embedding", "width", "height",
                                 "format", "bytes"]}})
    base = [h["_source"] for h in resp["hits"]["hits"] if "image_embedding" in h["_source"]]
    if not base:
        raise SystemExit("no real documents with an image vector to build synthetic ones from")
    img = np.asarray([b["image_embedding"] for b in base], dtype=np.float32)
    texts = [b for b in base if b.get("ocr_text") and b.get("ocr_embedding")]
    p_text = len(texts) / len(base)
    vocab: dict[str, int] = {}
    for b in base:
        for t in b.get("tags") or []:
            vocab[t] = vocab.get(t, 0) + 1
    words = list(vocab)
    weights = np.asarray([vocab[w] for w in words], dtype=np.float64)
    weights /= weights.sum()
    have = len(base)
    added = 0
    while have < n:
        m = min(batch, n - have)
        a, b = rng.integers(0, len(base), m), rng.integers(0, len(base), m)
        mix = rng.uniform(0.5, 1.0, (m, 1)).astype(np.float32)
        vecs = mix * img[a] + (1 - mix) * img[b] + rng.normal(0, 0.01, (m, img.shape[1])).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        lines: list[str] = []
        for j in range(m):
            doc_id = secrets.token_hex(32)
            src: dict[str, Any] = {
                "file_name": f"synthetic-{have:06d}.png", "source_uri": f"file:///synthetic/{have:06d}.png",
                "sha256": doc_id, "format": base[a[j]].get("format", "png"),
                "width": base[a[j]].get("width", 256), "height": base[a[j]].get("height", 256),
                "bytes": int(rng.integers(20_000, 120_000)),
                "metadata": {"synthetic": True, "batch": have // 1000},
                "tags": list(rng.choice(words, size=min(len(words), int(rng.integers(2, 6))), replace=False,
                                        p=weights)) if words else [],
            }
            head = json.dumps(src)[:-1]
            extra = f',"image_embedding":{_fmt(vecs[j])}'
            if texts and rng.random() < p_text:
                t = texts[int(rng.integers(0, len(texts)))]
                extra += f',"ocr_text":{json.dumps(t["ocr_text"])},"ocr_embedding":{json.dumps(t["ocr_embedding"])}'
            lines.append(json.dumps({"index": {"_index": index, "_id": doc_id}}))
            lines.append(head + extra + "}")
            have += 1
        r = client.request("POST", "/_bulk", body="\n".join(lines) + "\n",
                           params={"pipeline": "_none", "request_timeout": 600},
                           headers={"Content-Type": "application/x-ndjson"})
        if r.get("errors"):
            bad = next(it for it in r["items"] if next(iter(it.values())).get("error"))
            raise SystemExit(f"bulk error: {bad}")
        added += m
        if report:
            report(have)
    client.request("POST", f"/{index}/_refresh")
    return added


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="documents in the index")
    ap.add_argument("--real", type=int, default=200, help="of which through the ingest pipeline")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--cli-runs", type=int, default=5)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--batch", type=int, default=1000, help="_bulk batch of the synthetic fill")
    ap.add_argument("--project", default=str(ROOT))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temporary images and node data (~1 GB at 100k)")
    args = ap.parse_args()
    if args.real < 1 or args.n < args.real:
        ap.error("need 1 <= --real <= --n")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    load_start = load()

    from bench.ingest_throughput import make_images
    from kit.job.demo import start_stack
    from kit.job.ingest import ingest
    from kit.job.search import search

    tmp = Path(tempfile.mkdtemp(prefix="oskit-bench-search-"))
    phase(f"generating {args.real} images")
    make_images(tmp / "images", args.real, 256)
    phase("starting the model server and the node, applying the project")
    stack = start_stack(args.project, tmp / "data", device=args.device)
    try:
        phase(f"ingesting {args.real} images through the pipeline")
        prog = Progress("ingest", args.real)
        ingest(stack.client, [tmp / "images"], index="images", workers=2, batch=16,
               progress=lambda p: prog.update(p.done))
        ingest_s = prog.done(args.real)
        phase(f"filling to {args.n:,} documents with _bulk")
        prog = Progress("fill", args.n)
        fill(stack.client, "images", args.n, np.random.default_rng(0), batch=args.batch, report=prog.update)
        fill_s = prog.done(args.n)
        phase("waiting for the HNSW graphs")
        t = time.perf_counter()
        stack.client.request("GET", "/_plugins/_knn/warmup/images", params={"request_timeout": 1800})
        graph_s = time.perf_counter() - t
        count = stack.client.request("GET", "/images/_count")["count"]
        if count != args.n:
            raise SystemExit(f"the index holds {count} documents, expected {args.n}")

        phase(f"timing {args.queries} queries per kind over {count:,} documents")
        load_measure = load()
        qs = [QUERIES[i % len(QUERIES)] for i in range(args.queries)]
        it = iter(qs * 3)
        for q in QUERIES:  # warm-up: first-call costs (index info cache, model paths) are excluded
            search(stack.client, q, k=args.k)
            search(stack.client, q, k=args.k, mode="hybrid")
        cpu = time.process_time()
        lib = timed(lambda: search(stack.client, next(it), k=args.k), len(qs))
        hyb = timed(lambda: search(stack.client, next(it), k=args.k, mode="hybrid"), len(qs))

        def raw_one() -> None:
            body = {"size": args.k, "_source": False,
                    "query": {"neural": {"image_embedding": {"query_text": next(it), "k": args.k}}}}
            stack.client.request("POST", "/images/_search", body=body)

        raw = timed(raw_one, len(qs))
        cpu_ms_per_query = (time.process_time() - cpu) * 1000 / (3 * len(qs))
        phase(f"timing {args.cli_runs} `oskit search` processes")
        cli = []
        for i in range(args.cli_runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from kit.cli import main; main()", "search",
                            QUERIES[i % len(QUERIES)], "-k", str(args.k), "--url", stack.node_url],
                           check=True, capture_output=True, cwd=ROOT)
            cli.append((time.perf_counter() - t) * 1000)
        out = {
            "documents": count, "real_documents": args.real, "k": args.k, "queries": len(qs),
            "cpu_count": os.cpu_count(), "load_avg": {"start": load_start, "measure": load_measure, "end": load()},
            "seconds": {"ingest": round(ingest_s, 1), "fill": round(fill_s, 1), "graph": round(graph_s, 1),
                        "total": round(time.perf_counter() - t0, 1)},
            "search_ms": stats(lib), "hybrid_search_ms": stats(hyb), "neural_query_ms": stats(raw),
            "stack_cpu_ms_per_query": round(cpu_ms_per_query, 2),
            "oskit_search_cli_ms": {"p50": round(statistics.median(cli), 1), "runs": len(cli)} if cli else None,
            "targets": {"search_p50_le_100ms": pct(lib, 50) <= 100, "neural_p90_le_30ms": pct(raw, 90) <= 30},
        }
    finally:
        stack.stop()
        if args.keep:
            phase(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=2))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
