"""k-NN vector fields on FAISS, scored exactly as OpenSearch's k-NN plugin scores them.

Per (index, field) one :class:`VectorField`. Like the k-NN plugin (``index.knn.advanced.
approximate_threshold``, 15,000 by default since 2.18), no graph is built while the field holds
fewer vectors than the threshold: search is exact. Above it, an HNSW graph (``m``,
``ef_construction`` from the mapping, ``ef_search`` from the index setting) is grown by a background
thread in small batches; vectors not yet in the graph are searched exactly and merged, so a
document is searchable as soon as its write is acknowledged.

Space types (``SpaceType.java``): l2 → squared distance d, score 1/(1+d); cosinesimil → vectors are
normalised at index time (as faiss does from 2.19), score (1+cos)/2; innerproduct → score 1+dot when
dot > 0 else 1/(1−dot).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from kit.node.errors import ApiError, bad_request

__all__ = ["APPROXIMATE_THRESHOLD", "VectorField", "score_from_distance"]

log = logging.getLogger(__name__)

APPROXIMATE_THRESHOLD = 15_000
_GRAPH_BATCH = 256  # vectors added to the graph per graph-lock hold, so searches wait at most one batch
_BUILD_THREADS = 1
# When nothing is being written (or warmup waits for the graph), the graph is built with every core
# in larger batches: FAISS parallelises an add over its vectors with OpenMP, and a 1M×512 graph is
# ~8 min of single-core work on this VM. Searches then wait at most one such batch (~0.1-0.5 s);
# warmup takes the largest batches, since its caller is waiting for the whole graph anyway.
_IDLE_BATCH = 2048
_URGENT_BATCH = 16384
# Graph building yields to ingest: it waits until writes pause this long, unless the tail that is
# searched exactly grows past _MAX_TAIL (then exact search would get slow, so the graph catches up).
_INGEST_QUIET_S = 1.0
_MAX_TAIL = 50_000
_SNAPSHOT_EVERY = 20_000  # save the graph after this many new graph vectors (and at close)
_LIVE: "weakref.WeakSet[VectorField]" = weakref.WeakSet()
_omp_threads: dict[int, int] = {}


@atexit.register
def _stop_all() -> None:
    """Stop graph threads cleanly at exit (a thread killed inside FAISS aborts the interpreter)."""
    for vf in list(_LIVE):
        vf.close()


def score_from_distance(space: str, raw: np.ndarray) -> np.ndarray:
    """raw is what we compute: squared L2 distance for l2, dot product for cosinesimil/innerproduct."""
    raw = raw.astype(np.float32, copy=False)
    if space == "l2":
        return (1.0 / (1.0 + raw)).astype(np.float32)
    if space == "cosinesimil":
        return np.maximum((1.0 + raw) / 2.0, 0.0).astype(np.float32)
    # innerproduct: faiss distance is -dot
    return np.where(raw > 0, 1.0 + raw, 1.0 / (1.0 - raw)).astype(np.float32)


def _row_norms(arr: np.ndarray) -> np.ndarray:
    """float32 L2 norm of each row, computed the same way for one vector or a batch (so a vector
    gets bit-identical values whether it came in alone or in a ``_bulk``)."""
    with np.errstate(over="ignore"):
        return np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float32)).astype(np.float32)


def distance_from_raw(space: str, raw: np.ndarray) -> np.ndarray:
    """The k-NN plugin's raw distance (what ``max_distance`` compares against)."""
    if space == "l2":
        return raw
    if space == "cosinesimil":
        return 1.0 - raw
    return -raw


class VectorField:
    """Vectors of one knn_vector field: exact search below the threshold, FAISS HNSW above it."""

    def __init__(self, dim: int, space: str = "l2", m: int = 16, ef_construction: int = 100,
                 ef_search: int = 100, approximate_threshold: int = APPROXIMATE_THRESHOLD) -> None:
        self.dim = dim
        self.space = space
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.threshold = approximate_threshold
        # Two locks: ``_lock`` guards the buffer and the id maps (writes, searches); ``_glock`` guards
        # the FAISS graph, so a graph batch being added never blocks ingest, only searches briefly.
        # Lock order is always _lock then _glock; the graph thread never holds both.
        self._lock = threading.RLock()
        self._glock = threading.Lock()
        self._buf = np.zeros((0, dim), dtype=np.float32)  # rows = positions _base.._base+_buf_n-1
        self._buf_n = 0
        self._base = 0           # position of _buf[0]
        self._gn = 0             # positions < _gn are in the graph
        self._rids = np.zeros(0, dtype=np.int64)  # position → rid
        self._alive = np.zeros(0, dtype=bool)
        self._n = 0
        self._live = 0  # alive vectors; rid → position is a binary search: rids only ever grow
        self._graph: Any = None
        self._bitmap: Any = None
        self._worker: threading.Thread | None = None
        self._stop = False
        self._urgent = False
        self.snapshot: Path | None = None  # where the graph is saved (set by the engine)
        self._saved_gn = 0
        self._last_write = 0.0
        _LIVE.add(self)

    def close(self, save: bool = True) -> None:
        """Stop the graph thread (after its current batch) and save the graph snapshot."""
        self._stop = True
        w = self._worker
        if w is not None and w is not threading.current_thread():
            w.join()
        if save:
            try:
                self.save()
            except (RuntimeError, OSError) as exc:  # a snapshot is only a cache: never fail a shutdown on it
                log.warning("could not save the k-NN graph snapshot: %s", exc)

    # ------------------------------------------------------------------ writing
    def prepare(self, values: Any, field: str) -> np.ndarray:
        """Validate one document's value → float32 vector (normalised for cosinesimil)."""
        try:
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: rejected just below
                vec = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            raise bad_request(f"Vector for field [{field}] must be an array of numbers") from None
        if vec.ndim != 1:
            raise bad_request(f"Vector for field [{field}] must be an array of numbers")
        if vec.shape[0] != self.dim:
            raise bad_request(f"Vector dimension mismatch. Expected: {self.dim}, Given: {vec.shape[0]}")
        if not np.isfinite(vec).all():
            raise bad_request("KNN vector values cannot be NaN or Infinity")
        if self.space == "cosinesimil":
            norm = _row_norms(vec.reshape(1, -1))[0]
            if norm == 0.0:
                raise bad_request(f"zero vector is not supported when space type is [{self.space}]")
            vec = vec / norm
        return vec

    def prepare_batch(self, rows: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
        """Many documents' values at once → (float32 matrix, mask of valid rows); None when they are
        not one numeric matrix of this dimension. One conversion of the whole request costs a third of
        per-document ``prepare``; invalid rows are left to ``prepare`` for their exact error."""
        if not rows:
            return None
        try:
            with np.errstate(over="ignore"):  # as in ``prepare``: inf rows are rejected below
                arr = np.array(rows, dtype=np.float32)
        except (TypeError, ValueError):
            return None
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            return None
        ok = np.isfinite(arr).all(axis=1)
        if self.space == "cosinesimil":
            norms = _row_norms(arr)
            ok &= norms > 0
            arr[ok] /= norms[ok, None]
        return arr, ok

    def note_write(self) -> None:
        """Ingest is under way (a batch is being prepared): graph building keeps yielding."""
        self._last_write = time.monotonic()

    def add(self, rid: int, vec: np.ndarray) -> None:
        self.add_many([rid], vec.reshape(1, -1))

    def add_many(self, rids: list[int], vecs: np.ndarray) -> None:
        if not rids:
            return
        with self._lock:
            k = len(rids)
            need = self._buf_n + k
            if need > self._buf.shape[0]:
                grown = np.zeros((max(need, self._buf.shape[0] * 2, 1024), self.dim), dtype=np.float32)
                grown[: self._buf_n] = self._buf[: self._buf_n]
                self._buf = grown
            self._buf[self._buf_n: need] = vecs
            self._buf_n = need
            if self._n + k > self._rids.shape[0]:
                cap = max(self._n + k, self._rids.shape[0] * 2, 1024)
                r = np.zeros(cap, dtype=np.int64)
                r[: self._n] = self._rids[: self._n]
                a = np.zeros(cap, dtype=bool)
                a[: self._n] = self._alive[: self._n]
                self._rids, self._alive = r, a
            arr = np.asarray(rids, dtype=np.int64)
            if (k > 1 and np.any(arr[1:] <= arr[:-1])) or (self._n and arr[0] <= self._rids[self._n - 1]):
                # rids come from SQLite's increasing row ids; anything else is a bug in the caller
                raise ApiError(500, "exception", "vector rids must be added in increasing order")
            self._rids[self._n: self._n + k] = arr
            self._alive[self._n: self._n + k] = True
            self._n += k
            self._live += k
            self._bitmap = None
            self._last_write = time.monotonic()
        self._maybe_grow_graph()

    def _positions(self, rids: Any) -> np.ndarray:
        """Alive positions of the given rids (binary search in the sorted rid array)."""
        arr = np.fromiter(rids, dtype=np.int64) if not isinstance(rids, np.ndarray) else rids
        if arr.size == 0 or self._n == 0:
            return np.zeros(0, dtype=np.int64)
        sorted_rids = self._rids[: self._n]
        pos = np.searchsorted(sorted_rids, arr)
        inside = pos < self._n
        pos, arr = pos[inside], arr[inside]
        ok = (sorted_rids[pos] == arr) & self._alive[pos]
        return np.unique(pos[ok])

    def remove(self, rid: int) -> None:
        with self._lock:
            pos = self._positions(np.array([rid], dtype=np.int64))
            if pos.size:
                self._alive[pos] = False
                self._live -= int(pos.size)
                self._bitmap = None

    def __len__(self) -> int:
        return self._live

    def memory_bytes(self) -> int:
        """Bytes held for this field: FAISS graph + vectors (measured), buffers, id maps (estimated)."""
        total = self._buf.nbytes + self._rids.nbytes + self._alive.nbytes
        with self._glock:
            g = self._graph
            if g is not None:
                h = g.hnsw
                total += self._gn * self.dim * 4
                total += h.neighbors.size() * 4 + h.levels.size() * 4 + h.offsets.size() * 8
                total += h.assign_probas.size() * 8 + h.cum_nneighbor_per_level.size() * 4
        return total

    # ------------------------------------------------------------------ graph maintenance
    def _maybe_grow_graph(self) -> None:
        if self._live < self.threshold or (self._worker is not None and self._worker.is_alive()):
            return
        self._worker = threading.Thread(target=self._grow, name="knn-graph", daemon=True)
        self._worker.start()

    def _grow(self) -> None:
        import faiss

        # While documents are being written: one OpenMP thread, small batches, so ingest keeps the
        # other core(s) (OpenSearch likewise bounds native index-build threads with
        # knn.algo_param.index_thread_qty, default 1). Idle or urgent: every core, larger batches.
        all_cores = max(1, os.cpu_count() or 1)
        threads = 0
        while not self._stop:
            with self._lock:
                start = self._gn - self._base
                tail = self._buf_n - start
                if tail <= 0:
                    return
                urgent = self._urgent
                busy = time.monotonic() - self._last_write < _INGEST_QUIET_S and not urgent
            if busy and tail < _MAX_TAIL:
                time.sleep(0.05)
                continue
            want_threads, size = ((_BUILD_THREADS, _GRAPH_BATCH) if busy else
                                  (all_cores, _URGENT_BATCH if urgent else _IDLE_BATCH))
            if want_threads != threads:
                faiss.omp_set_num_threads(want_threads)
                threads = want_threads
            with self._lock:
                take = min(size, self._buf_n - start)
                batch = np.ascontiguousarray(self._buf[start: start + take])
                if self._graph is None:
                    metric = faiss.METRIC_L2 if self.space == "l2" else faiss.METRIC_INNER_PRODUCT
                    g = faiss.IndexHNSWFlat(self.dim, self.m, metric)
                    g.hnsw.efConstruction = self.ef_construction
                    self._graph = g
            with self._glock:
                self._graph.add(batch)
                self._gn += take
            if self._gn - self._saved_gn >= _SNAPSHOT_EVERY and self._gn == self._base + self._buf_n:
                self.save()
            with self._lock:
                drop = self._gn - self._base
                # compact the buffer only now and then: a memmove per batch would cost O(buffer)
                if drop >= 8192 or drop == self._buf_n:
                    rest = self._buf_n - drop
                    if rest:
                        self._buf[:rest] = self._buf[drop: self._buf_n]
                    self._buf_n = rest
                    self._base = self._gn
                    if rest == 0 and self._buf.shape[0] > 16384:
                        self._buf = np.zeros((1024, self.dim), dtype=np.float32)

    # ------------------------------------------------------------------ graph snapshots
    # The graph is a cache of SQLite's vectors: a snapshot saves rebuilding it on restart. Rids are
    # never reused, so a stale snapshot is still right for the rids it holds; the engine marks rids
    # deleted since as dead and adds newer ones (always larger rids) on top.
    def save(self) -> None:
        """Write the graph and its rids (atomically) to ``snapshot``; no-op without a graph or a path."""
        if self.snapshot is None:
            return
        import faiss

        with self._glock:
            g, gn = self._graph, self._gn
            if g is None or gn == 0 or gn == self._saved_gn:
                return
            rids = self._rids[:gn].copy()
            self.snapshot.parent.mkdir(parents=True, exist_ok=True)
            tmp_graph = self.snapshot.with_suffix(".faiss.tmp")
            tmp_rids = self.snapshot.with_suffix(".rids.tmp")
            faiss.write_index(g, str(tmp_graph))
        with open(tmp_rids, "wb") as fh:
            np.save(fh, rids)
        # rids first: a graph file is only ever paired with rids at least as long as itself
        os.replace(tmp_rids, self.snapshot.with_suffix(".rids.npy"))
        os.replace(tmp_graph, self.snapshot.with_suffix(".faiss"))
        self._saved_gn = gn

    def load_snapshot(self) -> np.ndarray | None:
        """Adopt a saved graph (before any add); returns its rids (all alive until told otherwise)."""
        if self.snapshot is None:
            return None
        gpath, rpath = self.snapshot.with_suffix(".faiss"), self.snapshot.with_suffix(".rids.npy")
        if not gpath.exists() or not rpath.exists():
            return None
        import faiss

        try:
            g = faiss.read_index(str(gpath))
            rids = np.load(rpath)
        except (RuntimeError, OSError, ValueError) as exc:
            log.warning("ignoring unreadable k-NN graph snapshot %s: %s", gpath, exc)
            return None
        n = int(g.ntotal)
        if g.d != self.dim or rids.shape[0] < n:
            log.warning("ignoring k-NN graph snapshot %s: it does not match the field", gpath)
            return None
        rids = rids[:n].astype(np.int64)
        with self._lock, self._glock:
            g.hnsw.efConstruction = self.ef_construction
            self._graph = g
            self._gn = self._saved_gn = self._n = self._live = self._base = n
            self._rids = np.zeros(max(n, 1024), dtype=np.int64)
            self._rids[:n] = rids
            self._alive = np.zeros(max(n, 1024), dtype=bool)
            self._alive[:n] = True
            self._bitmap = None
        return rids

    def discard_snapshot(self) -> None:
        if self.snapshot is not None:
            for suffix in (".faiss", ".rids.npy"):
                try:
                    os.remove(self.snapshot.with_suffix(suffix))
                except FileNotFoundError:
                    pass

    def wait_for_graph(self, timeout: float | None = None) -> None:
        """Block until every vector is in the graph (``_plugins/_knn/warmup``, benchmarks, tests)."""
        self._urgent = True
        try:
            w = self._worker
            if w is not None:
                w.join(timeout)
        finally:
            self._urgent = False

    def _all_vectors(self) -> np.ndarray:
        """Positions 0..n-1 as one array (graph storage + buffer tail); call holding _lock and _glock."""
        parts = []
        gn = self._gn
        if self._graph is not None and gn:
            import faiss

            st = faiss.downcast_index(self._graph.storage)
            xb = faiss.rev_swig_ptr(st.get_xb(), gn * self.dim)
            parts.append(np.asarray(xb).reshape(-1, self.dim))
        parts.append(self._buf[gn - self._base: self._buf_n])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def vectors_of(self, rids: Any) -> tuple[np.ndarray, np.ndarray]:
        """(rids, float32 matrix) of the alive vectors of these documents, as stored (normalised under
        cosinesimil), in position order."""
        with self._lock, self._glock:
            pos = self._positions(rids)
            if pos.size == 0:
                return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
            return self._rids[pos].copy(), np.array(self._all_vectors()[pos], dtype=np.float32)

    # ------------------------------------------------------------------ searching
    def query_vector(self, values: Any, field: str) -> np.ndarray:
        """Validate a query vector (k-NN's messages) and normalise it for cosinesimil."""
        try:
            arr = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            raise bad_request(f"[knn] failed to parse vector for field [{field}]") from None
        if arr.ndim != 1 or arr.shape[0] != self.dim:
            raise bad_request(f"Query vector has invalid dimension: {arr.size}. Dimension should be: {self.dim}")
        return self.prepare(arr, field)

    def _raw(self, q: np.ndarray, vecs: np.ndarray) -> np.ndarray:
        if self.space == "l2":
            diff = vecs - q
            return np.einsum("ij,ij->i", diff, diff)
        return vecs @ q

    def search(self, q: np.ndarray, k: int, candidates: set[int] | None = None,
               ef_search: int | None = None) -> list[tuple[int, float]]:
        """Top-k (rid, score), best first. ``candidates`` (rids) restricts the search (knn ``filter``)."""
        with self._lock, self._glock:
            n = self._n
            if n == 0 or k <= 0:
                return []
            if candidates is not None:
                cand_pos = self._positions(candidates)
                if cand_pos.size == 0:
                    return []
                if self._graph is None or self._gn == 0 or cand_pos.size <= max(k, 2000):
                    return self._exact(q, k, cand_pos)
                mask = np.zeros(n, dtype=bool)
                mask[cand_pos] = True
                return self._approx(q, k, mask, ef_search)
            if self._graph is None or self._gn == 0:
                return self._exact(q, k, None)
            return self._approx(q, k, None, ef_search)

    def _top(self, raw: np.ndarray, pos: np.ndarray, k: int) -> list[tuple[int, float]]:
        # l2: smaller raw is better; cosine/inner: larger raw is better
        key = raw if self.space == "l2" else -raw
        if raw.shape[0] > k:
            idx = np.argpartition(key, k - 1)[:k]
        else:
            idx = np.arange(raw.shape[0])
        idx = idx[np.lexsort((pos[idx], key[idx]))]
        scores = score_from_distance(self.space, raw[idx])
        return [(int(self._rids[p]), float(s)) for p, s in zip(pos[idx], scores)]

    def _exact(self, q: np.ndarray, k: int, pos: np.ndarray | None) -> list[tuple[int, float]]:
        allv = self._all_vectors()
        if pos is None:
            pos = np.flatnonzero(self._alive[: self._n])
            if pos.size == 0:
                return []
            vecs = allv if pos.size == self._n else allv[pos]
        else:
            vecs = allv[pos]
        return self._top(self._raw(q, vecs), pos, k)

    def _approx(self, q: np.ndarray, k: int, mask: np.ndarray | None,
                ef_search: int | None) -> list[tuple[int, float]]:
        import faiss

        g = self._graph
        gn = self._gn
        # one query is one OpenMP task: a parallel region would only add thread wake-ups (and stalls
        # when cores are busy); the setting is per calling thread
        if _omp_threads.get(threading.get_ident()) != 1:
            faiss.omp_set_num_threads(1)
            _omp_threads[threading.get_ident()] = 1
        alive = self._alive[: self._n]
        use = alive if mask is None else (alive & mask)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(int(ef_search or self.ef_search), k)
        bm = None
        if mask is not None:
            bm = np.packbits(use[:gn], bitorder="little")
        elif self._live != self._n:
            # deleted/replaced docs: the bitmap of live graph positions is kept until the next write,
            # so an unfiltered query does not pay an O(N) pack each time
            cached = self._bitmap
            if cached is None or cached[0] != gn:
                cached = self._bitmap = (gn, np.packbits(alive[:gn], bitorder="little"))
            bm = cached[1]
        if bm is not None:
            params.sel = faiss.IDSelectorBitmap(gn, faiss.swig_ptr(bm))
        dist, ids = g.search(q.reshape(1, -1), k, params=params)
        ids = ids[0]
        keep = ids >= 0
        g_pos = ids[keep].astype(np.int64)
        g_raw = dist[0][keep]  # L2: squared distance; IP: dot
        results_pos = [g_pos]
        results_raw = [g_raw]
        if self._n > gn:
            tail = np.arange(gn, self._n)
            tail = tail[use[gn: self._n]]
            if tail.size:
                results_pos.append(tail)
                results_raw.append(self._raw(q, self._buf[tail - self._base]))
        pos = np.concatenate(results_pos)
        raw = np.concatenate(results_raw).astype(np.float32)
        return self._top(raw, pos, k)

    def radial(self, q: np.ndarray, *, max_distance: float | None = None, min_score: float | None = None,
               candidates: set[int] | None = None) -> list[tuple[int, float]]:
        """Every vector within ``max_distance`` (raw k-NN distance) or scoring ≥ ``min_score``; exact."""
        with self._lock, self._glock:
            if self._n == 0:
                return []
            if candidates is not None:
                pos = self._positions(candidates)
            else:
                pos = np.flatnonzero(self._alive[: self._n])
            if pos.size == 0:
                return []
            raw = self._raw(q, self._all_vectors()[pos]).astype(np.float32)
            scores = score_from_distance(self.space, raw)
            if max_distance is not None:
                keep = distance_from_raw(self.space, raw) <= max_distance
            else:
                keep = scores >= (min_score if min_score is not None else 0.0)
            pos, scores = pos[keep], scores[keep]
            order = np.lexsort((pos, -scores))
            return [(int(self._rids[p]), float(scores[i])) for i, p in zip(order, pos[order])]


