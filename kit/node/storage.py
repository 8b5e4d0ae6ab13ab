"""Durable storage: one SQLite database in WAL mode under the data dir (the source of truth).

Every acknowledged write is committed before the response goes out; WAL with
``synchronous=NORMAL`` survives a killed process (``kill -9``), which is the guarantee the node
gives. In-memory structures (inverted index, FAISS graphs) are rebuilt from here on start.

Each stored version of a document gets a new ``rid`` (row id), so search-side structures can
refer to a document version by one integer and drop stale ones cheaply.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["Storage"]

log = logging.getLogger(__name__)

# WAL checkpoints (copying committed pages into the database file, then fsync) run on a background
# thread with its own connection: done by the committing thread, they stalled every few _bulk
# requests on fsync (measured: ~40 µs per 5 KB doc, a quarter of bulk wall time). The writer's own
# auto-checkpoint stays on at a larger size as a bound on the WAL if the background one falls behind.
_CHECKPOINT_PAGES = 1000         # background checkpoint once the WAL holds this many pages (SQLite's default)
_WRITER_CHECKPOINT_PAGES = 16384  # the writer checkpoints itself beyond this (64 MiB of 4 KiB pages)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                               PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indices (name TEXT PRIMARY KEY, uuid TEXT NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (rid INTEGER PRIMARY KEY AUTOINCREMENT, idx TEXT NOT NULL, id TEXT NOT NULL,
                                 version INTEGER NOT NULL, seq_no INTEGER NOT NULL, source TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS docs_idx_id ON docs (idx, id);
CREATE TABLE IF NOT EXISTS vecs (rid INTEGER NOT NULL, field TEXT NOT NULL, vec BLOB NOT NULL,
                                 PRIMARY KEY (rid, field)) WITHOUT ROWID;
"""


class Storage:
    """Thread-safe wrapper over one SQLite connection (writes are serialised by the caller's lock)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_data_dir(data_dir)
        self.path = data_dir / "node.sqlite3"
        self._lock = threading.RLock()
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable against process death, not power loss
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.execute("PRAGMA cache_size=-65536")
        self.db.execute(f"PRAGMA wal_autocheckpoint={_WRITER_CHECKPOINT_PAGES}")
        self.db.executescript(_SCHEMA)
        self._page_size = int(self.db.execute("PRAGMA page_size").fetchone()[0])
        self._ckpt_wake = threading.Event()
        self._ckpt_stop = False
        self._ckpt_thread = threading.Thread(target=self._checkpointer, name="oskit-node-checkpoint", daemon=True)
        self._ckpt_thread.start()
        self._in_tx = 0
        row = self.db.execute("SELECT MAX(rid) FROM docs").fetchone()
        seq = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name='docs'").fetchone()
        self._next_rid = max(int(row[0] or 0), int(seq[0]) if seq else 0)
        self._pending_docs: dict[int, tuple[int, str, str, int, int, str]] = {}
        self._pending_vecs: dict[int, list[tuple[int, str, bytes]]] = {}
        self._pending_deletes: list[tuple[int]] = []

    def close(self) -> None:
        self._ckpt_stop = True
        self._ckpt_wake.set()
        self._ckpt_thread.join()
        with self._lock:
            self.db.close()
        self._lock_file.close()  # releases the data directory lock

    # ------------------------------------------------------------------ background WAL checkpoints
    def wrote(self) -> None:
        """A write was committed: wake the checkpointer (it checks the WAL size itself)."""
        self._ckpt_wake.set()

    def _checkpointer(self) -> None:
        wal = str(self.path) + "-wal"
        limit = _CHECKPOINT_PAGES * self._page_size
        db: sqlite3.Connection | None = None
        try:
            while True:
                self._ckpt_wake.wait()
                self._ckpt_wake.clear()
                if self._ckpt_stop:
                    return
                try:
                    if os.path.getsize(wal) < limit:
                        continue
                    if db is None:
                        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
                        db.execute("PRAGMA synchronous=NORMAL")
                    # PASSIVE: never blocks writers; what it cannot copy now, the next wake-up does
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except (OSError, sqlite3.Error) as exc:  # a checkpoint is an optimisation: the writer's own still runs
                    log.debug("background WAL checkpoint skipped: %s", exc)
        finally:
            if db is not None:
                db.close()

    # ------------------------------------------------------------------ transactions
    def transaction(self) -> "_Tx":
        return _Tx(self)

    def rollback(self) -> None:
        # SQLite may have rolled back already (SQLITE_FULL, SQLITE_IOERR end the transaction themselves)
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    # ------------------------------------------------------------------ key/value (settings, pipelines, templates)
    def kv_get(self, ns: str, key: str) -> Any:
        with self._lock:
            row = self.db.execute("SELECT value FROM kv WHERE ns=? AND key=?", (ns, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def kv_put(self, ns: str, key: str, value: Any) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                            (ns, key, json.dumps(value)))
        self.wrote()

    def kv_delete(self, ns: str, key: str) -> bool:
        with self._lock:
            cur = self.db.execute("DELETE FROM kv WHERE ns=? AND key=?", (ns, key))
        return cur.rowcount > 0

    def kv_list(self, ns: str) -> dict[str, Any]:
        with self._lock:
            rows = self.db.execute("SELECT key, value FROM kv WHERE ns=? ORDER BY key", (ns,)).fetchall()
        return {k: json.loads(v) for k, v in rows}

    # ------------------------------------------------------------------ indices
    def load_indices(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self._lock:
            rows = self.db.execute("SELECT name, uuid, meta FROM indices").fetchall()
        return [(n, u, json.loads(m)) for n, u, m in rows]

    def put_index(self, name: str, uuid: str, meta: dict[str, Any]) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO indices (name, uuid, meta) VALUES (?, ?, ?)",
                            (name, uuid, json.dumps(meta)))
        self.wrote()

    def delete_index(self, name: str, uuid: str) -> None:
        with self._lock, self.transaction():
            self.flush()
            self.db.execute("DELETE FROM vecs WHERE rid IN (SELECT rid FROM docs WHERE idx=?)", (uuid,))
            self.db.execute("DELETE FROM docs WHERE idx=?", (uuid,))
            self.db.execute("DELETE FROM indices WHERE name=?", (name,))

    # ------------------------------------------------------------------ documents
    def max_seq_no(self, uuid: str) -> int:
        with self._lock:
            row = self.db.execute("SELECT MAX(seq_no) FROM docs WHERE idx=?", (uuid,)).fetchone()
        return -1 if row[0] is None else int(row[0])

    def get_doc(self, uuid: str, doc_id: str) -> tuple[int, int, int, str] | None:
        """(rid, version, seq_no, source_json) or None."""
        with self._lock:
            self.flush()
            return self.db.execute("SELECT rid, version, seq_no, source FROM docs WHERE idx=? AND id=?",
                                   (uuid, doc_id)).fetchone()

    def sources(self, rids: list[int]) -> dict[int, tuple[str, int, int, str]]:
        """rid → (id, version, seq_no, source_json) for the rids that still exist."""
        out: dict[int, tuple[str, int, int, str]] = {}
        with self._lock:
            self.flush()
            for i in range(0, len(rids), 500):
                chunk = rids[i:i + 500]
                q = f"SELECT rid, id, version, seq_no, source FROM docs WHERE rid IN ({','.join('?' * len(chunk))})"
                for rid, did, ver, seq, src in self.db.execute(q, chunk):
                    out[rid] = (did, ver, seq, src)
        return out

    def put_doc(self, uuid: str, doc_id: str, version: int, seq_no: int, source_json: str,
                vectors: Iterable[tuple[str, bytes]] = (), old_rid: int | None = None) -> int:
        """Stage a new version of a document (replacing ``old_rid``); returns its rid.

        Call inside a transaction. Rows are written in batches (``executemany``) when the
        transaction commits or before the next read, which keeps ``_bulk`` fast.
        """
        if old_rid is not None:
            self.delete_doc(old_rid)
        self._next_rid += 1
        rid = self._next_rid
        self._pending_docs[rid] = (rid, uuid, doc_id, version, seq_no, source_json)
        vecs = [(rid, f, b) for f, b in vectors]
        if vecs:
            self._pending_vecs[rid] = vecs
        return rid

    def delete_doc(self, rid: int) -> None:
        if self._pending_docs.pop(rid, None) is not None:
            self._pending_vecs.pop(rid, None)
            return
        self._pending_deletes.append((rid,))

    def flush(self) -> None:
        """Write staged rows (deletes first: a staged insert never collides with a staged delete)."""
        with self._lock:
            if self._pending_deletes:
                self.db.executemany("DELETE FROM vecs WHERE rid=?", self._pending_deletes)
                self.db.executemany("DELETE FROM docs WHERE rid=?", self._pending_deletes)
                self._pending_deletes = []
            if self._pending_docs:
                self.db.executemany("INSERT INTO docs (rid, idx, id, version, seq_no, source) VALUES (?, ?, ?, ?, ?, ?)",
                                    list(self._pending_docs.values()))
                self._pending_docs = {}
            if self._pending_vecs:
                self.db.executemany("INSERT INTO vecs (rid, field, vec) VALUES (?, ?, ?)",
                                    [row for rows in self._pending_vecs.values() for row in rows])
                self._pending_vecs = {}

    def iter_docs(self, uuid: str, chunk: int = 5000) -> Iterator[tuple[int, str, int, int, str]]:
        """(rid, id, version, seq_no, source_json) in rid order, read in chunks (bounded memory)."""
        last = -1
        while True:
            with self._lock:
                self.flush()
                rows = self.db.execute(
                    "SELECT rid, id, version, seq_no, source FROM docs WHERE idx=? AND rid>? ORDER BY rid LIMIT ?",
                    (uuid, last, chunk)).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    def iter_vectors(self, uuid: str, field: str) -> list[tuple[int, bytes]]:
        with self._lock:
            self.flush()
            return self.db.execute(
                "SELECT v.rid, v.vec FROM vecs v JOIN docs d ON d.rid = v.rid WHERE d.idx=? AND v.field=? "
                "ORDER BY v.rid", (uuid, field)).fetchall()


def _lock_data_dir(data_dir: Path) -> Any:
    """Hold ``node.lock`` (flock) for the node's lifetime: a second node on the same data refuses to
    start instead of corrupting the first one's view (OpenSearch's NodeEnvironment lock)."""
    import fcntl

    from kit.errors import NodeError

    fh = open(data_dir / "node.lock", "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        owner = fh.read().strip()
        fh.close()
        raise NodeError(f"the data directory {data_dir} is in use by another node"
                        + (f" (pid {owner})" if owner else ""),
                        hint="stop that node first, or start this one with another --data directory") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


class _Tx:
    """Re-entrant BEGIN/COMMIT (ROLLBACK on error) around a group of writes, e.g. one _bulk request."""

    def __init__(self, st: Storage) -> None:
        self.st = st

    def __enter__(self) -> "_Tx":
        self.st._lock.acquire()
        if self.st._in_tx == 0:
            self.st.db.execute("BEGIN IMMEDIATE")
        self.st._in_tx += 1
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.st._in_tx -= 1
            if self.st._in_tx == 0:
                if exc_type is not None:
                    self.st._pending_docs, self.st._pending_vecs, self.st._pending_deletes = {}, {}, []
                    self.st.rollback()
                else:
                    try:
                        self.st.flush()
                    except BaseException:
                        self.st._pending_docs, self.st._pending_vecs, self.st._pending_deletes = {}, {}, []
                        self.st.rollback()
                        raise
                    try:
                        self.st.db.execute("COMMIT")
                    except BaseException:
                        self.st.rollback()
                        raise
                    self.st.wrote()
        finally:
            self.st._lock.release()
