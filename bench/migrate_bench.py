"""``oskit migrate`` on a few thousand documents while a query loop runs: timings and the loop's failures.

Embedded node (or ``--url`` of a running cluster, e.g. a real OpenSearch node) + the lifecycle tests'
stand-in model server (colour-aware CLIP, swappable weights; no model is loaded, so the numbers are the
kit's and the cluster's cost, not a model's). Steps: apply the default project (remote text model),
ingest ``--n`` images, point models/clip.yaml at the "new" model, then ``migrate`` with the gate while
``--loop-clients`` threads search ``images`` without pause. Prints JSON.

    python bench/migrate_bench.py --n 3000 --json /tmp/migrate.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "lifecycle"), str(ROOT / "tests" / "provision")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="re-embedding requests in flight (oskit migrate --workers)")
    ap.add_argument("--loop-clients", type=int, default=2)
    ap.add_argument("--url", default=None, help="a running cluster instead of a fresh embedded node")
    ap.add_argument("--lucene", action="store_true", help="knn fields on the Lucene engine (a real node without faiss)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from lifeserve import LifeServe, write_images, write_queries
    from provision_helpers import copy_default_project, edit

    import kit.cluster as cluster
    from kit.cluster.client import connect
    from kit.config.loader import load_project
    from kit.job.ingest import ingest
    from kit.job.search import search
    from kit.lifecycle.migrate import migrate

    tmp = Path(tempfile.mkdtemp(prefix="oskit-migrate-bench-"))
    os.environ["OSKIT_DATA_DIR"] = str(tmp / "data")
    life = LifeServe()
    life.start()
    os.environ["OSKIT_MODEL_SERVER_URL"] = life.url
    project_dir = copy_default_project(tmp / "project")
    if args.lucene:
        mapping = project_dir / "mappings/images.yaml"
        mapping.write_text(mapping.read_text().replace("engine: faiss", "engine: lucene"))
    node = None
    if args.url is None:
        from kit.node.server import NodeServer

        node = NodeServer(tmp / "node")
        url = node.start()
    else:
        url = args.url
    out: dict[str, Any] = {"n": args.n, "batch": args.batch, "workers": args.workers, "loop_clients": args.loop_clients, "url_kind":
                           "embedded node" if node else "cluster at --url", "load_average": os.getloadavg()}
    try:
        with connect(url, timeout=120) as client:
            t = time.perf_counter()
            cluster.apply(cluster.plan(load_project(project_dir), client), client)
            out["apply_s"] = round(time.perf_counter() - t, 2)
            names = write_images(tmp / "photos", args.n)
            write_queries(tmp / "queries.yaml", names)
            res = ingest(client, [tmp / "photos"], index="images", batch=64, workers=2)
            out["ingest"] = {"indexed": res.indexed, "failed": res.failed, "seconds": round(res.seconds, 2),
                             "docs_per_s": round(res.rate, 1)}
            edit(project_dir / "models/clip.yaml", "/clip/embed\n", "/clip/embed-v2\n")
            stop = threading.Event()
            loops: list[dict[str, Any]] = []

            def loop() -> None:
                stats: dict[str, Any] = {"ok": 0, "failed": 0, "empty": 0, "errors": [], "ms": []}
                loops.append(stats)
                with connect(url, timeout=120) as c:
                    while not stop.is_set():
                        t0 = time.perf_counter()
                        try:
                            hits = search(c, "red", index="images", k=10).hits
                            stats["ok" if hits else "empty"] += 1
                        except Exception as exc:  # noqa: BLE001 - every failure counts
                            stats["failed"] += 1
                            stats["errors"].append(repr(exc)[:200])
                        stats["ms"].append((time.perf_counter() - t0) * 1000)

            threads = [threading.Thread(target=loop, daemon=True) for _ in range(args.loop_clients)]
            for th in threads:
                th.start()
            time.sleep(1.0)
            try:
                result = migrate(load_project(project_dir), client, queries=tmp / "queries.yaml",
                                 fail_under=["vector:p@10=0.9"], modes=["vector"], batch=args.batch,
                                 workers=args.workers)
            finally:
                time.sleep(1.0)
                stop.set()
                for th in threads:
                    th.join(timeout=60)
            r = result.to_dict()
            out["migrate"] = {k: r[k] for k in ("old", "new", "reembedded", "failed", "swapped", "timings", "gate")}
            out["migrate"]["docs_per_s"] = round(r["reembedded"] / max(r["timings"]["reembed"], 1e-9), 1)
            ms = sorted(x for s in loops for x in s["ms"])
            out["query_loop"] = {"queries": sum(s["ok"] + s["failed"] + s["empty"] for s in loops),
                                 "failed": sum(s["failed"] for s in loops), "empty": sum(s["empty"] for s in loops),
                                 "p50_ms": round(ms[len(ms) // 2], 1) if ms else None,
                                 "p99_ms": round(ms[int(len(ms) * 0.99)], 1) if ms else None,
                                 "errors": [e for s in loops for e in s["errors"]][:5]}
    finally:
        if node is not None:
            node.stop()
        life.stop()
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
