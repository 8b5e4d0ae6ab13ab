"""One index's state: its metadata (settings, mapping, aliases) and the in-memory search structures
(postings, vector fields) rebuilt lazily from SQLite; the index settings this node knows."""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kit.node.analysis import analyzer
from kit.node.errors import ApiError, bad_request, unsupported
from kit.node.jsonutil import loads
from kit.node.lexical import ExactPostings, TextPostings
from kit.node.mapping import Mapping, version_tuple
from kit.node.settings import flatten, stringify
from kit.node.storage import Storage
from kit.node.vectors import VectorField

__all__ = [
    "INDEX_DEFAULTS", "INDEX_SETTING_DEFAULTS", "IndexState", "STATIC_SETTINGS", "new_id",
    "normalise_index_settings", "version_id",
]

log = logging.getLogger(__name__)


class IndexHost(Protocol):
    """What an index needs from the engine that holds it."""

    data_dir: Path
    version: str
    store: Storage
    lock: threading.RLock

    def store_count(self, uuid: str) -> int: ...


def new_id() -> str:
    """A 20-character URL-safe id, like OpenSearch's auto-generated ``_id``."""
    return base64.urlsafe_b64encode(os.urandom(15)).decode("ascii")


def version_id(version: str) -> str:
    """OpenSearch's numeric ``version.created`` (id XOR the OpenSearch mask)."""
    ma, mi, pa = version_tuple(version)
    return str((ma * 1_000_000 + mi * 10_000 + pa * 100 + 99) ^ 0x08000000)


# what every new index carries explicitly (2.x+ also records index.replication.type, DOCUMENT by default)
INDEX_DEFAULTS = {"index.number_of_shards": "1", "index.number_of_replicas": "1", "index.replication.type": "DOCUMENT"}


# What ``include_defaults`` shows for settings the index did not set (the ones this node honours or echoes).
INDEX_SETTING_DEFAULTS = {
    "index.store.type": "", "index.refresh_interval": "1s", "index.max_result_window": "10000",
    "index.knn": "false", "index.knn.algo_param.ef_search": "100", "index.knn.advanced.approximate_threshold": "15000",
    "index.default_pipeline": "_none", "index.final_pipeline": "_none", "index.search.default_pipeline": "_none",
    "index.hidden": "false", "index.auto_expand_replicas": "false", "index.codec": "default",
    "index.blocks.write": "false", "index.blocks.read_only": "false", "index.mapping.total_fields.limit": "1000",
    "index.query.default_field": ["*"], "index.max_inner_result_window": "100", "index.priority": "1",
}


STATIC_SETTINGS = {"index.number_of_shards", "index.knn", "index.uuid", "index.creation_date",
                    "index.version.created", "index.provided_name", "index.codec", "index.routing_partition_size"}


_KNOWN_INDEX_SETTINGS = {
    "index.number_of_shards", "index.number_of_replicas", "index.replication.type", "index.knn", "index.knn.algo_param.ef_search",
    "index.knn.advanced.approximate_threshold", "index.default_pipeline", "index.final_pipeline",
    "index.search.default_pipeline", "index.refresh_interval", "index.hidden", "index.max_result_window",
    "index.auto_expand_replicas", "index.codec", "index.mapping.total_fields.limit", "index.blocks.write",
    "index.blocks.read_only", "index.blocks.read_only_allow_delete", "index.max_inner_result_window",
    "index.query.default_field", "index.routing.allocation.include._tier_preference", "index.priority",
    "index.number_of_routing_shards", "index.mapping.nested_objects.limit", "index.write.wait_for_active_shards",
    "index.translog.durability", "index.translog.flush_threshold_size", "index.similarity.default.type",
    "index.knn.space_type", "index.knn.algo_param.ef_construction", "index.knn.algo_param.m",
    "index.plugins.index_state_management.rollover_alias", "index.routing.allocation.require._name",
}


def normalise_index_settings(raw: dict[str, Any]) -> dict[str, str]:
    """Nested or flat, with or without the ``index.`` prefix → flat ``index.*`` keys, string values."""
    flat = flatten(raw or {})
    out: dict[str, str] = {}
    for key, value in flat.items():
        full = key if key.startswith("index.") else "index." + key
        if full.startswith("index.analysis."):
            raise unsupported("custom analysis settings (index.analysis.*)")
        if full not in _KNOWN_INDEX_SETTINGS and not full.startswith(("index.knn.", "index.routing.", "index.blocks.",
                                                                       "index.plugins.", "index.mapping.")):
            raise bad_request(f"unknown setting [{full}] please check that any required plugins are installed, or "
                              f"check the breaking changes documentation for removed settings")
        out[full] = stringify(value) if value is not None else None  # type: ignore[assignment]
    return out


class IndexState:
    """One index: metadata (settings, mapping, aliases) + lazily built in-memory search structures."""

    def __init__(self, engine: IndexHost, name: str, uuid: str, meta: dict[str, Any]) -> None:
        self.engine = engine
        self.name = name
        self.uuid = uuid
        self.settings: dict[str, str] = meta["settings"]
        self.aliases: dict[str, dict[str, Any]] = meta.get("aliases", {})
        self.mapping = Mapping(meta.get("mappings"), version=engine.version, knn_enabled=self.knn_enabled)
        self.legacy_bm25 = version_tuple(engine.version)[0] < 3  # OpenSearch 2.x: LegacyBM25Similarity
        self.tombstones: dict[str, tuple[int, float]] = {}  # deleted id → (version, monotonic time of the delete)
        self.mapping.depth_limit = int(self.settings.get("index.mapping.depth.limit", 20))
        self.docs: dict[str, tuple[int, int, int]] = {}  # id → (rid, version, seq_no)
        self.rid_to_id: dict[int, str] = {}
        self.present: dict[str, set[int]] = {}
        self._text: dict[str, TextPostings] = {}
        self._exact: dict[str, ExactPostings] = {}
        self._vectors: dict[str, VectorField] = {}
        self.seq_no = -1
        self.loaded = False

    # ------------------------------------------------------------------ metadata
    def replicas(self) -> int:
        """Replica copies OpenSearch keeps on a one-node cluster: auto_expand_replicas "lo-hi" expands
        to ``lo`` there (no second node), else number_of_replicas."""
        auto = str(self.settings.get("index.auto_expand_replicas", "false"))
        if auto != "false" and "-" in auto:
            try:
                return int(auto.split("-", 1)[0])
            except ValueError:
                pass
        return int(self.settings.get("index.number_of_replicas", "1"))

    @property
    def knn_enabled(self) -> bool:
        return str(self.settings.get("index.knn", "false")).lower() == "true"

    @property
    def hidden(self) -> bool:
        return str(self.settings.get("index.hidden", "false")).lower() == "true"

    def meta(self) -> dict[str, Any]:
        return {"settings": self.settings, "mappings": self.mapping.to_dict(), "aliases": self.aliases}

    def save(self) -> None:
        self.engine.store.put_index(self.name, self.uuid, self.meta())

    def setting(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)

    # ------------------------------------------------------------------ structures
    def text(self, path: str) -> TextPostings:
        p = self._text.get(path)
        if p is None:
            p = self._text[path] = TextPostings(self.legacy_bm25)
        return p

    def exact(self, path: str) -> ExactPostings:
        p = self._exact.get(path)
        if p is None:
            p = self._exact[path] = ExactPostings(self.legacy_bm25)
        return p

    def vectors(self, path: str) -> VectorField:
        vf = self._vectors.get(path)
        if vf is None:
            fd = self.mapping.fields[path]
            k = fd.knn()
            ef = int(self.settings.get("index.knn.algo_param.ef_search") or k["ef_search"] or 100)
            thr = int(self.settings.get("index.knn.advanced.approximate_threshold", 15_000))
            if not self.knn_enabled:
                thr = 2**62  # index.knn false: exact search only, as the plugin does for flat fields
            vf = self._vectors[path] = VectorField(k["dimension"], k["space"], k["m"], k["ef_construction"], ef, thr)
            vf.snapshot = self.engine.data_dir / "knn" / f"{self.uuid}.{path}"
        return vf

    def ensure_loaded(self) -> None:
        """Build the search structures from SQLite once. Under the engine lock: the background
        preloader and a caller that reaches the index first (``Engine.index``) must not load it
        both at once — the second would clear what the first is filling (a search then saw the
        adopted graph's rids with no documents behind them and answered no hits)."""
        if self.loaded:
            return
        with self.engine.lock:
            if not self.loaded:
                self._load()

    def _load(self) -> None:
        t0 = time.perf_counter()
        store = self.engine.store
        # start clean: an earlier attempt may have failed half-way
        for vf in self._vectors.values():
            vf.close(save=False)
        self.docs.clear()
        self.rid_to_id.clear()
        self.present.clear()
        self._text.clear()
        self._exact.clear()
        self._vectors.clear()
        vec_paths = list(self.mapping.vector_fields())
        pending: dict[str, tuple[list[int], list[np.ndarray]]] = {p: ([], []) for p in vec_paths}
        # a saved graph covers the rids it holds (immutable doc versions): only newer rids are added
        in_graph: dict[str, set[int]] = {}
        for p in vec_paths:
            rids = self.vectors(p).load_snapshot()
            if rids is not None:
                in_graph[p] = set(rids.tolist())
        for rid, doc_id, version, seq_no, src in store.iter_docs(self.uuid):
            self.seq_no = max(self.seq_no, seq_no)
            self.docs[doc_id] = (rid, version, seq_no)
            self.rid_to_id[rid] = doc_id
            try:
                values, vecs, _new = self.mapping.parse(loads(src), doc_id)
                self._index_values(rid, values)
                for path, raw in vecs.items():
                    if path not in pending:
                        continue
                    if path in in_graph and rid in in_graph[path]:
                        self.present.setdefault(path, set()).add(rid)
                        continue
                    pending[path][0].append(rid)
                    pending[path][1].append(self.vectors(path).prepare(raw, path))
            except ApiError as exc:  # should not happen: it was valid when written
                log.warning("index %s doc %s no longer parses: %s", self.name, doc_id, exc.reason)
        for path, graph_rids in in_graph.items():
            vf = self.vectors(path)
            for rid in graph_rids - set(self.rid_to_id):  # deleted or replaced since the snapshot
                vf.remove(rid)
        self.seq_no = max(self.seq_no, int(store.kv_get("seq_no", self.uuid) or -1))
        for path in vec_paths:
            # vectors kept apart only when the stored _source leaves them out (mapping _source excludes)
            for rid, blob in store.iter_vectors(self.uuid, path):
                if path in in_graph and rid in in_graph[path]:
                    self.present.setdefault(path, set()).add(rid)
                    continue
                pending[path][0].append(rid)
                pending[path][1].append(np.frombuffer(blob, dtype=np.float32))
            rids, arrs = pending[path]
            if rids:
                order = np.argsort(np.asarray(rids, dtype=np.int64), kind="stable")
                self.vectors(path).add_many([rids[i] for i in order], np.stack([arrs[i] for i in order]))
                self.present.setdefault(path, set()).update(rids)
        self.loaded = True
        if self.docs:
            log.info("loaded index %s (%d docs) in %.2fs", self.name, len(self.docs), time.perf_counter() - t0)

    def _index_values(self, rid: int, values: dict[str, list[Any]]) -> None:
        fields = self.mapping.fields
        present = self.present
        for path, vals in values.items():
            if not vals:
                continue
            fd = fields.get(path)
            if fd is None:
                continue
            seen = present.get(path)
            if seen is None:
                seen = present[path] = set()
            seen.add(rid)
            if fd.type == "text":
                an = analyzer(fd.analyzer_name)
                if len(vals) == 1:
                    tokens = an(vals[0])
                else:
                    tokens = []
                    for v in vals:
                        tokens.extend(an(v))
                self.text(path).add(rid, tokens)
            else:
                self.exact(path).add(rid, vals)

    def unindex(self, rid: int) -> None:
        for p in self._text.values():
            p.remove(rid)
        for e in self._exact.values():
            e.remove(rid)
        for vf in self._vectors.values():
            vf.remove(rid)
        for s in self.present.values():
            s.discard(rid)
        self.rid_to_id.pop(rid, None)

    def doc_count(self) -> int:
        return len(self.docs) if self.loaded else self.engine.store_count(self.uuid)
