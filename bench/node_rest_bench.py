"""Issue 14's new search features on the embedded node, in-process (no socket): the k-NN scoring script
(``script_score`` + ``knn_score``) over 10,000 384-d vectors, with match_all and with a pre-filter to
1,000 documents, and ``highlight`` (unified, plain) on 20 hits of ~2.2 KB text.

    PYTHONPATH=. python bench/node_rest_bench.py

Results: bench/README.md ("node_rest_bench.py").
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.node._asgi import AsgiNode  # noqa: E402  (the in-process client the node's tests use)

rng = np.random.default_rng(1)
n = AsgiNode(Path(tempfile.mkdtemp())/"d", version="2.19.6")
for name, space in (("l2x", "l2"), ("cosx", "cosinesimil")):
    n.ok("PUT", f"/{name}", {"settings": {"index.knn": True}, "mappings": {"properties": {
        "v": {"type": "knn_vector", "dimension": 384, "method": {"name": "hnsw", "engine": "lucene", "space_type": space}},
        "g": {"type": "keyword"}}}})
    vecs = rng.standard_normal((10000, 384)).astype(np.float32)
    for start in range(0, 10000, 2000):
        lines = []
        for i in range(start, start + 2000):
            lines.append(json.dumps({"index": {"_id": str(i)}}))
            lines.append(json.dumps({"v": vecs[i].round(5).tolist(), "g": "a" if i % 10 == 0 else "b"}))
        r = n.request("POST", f"/{name}/_bulk", raw="\n".join(lines) + "\n", headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 200
q = rng.standard_normal(384).round(5).tolist()
def timeit(index, space, query, reps=5):
    body = {"size": 10, "_source": False, "query": {"script_score": {"query": query, "script": {"source": "knn_score", "lang": "knn", "params": {"field": "v", "query_value": q, "space_type": space}}}}}
    n.ok("POST", f"/{index}/_search", body)
    t = []
    for _ in range(reps):
        t0 = time.perf_counter(); n.ok("POST", f"/{index}/_search", body); t.append(time.perf_counter() - t0)
    return sorted(t)[len(t)//2] * 1000
for index, space in (("l2x", "l2"), ("l2x", "innerproduct"), ("l2x", "l1"), ("cosx", "cosinesimil")):
    print(f"knn_score {space:13s} 10k x 384-d: match_all p50 {timeit(index, space, {'match_all': {}}):.0f} ms; "
          f"pre-filter to 1k docs p50 {timeit(index, space, {'term': {'g': 'a'}}):.0f} ms")
words = "alpha beta gamma delta fox dog cat river stone light dark quick slow blue green red the a of and in".split()
n.ok("PUT", "/ht", {"mappings": {"properties": {"t": {"type": "text"}}}})
random.seed(3)
for i in range(200):
    text = " ".join((random.choice(words).capitalize() if j % 12 == 0 else random.choice(words)) + ("." if j % 12 == 11 else "") for j in range(350))
    n.ok("PUT", f"/ht/_doc/{i}", {"t": text})
for hl in (None, {"fields": {"t": {}}}, {"fields": {"t": {"type": "plain"}}}):
    body = {"size": 20, "query": {"match": {"t": "fox river"}}}
    if hl: body["highlight"] = hl
    n.ok("POST", "/ht/_search", body)
    t = []
    for _ in range(7):
        t0 = time.perf_counter(); n.ok("POST", "/ht/_search", body); t.append(time.perf_counter() - t0)
    print("highlight", (hl or {}).get("fields", {}).get("t", {"type": "none"}).get("type", "unified"), f"20 hits x ~2.2 KB: p50 {sorted(t)[3]*1000:.1f} ms")
n.close()
