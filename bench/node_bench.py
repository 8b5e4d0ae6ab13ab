"""Benchmarks of the embedded node (issue 3): start time, _bulk throughput, k-NN latency/recall, memory.

    python bench/node_bench.py                      # defaults: 20k bulk docs, 100k×512 k-NN
    python bench/node_bench.py --knn-n 1000000      # the 1M×512 p99 goal
    python bench/node_bench.py --json out.json

Bulk goes over HTTP to a node in its own process (NodeProcess), as a client would send it. The k-NN
set is loaded the same way, the graph is awaited (`_plugins/_knn/warmup`), queries are timed over
HTTP; then the data is reopened in-process (restart cost) and `Engine.search` is timed without HTTP. Recall@k is against exact search on the
same vectors in the same run. Vectors are a Gaussian mixture (clustered like real embeddings);
`--uniform` uses isotropic noise instead (the hardest case for HNSW).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kit.node.server import NodeProcess  # noqa: E402


def vectors(n: int, dim: int, seed: int, uniform: bool, chunk: int = 50_000) -> np.ndarray:
    """Unit vectors, generated in row chunks (the same numbers as one big draw: numpy fills a
    Generator's stream in order) so 1M×512 peaks at ~2.5 GB instead of ~10 GB of temporaries."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    if uniform:
        for s in range(0, n, chunk):
            out[s:s + chunk] = rng.standard_normal((min(chunk, n - s), dim)).astype(np.float32)
    else:
        centers = rng.standard_normal((max(n // 200, 10), dim)).astype(np.float32)
        which = rng.integers(0, centers.shape[0], n)
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            out[s:e] = centers[which[s:e]] + 0.6 * rng.standard_normal((e - s, dim)).astype(np.float32)
    for s in range(0, n, chunk):
        out[s:s + chunk] /= np.linalg.norm(out[s:s + chunk], axis=1, keepdims=True)
    return out


def bulk_body(index: str, start: int, vecs: np.ndarray) -> bytes:
    out = []
    for i, v in enumerate(vecs, start):
        out.append('{"index":{"_index":"%s","_id":"%d"}}' % (index, i))
        out.append('{"file_name":"img_%d.jpg","tags":"red circle %d","width":%d,"vec":[%s]}'
                   % (i, i % 97, 100 + i % 50, ",".join("%.6f" % f for f in v)))
    return ("\n".join(out) + "\n").encode()


def fast_bulk_body(index: str, start: int, vecs: np.ndarray) -> bytes:
    """The same documents as :func:`bulk_body` with the vector values rounded to 6 decimals and
    written by orjson (``0.02579`` instead of ``0.025790``): ~4× cheaper to build, which matters
    when the client loads 1M documents on the same 2 cores as the node."""
    import orjson

    out = []
    for i, row in enumerate(np.round(vecs.astype(np.float64), 6).tolist(), start):
        out.append(b'{"index":{"_index":"%s","_id":"%d"}}\n' % (index.encode(), i))
        out.append(b'{"file_name":"img_%d.jpg","tags":"red circle %d","width":%d,"vec":%s}\n'
                   % (i, i % 97, 100 + i % 50, orjson.dumps(row)))
    return b"".join(out)


class LeanClient:
    """A keep-alive ``http.client`` connection: what a lean client costs per request (httpx adds
    ~0.8 ms of its own per request on this VM, more than the node's HTTP layer)."""

    name = "http.client keep-alive"

    def __init__(self, url: str) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=600)

    def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        headers = {"content-type": content_type}
        try:
            self.conn.request("POST", path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            # the server closed the idle keep-alive connection (uvicorn: after 5 s, e.g. during
            # warmup); the request never reached it, so sending it again on a new one is safe
            self.conn.close()
            self.conn.request("POST", path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def close(self) -> None:
        self.conn.close()


def exact_topk(data: np.ndarray, qs: np.ndarray, k: int, chunk: int = 65_536) -> list[set[int]]:
    """Exact top-k by inner product (unit vectors: cosine) for every query, a row chunk at a time
    (one matrix product per chunk instead of a full scan + argsort per query)."""
    best_s = np.full((qs.shape[0], 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((qs.shape[0], 0), dtype=np.int64)
    for s in range(0, data.shape[0], chunk):
        sc = qs @ data[s:s + chunk].T  # queries × chunk
        kk = min(k, sc.shape[1])
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(sc, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + s], axis=1)
        keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cand_s, keep, axis=1)
        best_i = np.take_along_axis(cand_i, keep, axis=1)
    return [set(row.tolist()) for row in best_i]


MAPPING = {"settings": {"index.knn": True, "index.number_of_replicas": 0},
           "mappings": {"properties": {
               "file_name": {"type": "keyword"}, "tags": {"type": "text"}, "width": {"type": "integer"},
               "vec": {"type": "knn_vector", "dimension": 512, "space_type": "cosinesimil",
                       "method": {"name": "hnsw", "engine": "faiss",
                                  "parameters": {"m": 16, "ef_construction": 100}}}}}}


def proc_cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process (Linux /proc), to report throughput per CPU-second
    alongside wall-clock throughput when the machine is shared."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_gb(pid: int, key: str = "VmRSS") -> float:
    """Resident memory of a process in GB (Linux /proc); ``key="VmHWM"`` gives its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1e6
    return float("nan")


def bench_start(tmp: Path) -> dict[str, float]:
    times = []
    for i in range(3):
        t = time.perf_counter()
        p = NodeProcess(tmp / f"start{i}")
        p.start()
        times.append(time.perf_counter() - t)
        p.stop()
    t = time.perf_counter()
    from kit.node.app import create_app

    create_app(tmp / "inproc")
    return {"start_process_s_median": statistics.median(times), "create_app_s": time.perf_counter() - t}


def bench_bulk(tmp: Path, n: int, dim: int, batch: int) -> dict[str, Any]:
    MAPPING["mappings"]["properties"]["vec"]["dimension"] = dim
    vecs = vectors(n, dim, 1, True)
    bodies = [bulk_body("bulk", s, vecs[s:s + batch]) for s in range(0, n, batch)]
    with NodeProcess(tmp / "bulk") as p, httpx.Client(base_url=p.url, timeout=120) as c:
        c.put("/bulk", json=MAPPING).raise_for_status()
        assert p.proc is not None
        lean = LeanClient(p.url)
        cpu0 = proc_cpu_s(p.proc.pid)
        t = time.perf_counter()
        for b in bodies:
            status, out = lean.post("/_bulk", b, "application/x-ndjson")
            assert status == 200, out[:500]
            assert b'"errors":false' in out[:64], out[:500]
        dt = time.perf_counter() - t
        cpu = proc_cpu_s(p.proc.pid) - cpu0
        lean.close()
        count = c.get("/bulk/_count").json()["count"]
    assert count == n
    return {"bulk_docs": n, "bulk_batch": batch, "bulk_s": dt, "bulk_docs_per_s": n / dt,
            "bulk_docs_per_node_cpu_s": n / cpu, "bulk_node_cpu_us_per_doc": cpu / n * 1e6,
            "bulk_mb_per_s": sum(len(b) for b in bodies) / dt / 1e6, "bulk_client": LeanClient.name,
            "loadavg_after_bulk": os.getloadavg()}


def bench_knn(tmp: Path, n: int, dim: int, k: int, queries: int, uniform: bool, batch: int,
              inproc: bool, ef_search: int | None = None) -> dict[str, Any]:
    """Load n docs over HTTP into a node process, warm up (graph complete), time queries over HTTP;
    then reopen the same data in-process (restart cost) and time `Engine.search` without HTTP."""
    MAPPING["mappings"]["properties"]["vec"]["dimension"] = dim
    if ef_search is not None:  # the k-NN plugin's own index setting (default 100)
        MAPPING["settings"]["index.knn.algo_param.ef_search"] = ef_search
    data = vectors(n, dim, 2, uniform)
    rng = np.random.default_rng(3)
    qs = data[rng.integers(0, n, queries)] + 0.05 * rng.standard_normal((queries, dim)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    t = time.perf_counter()
    exact = exact_topk(data, qs, k)
    out_exact_s = time.perf_counter() - t
    out: dict[str, Any] = {"knn_n": n, "knn_dim": dim, "knn_k": k, "knn_data": "uniform" if uniform else "clustered",
                           "knn_exact_topk_s": out_exact_s}

    def pct(xs: list[float], p: float) -> float:
        return float(np.percentile(np.array(xs), p))

    def bodies(q: np.ndarray) -> dict[str, Any]:
        return {"size": k, "_source": False, "query": {"knn": {"vec": {"vector": q.tolist(), "k": k}}}}

    t_all = time.perf_counter()
    with NodeProcess(tmp / "knn") as p, httpx.Client(base_url=p.url, timeout=600) as c:
        assert p.proc is not None
        c.put("/knn", json=MAPPING).raise_for_status()
        lean = LeanClient(p.url)
        t = time.perf_counter()
        for s in range(0, n, batch):
            status, body = lean.post("/_bulk", fast_bulk_body("knn", s, data[s:s + batch]), "application/x-ndjson")
            assert status == 200 and b'"errors":false' in body[:64], body[:500]
        out["knn_bulk_s"] = time.perf_counter() - t
        out["knn_bulk_docs_per_s"] = n / out["knn_bulk_s"]
        t = time.perf_counter()
        c.get("/_plugins/_knn/warmup/knn", timeout=None).raise_for_status()
        out["knn_graph_wait_after_bulk_s"] = time.perf_counter() - t
        out["knn_node_rss_gb_after_load"] = proc_rss_gb(p.proc.pid)
        lean.close()
        lean = LeanClient(p.url)  # the old connection idled through the warmup
        # each query goes out through both clients, alternating which goes first, so the two
        # latencies are measured under the same conditions; recall is from the lean client's answer
        lat_lean: list[float] = []
        lat_httpx: list[float] = []
        recalls = []
        for i, (q, ex) in enumerate(zip(qs, exact)):
            payload = json.dumps(bodies(q)).encode()
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                t = time.perf_counter()
                if which == 0:
                    status, resp = lean.post("/knn/_search", payload)
                    lat_lean.append((time.perf_counter() - t) * 1000)
                    assert status == 200, resp[:500]
                    got = {int(h["_id"]) for h in json.loads(resp)["hits"]["hits"]}
                    recalls.append(len(got & ex) / k)
                else:
                    r = c.post("/knn/_search", content=payload, headers={"content-type": "application/json"})
                    lat_httpx.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
        lean.close()
        out.update({"knn_http_p50_ms": pct(lat_lean, 50), "knn_http_p99_ms": pct(lat_lean, 99),
                    "knn_http_client": LeanClient.name,
                    "knn_http_httpx_p50_ms": pct(lat_httpx, 50), "knn_http_httpx_p99_ms": pct(lat_httpx, 99),
                    f"recall@{k}": float(np.mean(recalls))})
        st = c.get("/_plugins/_knn/stats").json()
        node = next(iter(st["nodes"].values()))
        out["vector_bytes_per_vec"] = node["graph_memory_usage"] * 1024 / n
        out["opensearch_estimate_x1.1"] = 1.1 * (4 * dim + 8 * 16)
        out["knn_node_rss_gb_after_queries"] = proc_rss_gb(p.proc.pid)
        out["knn_node_peak_rss_gb"] = proc_rss_gb(p.proc.pid, "VmHWM")
        out["loadavg_after_knn_http"] = os.getloadavg()
    out["knn_http_phase_s"] = time.perf_counter() - t_all
    if inproc:
        from kit.node.engine import Engine

        t = time.perf_counter()
        engine = Engine(tmp / "knn")
        ix = engine.index("knn")
        vf = ix.vectors("vec")
        out["restart_load_s"] = time.perf_counter() - t
        t = time.perf_counter()
        vf.wait_for_graph()
        out["restart_graph_s"] = time.perf_counter() - t
        lat = []
        for q in qs:
            t = time.perf_counter()
            engine.search("knn", bodies(q))
            lat.append((time.perf_counter() - t) * 1000)
        out.update({"knn_engine_p50_ms": pct(lat, 50), "knn_engine_p99_ms": pct(lat, 99)})
        lat = []
        for q in qs:
            t = time.perf_counter()
            vf.search(vf.query_vector(q, "vec"), k)
            lat.append((time.perf_counter() - t) * 1000)
        out.update({"knn_vectorfield_p50_ms": pct(lat, 50), "knn_vectorfield_p99_ms": pct(lat, 99)})
        # the bare FAISS graph search, same parameters: what is left above it is the node's own cost
        import faiss

        faiss.omp_set_num_threads(1)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(vf.ef_search, k)
        lat = []
        for q in qs:
            q1 = vf.query_vector(q, "vec").reshape(1, -1)
            t = time.perf_counter()
            vf._graph.search(q1, k, params=params)
            lat.append((time.perf_counter() - t) * 1000)
        out.update({"knn_faiss_raw_p50_ms": pct(lat, 50), "knn_faiss_raw_p99_ms": pct(lat, 99)})
        out["knn_ef_search"] = vf.ef_search
        # recall and latency against ef_search on the same graph, to choose --ef-search for a size
        sweep = {}
        for ef in sorted({100, 200, 300, 400, vf.ef_search}):
            lat, rec = [], []
            for q, ex in zip(qs, exact):
                qv = vf.query_vector(q, "vec")
                t = time.perf_counter()
                hits = vf.search(qv, k, ef_search=ef)
                lat.append((time.perf_counter() - t) * 1000)
                rec.append(len({int(ix.rid_to_id[r]) for r, _ in hits} & ex) / k)
            sweep[str(ef)] = {"recall": float(np.mean(rec)), "vectorfield_p50_ms": pct(lat, 50),
                              "vectorfield_p99_ms": pct(lat, 99)}
        out["knn_ef_search_sweep"] = sweep
        out["knn_engine_over_faiss_p50"] = out["knn_engine_p50_ms"] / out["knn_faiss_raw_p50_ms"]
        out["machine_after_knn"] = machine()
        out["bench_process_peak_rss_gb"] = proc_rss_gb(os.getpid(), "VmHWM")
        engine.close()
        out["knn_inproc_phase_s"] = time.perf_counter() - t_all - out["knn_http_phase_s"]
    return out


def gather_ms(n: int, rows: int = 2000, dim: int = 512) -> float:
    """Median ms to copy ``rows`` random 2 KiB rows out of an n×dim float32 array into a ready buffer:
    the memory traffic of one HNSW query. On this shared VM it swings 10× from minute to minute, so
    every run records it next to the latencies it explains."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, dim), dtype=np.float32)
    buf = np.empty((rows, dim), dtype=np.float32)
    ts = []
    for _ in range(15):
        idx = rng.integers(0, n, rows)
        t = time.perf_counter()
        np.take(a, idx, axis=0, out=buf)
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg": os.getloadavg(),
            "gather_2000_rows_of_20k_ms": gather_ms(20_000), "gather_2000_rows_of_100k_ms": gather_ms(100_000)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bulk-docs", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--knn-n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--uniform", action="store_true")
    ap.add_argument("--ef-search", type=int, default=None,
                    help="index.knn.algo_param.ef_search for the k-NN index (plugin default 100)")
    ap.add_argument("--no-inproc", action="store_true", help="skip the in-process restart + engine timing")
    ap.add_argument("--skip", default="", help="comma list of: start,bulk,knn")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    results: dict[str, Any] = machine()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "start" not in skip:
            results.update(bench_start(tmp))
            print(json.dumps(results), flush=True)
        if "bulk" not in skip:
            results.update(bench_bulk(tmp, args.bulk_docs, args.dim, args.batch))
            print(json.dumps(results), flush=True)
        if "knn" not in skip:
            results.update(bench_knn(tmp, args.knn_n, args.dim, args.k, args.queries, args.uniform, args.batch,
                                     not args.no_inproc, args.ef_search))
    print(json.dumps(results, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
