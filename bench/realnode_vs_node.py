"""The embedded node and a real OpenSearch side by side, in one run on this machine (issue 13 item 5).

    python bench/realnode_vs_node.py                        # 100k×512, 200 queries, 96 images
    python bench/realnode_vs_node.py --n 5000 --queries 50  # a quick look
    python bench/realnode_vs_node.py --skip ingest --json out.json

What it measures, on both sides unless said:
- start time (process start until ``GET /`` answers) and resident memory after the k-NN phase;
- ``_bulk`` docs/s of 512-d vectors (no embedding), 500 docs a request, one client connection;
  the real node loads with ``refresh_interval: -1`` and is refreshed afterwards (that time is reported);
- k-NN p50/p99 over HTTP and recall@30 against exact search on the same vectors: real = Lucene HNSW
  (m 16, ef_construction 100); node = its default mapping (faiss) and the same Lucene parameters;
  the real node is measured as loaded (several segments) and again after a force-merge to one;
- ``neural`` query p90: query text → CLIP on the model server (``oskit serve``) → k-NN;
- ingest images/s through the cluster + ``text_image_embedding`` pipeline + model server, against the
  model server alone at the same concurrency, for several connector ``client_config.max_connection``.

The real node comes from ``kit.realnode`` (OpenSearch 2.19.6 from Maven Central); the embedded node runs
as its own process (``NodeProcess``) reporting the same version.
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
from typing import Any, Callable

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from node_bench import LeanClient, exact_topk, fast_bulk_body, proc_rss_gb, vectors  # noqa: E402

K = 30
LUCENE = {"name": "hnsw", "engine": "lucene", "parameters": {"m": 16, "ef_construction": 100}}


def pct(xs: list[float], p: float) -> float:
    return round(float(np.percentile(np.array(xs), p)), 3)


def mapping(method: dict[str, Any] | None, dim: int, replicas: int = 0) -> dict[str, Any]:
    vec: dict[str, Any] = {"type": "knn_vector", "dimension": dim, "space_type": "cosinesimil"}
    if method is not None:
        vec["method"] = method
    return {"settings": {"index.knn": True, "index.number_of_shards": 1, "index.number_of_replicas": replicas,
                         "index.refresh_interval": "-1"},
            "mappings": {"properties": {"file_name": {"type": "keyword"}, "tags": {"type": "text"},
                                        "width": {"type": "integer"}, "vec": vec}}}


def load(url: str, index: str, body: dict[str, Any], data: np.ndarray, batch: int,
         budget_s: float) -> dict[str, Any]:
    """Bulk ``data`` in; stops early (and says how many went in) when ``budget_s`` is spent."""
    with httpx.Client(base_url=url, timeout=1800) as c:
        r = c.put(f"/{index}", json=body)
        assert r.status_code == 200, r.text
        lean = LeanClient(url)
        t = time.perf_counter()
        loaded = 0
        for s in range(0, len(data), batch):
            status, resp = lean.post("/_bulk", fast_bulk_body(index, s, data[s:s + batch]), "application/x-ndjson")
            assert status == 200 and b'"errors":false' in resp[:64], resp[:500]
            loaded = min(s + batch, len(data))
            if time.perf_counter() - t > budget_s:
                break
        bulk_s = time.perf_counter() - t
        lean.close()
        t = time.perf_counter()
        c.put(f"/{index}/_settings", json={"index": {"refresh_interval": "1s"}}).raise_for_status()
        c.post(f"/{index}/_refresh").raise_for_status()
        refresh_s = time.perf_counter() - t
        count = c.get(f"/{index}/_count").json()["count"]
        assert count == loaded, (count, loaded)
    return {"docs": loaded, "bulk_docs_per_s": round(loaded / bulk_s, 1), "bulk_s": round(bulk_s, 2),
            "refresh_after_bulk_s": round(refresh_s, 2)}


def knn_queries(url: str, index: str, qs: np.ndarray, exact: list[set[int]], warmup: int = 10) -> dict[str, float]:
    lean = LeanClient(url)
    lat, rec = [], []
    for i, (q, ex) in enumerate(zip(qs, exact)):
        payload = json.dumps({"size": K, "_source": False,
                              "query": {"knn": {"vec": {"vector": q.tolist(), "k": K}}}}).encode()
        t = time.perf_counter()
        status, resp = lean.post(f"/{index}/_search", payload)
        ms = (time.perf_counter() - t) * 1000
        assert status == 200, resp[:500]
        if i >= warmup:
            lat.append(ms)
        rec.append(len({int(h["_id"]) for h in json.loads(resp)["hits"]["hits"]} & ex) / K)
    lean.close()
    return {"knn_p50_ms": pct(lat, 50), "knn_p99_ms": pct(lat, 99), f"recall@{K}": round(float(np.mean(rec)), 4)}


# ------------------------------------------------------------------------------------------ model server
def start_model_server(tmp: Path) -> tuple[Any, str]:
    import subprocess

    from kit.node.server import free_port

    port = free_port()
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", "from kit.cli import main; main()", "serve", "--models", str(ROOT / "models"), "--port",
                             str(port), "--device", "cpu"], stdout=log, stderr=log, cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"oskit serve exited: {(tmp / 'serve.log').read_text()[-2000:]}")
        time.sleep(1)
    proc.kill()
    raise RuntimeError("oskit serve did not answer /health in 300 s")


def register_clip(url: str, model_server: str, max_connection: int) -> str:
    """A CLIP connector + remote model on the cluster (the project's models/clip.yaml contract), deployed."""
    with httpx.Client(base_url=url, timeout=120) as c:
        c.put("/_cluster/settings", json={"persistent": {
            "plugins.ml_commons.only_run_on_ml_node": False,
            "plugins.ml_commons.connector.private_ip_enabled": True,
            "plugins.ml_commons.trusted_connector_endpoints_regex": [r"^http://127\.0\.0\.1:[0-9]+/.*$"]}}
        ).raise_for_status()
        r = c.post("/_plugins/_ml/connectors/_create", json={
            "name": f"bench-clip-{max_connection}", "description": "bench", "version": 1, "protocol": "http",
            "parameters": {"input_docs_processed_step_size": 2}, "credential": {"key": "unused"},
            "client_config": {"max_connection": max_connection, "connection_timeout": 10, "read_timeout": 60},
            "actions": [{"action_type": "predict", "method": "POST", "url": f"{model_server}/clip/embed",
                         "headers": {"content-type": "application/json"},
                         "request_body": '{"inputText": "${parameters.inputText:-null}", '
                                         '"inputImage": "${parameters.inputImage:-null}"}',
                         "pre_process_function": "connector.pre_process.bedrock.multimodal_embedding",
                         "post_process_function": "connector.post_process.bedrock.embedding"}]})
        r.raise_for_status()
        r = c.post("/_plugins/_ml/models/_register", params={"deploy": "true"}, json={
            "name": f"bench-clip-{max_connection}", "function_name": "remote",
            "connector_id": r.json()["connector_id"]})
        r.raise_for_status()
        task = r.json()["task_id"]
        deadline = time.monotonic() + 120
        while True:
            t = c.get(f"/_plugins/_ml/tasks/{task}").json()
            if t.get("state") in ("COMPLETED", "FAILED"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"register/deploy task {task} still {t.get('state')}")
            time.sleep(0.3)
        model = t["model_id"]
        deadline = time.monotonic() + 120
        while c.get(f"/_plugins/_ml/models/{model}").json().get("model_state") != "DEPLOYED":
            if time.monotonic() > deadline:
                raise RuntimeError(f"model {model} not deployed")
            time.sleep(0.3)
        return str(model)


TEXTS = [f"a photo of a {c} {s}" for c in ("red", "blue", "green", "yellow", "black", "white", "pink", "gray",
                                          "orange", "purple") for s in ("circle", "square", "dress", "car", "phone",
                                                                       "tree", "house", "dog", "cat", "shoe")]


def neural_queries(url: str, index: str, model: str, n: int) -> dict[str, float]:
    lean = LeanClient(url)
    lat = []
    for i in range(n + 5):
        payload = json.dumps({"size": K, "_source": False, "query": {"neural": {"vec": {
            "query_text": TEXTS[i % len(TEXTS)] + f" {i}", "model_id": model, "k": K}}}}).encode()
        t = time.perf_counter()
        status, resp = lean.post(f"/{index}/_search", payload)
        ms = (time.perf_counter() - t) * 1000
        assert status == 200, resp[:500]
        if i >= 5:
            lat.append(ms)
    lean.close()
    return {"neural_p50_ms": pct(lat, 50), "neural_p90_ms": pct(lat, 90)}


def ingest_images(url: str, model: str, tag: str, images: list[str], batch: int, clients: int) -> float:
    """images/s through an ingest pipeline whose only processor is text_image_embedding (CLIP)."""
    with httpx.Client(base_url=url, timeout=600) as c:
        c.put(f"/_ingest/pipeline/bench-img-{tag}", json={"processors": [{"text_image_embedding": {
            "model_id": model, "embedding": "vec", "field_map": {"image": "image"}}}, {"remove": {"field": "image"}}]}
        ).raise_for_status()
        body = mapping(LUCENE, 512)
        body["settings"]["index.default_pipeline"] = f"bench-img-{tag}"
        body["settings"]["index.refresh_interval"] = "1s"
        c.put(f"/bench-img-{tag}", json=body).raise_for_status()

    def send(start: int) -> None:
        lines = []
        for i in range(start, min(start + batch, len(images))):
            lines.append(json.dumps({"index": {"_index": f"bench-img-{tag}", "_id": str(i)}}))
            lines.append(json.dumps({"file_name": f"{i}.png", "image": images[i]}))
        r = httpx.post(url + "/_bulk", content="\n".join(lines) + "\n",
                       headers={"content-type": "application/x-ndjson"}, timeout=600)
        r.raise_for_status()
        assert not r.json()["errors"], json.dumps(r.json())[:800]

    send(0)  # warm-up batch (connector connections, first predict)
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, range(batch, len(images), batch)))
    return (len(images) - batch) / (time.perf_counter() - t)


def model_server_alone(model_server: str, images: list[str], concurrency: int) -> float:
    client = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=concurrency * 2))

    def one(b64: str) -> None:
        client.post(model_server + "/clip/embed", json={"inputText": None, "inputImage": b64}).raise_for_status()

    one(images[0])
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, images))
    rate = len(images) / (time.perf_counter() - t)
    client.close()
    return rate


# ------------------------------------------------------------------------------------------ sides
class Side:
    def __init__(self, name: str, start: Callable[[], str], rss_mb: Callable[[], float | None], stop: Callable[[], None]):
        self.name, self._start, self.rss_mb, self.stop = name, start, rss_mb, stop
        self.url = ""

    def start(self) -> float:
        t = time.perf_counter()
        self.url = self._start()
        return round(time.perf_counter() - t, 2)


def real_side(version: str, heap: str) -> Side:
    from kit.realnode import RealNode

    node = RealNode(version, heap=heap)
    return Side(f"real OpenSearch {version} (heap {heap})", lambda: node.start().url, node.memory_rss_mb, node.stop)


def node_side(tmp: Path, version: str) -> Side:
    from kit.node.server import NodeProcess

    proc = NodeProcess(tmp / "node-data", version=version)

    def rss() -> float | None:
        return round(proc_rss_gb(proc.proc.pid) * 1000, 1) if proc.proc else None

    return Side(f"embedded node (reports {version})", proc.start, rss, proc.stop)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--neural-queries", type=int, default=100)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--bulk-budget-s", type=float, default=900,
                    help="stop loading an index after this long (the report says how many docs went in)")
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--image-batch", type=int, default=16)
    ap.add_argument("--image-clients", type=int, default=2)
    ap.add_argument("--max-connections", default="1,4,30", help="connector client_config.max_connection values")
    ap.add_argument("--version", default="2.19.6")
    ap.add_argument("--heap", default="2g")
    ap.add_argument("--no-force-merge", action="store_true")
    ap.add_argument("--skip", default="", help="comma list of: knn,neural,ingest")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="oskit-bench-real-"))
    out: dict[str, Any] = {"n": args.n, "dim": args.dim, "k": K, "queries": args.queries, "cpu_count": os.cpu_count(),
                           "loadavg_start": os.getloadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    data = vectors(args.n, args.dim, 2, False)
    rng = np.random.default_rng(3)
    qs = data[rng.integers(0, args.n, args.queries)] + 0.05 * rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    exacts: dict[int, list[set[int]]] = {}

    def exact_for(n: int) -> list[set[int]]:  # ground truth over what was loaded (a side may stop early)
        if n not in exacts:
            exacts[n] = exact_topk(data[:n], qs, K)
        return exacts[n]

    exact_for(args.n)

    serve_proc = None
    model_server = ""
    images: list[str] = []
    if not {"neural", "ingest"} <= skip:
        serve_proc, model_server = start_model_server(tmp)
        out["model_server"] = "oskit serve --device cpu (oskit-clip-tiny)"
    if "ingest" not in skip:
        from ingest_throughput import make_images

        images = [base64.b64encode(p.read_bytes()).decode() for p in make_images(tmp / "img", args.images, 256)]
        out["model_server_alone_images_per_s"] = {
            str(c): round(model_server_alone(model_server, images, c), 1)
            for c in sorted({1, args.image_batch, args.image_batch * args.image_clients})}

    try:
        for side in (real_side(args.version, args.heap), node_side(tmp, args.version)):
            res: dict[str, Any] = {"start_s": side.start()}
            try:
                res["rss_mb_idle"] = side.rss_mb()
                real = side.name.startswith("real")
                if "knn" not in skip:
                    variants = {"lucene": LUCENE} if real else {"default": None, "lucene": LUCENE}
                    for name, method in variants.items():
                        r = load(side.url, f"knn-{name}", mapping(method, args.dim), data, args.batch,
                                 args.bulk_budget_s)
                        exact = exact_for(r["docs"])
                        if not real:
                            t = time.perf_counter()
                            httpx.get(f"{side.url}/_plugins/_knn/warmup/knn-{name}", timeout=1800).raise_for_status()
                            r["graph_wait_s"] = round(time.perf_counter() - t, 2)
                        r.update(knn_queries(side.url, f"knn-{name}", qs, exact))
                        if real and not args.no_force_merge:
                            t = time.perf_counter()
                            httpx.post(f"{side.url}/knn-{name}/_forcemerge", params={"max_num_segments": 1},
                                       timeout=3600).raise_for_status()
                            r["force_merge_s"] = round(time.perf_counter() - t, 2)
                            r["after_force_merge"] = knn_queries(side.url, f"knn-{name}", qs, exact)
                        res[f"knn_{name}"] = r
                        res["rss_mb_after_knn"] = side.rss_mb()
                if model_server and "neural" not in skip and "knn" not in skip:
                    model = register_clip(side.url, model_server, 30)
                    res["neural"] = neural_queries(side.url, "knn-lucene", model, args.neural_queries)
                if images:
                    res["ingest_images_per_s"] = {}
                    for mc in [int(x) for x in args.max_connections.split(",")]:
                        model = register_clip(side.url, model_server, mc)
                        rate = ingest_images(side.url, model, f"mc{mc}", images, args.image_batch, args.image_clients)
                        res["ingest_images_per_s"][f"max_connection={mc}"] = round(rate, 1)
                res["rss_mb_end"] = side.rss_mb()
            finally:
                side.stop()
            out[side.name] = res
            print(json.dumps({side.name: res}), file=sys.stderr, flush=True)
    finally:
        if serve_proc is not None:
            serve_proc.terminate()
            serve_proc.wait(30)
    out["loadavg_end"] = os.getloadavg()
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")


if __name__ == "__main__":
    main()
