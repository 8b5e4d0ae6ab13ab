"""The node's engine: indices, documents, search, cluster settings — the Python API that the REST
layer, ML Commons, ingest and search pipelines all use (contract in docs/ARCHITECTURE.md).

Writes go to SQLite first (:mod:`kit.node.storage`, the source of truth) and then to the in-memory
search structures (postings, FAISS), all under one engine lock, so an acknowledged write is both
durable and visible. Per-index search structures are rebuilt lazily from SQLite on first use, which
keeps start-up fast whatever the data size.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fnmatch
import gc
import heapq
import json
import logging
import os
import threading
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from kit.node.analysis import analyzer
from kit.node.errors import (
    ApiError,
    bad_request,
    body_required,
    index_already_exists,
    not_found_index,
    parsing_error,
    unsupported,
    version_conflict,
)
from kit.node.lexical import ExactPostings, TextPostings
from kit.node.mapping import Mapping, version_tuple
from kit.node.query import Hybrid, MatchAll, Query, parse_query
from kit.node.routing import RawJSON, dumps, loads
from kit.node.storage import Storage
from kit.node.vectors import VectorField

__all__ = ["ClusterSettings", "Engine", "IndexState", "new_id"]

log = logging.getLogger(__name__)

SHARDS = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
WRITE_SHARDS = {"total": 2, "successful": 1, "failed": 0}  # 1 primary + 1 unassigned replica, as on one node
MAX_RESULT_WINDOW = 10_000
_CLUSTER_PREFIXES = ("plugins.", "cluster.", "action.", "indices.", "search.", "knn.", "opensearch.", "logger.",
                     "node.", "script.", "ingest.", "persistent.", "transport.", "http.", "snapshot.", "gateway.",
                     "bootstrap.", "discovery.", "network.", "thread_pool.", "index.", "search_backpressure.",
                     "wlm.", "analysis.", "neural_search.", "ml_commons.", "opendistro.")


def new_id() -> str:
    """A 20-character URL-safe id, like OpenSearch's auto-generated ``_id``."""
    return base64.urlsafe_b64encode(os.urandom(15)).decode("ascii")


def version_id(version: str) -> str:
    """OpenSearch's numeric ``version.created`` (id XOR the OpenSearch mask)."""
    ma, mi, pa = version_tuple(version)
    return str((ma * 1_000_000 + mi * 10_000 + pa * 100 + 99) ^ 0x08000000)


# ---------------------------------------------------------------------------------------- settings
def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c.d": 2}`` → ``{"a.b": 1, "c.d": 2}`` (lists are leaf values)."""
    out: dict[str, Any] = {}
    if not isinstance(obj, dict):
        return {prefix.rstrip("."): obj} if prefix else {}
    for k, v in obj.items():
        key = prefix + str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat keys → nested objects, as OpenSearch renders settings. A key that is both a value and a
    prefix (``index.knn`` and ``index.knn.algo_param.ef_search``) keeps the deeper keys dotted:
    ``{"knn": "true", "knn.algo_param": {"ef_search": "100"}}``."""
    leaves: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for key in sorted(flat):
        head, _, rest = key.partition(".")
        if rest:
            groups.setdefault(head, {})[rest] = flat[key]
        else:
            leaves[head] = flat[key]
    out: dict[str, Any] = dict(leaves)
    for head, sub in groups.items():
        nested = nest(sub)
        if head in leaves:
            for k2, v2 in nested.items():
                out[f"{head}.{k2}"] = v2
        else:
            out[head] = nested
    return dict(sorted(out.items()))


def _stringify(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return [_stringify(x) for x in v]
    return v


def _typed(v: Any) -> Any:
    if isinstance(v, str):
        if v in ("true", "false"):
            return v == "true"
        try:
            return int(v)
        except ValueError:
            pass
        try:
            return float(v)
        except ValueError:
            return v
    return v


class ClusterSettings:
    """Persistent and transient cluster settings (flat keys, string values as OpenSearch keeps them).

    ``get`` returns typed values (``"false"`` → False, ``"10"`` → 10); transient wins over persistent,
    as in OpenSearch.
    """

    def __init__(self, store: Storage) -> None:
        self._store = store
        self.persistent: dict[str, Any] = store.kv_get("cluster", "persistent") or {}
        self.transient: dict[str, Any] = {}  # transient settings do not survive a restart
        self.defaults: dict[str, Any] = {}
        self.listeners: list[Callable[[str, Any], None]] = []

    def get(self, key: str, default: Any = None) -> Any:
        for layer in (self.transient, self.persistent, self.defaults):
            if key in layer:
                return _typed(layer[key])
        return default

    def register_defaults(self, defaults: dict[str, Any]) -> None:
        """Plugins declare their settings (shown by ``include_defaults``, accepted by PUT)."""
        self.defaults.update({k: _stringify(v) for k, v in flatten(defaults).items()})

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise body_required()
        for key in body:
            if key not in ("persistent", "transient"):
                raise bad_request(f"request body contains unknown field [{key}]" if False else
                                  f"[cluster_update_settings_request] unknown field [{key}]")
        result: dict[str, dict[str, Any]] = {"persistent": {}, "transient": {}}
        staged = {"persistent": dict(self.persistent), "transient": dict(self.transient)}
        for scope in ("persistent", "transient"):
            flat = flatten(body.get(scope) or {})
            for key, value in flat.items():
                if key.endswith(".*") and value is None:
                    stem = key[:-1]
                    for k in [k for k in staged[scope] if k.startswith(stem)]:
                        del staged[scope][k]
                    continue
                if not key.startswith(_CLUSTER_PREFIXES) and key not in self.defaults:
                    raise bad_request(f"{scope} setting [{key}], not recognized")
                if value is None:
                    staged[scope].pop(key, None)
                else:
                    staged[scope][key] = _stringify(value)
                    result[scope][key] = _stringify(value)
        self.persistent, self.transient = staged["persistent"], staged["transient"]
        self._store.kv_put("cluster", "persistent", self.persistent)
        for scope in ("persistent", "transient"):
            for key, value in flatten(body.get(scope) or {}).items():
                for fn in self.listeners:
                    fn(key, _typed(value) if value is not None else None)
        return {"acknowledged": True, "persistent": nest(result["persistent"]),
                "transient": nest(result["transient"])}

    def render(self, flat: bool = False, include_defaults: bool = False) -> dict[str, Any]:
        fmt = (lambda d: dict(sorted(d.items()))) if flat else nest
        out = {"persistent": fmt(self.persistent), "transient": fmt(self.transient)}
        if include_defaults:
            out["defaults"] = fmt(self.defaults)
        return out


# ---------------------------------------------------------------------------------------- indices
_INDEX_DEFAULTS = {"index.number_of_shards": "1", "index.number_of_replicas": "1"}
# What ``include_defaults`` shows for settings the index did not set (the ones this node honours or echoes).
INDEX_SETTING_DEFAULTS = {
    "index.store.type": "", "index.refresh_interval": "1s", "index.max_result_window": "10000",
    "index.knn": "false", "index.knn.algo_param.ef_search": "100", "index.knn.advanced.approximate_threshold": "15000",
    "index.default_pipeline": "_none", "index.final_pipeline": "_none", "index.search.default_pipeline": "_none",
    "index.hidden": "false", "index.auto_expand_replicas": "false", "index.codec": "default",
    "index.blocks.write": "false", "index.blocks.read_only": "false", "index.mapping.total_fields.limit": "1000",
    "index.query.default_field": ["*"], "index.max_inner_result_window": "100", "index.priority": "1",
}
_STATIC_SETTINGS = {"index.number_of_shards", "index.knn", "index.uuid", "index.creation_date",
                    "index.version.created", "index.provided_name", "index.codec", "index.routing_partition_size"}
_KNOWN_INDEX_SETTINGS = {
    "index.number_of_shards", "index.number_of_replicas", "index.knn", "index.knn.algo_param.ef_search",
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
        out[full] = _stringify(value) if value is not None else None  # type: ignore[assignment]
    return out


class IndexState:
    """One index: metadata (settings, mapping, aliases) + lazily built in-memory search structures."""

    def __init__(self, engine: "Engine", name: str, uuid: str, meta: dict[str, Any]) -> None:
        self.engine = engine
        self.name = name
        self.uuid = uuid
        self.settings: dict[str, str] = meta["settings"]
        self.aliases: dict[str, dict[str, Any]] = meta.get("aliases", {})
        self.mapping = Mapping(meta.get("mappings"), version=engine.version, knn_enabled=self.knn_enabled)
        self.docs: dict[str, tuple[int, int, int]] = {}  # id → (rid, version, seq_no)
        self.rid_to_id: dict[int, str] = {}
        self.present: dict[str, set[int]] = {}
        self._text: dict[str, TextPostings] = {}
        self._exact: dict[str, ExactPostings] = {}
        self._vectors: dict[str, VectorField] = {}
        self.seq_no = -1
        self.loaded = False

    # ------------------------------------------------------------------ metadata
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
            p = self._text[path] = TextPostings()
        return p

    def exact(self, path: str) -> ExactPostings:
        p = self._exact.get(path)
        if p is None:
            p = self._exact[path] = ExactPostings()
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


# ---------------------------------------------------------------------------------------- engine
class _Prepared:
    """A document validated against the mapping, ready to store (no side effects yet)."""

    __slots__ = ("doc_id", "source", "source_json", "values", "vectors", "new_props", "source_filtered")

    def __init__(self, doc_id: str, source: dict[str, Any], source_json: str, values: dict[str, list[Any]],
                 vectors: dict[str, np.ndarray], new_props: dict[str, Any], source_filtered: bool) -> None:
        self.doc_id, self.source, self.source_json = doc_id, source, source_json
        self.values, self.vectors, self.new_props = values, vectors, new_props
        self.source_filtered = source_filtered


class Engine:
    """Indices, documents, search and cluster settings over one data directory."""

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

    # ------------------------------------------------------------------ index resolution
    def index(self, name: str) -> IndexState:
        """The index (or the single index behind an alias); index_not_found_exception otherwise."""
        ix = self.indices.get(name)
        if ix is None:
            targets = [i for i in self.indices.values() if name in i.aliases]
            if len(targets) == 1:
                ix = targets[0]
            elif len(targets) > 1:
                writes = [i for i in targets if i.aliases[name].get("is_write_index")]
                if len(writes) == 1:
                    ix = writes[0]
                else:
                    raise bad_request(f"no write index is defined for alias [{name}]. The write index may be "
                                      f"explicitly disabled using is_write_index=false or the alias points to "
                                      f"multiple indices without one being designated as a write index")
        if ix is None:
            raise not_found_index(name)
        ix.ensure_loaded()
        return ix

    def index_exists(self, name: str) -> bool:
        return name in self.indices or any(name in i.aliases for i in self.indices.values())

    def alias_filters(self, expr: str | None, targets: list[IndexState]) -> dict[str, list[dict[str, Any]]]:
        """Per index reached only through filtered aliases: those aliases' filters (OR-ed by the caller)."""
        parts = [p.strip() for p in (expr or "_all").split(",") if p.strip()]
        out: dict[str, list[dict[str, Any]]] = {}
        for ix in targets:
            direct = any(p in ("_all", "*") or p == ix.name or (any(c in p for c in "*?") and
                                                                 fnmatch.fnmatchcase(ix.name, p)) for p in parts)
            if direct:
                continue
            filters = []
            for p in parts:
                spec = ix.aliases.get(p)
                if spec is None:
                    continue
                if not spec.get("filter"):
                    filters = []
                    break
                filters.append(spec["filter"])
            if filters:
                out[ix.name] = filters
        return out

    def resolve(self, expr: str | None, *, ignore_unavailable: bool = False, allow_no_indices: bool = True,
                expand_hidden: bool = False) -> list[IndexState]:
        """Comma lists, wildcards, aliases, ``_all``, ``-exclusions`` → indices (sorted, unique)."""
        parts = [p.strip() for p in (expr or "_all").split(",") if p.strip()]
        chosen: dict[str, IndexState] = {}
        for part in parts:
            exclude = part.startswith("-") and len(chosen) > 0
            pat = part[1:] if exclude else part
            if pat in ("_all", "*"):
                matched = [i for i in self.indices.values() if expand_hidden or not i.hidden]
            elif any(c in pat for c in "*?"):
                matched = [i for i in self.indices.values()
                           if (fnmatch.fnmatchcase(i.name, pat) and (expand_hidden or not i.hidden or pat.startswith(".")))
                           or any(fnmatch.fnmatchcase(a, pat) for a in i.aliases)]
            else:
                matched = [i for i in self.indices.values() if i.name == pat or pat in i.aliases]
                if not matched and not exclude:
                    if ignore_unavailable:
                        continue
                    raise not_found_index(pat)
            for i in matched:
                if exclude:
                    chosen.pop(i.name, None)
                else:
                    chosen[i.name] = i
        if not chosen and not allow_no_indices:
            raise not_found_index(expr or "_all")
        out = [chosen[k] for k in sorted(chosen)]
        for ix in out:
            ix.ensure_loaded()
        return out

    # ------------------------------------------------------------------ index admin
    def create_index(self, name: str, body: dict[str, Any] | None = None, *, system: bool = False) -> dict[str, Any]:
        body = body or {}
        if not isinstance(body, dict):
            raise parsing_error("request body must be an object")
        _check_index_name(name, system=system)
        for key in body:
            if key not in ("settings", "mappings", "aliases"):
                raise parsing_error(f"unknown key [{key}] for create index")
        with self.lock:
            if name in self.indices:
                raise index_already_exists(name, self.indices[name].uuid)
            if any(name in i.aliases for i in self.indices.values()):
                raise ApiError(400, "invalid_index_name_exception",
                               f"Invalid index name [{name}], an alias with the same name already exists",
                               index=name, index_uuid="_na_")
            settings_in = dict(body.get("settings") or {})
            mappings_in = body.get("mappings") or {}
            aliases_in = dict(body.get("aliases") or {})
            tmpl = self._matching_template(name)
            if tmpl is not None:
                t = tmpl.get("template") or {}
                settings_in = {**flatten(t.get("settings") or {}), **flatten(settings_in)}
                mappings_in = _merge_mappings(t.get("mappings") or {}, mappings_in)
                aliases_in = {**(t.get("aliases") or {}), **aliases_in}
            settings = {**_INDEX_DEFAULTS, **{k: v for k, v in normalise_index_settings(settings_in).items()
                                             if v is not None}}
            if system:
                settings["index.hidden"] = "true"
            try:
                shards = int(settings["index.number_of_shards"])
            except ValueError:
                raise bad_request(f"Failed to parse value [{settings['index.number_of_shards']}] for setting "
                                  f"[index.number_of_shards]") from None
            if shards < 1:
                raise bad_request(f"Failed to parse value [{shards}] for setting [index.number_of_shards] must be >= 1")
            uid = new_id()[:22]
            settings.update({"index.uuid": uid, "index.creation_date": str(int(time.time() * 1000)),
                             "index.provided_name": name, "index.version.created": version_id(self.version)})
            meta = {"settings": settings, "mappings": mappings_in, "aliases": {}}
            ix = IndexState(self, name, uid, meta)  # validates the mapping
            for alias, spec in aliases_in.items():
                ix.aliases[alias] = _alias_spec(spec)
            ix.loaded = True
            ix.save()
            self.indices[name] = ix
        return {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def delete_index(self, expr: str, *, ignore_unavailable: bool = False) -> dict[str, Any]:
        with self.lock:
            targets = []
            for part in expr.split(","):
                if any(c in part for c in "*?") or part == "_all":
                    targets.extend(self.resolve(part, expand_hidden=False))
                elif part in self.indices:
                    targets.append(self.indices[part])
                elif ignore_unavailable:
                    continue
                else:
                    if any(part in i.aliases for i in self.indices.values()):
                        raise bad_request(f"The provided expression [{part}] matches an alias, specify the "
                                          f"corresponding concrete indices instead.")
                    raise not_found_index(part)
            for ix in targets:
                self.store.delete_index(ix.name, ix.uuid)
                for vf in ix._vectors.values():
                    vf.close(save=False)
                    vf.discard_snapshot()
                self.indices.pop(ix.name, None)
        return {"acknowledged": True}

    def ensure_system_index(self, name: str, mappings: dict[str, Any]) -> IndexState:
        """Create a hidden system index (``.plugins-ml-*``) or add missing fields to its mapping."""
        with self.lock:
            if name not in self.indices:
                self.create_index(name, {"mappings": mappings}, system=True)
            else:
                ix = self.indices[name]
                props = (mappings or {}).get("properties") or {}
                missing = {k: v for k, v in props.items() if k not in ix.mapping.properties}
                if missing:
                    ix.mapping.merge(missing)
                    ix.save()
            return self.index(name)

    def get_index(self, expr: str, *, flat: bool = False, include_defaults: bool = False,
                  ignore_unavailable: bool = False) -> dict[str, Any]:
        out = {}
        for ix in self.resolve(expr, ignore_unavailable=ignore_unavailable, expand_hidden=True
                               if not any(c in expr for c in "*?") and expr != "_all" else False):
            out[ix.name] = {"aliases": ix.aliases, "mappings": ix.mapping.to_dict(),
                            "settings": self.render_index_settings(ix, flat=flat, include_defaults=include_defaults)}
        return out

    def render_index_settings(self, ix: IndexState, *, flat: bool = False,
                              include_defaults: bool = False) -> dict[str, Any]:
        s = dict(ix.settings)
        if flat:
            return dict(sorted(s.items()))
        return nest(s)

    def put_mapping(self, expr: str, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise body_required()
        for key in body:
            if key not in ("properties", "dynamic", "_source", "_meta", "date_detection", "numeric_detection",
                           "dynamic_templates", "_routing"):
                raise mapper_parsing_root(key, body[key])
        with self.lock:
            targets = self.resolve(expr, expand_hidden=True)
            for ix in targets:
                # validate on a copy first so a conflict leaves nothing half-applied
                trial = Mapping(ix.mapping.to_dict(), version=self.version, knn_enabled=ix.knn_enabled)
                trial.merge(body.get("properties") or {}, dynamic=body.get("dynamic"))
            for ix in targets:
                ix.mapping.merge(body.get("properties") or {}, dynamic=body.get("dynamic"))
                if "_meta" in body:
                    ix.mapping.meta = body["_meta"]
                ix.save()
        return {"acknowledged": True}

    def put_settings(self, expr: str, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise body_required()
        raw = body.get("settings", body) if isinstance(body.get("settings"), dict) else body
        flat = normalise_index_settings(raw)
        with self.lock:
            targets = self.resolve(expr, expand_hidden=True)
            for key in flat:
                if key in _STATIC_SETTINGS:
                    names = ", ".join(f"{ix.name}/{ix.uuid}" for ix in targets)
                    raise bad_request(f"Can't update non dynamic settings [[{key}]] for open indices [[{names}]]")
            for ix in targets:
                for key, value in flat.items():
                    if value is None or value in ("_none",) and key.endswith("pipeline") and False:
                        ix.settings.pop(key, None)
                    else:
                        ix.settings[key] = value
                if "index.knn.algo_param.ef_search" in flat:
                    for vf in ix._vectors.values():
                        vf.ef_search = int(flat["index.knn.algo_param.ef_search"] or 100)
                ix.save()
        return {"acknowledged": True}

    def update_aliases(self, actions: list[dict[str, Any]]) -> dict[str, Any]:
        if not isinstance(actions, list) or not actions:
            raise ApiError(400, "action_request_validation_exception",
                           "Validation Failed: 1: One or more aliases actions must be specified;")
        with self.lock:
            plan: list[tuple[str, IndexState, str, dict[str, Any]]] = []
            # As MetadataIndexAliasesService: indices removed by remove_index go first, so one request can
            # replace an index by an alias of the same name.
            removed = {ix.name for act in actions if isinstance(act, dict) and len(act) == 1
                       and "remove_index" in act and isinstance(act["remove_index"], dict)
                       for iexpr in (act["remove_index"].get("indices")
                                     or ([act["remove_index"]["index"]] if "index" in act["remove_index"] else []))
                       for ix in self.resolve(iexpr, allow_no_indices=True)}
            for act in actions:
                if not isinstance(act, dict) or len(act) != 1:
                    raise parsing_error("[aliases] failed to parse field [actions]")
                kind, spec = next(iter(act.items()))
                if kind not in ("add", "remove", "remove_index"):
                    raise parsing_error(f"[aliases] unknown field [{kind}]")
                idx_names = spec.get("indices") or ([spec["index"]] if "index" in spec else [])
                al_names = spec.get("aliases") or ([spec["alias"]] if "alias" in spec else [])
                if not idx_names:
                    raise ApiError(400, "action_request_validation_exception",
                                   "Validation Failed: 1: One of [index] or [indices] is required;")
                for iexpr in idx_names:
                    for ix in self.resolve(iexpr, allow_no_indices=False):
                        if kind == "remove_index":
                            plan.append((kind, ix, "", {}))
                            continue
                        if not al_names:
                            raise ApiError(400, "action_request_validation_exception",
                                           "Validation Failed: 1: One of [alias] or [aliases] is required;")
                        for al in al_names:
                            if kind == "remove" and not any(fnmatch.fnmatchcase(a, al) for a in ix.aliases):
                                if spec.get("must_exist") is not False:
                                    raise ApiError(404, "aliases_not_found_exception", f"aliases [{al}] missing",
                                                   **{"resource.type": "aliases", "resource.id": al})
                            if kind == "add" and al in self.indices and al not in removed:
                                raise ApiError(400, "invalid_alias_name_exception",
                                               f"Invalid alias name [{al}]: an index or data stream exists with the "
                                               f"same name as the alias", index=al)
                            extra = {k: v for k, v in spec.items() if k in ("filter", "routing", "is_write_index",
                                                                            "index_routing", "search_routing",
                                                                            "is_hidden")}
                            plan.append((kind, ix, al, extra))
            plan.sort(key=lambda p: p[0] != "remove_index")
            for kind, ix, al, extra in plan:
                if kind == "add":
                    ix.aliases[al] = _alias_spec(extra)
                elif kind == "remove":
                    for a in [a for a in ix.aliases if fnmatch.fnmatchcase(a, al)]:
                        del ix.aliases[a]
                elif kind == "remove_index":
                    self.store.delete_index(ix.name, ix.uuid)
                    for vf in ix._vectors.values():
                        vf.close(save=False)
                        vf.discard_snapshot()
                    self.indices.pop(ix.name, None)
                    continue
                ix.save()
        return {"acknowledged": True}

    # ------------------------------------------------------------------ templates
    def _matching_template(self, name: str) -> dict[str, Any] | None:
        best: tuple[int, dict[str, Any]] | None = None
        for tname, t in self.store.kv_list("index_template").items():
            if any(fnmatch.fnmatchcase(name, p) for p in t.get("index_patterns", [])):
                prio = int(t.get("priority", 0) or 0)
                if best is None or prio > best[0]:
                    best = (prio, t)
        return None if best is None else best[1]

    def put_template(self, name: str, body: dict[str, Any], *, create: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict) or "index_patterns" not in body:
            raise ApiError(400, "action_request_validation_exception",
                           "Validation Failed: 1: index patterns are missing;")
        for key in body:
            if key not in ("index_patterns", "template", "priority", "version", "_meta", "composed_of", "data_stream"):
                raise parsing_error(f"[index_template] unknown field [{key}]")
        if body.get("composed_of"):
            raise unsupported("index templates composed_of component templates")
        if body.get("data_stream") is not None:
            raise unsupported("data streams")
        pats = body["index_patterns"]
        body = dict(body, index_patterns=[pats] if isinstance(pats, str) else list(pats))
        t = body.get("template") or {}
        # validate the template's mapping and settings now, as OpenSearch does
        Mapping(t.get("mappings") or {}, version=self.version,
                knn_enabled=str(flatten(t.get("settings") or {}).get("index.knn",
                                flatten(t.get("settings") or {}).get("knn", "false"))).lower() == "true")
        normalise_index_settings(t.get("settings") or {})
        with self.lock:
            existing = self.store.kv_get("index_template", name)
            if create and existing is not None:
                raise bad_request(f"index template [{name}] already exists")
            for other, ot in self.store.kv_list("index_template").items():
                if other != name and int(ot.get("priority", 0) or 0) == int(body.get("priority", 0) or 0):
                    overlap = [p for p in body["index_patterns"] if p in ot.get("index_patterns", [])]
                    if overlap:
                        raise bad_request(
                            f"index template [{name}] has index patterns {body['index_patterns']} matching patterns "
                            f"from existing templates [{other}] with patterns ({other} => {ot['index_patterns']}) "
                            f"that have the same priority [{int(body.get('priority', 0) or 0)}], multiple index "
                            f"templates may not match during index creation, please use a different priority")
            self.store.kv_put("index_template", name, body)
        return {"acknowledged": True}

    def get_templates(self, name: str | None = None) -> dict[str, Any]:
        all_t = self.store.kv_list("index_template")
        if name is None or name in ("*", "_all"):
            sel = all_t
        else:
            sel = {k: v for k, v in all_t.items() if any(fnmatch.fnmatchcase(k, p) for p in name.split(","))}
            if not sel and not any(c in name for c in "*?"):
                raise ApiError(404, "resource_not_found_exception", f"index template matching [{name}] not found")
        return {"index_templates": [{"name": k, "index_template": v} for k, v in sel.items()]}

    def delete_template(self, name: str) -> dict[str, Any]:
        with self.lock:
            if not self.store.kv_delete("index_template", name):
                raise ApiError(404, "index_template_missing_exception", f"index_template [{name}] missing")
        return {"acknowledged": True}

    # ------------------------------------------------------------------ documents: preparation
    def _target_for_write(self, name: str) -> IndexState:
        ix_name = name
        if name not in self.indices:
            aliased = [i for i in self.indices.values() if name in i.aliases]
            if aliased:
                return self.index(name)
            auto = self.settings.get("action.auto_create_index", True)
            if auto is False or str(auto).lower() == "false":
                raise ApiError(404, "index_not_found_exception",
                               f"no such index [{name}] and [action.auto_create_index] is [false]",
                               index=name, **{"resource.id": name, "resource.type": "index_expression",
                                              "index_uuid": "_na_"})
            self.create_index(ix_name, {})
        ix = self.index(ix_name)
        if str(ix.settings.get("index.blocks.write", "false")) == "true" or \
                str(ix.settings.get("index.blocks.read_only", "false")) == "true":
            raise ApiError(403, "cluster_block_exception",
                           f"index [{ix.name}] blocked by: [FORBIDDEN/8/index write (api)];")
        return ix

    def _run_pipelines(self, ix: IndexState, doc_id: str | None, source: dict[str, Any],
                       pipeline: str | None) -> dict[str, Any] | None:
        """Request pipeline (or the index default) then the final pipeline; None when dropped."""
        pid = pipeline if pipeline is not None else ix.settings.get("index.default_pipeline")
        final = ix.settings.get("index.final_pipeline")
        for p in (pid, final):
            if not p or p == "_none":
                continue
            if self.ingest is None:
                raise bad_request(f"pipeline with id [{p}] does not exist")
            result = self.ingest.execute(p, ix.name, doc_id, source)
            if result is None:
                return None
            source = result
        return source

    def _prepare(self, ix: IndexState, doc_id: str, source: Any, source_json: str | None,
                 pre: dict[str, np.ndarray] | None = None) -> _Prepared:
        """Validate one document; ``pre`` holds vectors already validated in a batch (``_bulk``)."""
        if not isinstance(source, dict):
            raise mapper_parsing_doc()
        src_cfg = ix.mapping.source_cfg
        if src_cfg.get("excludes") or src_cfg.get("includes"):
            stored = filter_source(source, src_cfg.get("includes"), src_cfg.get("excludes"))
            source_json = None
        else:
            stored = source
        values, raw_vecs, new_props = ix.mapping.parse(source, doc_id)
        vecs: dict[str, np.ndarray] = {}
        mapping = ix.mapping
        if new_props:
            mapping = Mapping(ix.mapping.to_dict(), version=self.version, knn_enabled=ix.knn_enabled)
            mapping.merge(new_props)
        for path, raw in raw_vecs.items():
            if pre is not None and path in pre and mapping is ix.mapping:
                vecs[path] = pre[path]
                continue
            fd = mapping.fields[path]
            vf = ix.vectors(path)
            try:
                vecs[path] = vf.prepare(raw, path)
            except ApiError as exc:
                preview = str(raw)[:40] + ("..." if len(str(raw)) > 40 else "")
                raise ApiError(400, "mapper_parsing_exception",
                               f"failed to parse field [{path}] of type [{fd.type}] in document with id '{doc_id}'. "
                               f"Preview of field's value: '{preview}'",
                               caused_by={"type": exc.type, "reason": exc.reason}) from None
        if source_json is None:
            source_json = dumps(stored).decode("utf-8")
        return _Prepared(doc_id, stored, source_json, values, vecs, new_props, stored is not source)

    def _apply(self, ix: IndexState, prep: _Prepared, *, op_type: str = "index",
               if_seq_no: int | None = None, if_primary_term: int | None = None,
               version: int | None = None, version_type: str | None = None,
               vec_sink: list[tuple[IndexState, str, int, np.ndarray]] | None = None) -> tuple[dict[str, Any], int]:
        """Store one prepared doc (caller holds the lock and a transaction); returns (result, status).

        ``vec_sink`` defers vector adds so a ``_bulk`` request adds them to FAISS in one batch.
        """
        cur = ix.docs.get(prep.doc_id)
        if op_type == "create" and cur is not None:
            raise version_conflict(ix.name, prep.doc_id,
                                   f"version conflict, document already exists (current version [{cur[1]}])")
        if if_seq_no is not None:
            if cur is None or cur[2] != if_seq_no or (if_primary_term is not None and if_primary_term != 1):
                raise version_conflict(
                    ix.name, prep.doc_id,
                    f"version conflict, required seqNo [{if_seq_no}], primary term [{if_primary_term or 1}]. " +
                    ("but no document was found" if cur is None else
                     f"current document has seqNo [{cur[2]}] and primary term [1]"))
        if version is not None and version_type in ("external", "external_gt", "external_gte"):
            if cur is not None and (version < cur[1] or (version == cur[1] and version_type != "external_gte")):
                raise version_conflict(ix.name, prep.doc_id,
                                       f"version conflict, current version [{cur[1]}] is higher or equal to the one "
                                       f"provided [{version}]")
            new_version = version
        elif version is not None:
            raise unsupported("internal versioning with ?version= (use if_seq_no/if_primary_term)")
        else:
            new_version = 1 if cur is None else cur[1] + 1
        if prep.new_props:
            ix.mapping.merge(prep.new_props)
            ix.save()
        ix.seq_no += 1
        seq = ix.seq_no
        # the stored _source is the source of truth for vectors; keep them apart only if it omits them
        blobs = [(p, v.tobytes()) for p, v in prep.vectors.items()] if prep.source_filtered else []
        rid = self.store.put_doc(ix.uuid, prep.doc_id, new_version, seq, prep.source_json, blobs,
                                 old_rid=cur[0] if cur is not None else None)
        if cur is not None:
            ix.unindex(cur[0])
        ix.docs[prep.doc_id] = (rid, new_version, seq)
        ix.rid_to_id[rid] = prep.doc_id
        ix._index_values(rid, prep.values)
        for path, vec in prep.vectors.items():
            if vec_sink is not None:
                vec_sink.append((ix, path, rid, vec))
                ix.vectors(path).note_write()
            else:
                ix.vectors(path).add(rid, vec)
            ix.present.setdefault(path, set()).add(rid)
        result = {"_index": ix.name, "_id": prep.doc_id, "_version": new_version,
                  "result": "created" if cur is None else "updated", "_shards": dict(WRITE_SHARDS),
                  "_seq_no": seq, "_primary_term": 1}
        return result, 201 if cur is None else 200

    # ------------------------------------------------------------------ documents: API
    def index_doc(self, index: str, doc_id: str | None, source: dict[str, Any], *, op_type: str = "index",
                  pipeline: str | None = None, refresh: bool | str = False, if_seq_no: int | None = None,
                  if_primary_term: int | None = None, version: int | None = None,
                  version_type: str | None = None, source_json: str | None = None) -> dict[str, Any]:
        """Index one document; the result carries ``status`` only via :meth:`index_doc_status`."""
        return self.index_doc_status(index, doc_id, source, op_type=op_type, pipeline=pipeline, refresh=refresh,
                                     if_seq_no=if_seq_no, if_primary_term=if_primary_term, version=version,
                                     version_type=version_type, source_json=source_json)[0]

    def index_doc_status(self, index: str, doc_id: str | None, source: dict[str, Any], *, op_type: str = "index",
                         pipeline: str | None = None, refresh: bool | str = False, if_seq_no: int | None = None,
                         if_primary_term: int | None = None, version: int | None = None,
                         version_type: str | None = None, source_json: str | None = None) -> tuple[dict[str, Any], int]:
        if doc_id is not None:
            _check_doc_id(doc_id)
        if op_type not in ("index", "create"):
            raise bad_request(f"opType must be 'create' or 'index', found: [{op_type}]")
        with self.lock:
            ix = self._target_for_write(index)
        new_source = self._run_pipelines(ix, doc_id, source, pipeline)
        if new_source is None:
            return {"_index": ix.name, "_id": doc_id or new_id(), "_version": -3, "result": "noop",
                    "_shards": {"total": 0, "successful": 0, "failed": 0}}, 200
        if new_source is not source:
            source_json = None
        did = doc_id or new_id()
        with self.lock:
            ix = self.index(ix.name)
            prep = self._prepare(ix, did, new_source, source_json)
            with self.store.transaction():
                result, status = self._apply(ix, prep, op_type=op_type, if_seq_no=if_seq_no,
                                             if_primary_term=if_primary_term, version=version,
                                             version_type=version_type)
        if refresh in (True, "true", ""):
            result["forced_refresh"] = True
        return result, status

    def get_doc(self, index: str, doc_id: str, *, source_includes: Any = None, source_excludes: Any = None,
                fetch_source: bool = True) -> dict[str, Any]:
        with self.lock:
            ix = self.index(index)
            cur = ix.docs.get(doc_id)
            row = self.store.get_doc(ix.uuid, doc_id) if cur is not None else None
        if row is None:
            return {"_index": ix.name, "_id": doc_id, "found": False}
        _rid, ver, seq, src = row
        out: dict[str, Any] = {"_index": ix.name, "_id": doc_id, "_version": ver, "_seq_no": seq,
                               "_primary_term": 1, "found": True}
        if fetch_source:
            source = loads(src)
            if source_includes is not None or source_excludes is not None:
                source = filter_source(source, source_includes, source_excludes)
            out["_source"] = source
        return out

    def delete_doc(self, index: str, doc_id: str, *, refresh: bool | str = False, if_seq_no: int | None = None,
                   if_primary_term: int | None = None) -> dict[str, Any]:
        return self.delete_doc_status(index, doc_id, refresh=refresh, if_seq_no=if_seq_no,
                                      if_primary_term=if_primary_term)[0]

    def delete_doc_status(self, index: str, doc_id: str, *, refresh: bool | str = False,
                          if_seq_no: int | None = None, if_primary_term: int | None = None) -> tuple[dict[str, Any], int]:
        with self.lock:
            ix = self.index(index)
            with self.store.transaction():
                return self._delete(ix, doc_id, if_seq_no=if_seq_no, if_primary_term=if_primary_term)

    def _delete(self, ix: IndexState, doc_id: str, *, if_seq_no: int | None = None,
                if_primary_term: int | None = None) -> tuple[dict[str, Any], int]:
        cur = ix.docs.get(doc_id)
        if if_seq_no is not None and (cur is None or cur[2] != if_seq_no):
            raise version_conflict(ix.name, doc_id, f"version conflict, required seqNo [{if_seq_no}], primary term "
                                   f"[{if_primary_term or 1}]. " + ("but no document was found" if cur is None else
                                   f"current document has seqNo [{cur[2]}] and primary term [1]"))
        ix.seq_no += 1
        if cur is None:
            return ({"_index": ix.name, "_id": doc_id, "_version": 1, "result": "not_found",
                     "_shards": dict(WRITE_SHARDS), "_seq_no": ix.seq_no, "_primary_term": 1}, 404)
        self.store.delete_doc(cur[0])
        # a delete consumes a seq_no but leaves no row: remember the high-water mark (same transaction)
        self.store.kv_put("seq_no", ix.uuid, ix.seq_no)
        ix.unindex(cur[0])
        del ix.docs[doc_id]
        return ({"_index": ix.name, "_id": doc_id, "_version": cur[1] + 1, "result": "deleted",
                 "_shards": dict(WRITE_SHARDS), "_seq_no": ix.seq_no, "_primary_term": 1}, 200)

    def update_doc(self, index: str, doc_id: str, partial: dict[str, Any], *, refresh: bool | str = False,
                   upsert: dict[str, Any] | None = None, doc_as_upsert: bool = False,
                   detect_noop: bool = True) -> dict[str, Any]:
        return self.update_doc_status(index, doc_id, {"doc": partial, "upsert": upsert,
                                                      "doc_as_upsert": doc_as_upsert,
                                                      "detect_noop": detect_noop}, refresh=refresh)[0]

    def update_doc_status(self, index: str, doc_id: str, body: dict[str, Any], *, refresh: bool | str = False,
                          if_seq_no: int | None = None, if_primary_term: int | None = None,
                          source_filter: Any = None) -> tuple[dict[str, Any], int]:
        if not isinstance(body, dict):
            raise body_required()
        for key in body:
            if key not in ("doc", "upsert", "doc_as_upsert", "detect_noop", "script", "scripted_upsert", "_source"):
                raise parsing_error(f"[UpdateRequest] unknown field [{key}]")
        if body.get("script") is not None:
            raise unsupported("scripted updates (painless)")
        partial = body.get("doc")
        upsert = body.get("upsert")
        if partial is None and upsert is None:
            raise ApiError(400, "action_request_validation_exception",
                           "Validation Failed: 1: script or doc is missing;")
        with self.lock:
            ix = self._target_for_write(index) if (upsert is not None or body.get("doc_as_upsert")) \
                else self.index(index)
            cur = ix.docs.get(doc_id)
            if cur is None:
                if upsert is not None or body.get("doc_as_upsert"):
                    src = upsert if upsert is not None else partial
                    prep = self._prepare(ix, doc_id, src, None)
                    with self.store.transaction():
                        return self._apply(ix, prep)
                raise ApiError(404, "document_missing_exception", f"[{doc_id}]: document missing",
                               index=ix.name, shard="0", index_uuid=ix.uuid)
            if if_seq_no is not None and cur[2] != if_seq_no:
                raise version_conflict(ix.name, doc_id, f"version conflict, required seqNo [{if_seq_no}], primary "
                                       f"term [{if_primary_term or 1}]. current document has seqNo [{cur[2]}] and "
                                       f"primary term [1]")
            row = self.store.get_doc(ix.uuid, doc_id)
            assert row is not None
            old = loads(row[3])
            merged = deep_merge(copy.deepcopy(old), partial or {})
            if merged == old and body.get("detect_noop", True) is not False:
                return ({"_index": ix.name, "_id": doc_id, "_version": cur[1], "result": "noop",
                         "_shards": {"total": 0, "successful": 0, "failed": 0}, "_seq_no": cur[2],
                         "_primary_term": 1}, 200)
            prep = self._prepare(ix, doc_id, merged, None)
            with self.store.transaction():
                result, _ = self._apply(ix, prep)
            if body.get("_source") or source_filter:
                result["get"] = {"_seq_no": result["_seq_no"], "_primary_term": 1, "found": True,
                                 "_source": merged}
            return result, 200

    def bulk(self, lines: list[tuple[dict[str, Any], Any, str | None]], *, default_index: str | None = None,
             default_pipeline: str | None = None, refresh: bool | str = False) -> dict[str, Any]:
        """``lines``: (action, source-or-None, raw source JSON or None). Per-item results and errors."""
        t0 = time.perf_counter()
        items: list[dict[str, Any]] = []
        errors = False
        # 1) pipelines run outside the lock (they may call models)
        staged: list[tuple[str, dict[str, Any], Any, str | None, ApiError | None]] = []
        for action, source, raw in lines:
            kind, meta = next(iter(action.items()))
            staged.append((kind, meta, source, raw, None))
        work: list[list[Any]] = []
        chains: dict[int, list[str]] = {}  # work position → pipelines to run (request/default, then final)
        for kind, meta, source, raw, _ in staged:
            index = meta.get("_index") or default_index
            err: ApiError | None = None
            if isinstance(source, ApiError):
                err, source = source, None
                if kind in ("index", "create") and meta.get("_id") is None:
                    # the source is parsed on the shard, after the id is generated: the failure names it
                    meta = {**meta, "_id": new_id()}
            elif index is None:
                err = ApiError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
            elif kind in ("index", "create"):
                pid = meta.get("pipeline", default_pipeline)
                known = self.indices.get(index)
                if known is None and pid is None:
                    # an index created by this request may get a default pipeline from a template
                    try:
                        with self.lock:
                            known = self._target_for_write(index)
                    except ApiError as exc:
                        err = exc
                if err is None and pid is not None or (known is not None and (
                        known.settings.get("index.default_pipeline") not in (None, "_none")
                        or known.settings.get("index.final_pipeline"))):
                    try:
                        with self.lock:
                            ix = self._target_for_write(index)
                        first = pid if pid is not None else ix.settings.get("index.default_pipeline")
                        chain = [p for p in (first, ix.settings.get("index.final_pipeline")) if p and p != "_none"]
                        if chain and self.ingest is None:
                            raise bad_request(f"pipeline with id [{chain[0]}] does not exist")
                        if chain:
                            chains[len(work)] = chain
                    except ApiError as exc:
                        err = exc
            work.append([kind, meta, index, source, raw, err])
        # documents go through their pipelines grouped by pipeline id, so processors that batch
        # (text_embedding's batch_size) see the whole request, as IngestService.executeBulkRequest does
        for step in (0, 1):
            groups: dict[str, list[int]] = {}
            for pos, chain in chains.items():
                if len(chain) > step and work[pos][0] in ("index", "create") and work[pos][5] is None:
                    groups.setdefault(chain[step], []).append(pos)
            for pid, positions in groups.items():
                results = self.ingest.execute_batch(
                    pid, [(work[pos][2], work[pos][1].get("_id"), work[pos][3]) for pos in positions])
                for pos, result in zip(positions, results):
                    if isinstance(result, ApiError):
                        work[pos][5] = result
                    elif result is None:
                        work[pos][0] = "dropped_create" if work[pos][0] == "create" else "dropped"
                    elif result is not work[pos][3]:
                        work[pos][3], work[pos][4] = result, None
        # 2) one transaction for the whole request; errors are per item
        sink: list[tuple[IndexState, str, int, np.ndarray]] = []
        # write targets resolved once per index name and request (nothing else changes them while
        # this request holds the engine lock; a failed lookup is not cached, so its error repeats per item)
        targets: dict[str, IndexState] = {}
        with self.lock, self.store.transaction(), _gc_paused():
            pre_vecs = self._batch_vectors(work)
            for n_item, (kind, meta, index, source, raw, err) in enumerate(work):
                op = _DROPPED_OP.get(kind, kind)
                doc_id = meta.get("_id")
                try:
                    if err is not None:
                        raise err
                    if not _BULK_META_KEYS.issuperset(meta):
                        key = next(k for k in meta if k not in _BULK_META_KEYS)
                        raise bad_request(f"Action/metadata line [1] contains an unknown parameter [{key}]")
                    if kind in ("dropped", "dropped_create"):
                        # TransportBulkAction.markItemAsDropped: the request's op type, a placeholder id
                        items.append({"create" if kind == "dropped_create" else "index": {
                            "_index": index, "_id": doc_id if doc_id is not None else "auto-generated",
                            "_version": -3, "result": "noop", "_shards": {"total": 0, "successful": 0, "failed": 0},
                            "status": 200}})
                        continue
                    if kind in ("index", "create"):
                        if doc_id is not None:
                            _check_doc_id(str(doc_id))
                        ix = targets.get(index)  # type: ignore[assignment]
                        if ix is None or self.indices.get(ix.name) is not ix:
                            ix = targets[index] = self._target_for_write(index)
                        if doc_id is None:
                            doc_id = new_id()
                        prep = self._prepare(ix, str(doc_id), source, raw, pre_vecs.get(n_item))
                        res, status = self._apply(ix, prep, op_type=op, if_seq_no=meta.get("if_seq_no"),
                                                  if_primary_term=meta.get("if_primary_term"),
                                                  version=meta.get("version"), version_type=meta.get("version_type"),
                                                  vec_sink=sink)
                    elif kind == "delete":
                        if doc_id is None:
                            raise ApiError(400, "action_request_validation_exception",
                                           "Validation Failed: 1: id is missing;")
                        ix = self.index(index)
                        res, status = self._delete(ix, str(doc_id), if_seq_no=meta.get("if_seq_no"))
                    elif kind == "update":
                        # an update adds its vector at once: earlier deferred vectors (smaller rids) go first
                        self._flush_vectors(sink)
                        sink.clear()
                        if doc_id is None:
                            raise ApiError(400, "action_request_validation_exception",
                                           "Validation Failed: 1: id is missing;")
                        res, status = self.update_doc_status(index, str(doc_id), source,
                                                             if_seq_no=meta.get("if_seq_no"))
                    else:
                        raise bad_request(f"Malformed action/metadata line [1], expected one of [create, delete, "
                                          f"index, update] but found [{kind}]")
                    res = dict(res)
                    res["status"] = status
                    items.append({op: res})
                except ApiError as exc:
                    errors = True
                    items.append({op: {
                        "_index": index, "_id": doc_id, "status": exc.status, "error": exc.item_error()}})
            self._flush_vectors(sink)
        return {"took": int((time.perf_counter() - t0) * 1000), "errors": errors, "items": items}

    def _batch_vectors(self, work: list[Any]) -> dict[int, dict[str, np.ndarray]]:
        """Vectors of a ``_bulk`` request's index/create items converted and validated in one numpy
        call per (index, top-level field): item number → {path: vector}. Items left out (invalid
        values, nested paths, indices not loaded yet) go through per-document ``prepare``."""
        groups: dict[tuple[str, str], tuple[VectorField, list[int], list[Any]]] = {}
        vec_paths: dict[str, list[str]] = {}  # per index: building the field dict per doc cost ~2 µs
        for n, (kind, _meta, index, source, _raw, err) in enumerate(work):
            if err is not None or kind not in ("index", "create") or not isinstance(source, dict):
                continue
            ix = self.indices.get(index) if index is not None else None
            if ix is None or not ix.loaded:
                continue
            paths = vec_paths.get(ix.name)
            if paths is None:
                paths = vec_paths[ix.name] = list(ix.mapping.vector_fields())
            for path in paths:
                val = source.get(path)
                if type(val) is not list or "." in path:
                    continue
                g = groups.get((ix.name, path))
                if g is None:
                    g = groups[(ix.name, path)] = (ix.vectors(path), [], [])
                if len(val) != g[0].dim:
                    continue
                g[1].append(n)
                g[2].append(val)
        out: dict[int, dict[str, np.ndarray]] = {}
        for (_, path), (vf, items, rows) in groups.items():
            res = vf.prepare_batch(rows)
            if res is None:
                continue
            arr, ok = res
            for n, row, good in zip(items, arr, ok.tolist()):
                if good:
                    out.setdefault(n, {})[path] = row
        return out

    @staticmethod
    def _flush_vectors(sink: list[tuple[IndexState, str, int, np.ndarray]]) -> None:
        """Add a request's vectors per field in one batch, skipping versions replaced in the same request."""
        groups: dict[tuple[int, str], tuple[IndexState, list[int], list[np.ndarray]]] = {}
        for ix, path, rid, vec in sink:
            if rid not in ix.rid_to_id:
                continue
            g = groups.setdefault((id(ix), path), (ix, [], []))
            g[1].append(rid)
            g[2].append(vec)
        for (_, path), (ix, rids, vecs) in groups.items():
            ix.vectors(path).add_many(rids, np.stack(vecs))

    def mget(self, body: dict[str, Any], *, index: str | None = None, source_includes: Any = None,
             source_excludes: Any = None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise body_required()
        reqs: list[dict[str, Any]] = []
        if "docs" in body:
            reqs = list(body["docs"])
        elif "ids" in body:
            reqs = [{"_id": i} for i in body["ids"]]
        else:
            raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: no documents to get;")
        out = []
        for r in reqs:
            idx = r.get("_index") or index
            did = str(r.get("_id"))
            if idx is None:
                raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing for doc 0;")
            try:
                src = r.get("_source")
                inc, exc = source_includes, source_excludes
                fetch = True
                if src is False:
                    fetch = False
                elif isinstance(src, (list, str)):
                    inc = src
                elif isinstance(src, dict):
                    inc, exc = src.get("includes", src.get("include")), src.get("excludes", src.get("exclude"))
                out.append(self.get_doc(idx, did, source_includes=inc, source_excludes=exc, fetch_source=fetch))
            except ApiError as e:
                out.append({"_index": idx, "_id": did, "error": e.error_object()})
        return {"docs": out}

    def delete_by_query(self, index: str, query: dict[str, Any] | None) -> dict[str, Any]:
        t0 = time.perf_counter()
        q = parse_query(query or {"match_all": {}}, predict=self._predict_fn())
        deleted = 0
        with self.lock:
            targets = self.resolve(index)
            with self.store.transaction():
                for ix in targets:
                    rids = q.docs(ix)
                    for rid in sorted(rids):
                        did = ix.rid_to_id.get(rid)
                        if did is not None:
                            self._delete(ix, did)
                            deleted += 1
        return {"took": int((time.perf_counter() - t0) * 1000), "timed_out": False, "total": deleted,
                "deleted": deleted, "batches": 1 if deleted else 0, "version_conflicts": 0, "noops": 0,
                "retries": {"bulk": 0, "search": 0}, "throttled_millis": 0, "requests_per_second": -1.0,
                "throttled_until_millis": 0, "failures": []}

    # ------------------------------------------------------------------ search
    def _predict_fn(self) -> Callable[[str, dict[str, Any]], dict[str, Any]] | None:
        if self.ml is None:
            return None
        ml = self.ml
        return lambda model_id, body: ml.predict(model_id, body)

    def count(self, index_expr: str | None, body: dict[str, Any] | None, params: dict[str, str] | None = None) -> dict[str, Any]:
        body = body or {}
        if not isinstance(body, dict):
            raise parsing_error("request body must be an object")
        for key in body:
            if key not in ("query",):
                raise parsing_error(f"request does not support [{key}]")
        params = params or {}
        q = parse_query(body.get("query", {"match_all": {}}), predict=self._predict_fn())
        if isinstance(q, Hybrid):
            raise bad_request("hybrid query is not supported by _count")
        with self.lock:
            targets = self.resolve(index_expr, ignore_unavailable=params.get("ignore_unavailable") == "true")
            af = {name: parse_query({"bool": {"should": fs, "minimum_should_match": 1}})
                  for name, fs in self.alias_filters(index_expr, targets).items()}
            n = sum(len(q.docs(ix) & af[ix.name].docs(ix)) if ix.name in af else len(q.docs(ix)) for ix in targets)
        return {"count": n, "_shards": {"total": len(targets), "successful": len(targets), "skipped": 0, "failed": 0}}

    def search(self, index_expr: str | None, body: dict[str, Any] | None, params: dict[str, Any] | None = None,
               *, raw_source: bool = False) -> dict[str, Any]:
        """A full ``_search`` response. ``raw_source`` returns stored sources unparsed (REST fast path)."""
        t0 = time.perf_counter()
        params = dict(params or {})
        body = dict(body or {})
        if not isinstance(body, dict):
            raise parsing_error("request body must be an object")
        with self.lock:
            targets = self.resolve(index_expr, ignore_unavailable=params.get("ignore_unavailable") == "true",
                                   expand_hidden=params.get("expand_wildcards") in ("all", "hidden"))
        pipeline = None
        if self.search_pipelines is not None:
            idx_settings = dict(targets[0].settings) if len(targets) == 1 else {}
            pipeline = self.search_pipelines.resolve(idx_settings, params, body)
        elif params.get("search_pipeline") not in (None, "_none") or isinstance(body.get("search_pipeline"), dict):
            raise bad_request(f"Pipeline {params.get('search_pipeline')} is not defined")
        elif len(targets) == 1 and targets[0].settings.get("index.search.default_pipeline") not in (None, "_none"):
            raise bad_request(f"Pipeline {targets[0].settings['index.search.default_pipeline']} is not defined")
        body.pop("search_pipeline", None)
        if pipeline is not None:
            body = pipeline.process_request(body, index_expr)
        response = self._execute_search(targets, body, params, pipeline, raw_source=raw_source,
                                        alias_filters=self.alias_filters(index_expr, targets))
        if pipeline is not None:
            request = dict(body)
            if "size" in params:  # truncate_hits without target_size falls back to the request's size
                request["size"] = _int_param(params["size"], "size")
            response = pipeline.process_response(response, request)
        response["took"] = int((time.perf_counter() - t0) * 1000)
        return response

    def _execute_search(self, targets: list[IndexState], body: dict[str, Any], params: dict[str, Any],
                        pipeline: Any, *, raw_source: bool,
                        alias_filters: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
        allowed = {"query", "size", "from", "_source", "sort", "track_total_hits", "min_score", "timeout",
                   "post_filter", "version", "seq_no_primary_term", "track_scores", "stored_fields", "explain",
                   "terminate_after", "profile", "ext", "search_after", "aggs", "aggregations", "highlight",
                   "collapse", "suggest", "rescore", "docvalue_fields", "fields", "script_fields", "indices_boost",
                   "pit", "slice", "stats", "verbose_pipeline"}
        for key in body:
            if key not in allowed:
                raise parsing_error(f"Unknown key for a {'START_OBJECT' if isinstance(body[key], dict) else 'VALUE_STRING'} in [{key}].")
        for key in ("aggs", "aggregations", "highlight", "collapse", "suggest", "rescore", "search_after",
                    "script_fields", "pit", "slice", "indices_boost"):
            if body.get(key):
                raise unsupported(key if key != "aggs" else "aggregations")
        if body.get("explain") or params.get("explain") == "true":
            raise unsupported("explain")
        if body.get("profile"):
            raise unsupported("profile")
        if "q" in params:
            raise unsupported("URI search (q=)")
        size = _int_param(params.get("size", body.get("size", 10)), "size")
        from_ = _int_param(params.get("from", body.get("from", 0)), "from")
        if size < 0:
            raise bad_request(f"[size] parameter cannot be negative, found [{size}]")
        if from_ < 0:
            raise bad_request(f"[from] parameter cannot be negative, found [{from_}]")
        window = min((int(ix.settings.get("index.max_result_window", MAX_RESULT_WINDOW)) for ix in targets),
                     default=MAX_RESULT_WINDOW)
        if from_ + size > window:
            raise ApiError(400, "illegal_argument_exception",
                           f"Result window is too large, from + size must be less than or equal to: [{window}] but "
                           f"was [{from_ + size}]. See the scroll api for a more efficient way to request large data "
                           f"sets. This limit can be set by changing the [index.max_result_window] index level setting.")
        tth = params.get("track_total_hits", body.get("track_total_hits", True))
        if isinstance(tth, str):
            tth = True if tth == "true" else False if tth == "false" else int(tth)
        sort_spec = _parse_sort(params.get("sort"), body.get("sort"))
        q = parse_query(body.get("query", {"match_all": {}}), predict=self._predict_fn())
        post = parse_query(body["post_filter"], predict=self._predict_fn()) if body.get("post_filter") else None
        min_score = body.get("min_score")
        afilt = {name: parse_query({"bool": {"should": fs, "minimum_should_match": 1}})
                 for name, fs in (alias_filters or {}).items()}

        def allowed(ix: IndexState, sc: dict[int, float]) -> dict[int, float]:
            f = afilt.get(ix.name)
            if f is None:
                return sc
            keep = f.docs(ix)
            return {r: s for r, s in sc.items() if r in keep}
        scored: list[tuple[float, int, int]] = []  # (score, index position, rid)
        with self.lock:
            hybrid_raw = False
            if isinstance(q, Hybrid):
                depth = _hybrid_depth(q, from_, size, window)
                per_shard: list[list[list[tuple[int, float]]]] = []  # [target][sub-query] → (rid, score), best first
                for pos, ix in enumerate(targets):
                    keep = q.filter.docs(ix) if q.filter is not None else None
                    pd = post.docs(ix) if post is not None else None
                    subs = []
                    for sub in q.queries:
                        sc = allowed(ix, sub.scores(ix))
                        hits = [(r, s) for r, s in sc.items() if s > 0 and (keep is None or r in keep)
                                and (pd is None or r in pd)]
                        hits.sort(key=lambda x: (-x[1], x[0]))
                        subs.append(hits[:depth])
                    per_shard.append(subs)
                if pipeline is not None and pipeline.has_hybrid_combiner:
                    per_sub: list[list[tuple[tuple[int, int], float]]] = []
                    for i in range(len(q.queries)):
                        res = [((pos, r), s) for pos, subs in enumerate(per_shard) for r, s in subs[i]]
                        res.sort(key=lambda x: (-x[1], x[0]))
                        per_sub.append(res)
                    combined = pipeline.combine_hybrid(per_sub)
                    scored = [(float(s), key[0], key[1]) for key, s in combined]
                    if min_score is not None:
                        scored = [t for t in scored if t[0] >= float(min_score)]
                else:
                    if sort_spec:
                        raise unsupported("sort in a hybrid query without a normalization-processor or "
                                          "score-ranker-processor search pipeline")
                    hybrid_raw = True
                    raw_page, raw_total, raw_max = _hybrid_raw_results(per_shard, from_, size)
            else:
                for pos, ix in enumerate(targets):
                    sc = allowed(ix, q.scores(ix))
                    if post is not None:
                        pd = post.docs(ix)
                        sc = {r: s for r, s in sc.items() if r in pd}
                    if min_score is not None:
                        ms = float(min_score)
                        sc = {r: s for r, s in sc.items() if s >= ms}
                    scored.extend((s, pos, r) for r, s in sc.items())
            total = len(scored)
            sort_values: dict[tuple[int, int], list[Any]] = {}
            want = from_ + size
            if hybrid_raw:
                total, page, score_visible = raw_total, raw_page, True
            elif sort_spec and not all(f == "_score" for f, _, _ in sort_spec):
                keys = []
                for s, pos, rid in scored:
                    vals, key = _sort_key(targets[pos], rid, s, sort_spec)
                    sort_values[(pos, rid)] = vals
                    keys.append((key, pos, rid, s))
                keys.sort(key=lambda x: (x[0], x[1], x[2]))
                page = [(s, pos, rid) for _, pos, rid, s in keys[from_:want]]
                track_scores = bool(body.get("track_scores"))
                score_visible = track_scores
            else:
                asc = bool(sort_spec) and sort_spec[0][1] == "asc"
                if isinstance(q, Hybrid):
                    top = scored[:want]
                elif asc:
                    top = heapq.nsmallest(want, scored, key=lambda t: (t[0], t[1], t[2]))
                else:
                    top = heapq.nsmallest(want, scored, key=lambda t: (-t[0], t[1], t[2]))
                page = top[from_:want]
                if sort_spec:
                    for s, pos, rid in page:
                        sort_values[(pos, rid)] = [s]
                score_visible = True
            max_score = max((t[0] for t in scored), default=None) if score_visible and size > 0 else None
            if hybrid_raw:
                max_score = raw_max
            by_index: dict[int, list[int]] = {}
            for _, pos, rid in page:
                by_index.setdefault(pos, []).append(rid)
            src_param = _source_param(body.get("_source"), params)
            fetched: dict[tuple[int, int], tuple[str, int, int, str]] = {}
            need_rows = src_param is not False or body.get("version") or params.get("version") == "true" \
                or body.get("seq_no_primary_term") or params.get("seq_no_primary_term") == "true"
            for pos, rids in by_index.items():
                if need_rows:
                    for rid, row in self.store.sources(rids).items():
                        fetched[(pos, rid)] = row
                else:  # ids are in memory: no storage read when no _source/version is asked for
                    id_of = targets[pos].rid_to_id
                    for rid in rids:
                        if rid in id_of:
                            fetched[(pos, rid)] = (id_of[rid], 0, 0, "")
        hits = []
        # per-request flags hoisted out of the per-hit loop (it runs k times per k-NN query)
        want_version = body.get("version") or params.get("version") == "true"
        want_seq_no = body.get("seq_no_primary_term") or params.get("seq_no_primary_term") == "true"
        for s, pos, rid in page:
            row = fetched.get((pos, rid))
            if row is None:
                continue
            did, ver, seq, src = row
            hit: dict[str, Any] = {"_index": targets[pos].name, "_id": did,
                                   "_score": float(s) if score_visible else None}
            if want_version:
                hit["_version"] = ver
            if want_seq_no:
                hit["_seq_no"] = seq
                hit["_primary_term"] = 1
            if src_param is not False:
                if src_param is True:
                    hit["_source"] = RawJSON(src) if raw_source else loads(src)
                else:
                    hit["_source"] = filter_source(loads(src), src_param[0], src_param[1])
            if (pos, rid) in sort_values:
                hit["sort"] = sort_values[(pos, rid)]
            hits.append(hit)
        hits_obj: dict[str, Any] = {}
        if tth is not False:
            limit = None if tth is True else int(tth)
            if limit is None:
                limit = MAX_RESULT_WINDOW if "track_total_hits" not in body and "track_total_hits" not in params \
                    else None
            if tth is True and ("track_total_hits" in body or "track_total_hits" in params):
                limit = None
            if limit is not None and total > limit:
                hits_obj["total"] = {"value": limit, "relation": "gte"}
            else:
                hits_obj["total"] = {"value": total, "relation": "eq"}
        if params.get("rest_total_hits_as_int") in ("true", "") and "total" in hits_obj:
            hits_obj["total"] = hits_obj["total"]["value"]
        hits_obj["max_score"] = max_score
        hits_obj["hits"] = hits
        n = len(targets)
        return {"took": 0, "timed_out": False,
                "_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0}, "hits": hits_obj}


# ---------------------------------------------------------------------------------------- helpers
_DROPPED_OP = {"dropped_create": "create", "dropped": "index"}
_BULK_META_KEYS = frozenset(("_index", "_id", "pipeline", "routing", "if_seq_no", "if_primary_term", "version",
                             "version_type", "require_alias", "retry_on_conflict", "_source", "dynamic_templates"))
_gc_lock = threading.Lock()
_gc_state = {"holders": 0, "was_enabled": False}


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a ``_bulk`` request is applied: the request allocates
    hundreds of thousands of containers, and the collections they trigger rescan every long-lived
    posting (a third of the CPU time measured); reference counting still frees what the request drops."""
    with _gc_lock:
        if _gc_state["holders"] == 0:
            _gc_state["was_enabled"] = gc.isenabled()
            gc.disable()
        _gc_state["holders"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["holders"] -= 1
            if _gc_state["holders"] == 0 and _gc_state["was_enabled"]:
                gc.enable()
# neural-search HybridSearchResultFormatUtil: float32 magic scores of the raw hybrid result format,
# as a client parses them from OpenSearch's JSON (Float.toString: -9.549512E9, -4.4224404E9)
HYBRID_START_STOP = float(str(np.float32(-9549511920.4881596047)))
HYBRID_DELIMITER = float(str(np.float32(-4422440593.9791198149)))


def _hybrid_depth(q: Any, from_: int, size: int, window: int) -> int:
    """Hits collected per sub-query and shard (HybridCollectorManager.getSubqueryResultsRetrievalSize)."""
    depth = q.pagination_depth
    if depth is None:
        if from_ > 0:
            raise bad_request("pagination_depth param is missing in the search request")
        return size
    if depth < 0:
        raise bad_request("pagination_depth should be greater than 0")
    if depth > window:
        raise bad_request("pagination_depth should be less than or equal to index.max_result_window setting")
    return depth


def _hybrid_raw_results(per_shard: list[list[list[tuple[int, float]]]], from_: int,
                        size: int) -> tuple[list[tuple[float, int, int]], int, float]:
    """A hybrid query's hits when no search pipeline combines them: neural-search's compound format.

    Each shard returns start, then per sub-query a delimiter and its hits, then stop; the marker
    elements carry magic scores and the first hit's document. One shard: the first ``size`` elements
    (the plugin resets ``from`` to 0 on a single shard). Several: Lucene's ``TopDocs.merge`` (k-way by
    score, ties to the lower shard), then ``from``/``size``. Returns (page, total, max_score).
    """
    lists: list[list[tuple[float, int, int]]] = []
    total = 0
    max_score = 0.0
    for pos, subs in enumerate(per_shard):
        first = next((hits[0][0] for hits in subs if hits), None)
        if first is None:
            lists.append([])
            continue
        out = [(HYBRID_START_STOP, pos, first)]
        for hits in subs:
            out.append((HYBRID_DELIMITER, pos, first))
            out.extend((float(s), pos, r) for r, s in hits)
        out.append((HYBRID_START_STOP, pos, first))
        lists.append(out)
        total += len({r for hits in subs for r, _ in hits})
        max_score = max([max_score] + [hits[0][1] for hits in subs if hits])
    if len(lists) == 1:
        return lists[0][:size], total, max_score
    merged: list[tuple[float, int, int]] = []
    heads = [0] * len(lists)
    while len(merged) < from_ + size:
        best = None
        for pos, lst in enumerate(lists):
            if heads[pos] < len(lst) and (best is None or lst[heads[pos]][0] > lists[best][heads[best]][0]):
                best = pos
        if best is None:
            break
        merged.append(lists[best][heads[best]])
        heads[best] += 1
    return merged[from_:], total, max_score

def mapper_parsing_doc() -> ApiError:
    return ApiError(400, "mapper_parsing_exception", "failed to parse",
                    caused_by={"type": "not_x_content_exception",
                               "reason": "Compressor detection can only be called on some xcontent bytes or "
                                         "compressed xcontent bytes"})


def mapper_parsing_root(key: str, value: Any) -> ApiError:
    return ApiError(400, "mapper_parsing_exception",
                    f"Root mapping definition has unsupported parameters:  [{key} : {value}]")


def _check_index_name(name: str, *, system: bool = False) -> None:
    def bad(why: str) -> ApiError:
        return ApiError(400, "invalid_index_name_exception", f"Invalid index name [{name}], {why}",
                        index=name, index_uuid="_na_")

    if not name:
        raise bad("must not be empty")
    if name != name.lower():
        raise bad("must be lowercase")
    if name.startswith(("_", "-", "+")):
        raise bad("must not start with '_', '-', or '+'")
    if name in (".", ".."):
        raise bad("must not be '.' or '..'")
    for ch in '\\/*?"<>| ,#:':
        if ch in name:
            raise bad('must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?]')
    if len(name.encode()) > 255:
        raise bad("index name is too long, (" + str(len(name.encode())) + " > 255)")


def _check_doc_id(doc_id: str) -> None:
    if len(doc_id.encode()) > 512:
        raise ApiError(400, "action_request_validation_exception",
                       f"Validation Failed: 1: id [{doc_id}] is too long, must be no longer than 512 bytes but was: "
                       f"{len(doc_id.encode())};")
    if doc_id == "":
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: if _id is specified it must not be empty;")


def _alias_spec(spec: Any) -> dict[str, Any]:
    spec = dict(spec or {})
    out: dict[str, Any] = {}
    if spec.get("filter"):
        parse_query(spec["filter"])  # validate now, as OpenSearch does
        out["filter"] = spec["filter"]
    for k in ("index_routing", "search_routing", "is_write_index", "is_hidden"):
        if k in spec:
            out[k] = spec[k]
    if "routing" in spec:
        out.setdefault("index_routing", str(spec["routing"]))
        out.setdefault("search_routing", str(spec["routing"]))
    return out


def _merge_mappings(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if k == "properties":
            out.setdefault("properties", {}).update(copy.deepcopy(v))
        else:
            out[k] = copy.deepcopy(v)
    return out


def deep_merge(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = v
    return dst


def _patterns(x: Any) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [p for p in x.split(",") if p]
    return [str(p) for p in x]


def filter_source(source: dict[str, Any], includes: Any, excludes: Any) -> dict[str, Any]:
    """OpenSearch ``_source`` filtering with wildcards on dotted paths."""
    inc, exc = _patterns(includes), _patterns(excludes)

    def keep(path: str, is_obj: bool) -> bool | None:
        if any(fnmatch.fnmatchcase(path, p) or (p.endswith(".*") is False and path.startswith(p + "."))
               for p in exc):
            return False
        if not inc:
            return True
        if any(fnmatch.fnmatchcase(path, p) or path.startswith(p + ".") for p in inc):
            return True
        if is_obj and any(p.startswith(path + ".") or ("*" in p and fnmatch.fnmatchcase(path + ".x", p.split("*")[0] + "*"))
                          for p in inc):
            return None  # descend
        return False

    def walk(obj: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            path = prefix + k
            decision = keep(path, isinstance(v, dict))
            if decision is True:
                if isinstance(v, dict) and exc:
                    out[k] = walk(v, path + ".")
                else:
                    out[k] = v
            elif decision is None and isinstance(v, dict):
                sub = walk(v, path + ".")
                if sub:
                    out[k] = sub
        return out

    return walk(source, "")


def _source_param(body_src: Any, params: dict[str, Any]) -> Any:
    """True (whole source), False, or (includes, excludes)."""
    if "_source" in params:
        v = params["_source"]
        if v in ("false",):
            return False
        if v not in ("true", ""):
            body_src = v
        else:
            body_src = True
    inc = params.get("_source_includes")
    exc = params.get("_source_excludes")
    if inc or exc:
        return (inc, exc)
    if body_src is None or body_src is True:
        return True
    if body_src is False:
        return False
    if isinstance(body_src, (str, list)):
        return (body_src, None)
    if isinstance(body_src, dict):
        return (body_src.get("includes", body_src.get("include")), body_src.get("excludes", body_src.get("exclude")))
    raise parsing_error("[_source] must be a boolean, string, array or object")


def _int_param(v: Any, name: str) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise bad_request(f"Failed to parse int parameter [{name}] with value [{v}]") from None


def _parse_sort(param: str | None, spec: Any) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    items: list[Any] = []
    if param:
        for part in param.split(","):
            f, _, o = part.partition(":")
            items.append({f: o or ("desc" if f == "_score" else "asc")})
    elif spec is not None:
        items = spec if isinstance(spec, list) else [spec]
    for it in items:
        if isinstance(it, str):
            out.append((it, "desc" if it == "_score" else "asc", {}))
        elif isinstance(it, dict) and len(it) == 1:
            f, v = next(iter(it.items()))
            if isinstance(v, str):
                order, opts = v, {}
            elif isinstance(v, dict):
                opts = dict(v)
                order = opts.pop("order", "desc" if f == "_score" else "asc")
                for k in opts:
                    if k not in ("missing", "unmapped_type", "mode", "format", "numeric_type"):
                        raise unsupported(f"sort option [{k}]")
            else:
                raise parsing_error(f"[sort] malformed for field [{f}]")
            if order not in ("asc", "desc"):
                raise parsing_error(f"[sort] unknown order [{order}]")
            out.append((f, order, opts))
        else:
            raise parsing_error("[sort] malformed")
    return out


class _Rev:
    """Inverts ordering of a value for descending sorts."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: "_Rev") -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rev) and other.v == self.v


def _sort_key(ix: IndexState, rid: int, score: float, spec: list[tuple[str, str, dict[str, Any]]]) -> tuple[list[Any], tuple[Any, ...]]:
    shown: list[Any] = []
    key: list[Any] = []
    for field, order, opts in spec:
        if field == "_score":
            shown.append(score)
            key.append((0, -score if order == "desc" else score))
            continue
        if field == "_doc":
            shown.append(rid)
            key.append((0, rid if order == "asc" else -rid))
            continue
        fd = ix.mapping.fields.get(field)
        if fd is None:
            if "unmapped_type" in opts:
                shown.append(None)
                key.append((1, 0))
                continue
            raise ApiError(400, "query_shard_exception", f"No mapping found for [{field}] in order to sort on",
                           index=ix.name, index_uuid=ix.uuid)
        if fd.type == "text":
            raise bad_request(
                f"Text fields are not optimised for operations that require per-document field data like "
                f"aggregations and sorting, so these operations are disabled by default. Please use a keyword field "
                f"instead. Alternatively, set fielddata=true on [{field}] in order to load field data by uninverting "
                f"the inverted index. Note that this can use significant memory.")
        vals = ix.exact(field).values.get(rid)
        if not vals:
            missing_first = opts.get("missing") == "_first"
            shown.append(None)
            key.append((-1 if missing_first else 1, 0))
            continue
        v = min(vals) if order == "asc" else max(vals)
        if fd.type == "date" or fd.type in ("long", "integer", "short", "byte"):
            v = int(v)
        elif fd.type == "boolean":
            v = 1 if v else 0
        shown.append(v)
        key.append((0, v if order == "asc" else _Rev(v)))
    return shown, tuple(key)
