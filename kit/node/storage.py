"""Durable storage: one SQLite database in WAL mode under the data dir (the source of truth).

Every acknowledged write is committed before the response goes out; WAL with
``synchronous=NORMAL`` survives a killed process (``kill -9``), which is the guarantee the node
gives. In-memory structures (inverted index, FAISS graphs) are rebuilt from here on start.

Each stored version of a document gets a new ``rid`` (row id), so search-side structures can
refer to a document version by one integer and drop stale ones cheaply.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["Storage"]

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
        self.path = data_dir / "node.sqlite3"
        self._lock = threading.RLock()
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable against process death, not power loss
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.execute("PRAGMA cache_size=-65536")
        self.db.executescript(_SCHEMA)
        self._in_tx = 0

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # ------------------------------------------------------------------ transactions
    def transaction(self) -> "_Tx":
        return _Tx(self)

    # ------------------------------------------------------------------ key/value (settings, pipelines, templates)
    def kv_get(self, ns: str, key: str) -> Any:
        with self._lock:
            row = self.db.execute("SELECT value FROM kv WHERE ns=? AND key=?", (ns, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def kv_put(self, ns: str, key: str, value: Any) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                            (ns, key, json.dumps(value)))

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

    def delete_index(self, name: str, uuid: str) -> None:
        with self._lock, self.transaction():
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
            return self.db.execute("SELECT rid, version, seq_no, source FROM docs WHERE idx=? AND id=?",
                                   (uuid, doc_id)).fetchone()

    def sources(self, rids: list[int]) -> dict[int, tuple[str, int, int, str]]:
        """rid → (id, version, seq_no, source_json) for the rids that still exist."""
        out: dict[int, tuple[str, int, int, str]] = {}
        with self._lock:
            for i in range(0, len(rids), 500):
                chunk = rids[i:i + 500]
                q = f"SELECT rid, id, version, seq_no, source FROM docs WHERE rid IN ({','.join('?' * len(chunk))})"
                for rid, did, ver, seq, src in self.db.execute(q, chunk):
                    out[rid] = (did, ver, seq, src)
        return out

    def put_doc(self, uuid: str, doc_id: str, version: int, seq_no: int, source_json: str,
                vectors: Iterable[tuple[str, bytes]] = ()) -> int:
        """Store a new version (replacing the old row); returns its rid. Call inside a transaction."""
        old = self.db.execute("SELECT rid FROM docs WHERE idx=? AND id=?", (uuid, doc_id)).fetchone()
        if old is not None:
            self.db.execute("DELETE FROM vecs WHERE rid=?", (old[0],))
            self.db.execute("DELETE FROM docs WHERE rid=?", (old[0],))
        cur = self.db.execute("INSERT INTO docs (idx, id, version, seq_no, source) VALUES (?, ?, ?, ?, ?)",
                              (uuid, doc_id, version, seq_no, source_json))
        rid = int(cur.lastrowid or 0)
        vecs = [(rid, f, b) for f, b in vectors]
        if vecs:
            self.db.executemany("INSERT INTO vecs (rid, field, vec) VALUES (?, ?, ?)", vecs)
        return rid

    def delete_doc(self, rid: int) -> None:
        self.db.execute("DELETE FROM vecs WHERE rid=?", (rid,))
        self.db.execute("DELETE FROM docs WHERE rid=?", (rid,))

    def iter_docs(self, uuid: str) -> Iterator[tuple[int, str, int, int, str]]:
        """(rid, id, version, seq_no, source_json) in rid order (a snapshot taken under the lock)."""
        with self._lock:
            rows = self.db.execute("SELECT rid, id, version, seq_no, source FROM docs WHERE idx=? ORDER BY rid",
                                   (uuid,)).fetchall()
        yield from rows

    def iter_vectors(self, uuid: str, field: str) -> list[tuple[int, bytes]]:
        with self._lock:
            return self.db.execute(
                "SELECT v.rid, v.vec FROM vecs v JOIN docs d ON d.rid = v.rid WHERE d.idx=? AND v.field=? "
                "ORDER BY v.rid", (uuid, field)).fetchall()


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
                self.st.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self.st._lock.release()
