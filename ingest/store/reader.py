"""The read side of a collection: what retrieval, `docent sources` and the window use.

Safe across threads: every thread reads through its own SQLite connection (one shared
connection fails as soon as two threads open a transaction), and what is built once per
index generation (the vector index, the keyword index, the ids a filter excludes) is
built under a lock and shared, read-only.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from ingest.errors import CollectionNotFound, StoreError, storage_faults
from ingest.store import keywords, schema
from ingest.store.catalog import Catalog, Generations
from ingest.store.filters import NO_FILTER, ChunkFilter
from ingest.store.lock import WriterLock
from ingest.store.records import collection_dir
from ingest.store.vectors import VECTOR_BACKENDS, Hit, VectorBackend, VectorIndex, load_generation

MIGRATION_WAIT_SECONDS = 60


class Collection(Generations, Catalog):
    """Read side. Takes the writer lock only once, to migrate a collection written by an
    older docent."""

    def __init__(self, home: Path, name: str, vectors: VectorBackend | None = None):
        self.name = name
        self.directory = collection_dir(home, name)
        self._db = self.directory / schema.DB_NAME
        if not self._db.is_file():
            raise CollectionNotFound(
                f"no collection '{name}' under {Path(home)} (run `docent ingest PATH --collection {name}` first)")
        self._backend = vectors or VECTOR_BACKENDS["faiss"]
        self._local = threading.local()
        # Every connection with the thread it belongs to: a thread that ended leaves its
        # connection behind (a server that answers each request in a thread of its own
        # left one per request: memory and file handles grew without end); those are
        # closed when the next one opens.
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        # What was built from one generation, by kind: (generation, value).
        self._built: dict[object, tuple[int, object]] = {}
        with storage_faults(name, self.directory):
            if schema.version(self.conn) < schema.SCHEMA_VERSION:
                self._migrate()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with storage_faults(self.name, self.directory):
                conn = schema.connect_for_reading(self._db)
            with self._lock:
                ended = [c for thread, c in self._connections if not thread.is_alive()]
                self._connections = [(t, c) for t, c in self._connections if t.is_alive()]
                self._connections.append((threading.current_thread(), conn))
            for stale in ended:
                stale.close()
            self._local.conn = conn
        return conn

    def _migrate(self) -> None:
        """Bring an older collection's catalog up to date, once, as its writer would."""
        lock = WriterLock(self.directory / schema.LOCK_NAME, self.name)
        deadline = time.monotonic() + MIGRATION_WAIT_SECONDS
        try:
            while not lock.try_acquire():       # a writer holds it: it migrates on open; wait
                if schema.version(self.conn) >= schema.SCHEMA_VERSION:
                    return
                if time.monotonic() > deadline:
                    lock.acquire()              # raises CollectionLocked, naming the holder
                time.sleep(0.2)
        except OSError as exc:
            raise StoreError(f"collection '{self.name}' is in an older format and its folder cannot be "
                             f"written ({exc.strerror}): open it once where it can be, to update it") from None
        try:
            conn = schema.connect(self._db)
            try:
                schema.migrate(conn, self.name)
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            raise StoreError(f"collection '{self.name}' is in an older format and cannot be updated here "
                             f"({exc}): open it once where its folder can be written") from None
        finally:
            lock.release()

    def vector_index(self) -> VectorIndex:
        """The vector index of the current generation (reloaded when a writer has published)."""
        return self._of_generation("vectors", lambda info: load_generation(
            self._backend, self.conn, self.directory, int(info.get("generation", 0)), int(info["embedding_dim"]),
            int(info["vectors_base"]) if "vectors_base" in info else None))

    def keyword_index(self):
        """The in-memory BM25 index of the current generation (ingest/bm25.py; built once
        per generation, ~3 s at 100k chunks), or None: then keyword_search uses FTS5."""
        return self._of_generation("keywords", lambda info: keywords.load_keyword_index(self.conn))

    def dense_search(self, queries: np.ndarray, k: int = 10, rule: ChunkFilter = NO_FILTER) -> list[list[Hit]]:
        """For each query vector, the k best (chunk id, cosine) the filter lets through."""
        return self.vector_index().search(queries, k, self.excluded_ids(rule))

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """Dense search without a filter."""
        return self.dense_search(queries, k)

    def keyword_search(self, query: str, k: int = 10, max_df: float = 1.0,
                       rule: ChunkFilter = NO_FILTER) -> list[Hit]:
        """BM25 over chunk text and headings, (chunk id, score), higher = better; in
        memory when every chunk has its terms stored, else by FTS5. Excluded chunks are
        dropped from as many extra results, so k stays exact.

        Terms found in more than `max_df` of all chunks (and in over 1,000) are left out
        of the query, unless nothing else is left: they add little to BM25 but cost time."""
        excluded = self.excluded_ids(rule)
        want = k + len(excluded)
        index = self.keyword_index()
        if index is None:
            hits = keywords.fts_search(self.conn, query, want, max_df)
        else:
            hits = keywords.bm25_search(self.conn, index, query, want, max_df)
        return [(i, s) for i, s in hits if i not in excluded][:k]
