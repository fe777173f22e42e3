"""The write side of a collection: `CollectionWriter`, the one writer.

Why it stays consistent: SQLite is the source of truth and names the vector file of the
current generation. A writer stages its changes in one open transaction (each file in a
savepoint, so an interrupt never leaves half a file) and an in-memory vector index.
`commit()` first writes a *new* vector file completely (fsync + rename), then commits the
transaction that points to it; a crash before the commit leaves the old pointer and the
old file, a crash after leaves the new ones. Readers read the pointer inside a SQLite
snapshot, so they never see a half-written index. Vectors are also kept in SQLite (keyed
by chunk hash), which lets a renamed or unchanged passage reuse its vector and lets a
reader rebuild the index if the file is ever lost. No pickle anywhere.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from docent.atomic import is_scratch, replacing
from ingest.errors import StoreError, storage_faults
from ingest.store import keywords, schema
from ingest.store.catalog import Catalog, SharedWrites
from ingest.store.lock import WriterLock
from ingest.store.records import FileRecord, NewChunk, collection_dir
from ingest.store.vectors import VECTOR_BACKENDS, VECTOR_FILE, VectorBackend, load_generation, rebuild, vectors_file


DELTA_SHARE = 0.05      # changes since the last full file, as a share of the index, before it is written again


class CollectionWriter(SharedWrites, Catalog):
    """The one writer of a collection. Changes are staged in an open SQLite transaction and
    an in-memory FAISS index; `commit()` publishes both as a new generation."""

    def __init__(self, home: Path, name: str, model: str | None, dim: int | None, reembed: bool = False,
                 vectors: VectorBackend | None = None):
        """`model`/`dim` of the embedder that will add vectors; None for a writer that only
        removes (it then takes them from the collection). Opening applies the catalog's
        migrations this collection lacks (ingest/store/schema.py)."""
        self.name = name
        self.directory = collection_dir(home, name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create collection folder {self.directory}: {exc.strerror}") from None
        self._backend = vectors or VECTOR_BACKENDS["faiss"]
        self._lock = WriterLock(self.directory / schema.LOCK_NAME, name)
        with storage_faults(name, self.directory):
            self._lock.acquire()
        try:
            self._conn = schema.connect(self.directory / schema.DB_NAME)
            schema.migrate(self._conn, name)
            self.model, self.dim = self.settle_model(model, dim, reembed, f"no collection '{name}' under {Path(home)}")
            self._index = None
            self._index_stale = False
            self._dirty = False
            self._fresh = False           # the index was built anew: its file must be written in full
            self._changes = 0             # vectors added or removed since the index was loaded
            self._gone: set[str] = set()  # chunk hashes of chunks deleted: their vectors may be unused now
            self._last_id: int | None = None
            self._cleanup_orphans()
        except BaseException:
            if getattr(self, "_conn", None) is not None:
                self._conn.close()
            self._lock.release()
            raise

    @property
    def conn(self) -> sqlite3.Connection:
        """The writer's one connection: a writer is used by one thread at a time."""
        return self._conn

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        """Abandon staged changes (if any) and release the lock."""
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.conn.close()
        finally:
            self._lock.release()

    def _init_info(self, model: str, dim: int) -> None:
        with_values = {"embedding_model": model, "embedding_dim": dim,
                       "generation": 0, "created_at": time.time()}
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany("INSERT OR REPLACE INTO info VALUES (?, ?)",
                              [(k, str(v)) for k, v in with_values.items()])
        self.conn.execute("COMMIT")

    def _begin(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
        self._dirty = True

    def _vector_index(self):
        if self._index is None:
            info = self.info()
            generation = int(info.get("generation", 0))
            base = int(info["vectors_base"]) if "vectors_base" in info else None
            self._index = load_generation(self._backend, self.conn, self.directory, generation, self.dim, base)
            if not self._backend.is_current(self._index):
                self._index = rebuild(self._backend, self.conn, self.dim)     # an older layout (float32 FAISS)
                self._fresh = True
        return self._index

    def _cleanup_orphans(self) -> None:
        """Remove FAISS files that neither the current nor the previous generation reads
        (left by a crash between writing a file and committing its pointer)."""
        keep = self._files_in_use(self.info())
        for p in self.directory.iterdir():
            m = VECTOR_FILE.match(p.name)
            if (m and int(m.group(1)) not in keep) or is_scratch(p, ".faiss."):
                p.unlink(missing_ok=True)

    @staticmethod
    def _files_in_use(info: dict) -> set[int]:
        """Generations whose files the current and the previous generation read (a reader
        may have read the previous pointer a moment ago)."""
        gen = int(info.get("generation", 0))
        return {gen, gen - 1, int(info.get("vectors_base", gen)), int(info.get("vectors_base_previous", gen - 1))}

    def _new_chunk_id(self) -> int:
        """The next chunk id. Never one used before, even by a chunk since deleted: a saved
        index brought up to date from the catalog (vectors.catch_up) tells chunks by id."""
        if self._last_id is None:
            top = self.conn.execute("SELECT max(id) FROM chunks").fetchone()[0] or 0
            self._last_id = max(top, int(self.info().get("last_chunk_id", 0)))
        self._last_id += 1
        return self._last_id

    # -- staging ---------------------------------------------------------------
    def _atomic(self, work) -> None:
        """Run one file's changes all-or-nothing, even if interrupted (Ctrl-C) half-way."""
        self._begin()
        self._vector_index()
        self.conn.execute("SAVEPOINT one_file")
        try:
            work()
        except BaseException:
            self.conn.execute("ROLLBACK TO one_file")
            self.conn.execute("RELEASE one_file")
            self._index_stale = True      # the in-memory FAISS may hold half the change
            raise
        self.conn.execute("RELEASE one_file")

    def put_file(self, record: FileRecord, chunks: Sequence[NewChunk], vectors: np.ndarray) -> None:
        """Replace everything stored for `record.path` with these chunks and vectors."""
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        self._atomic(lambda: self._put_file(record, chunks, vectors))

    def _put_file(self, record: FileRecord, chunks: Sequence[NewChunk], vectors: np.ndarray) -> None:
        index = self._vector_index()
        self._delete_chunks(record.path)
        self.conn.execute(
            "INSERT OR REPLACE INTO files (path, format, content_hash, size, mtime_ns, status, error, failed_hash, "
            "n_chunks, pages, title, ingested_at, source_spec, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
                record.path, record.format, record.content_hash, record.size, record.mtime_ns, record.status,
                record.error, record.failed_hash, record.n_chunks, record.pages, record.title, record.ingested_at,
                record.source_spec, record.origin))
        ids = []
        for ord_, (chunk, vector) in enumerate(zip(chunks, vectors)):
            cur = self.conn.execute(
                "INSERT INTO chunks (id, path, ord, text, heading_path, heading, page, page_end, start, end, "
                "chunk_hash, n_tokens) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (self._new_chunk_id(), record.path, ord_, chunk.text,
                 json.dumps(list(chunk.heading_path), ensure_ascii=False),
                 " > ".join(chunk.heading_path), chunk.page, chunk.page_end, chunk.start, chunk.end,
                 chunk.chunk_hash, chunk.n_tokens))
            ids.append(cur.lastrowid)
            if chunk.labels:
                self.conn.executemany("INSERT INTO chunk_labels VALUES (?, ?, ?)",
                                      [(cur.lastrowid, label, count) for label, count in chunk.labels])
            self.conn.execute("INSERT OR IGNORE INTO vectors VALUES (?, ?)",
                              (chunk.chunk_hash, np.asarray(vector, dtype=np.float32).tobytes()))
        keywords.put_terms(self.conn, ids, [f"{c.text}\n{' > '.join(c.heading_path)}" for c in chunks])
        if ids:
            index.add(np.asarray(ids, dtype=np.int64), np.asarray(vectors, dtype=np.float32))
            self._changes += len(ids)

    def mark_failed(self, path: str, error: str, failed_hash: str | None, fmt: str | None,
                    source: str | None = None) -> None:
        """Record a failure; a file that had good content keeps its chunks (nothing is lost)."""
        self._begin()
        if self.file(path):
            self.conn.execute("UPDATE files SET status='failed', error=?, failed_hash=? WHERE path=?",
                              (error, failed_hash, path))
        else:
            self.conn.execute(
                "INSERT INTO files (path, format, status, error, failed_hash, n_chunks, ingested_at, source_spec) "
                "VALUES (?,?,?,?,?,0,?,?)", (path, fmt, "failed", error, failed_hash, time.time(), source))

    def remove_file(self, path: str) -> bool:
        if not self.file(path):
            return False

        def work() -> None:
            self._delete_chunks(path)
            self.conn.execute("DELETE FROM files WHERE path = ?", (path,))
        self._atomic(work)
        return True

    def _delete_chunks(self, path: str) -> None:
        rows = self.conn.execute("SELECT id, chunk_hash FROM chunks WHERE path = ?", (path,)).fetchall()
        ids = [r[0] for r in rows]
        self._gone.update(r[1] for r in rows)
        if ids:
            self._vector_index().remove(np.asarray(ids, dtype=np.int64))
            self._changes += len(ids)
            self.conn.execute("DELETE FROM chunks WHERE path = ?", (path,))

    def relabel(self, label_file, version: str) -> int:
        """Recompute every stored chunk's labels with `label_file(path, texts, spans) ->
        [{label: count}]` (the labelling rules changed); staged like any change. Returns chunks seen."""
        self._begin()
        self.conn.execute("DELETE FROM chunk_labels")
        seen = 0
        for (path,) in self.conn.execute("SELECT path FROM files WHERE status = 'ok'").fetchall():
            rows = self.conn.execute("SELECT id, text, start, end FROM chunks WHERE path = ? ORDER BY ord",
                                     (path,)).fetchall()
            for (chunk_id, *_), labels in zip(rows, label_file(path, [r[1] for r in rows], [(r[2], r[3]) for r in rows])):
                self.conn.executemany("INSERT INTO chunk_labels VALUES (?, ?, ?)",
                                      [(chunk_id, label, count) for label, count in labels.items()])
            seen += len(rows)
        self.set_labels_version(version)
        return seen

    def replace_all_vectors(self, model: str, dim: int, vectors_by_hash: dict[str, np.ndarray]) -> None:
        """Re-embedding: swap every vector and the recorded model in one transaction."""
        self._begin()
        self.conn.execute("DELETE FROM vectors")
        self.conn.executemany("INSERT INTO vectors VALUES (?, ?)",
                              [(h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors_by_hash.items()])
        self.conn.executemany("INSERT OR REPLACE INTO info VALUES (?, ?)",
                              [("embedding_model", model), ("embedding_dim", str(dim))])
        self.model, self.dim = model, dim
        self._index = rebuild(self._backend, self.conn, dim)
        self._fresh = True

    # -- publishing ------------------------------------------------------------
    def commit(self) -> bool:
        """Publish staged changes as a new generation. Returns False if nothing changed."""
        if not self._dirty:
            return False
        # Vectors no chunk uses any more: only those of chunks deleted here can be (a sweep of
        # the whole table cost most of a commit at 300k chunks).
        gone = sorted(self._gone)
        for start in range(0, len(gone), 500):
            part = gone[start:start + 500]
            self.conn.execute(f"DELETE FROM vectors WHERE chunk_hash IN ({','.join('?' * len(part))}) AND NOT EXISTS "
                              "(SELECT 1 FROM chunks c WHERE c.chunk_hash = vectors.chunk_hash)", part)
        if self._index_stale:
            self._index, self._index_stale, self._fresh = rebuild(self._backend, self.conn, self.dim), False, True
        index = self._vector_index()
        suited = getattr(self._backend, "suited", None)
        if suited is not None:                # exact or approximate, as the collection's size asks
            self._index = suited(index, self.conn)
            self._fresh = self._fresh or self._index is not index
        info = self.info()
        gen = int(info.get("generation", 0)) + 1
        base = int(info.get("vectors_base", gen - 1))
        changes = int(info.get("vectors_changes", 0)) + self._changes
        # A large (approximate) index is written in full only once the changes since its
        # last full file pass DELTA_SHARE of it; until then each generation names that
        # file, and readers add the rest from the catalog (vectors.catch_up).
        if (getattr(self._index, "approximate", False) and not self._fresh and changes <= DELTA_SHARE * len(self._index)
                and vectors_file(self.directory, base).is_file()):
            published = base
        else:
            with replacing(vectors_file(self.directory, gen)) as tmp:
                self._index.save(tmp)
            published, changes = gen, 0
        self.conn.executemany("INSERT OR REPLACE INTO info VALUES (?, ?)", [
            ("generation", str(gen)), ("updated_at", str(time.time())), ("vectors_base", str(published)),
            ("vectors_base_previous", str(base)), ("vectors_changes", str(changes)),
            ("vector_search", getattr(self._index, "describe", lambda: type(self._index).__name__)()),
            ("last_chunk_id", str(self._last_id if self._last_id is not None else info.get("last_chunk_id", 0)))])
        self.conn.execute("COMMIT")
        self._dirty, self._fresh, self._changes = False, False, 0
        self._gone.clear()
        self._cleanup_orphans()       # files no generation in use reads (an old full file among them)
        return True

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self._index = None
        self._index_stale = False
        self._dirty = False
        self._fresh, self._changes, self._last_id = False, 0, None
        self._gone.clear()
