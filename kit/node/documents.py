"""The engine's document side: index, get, update, delete, ``_bulk``, ``_mget``, delete-by-query.

Writes go to SQLite first (the source of truth) and then to the in-memory search structures, in one
transaction under the engine lock; ingest pipelines run before, outside the lock (they may call models).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import sqlite3
import threading
import time
from typing import Any, Iterator

import numpy as np

from kit.node.errors import (
    ApiError,
    bad_request,
    body_required,
    parsing_error,
    unsupported,
    version_conflict,
)
from kit.node.index_state import IndexState, new_id
from kit.node.indices import Indices
from kit.node.jsonutil import dumps, loads
from kit.node.mapping import Mapping
from kit.node.query import parse_query
from kit.node.source_filter import filter_source
from kit.node.vectors import VectorField

__all__ = ["Documents", "deep_merge", "mapper_parsing_doc", "with_forced_refresh", "write_shards"]

log = logging.getLogger(__name__)

GC_DELETES_S = 60.0  # index.gc_deletes: how long a delete's version outlives the document (LiveVersionMap)


def write_shards(ix: IndexState) -> dict[str, int]:
    """A write's ``_shards``: the primary and its replicas (unassigned on one node, so never successful)."""
    return {"total": 1 + ix.replicas(), "successful": 1, "failed": 0}


def with_forced_refresh(result: dict[str, Any]) -> dict[str, Any]:
    """``forced_refresh: true`` where DocWriteResponse puts it: right after ``result``."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        out[key] = value
        if key == "result":
            out["forced_refresh"] = True
    return out


def _forces_refresh(refresh: bool | str) -> bool:
    return refresh in (True, "true", "")


class Documents(Indices):
    """Document reads and writes (mixed into :class:`kit.node.engine.Engine`)."""

    @contextlib.contextmanager
    def _durable(self) -> Iterator[None]:
        """One storage transaction; if it fails (disk full, a locked database), the in-memory indices
        go back to what SQLite holds, so a search never sees what was not stored. Caller holds the lock."""
        before = {name: (ix, ix.seq_no) for name, ix in self.indices.items()}
        try:
            with self.store.transaction():
                yield
        except (sqlite3.Error, OSError) as exc:
            self._recover(before)
            log.error("a write failed and was rolled back: %s", exc)
            raise ApiError(500, "exception", f"the write was not stored: {exc}") from None

    def _recover(self, before: dict[str, tuple[IndexState, int]]) -> None:
        stored = {name: (uid, meta) for name, uid, meta in self.store.load_indices()}
        for name, ix in list(self.indices.items()):
            prev = before.get(name)
            if prev is not None and prev[0] is ix and prev[1] == ix.seq_no and name in stored:
                continue  # untouched by the failed transaction
            for vf in ix._vectors.values():
                vf.close(save=False)
            if name not in stored:  # created by the failed transaction
                del self.indices[name]
                continue
            uid, meta = stored[name]
            self.indices[name] = IndexState(self, name, uid, meta)  # rebuilt from SQLite on next use

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

    def _doc_index(self, name: str) -> IndexState:
        """The index of a single-document read or delete: a missing one is an ``index_expression``."""
        try:
            return self.index(name)
        except ApiError as exc:
            if exc.type == "index_not_found_exception":
                exc.extra["resource.type"] = "index_expression"
            raise

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
                # KNNVectorFieldMapper previews the parser's current text: null on an array's start token
                preview = "null" if isinstance(raw, list) else str(raw)[:40] + ("..." if len(str(raw)) > 40 else "")
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
            raise version_conflict(ix.name, prep.doc_id, index_uuid=ix.uuid, reason=
                                   f"version conflict, document already exists (current version [{cur[1]}])")
        if if_seq_no is not None:
            if cur is None or cur[2] != if_seq_no or (if_primary_term is not None and if_primary_term != 1):
                raise version_conflict(
                    ix.name, prep.doc_id, index_uuid=ix.uuid, reason=
                    f"version conflict, required seqNo [{if_seq_no}], primary term [{if_primary_term or 1}]. " +
                    ("but no document was found" if cur is None else
                     f"current document has seqNo [{cur[2]}] and primary term [1]"))
        if version is not None and version_type in ("external", "external_gt", "external_gte"):
            if cur is not None and (version < cur[1] or (version == cur[1] and version_type != "external_gte")):
                raise version_conflict(ix.name, prep.doc_id, index_uuid=ix.uuid, reason=
                                       f"version conflict, current version [{cur[1]}] is higher or equal to the one "
                                       f"provided [{version}]")
            new_version = version
        elif version is not None:
            raise unsupported("internal versioning with ?version= (use if_seq_no/if_primary_term)")
        else:
            new_version = cur[1] + 1 if cur is not None else _tombstone(ix, prep.doc_id) + 1
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
        ix.tombstones.pop(prep.doc_id, None)
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
                  "result": "created" if cur is None else "updated", "_shards": write_shards(ix),
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
            with self._durable():
                result, status = self._apply(ix, prep, op_type=op_type, if_seq_no=if_seq_no,
                                             if_primary_term=if_primary_term, version=version,
                                             version_type=version_type)
        if _forces_refresh(refresh):
            result = with_forced_refresh(result)
        return result, status

    def get_doc(self, index: str, doc_id: str, *, source_includes: Any = None, source_excludes: Any = None,
                fetch_source: bool = True) -> dict[str, Any]:
        with self.lock:
            ix = self._doc_index(index)
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
            ix = self._doc_index(index)
            with self._durable():
                result, status = self._delete(ix, doc_id, if_seq_no=if_seq_no, if_primary_term=if_primary_term)
        return (with_forced_refresh(result) if _forces_refresh(refresh) else result), status

    def _delete(self, ix: IndexState, doc_id: str, *, if_seq_no: int | None = None,
                if_primary_term: int | None = None) -> tuple[dict[str, Any], int]:
        cur = ix.docs.get(doc_id)
        if if_seq_no is not None and (cur is None or cur[2] != if_seq_no):
            raise version_conflict(ix.name, doc_id, index_uuid=ix.uuid, reason=f"version conflict, required seqNo [{if_seq_no}], primary term "
                                   f"[{if_primary_term or 1}]. " + ("but no document was found" if cur is None else
                                   f"current document has seqNo [{cur[2]}] and primary term [1]"))
        ix.seq_no += 1
        # a delete leaves a tombstone whose version the next write to the id continues, found or not
        version = (cur[1] if cur is not None else _tombstone(ix, doc_id)) + 1
        ix.tombstones[doc_id] = (version, time.monotonic())
        if cur is None:
            return ({"_index": ix.name, "_id": doc_id, "_version": version, "result": "not_found",
                     "_shards": write_shards(ix), "_seq_no": ix.seq_no, "_primary_term": 1}, 404)
        self.store.delete_doc(cur[0])
        # a delete consumes a seq_no but leaves no row: remember the high-water mark (same transaction)
        self.store.kv_put("seq_no", ix.uuid, ix.seq_no)
        ix.unindex(cur[0])
        del ix.docs[doc_id]
        return ({"_index": ix.name, "_id": doc_id, "_version": version, "result": "deleted",
                 "_shards": write_shards(ix), "_seq_no": ix.seq_no, "_primary_term": 1}, 200)

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
            ix = self._target_for_write(index)  # an update auto-creates a missing index, found doc or not
            cur = ix.docs.get(doc_id)
            if cur is None:
                if upsert is not None or body.get("doc_as_upsert"):
                    src = upsert if upsert is not None else partial
                    prep = self._prepare(ix, doc_id, src, None)
                    with self._durable():
                        result, status = self._apply(ix, prep)
                    return (with_forced_refresh(result) if _forces_refresh(refresh) else result), status
                raise ApiError(404, "document_missing_exception", f"[{doc_id}]: document missing",
                               index=ix.name, shard="0", index_uuid=ix.uuid)
            if if_seq_no is not None and cur[2] != if_seq_no:
                raise version_conflict(ix.name, doc_id, index_uuid=ix.uuid, reason=f"version conflict, required seqNo [{if_seq_no}], primary "
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
            with self._durable():
                result, _ = self._apply(ix, prep)
            if _forces_refresh(refresh):
                result = with_forced_refresh(result)
            if body.get("_source") or source_filter:
                result["get"] = {"_seq_no": result["_seq_no"], "_primary_term": 1, "found": True,
                                 "_source": merged}
            return result, 200

    def bulk(self, lines: list[tuple[dict[str, Any], Any, str | None]], *, default_index: str | None = None,
             default_pipeline: str | None = None, refresh: bool | str = False) -> dict[str, Any]:
        """``lines``: (action, source-or-None, raw source JSON or None). Per-item results and errors."""
        t0 = time.perf_counter()
        forced = _forces_refresh(refresh)
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
        t_ingest = time.perf_counter()
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
        ingest_ms = int((time.perf_counter() - t_ingest) * 1000)
        # 2) one transaction for the whole request; errors are per item
        sink: list[tuple[IndexState, str, int, np.ndarray]] = []
        # write targets resolved once per index name and request (nothing else changes them while
        # this request holds the engine lock; a failed lookup is not cached, so its error repeats per item)
        targets: dict[str, IndexState] = {}
        with self.lock, self._durable(), _gc_paused():
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
                        ix = self._doc_index(index)
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
                    res = with_forced_refresh(res) if forced and res.get("result") != "noop" else dict(res)
                    res["status"] = status
                    items.append({op: res})
                except ApiError as exc:
                    errors = True
                    items.append({op: {
                        "_index": index, "_id": doc_id, "status": exc.status, "error": exc.item_error()}})
            self._flush_vectors(sink)
        out: dict[str, Any] = {"took": int((time.perf_counter() - t0) * 1000)}
        if chains:  # the request went through ingest (BulkResponse: ingest_took next to took)
            out["ingest_took"] = ingest_ms
        out.update({"errors": errors, "items": items})
        return out

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
            with self._durable():
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


class _Prepared:
    """A document validated against the mapping, ready to store (no side effects yet)."""

    __slots__ = ("doc_id", "source", "source_json", "values", "vectors", "new_props", "source_filtered")

    def __init__(self, doc_id: str, source: dict[str, Any], source_json: str, values: dict[str, list[Any]],
                 vectors: dict[str, np.ndarray], new_props: dict[str, Any], source_filtered: bool) -> None:
        self.doc_id, self.source, self.source_json = doc_id, source, source_json
        self.values, self.vectors, self.new_props = values, vectors, new_props
        self.source_filtered = source_filtered


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


def mapper_parsing_doc() -> ApiError:
    return ApiError(400, "mapper_parsing_exception", "failed to parse",
                    caused_by={"type": "not_x_content_exception",
                               "reason": "Compressor detection can only be called on some xcontent bytes or "
                                         "compressed xcontent bytes"})


def _check_doc_id(doc_id: str) -> None:
    if len(doc_id.encode()) > 512:
        raise ApiError(400, "action_request_validation_exception",
                       f"Validation Failed: 1: id [{doc_id}] is too long, must be no longer than 512 bytes but was: "
                       f"{len(doc_id.encode())};")
    if doc_id == "":
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: if _id is specified it must not be empty;")


def deep_merge(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = v
    return dst


def _tombstone(ix: IndexState, doc_id: str) -> int:
    """The version a recent delete left for ``doc_id`` (0: none, or older than index.gc_deletes)."""
    tomb = ix.tombstones.get(doc_id)
    if tomb is None:
        return 0
    if time.monotonic() - tomb[1] > GC_DELETES_S:
        del ix.tombstones[doc_id]
        return 0
    return tomb[0]
