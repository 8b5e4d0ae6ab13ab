"""_bulk converts a request's vectors in one batch: same errors per item and same stored values as
indexing each document alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.node._asgi import AsgiNode


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    yield node
    node.close()


def _index(n: AsgiNode, name: str) -> None:
    n.ok("PUT", f"/{name}", {"settings": {"index.knn": True}, "mappings": {"properties": {
        "tag": {"type": "keyword"},
        "vec": {"type": "knn_vector", "dimension": 3, "space_type": "cosinesimil",
                "method": {"name": "hnsw", "engine": "faiss"}}}}})


DOCS: list[tuple[str, Any]] = [
    ("ok1", [1.0, 2.0, 3.0]),
    ("short", [1.0, 2.0]),
    ("zero", [0, 0, 0]),
    ("text", [1.0, "x", 3.0]),
    ("nested", [[1.0], 2.0, 3.0]),
    ("ok2", [0.5, -1.0, 0.25]),
    ("huge", [1e39, 1.0, 1.0]),  # overflows float32 → infinite
]


def test_bulk_vectors_match_single_doc_indexing(n: AsgiNode) -> None:
    _index(n, "single")
    _index(n, "bulk")
    single = {}
    for doc_id, vec in DOCS:
        r = n.request("PUT", f"/single/_doc/{doc_id}", {"tag": doc_id, "vec": vec})
        error = r.json().get("error")
        if error is not None:
            error.pop("root_cause", None)  # bulk item errors carry no root_cause (as in OpenSearch)
        single[doc_id] = (r.status_code, error)
    lines = []
    for doc_id, vec in DOCS:
        lines.append(json.dumps({"index": {"_index": "bulk", "_id": doc_id}}))
        lines.append(json.dumps({"tag": doc_id, "vec": vec}))
    res = n.ok("POST", "/_bulk", raw="\n".join(lines) + "\n", headers={"content-type": "application/x-ndjson"})
    assert res["errors"] is True
    for (doc_id, _), item in zip(DOCS, res["items"]):
        status, error = single[doc_id]
        assert item["index"]["status"] == status, doc_id
        assert item["index"].get("error") == error, doc_id
    assert {d for d, (s, _) in single.items() if s < 300} == {"ok1", "ok2"}
    body = {"size": 5, "query": {"knn": {"vec": {"vector": [1.0, 1.0, 0.0], "k": 5}}}}
    a = n.ok("POST", "/single/_search", body)["hits"]["hits"]
    b = n.ok("POST", "/bulk/_search", body)["hits"]["hits"]
    assert [(h["_id"], h["_score"]) for h in a] == [(h["_id"], h["_score"]) for h in b]
    assert len(a) == 2


def test_graph_search_skips_deleted_vectors_after_each_delete() -> None:
    import numpy as np

    from kit.node.vectors import VectorField

    rng = np.random.default_rng(0)
    data = rng.standard_normal((400, 8)).astype(np.float32)
    vf = VectorField(8, "l2", approximate_threshold=100)
    vf.add_many(list(range(1, 401)), data)
    vf.wait_for_graph()
    assert vf._graph is not None and vf._gn == 400
    q = data[10]
    assert vf.search(q, 1)[0][0] == 11
    vf.remove(11)
    assert 11 not in {r for r, _ in vf.search(q, 5)}
    nxt = vf.search(q, 1)[0][0]
    vf.remove(nxt)  # the cached live bitmap must not outlive this delete
    got = {r for r, _ in vf.search(q, 5)}
    assert 11 not in got and nxt not in got and len(got) == 5
    vf.close(save=False)
