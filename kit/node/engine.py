"""The node's engine: indices, documents, search, cluster settings — the Python API that the REST
layer, ML Commons, ingest and search pipelines all use (contract in docs/ARCHITECTURE.md).

Writes go to SQLite first (:mod:`kit.node.storage`, the source of truth) and then to the in-memory
search structures (postings, FAISS), all under one engine lock, so an acknowledged write is both
durable and visible. Per-index search structures are rebuilt lazily from SQLite on first use, which
keeps start-up fast whatever the data size.

The parts: :mod:`kit.node.settings` (cluster settings), :mod:`kit.node.index_state` (one index),
:mod:`kit.node.indices` (resolution, admin, templates), :mod:`kit.node.documents` (reads, writes,
``_bulk``), :mod:`kit.node.search` (``_search``, ``_count``). Their public names are re-exported here.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from kit.node.documents import Documents, deep_merge
from kit.node.index_state import INDEX_SETTING_DEFAULTS, IndexState, new_id, normalise_index_settings
from kit.node.search import HYBRID_DELIMITER, HYBRID_START_STOP, MAX_RESULT_WINDOW, Search
from kit.node.settings import ClusterSettings, flatten, nest
from kit.node.source_filter import filter_source
from kit.node.storage import Storage

__all__ = [
    "HYBRID_DELIMITER",
    "HYBRID_START_STOP",
    "INDEX_SETTING_DEFAULTS",
    "MAX_RESULT_WINDOW",
    "ClusterSettings",
    "Engine",
    "IndexState",
    "deep_merge",
    "filter_source",
    "flatten",
    "nest",
    "new_id",
    "normalise_index_settings",
]

log = logging.getLogger(__name__)


class Engine(Documents, Search):
    """Indices, documents, search and cluster settings over one data directory.

    The index side is :class:`kit.node.indices.Indices`, documents :class:`kit.node.documents.Documents`,
    search :class:`kit.node.search.Search`; this class holds the state they share.
    """

    def __init__(self, data_dir: Path, *, version: str = "3.3.0", node_name: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.version = version
        self.store = Storage(self.data_dir)
        self.lock = threading.RLock()
        self.settings = ClusterSettings(self.store)
        ident = self.store.kv_get("node", "identity")
        if ident is None:
            ident = {"node_id": new_id()[:22], "cluster_uuid": new_id()[:22], "name": node_name or "oskit-node"}
            self.store.kv_put("node", "identity", ident)
        self.node_id: str = ident["node_id"]
        self.cluster_uuid: str = ident["cluster_uuid"]
        self.node_name: str = ident["name"]
        self.cluster_name = "oskit"
        self.started = time.time()
        self.indices: dict[str, IndexState] = {}
        for name, uid, meta in self.store.load_indices():
            self.indices[name] = IndexState(self, name, uid, meta)
        self.knn_stats: dict[str, int] = {}
        self._closing = False
        # Search structures are rebuilt from SQLite in the background, so the node answers at once;
        # a request for an index not loaded yet waits for it (under the engine lock).
        self._loader: threading.Thread | None = None
        if self.indices:
            self._loader = threading.Thread(target=self._preload, name="oskit-node-load", daemon=True)
            self._loader.start()
        self.ml: Any = None
        self.ingest: Any = None
        self.search_pipelines: Any = None

    def _preload(self) -> None:
        for name in sorted(self.indices, key=lambda n: (not n.startswith("."), n)):  # system indices first
            if self._closing:
                return
            with self.lock:
                ix = self.indices.get(name)
                if ix is not None and not self._closing:
                    try:
                        ix.ensure_loaded()
                    except Exception:  # noqa: BLE001 - the lazy path will report it on use
                        log.exception("loading index %s failed", name)

    def close(self) -> None:
        self._closing = True
        if self._loader is not None:
            self._loader.join()
        close_ml = getattr(self.ml, "close", None)
        if close_ml is not None:
            close_ml()  # deployed models and the connectors' pooled HTTP connections
        for ix in self.indices.values():
            for vf in ix._vectors.values():
                vf.close()
        self.store.close()

    def store_count(self, uuid: str) -> int:
        with self.store._lock:
            return int(self.store.db.execute("SELECT COUNT(*) FROM docs WHERE idx=?", (uuid,)).fetchone()[0])

    # ------------------------------------------------------------------ kv for plugins
    def kv_get(self, ns: str, key: str) -> Any:
        return self.store.kv_get(ns, key)

    def kv_put(self, ns: str, key: str, value: Any) -> None:
        self.store.kv_put(ns, key, value)

    def kv_delete(self, ns: str, key: str) -> bool:
        return self.store.kv_delete(ns, key)

    def kv_list(self, ns: str) -> dict[str, Any]:
        return self.store.kv_list(ns)
