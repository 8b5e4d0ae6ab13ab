"""The HNSW graph is saved as a snapshot and adopted on restart; a stale snapshot stays correct."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kit.node.engine import Engine


def _bulk(e: Engine, start: int, vecs: np.ndarray) -> None:
    lines = []
    for i, v in enumerate(vecs, start):
        lines.append(({"index": {"_index": "g", "_id": str(i)}}, {"v": v.tolist()}, None))
    assert e.bulk(lines)["errors"] is False


def _ids(e: Engine, q: np.ndarray, k: int = 5) -> list[str]:
    res = e.search("g", {"size": k, "query": {"knn": {"v": {"vector": q.tolist(), "k": k}}}})
    return [h["_id"] for h in res["hits"]["hits"]]


def test_graph_snapshot_adopted_and_corrected_on_restart(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.standard_normal((400, 8)).astype(np.float32)
    e1 = Engine(tmp_path)
    e1.create_index("g", {"settings": {"index.knn": True, "index.knn.advanced.approximate_threshold": 100},
                          "mappings": {"properties": {"v": {"type": "knn_vector", "dimension": 8,
                                                            "method": {"name": "hnsw", "engine": "faiss"}}}}})
    _bulk(e1, 0, data[:300])
    e1.index("g").vectors("v").wait_for_graph()
    expected = _ids(e1, data[7])
    e1.close()  # saves the snapshot
    snap = tmp_path / "knn"
    assert any(p.suffix == ".faiss" for p in snap.iterdir())

    e2 = Engine(tmp_path)
    vf2 = e2.index("g").vectors("v")
    assert vf2._graph is not None and vf2._gn == 300  # adopted, not rebuilt
    assert _ids(e2, data[7]) == expected
    e2.delete_doc("g", "7")
    _bulk(e2, 300, data[300:400])  # newer rids, not in the snapshot
    vf2._stop = True  # "crash": no close, no new snapshot
    vf2.wait_for_graph()
    e2.store._lock_file.close()  # a crashed process releases its data-directory lock

    e3 = Engine(tmp_path)  # the snapshot is now stale: it holds doc 7 and lacks 300..399
    got = _ids(e3, data[7], k=3)
    assert "7" not in got
    assert _ids(e3, data[350], k=1) == ["350"]
    assert e3.count("g", {})["count"] == 399
    e3.close()
    e2.close()
