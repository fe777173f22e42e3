"""The write side of a collection in PostgreSQL: `PgCollectionWriter`, the twin of
ingest/store/writer.py's `CollectionWriter`.

Why it stays consistent: a writer stages its changes in one open transaction (each file
in a savepoint, so an interrupt never leaves half a file) and `commit()` publishes them
as a new generation, all at once; a writer killed at any moment leaves the last commit.
Readers see committed rows only.

Many writers at once: there is no collection lock. A writer locks each file it changes
(a transaction-scoped advisory lock on the path), so two ingests of different folders
run side by side; one that meets a file another writer holds first publishes its own
work (which releases its locks, so two writers never wait on each other) and then
waits for the file. Chunk ids come from a sequence and keyword terms are added through a
second, autocommitting connection, so nothing else is shared between open transactions.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ingest.errors import StoreError
from ingest.store import keywords
from ingest.store.catalog import SharedWrites
from ingest.store.postgres import schema
from ingest.store.postgres.connection import Connection, connect
from ingest.store.approximate import nlist_for
from ingest.store.postgres.reader import PgCatalog, halfvec, probes_for, vector_text
from ingest.store.records import FileRecord, NewChunk, collection_dir

INDEX = "chunks_embedding_approximate"
HNSW_OPTIONS = "m = 32, ef_construction = 128"      # benchmarks/scale.py: m 16 found 0.70 of the top 10 at 1M


def _retrain(built: str, count: int) -> bool:
    """IVFFlat lists trained for a collection a quarter or four times this size."""
    parts = built.split(":")
    if parts[0] != "ivfflat" or len(parts) != 3:
        return False
    trained = int(parts[2])
    return count > 4 * trained or count < trained // 4


def _describe(built: str, probes: int) -> str:
    parts = built.split(":")
    if parts[0] == "ivfflat" and len(parts) == 3:
        lists = int(parts[1])
        return f"approximate (pgvector IVFFlat: {probes_for(lists, probes)} of {lists} lists a search)"
    return f"approximate (pgvector HNSW, {HNSW_OPTIONS})"


class PgCollectionWriter(SharedWrites, PgCatalog):
    def __init__(self, url: str, home: Path, name: str, model: str | None, dim: int | None, reembed: bool = False,
                 *, index_above: int, method: str, probes: int):
        self.name = name
        self.directory = collection_dir(home, name)     # local files only: git mirrors, uploads
        self.index_above, self.method, self.probes = index_above, method, probes
        self._conn = connect(url, home)
        self._terms: Connection | None = None
        try:
            self.schema = schema.open_schema(self._conn, name, create=model is not None)
            self._terms = connect(url, home)
            schema.use(self._terms, self.schema)
            self.model, self.dim = self.settle_model(model, dim, reembed,
                                                     f"no collection '{name}' in {self._conn.where}")
            self._dirty = False
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.close()
            raise StoreError(f"cannot create collection folder {self.directory}: {exc.strerror}") from None
        except BaseException:
            self.close()
            raise

    @property
    def conn(self) -> Connection:
        return self._conn

    def close(self) -> None:
        """Abandon staged changes (if any) and release the file locks."""
        for conn in (self._conn, self._terms):
            if conn is not None and not conn.broken:
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                finally:
                    conn.close()

    def _init_info(self, model: str, dim: int) -> None:
        now = str(time.time())
        self.conn.executemany("INSERT INTO info VALUES (?, ?) ON CONFLICT (key) DO NOTHING", [
            ("embedding_model", model), ("embedding_dim", str(dim)), ("generation", "0"), ("created_at", now)])

    def _begin(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
        self._dirty = True

    def _hold(self, path: str) -> None:
        """Lock `path` for this writer until its next commit; if another writer holds it,
        publish this one's work first, then wait."""
        key = (self.schema, path)
        self._begin()
        if self.conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(?), hashtext(?))", key).fetchone()[0]:
            return
        self.commit()
        self._begin()
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(?), hashtext(?))", key)

    # -- staging ---------------------------------------------------------------
    def _atomic(self, path: str, work) -> None:
        """One file's changes all-or-nothing, even if interrupted (Ctrl-C) half-way."""
        self._hold(path)
        self.conn.execute("SAVEPOINT one_file")
        try:
            work()
        except BaseException:
            if not self.conn.broken:
                self.conn.execute("ROLLBACK TO one_file")
                self.conn.execute("RELEASE one_file")
            raise
        self.conn.execute("RELEASE one_file")

    def put_file(self, record: FileRecord, chunks: Sequence[NewChunk], vectors: np.ndarray) -> None:
        """Replace everything stored for `record.path` with these chunks and vectors."""
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        self._atomic(record.path, lambda: self._put_file(record, chunks, vectors))

    def _put_file(self, record: FileRecord, chunks: Sequence[NewChunk], vectors: np.ndarray) -> None:
        self.conn.execute("DELETE FROM chunks WHERE path = ?", (record.path,))
        self.conn.execute(
            "INSERT INTO files (path, format, content_hash, size, mtime_ns, status, error, failed_hash, n_chunks, "
            "pages, title, ingested_at, source_spec, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (path) DO UPDATE SET format = excluded.format, content_hash = excluded.content_hash, "
            "size = excluded.size, mtime_ns = excluded.mtime_ns, status = excluded.status, error = excluded.error, "
            "failed_hash = excluded.failed_hash, n_chunks = excluded.n_chunks, pages = excluded.pages, "
            "title = excluded.title, ingested_at = excluded.ingested_at, source_spec = excluded.source_spec, "
            "origin = excluded.origin", (
                record.path, record.format, record.content_hash, record.size, record.mtime_ns, record.status,
                record.error, record.failed_hash, record.n_chunks, record.pages, record.title, record.ingested_at,
                record.source_spec, record.origin))
        if not chunks:
            return
        ids = [r[0] for r in self.conn.execute("SELECT nextval('chunk_ids') FROM generate_series(1, ?)",
                                               (len(chunks),))]
        self.conn.executemany(
            'INSERT INTO chunks (id, path, ord, text, heading_path, heading, page, page_end, start, "end", '
            "chunk_hash, n_tokens, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?::vector)",
            [(chunk_id, record.path, ord_, chunk.text, json.dumps(list(chunk.heading_path), ensure_ascii=False),
              " > ".join(chunk.heading_path), chunk.page, chunk.page_end, chunk.start, chunk.end, chunk.chunk_hash,
              chunk.n_tokens, vector_text(vector))
             for ord_, (chunk_id, chunk, vector) in enumerate(zip(ids, chunks, vectors))])
        self.conn.executemany("INSERT INTO chunk_labels VALUES (?, ?, ?)", [
            (chunk_id, label, count) for chunk_id, chunk in zip(ids, chunks) for label, count in chunk.labels])
        self._put_terms(ids, [f"{c.text}\n{' > '.join(c.heading_path)}" for c in chunks])

    def _put_terms(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        counted = keywords.tokens_of(texts)
        words = list(dict.fromkeys(t for counts in counted for t in counts))
        term_id: dict[str, int] = {}
        for i in range(0, len(words), 1000):
            part = words[i:i + 1000]
            # Autocommitted on their own connection: two writers adding one new word never
            # wait for each other's commit (an unused term costs nothing).
            self._terms.execute("INSERT INTO terms (term) SELECT unnest(?::text[]) ON CONFLICT (term) DO NOTHING",
                                (part,))
            term_id.update(self._terms.execute("SELECT term, id FROM terms WHERE term = ANY(?)", (part,)))
        self.conn.executemany("INSERT INTO chunk_terms VALUES (?, ?)", [
            (chunk_id, np.array([[term_id[t] for t in counts], list(counts.values())], dtype="<i4").tobytes())
            for chunk_id, counts in zip(ids, counted)])

    def mark_failed(self, path: str, error: str, failed_hash: str | None, fmt: str | None,
                    source: str | None = None) -> None:
        """Record a failure; a file that had good content keeps its chunks (nothing is lost)."""
        self._hold(path)
        self.conn.execute(
            "INSERT INTO files (path, format, status, error, failed_hash, n_chunks, ingested_at, source_spec) "
            "VALUES (?,?,'failed',?,?,0,?,?) ON CONFLICT (path) DO UPDATE SET status = 'failed', "
            "error = excluded.error, failed_hash = excluded.failed_hash", (path, fmt, error, failed_hash, time.time(),
                                                                           source))

    def remove_file(self, path: str) -> bool:
        if not self.file(path):
            return False

        def work() -> None:
            self.conn.execute("DELETE FROM chunks WHERE path = ?", (path,))
            self.conn.execute("DELETE FROM files WHERE path = ?", (path,))
        self._atomic(path, work)
        return True

    def relabel(self, label_file, version: str) -> int:
        """Recompute every stored chunk's labels (the labelling rules changed)."""
        self._begin()
        self.conn.execute("DELETE FROM chunk_labels")
        seen = 0
        for (path,) in self.conn.execute("SELECT path FROM files WHERE status = 'ok'").fetchall():
            rows = self.conn.execute('SELECT id, text, start, "end" FROM chunks WHERE path = ? ORDER BY ord',
                                     (path,)).fetchall()
            labelled = label_file(path, [r[1] for r in rows], [(r[2], r[3]) for r in rows])
            self.conn.executemany("INSERT INTO chunk_labels VALUES (?, ?, ?)", [
                (row[0], label, count) for row, labels in zip(rows, labelled) for label, count in labels.items()])
            seen += len(rows)
        self.set_labels_version(version)
        return seen

    def replace_all_vectors(self, model: str, dim: int, vectors_by_hash: dict[str, np.ndarray]) -> None:
        """Re-embedding: swap every vector and the recorded model in one transaction."""
        self._begin()
        self.conn.execute(f"DROP INDEX IF EXISTS {INDEX}")     # built for the old vectors
        self.conn.executemany("UPDATE chunks SET embedding = ?::vector WHERE chunk_hash = ?",
                              [(vector_text(v), h) for h, v in vectors_by_hash.items()])
        self.conn.executemany("INSERT INTO info VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                              [("embedding_model", model), ("embedding_dim", str(dim))])
        self.model, self.dim = model, dim

    # -- publishing ------------------------------------------------------------
    def commit(self) -> bool:
        """Publish staged changes as a new generation. Returns False if nothing changed."""
        if not self._dirty:
            return False
        self._begin()
        self.conn.execute("INSERT INTO info VALUES ('generation', '1') ON CONFLICT (key) DO UPDATE "
                          "SET value = (info.value::bigint + 1)::text")
        self.conn.execute("INSERT INTO info VALUES ('updated_at', ?) ON CONFLICT (key) DO UPDATE "
                          "SET value = excluded.value", (str(time.time()),))
        self.conn.execute("COMMIT")
        self._dirty = False
        self._index_vectors()
        return True

    def _index_vectors(self) -> None:
        """Exact search up to store.pg_index_above chunks; above it an approximate index
        (store.pg_index: IVFFlat with ~4 sqrt(n) lists, or HNSW), built once, concurrently
        (writers go on, searches stay exact until it is ready), by whichever writer gets
        there first; dropped again below half the threshold. IVFFlat's lists are trained
        again, beside the old index, once the collection has grown or shrunk fourfold. An
        index left invalid by a build that was killed is built again."""
        count = self.chunk_count()
        info = self.info()
        valid = self._index_valid(INDEX)
        want = bool(self.index_above) and count > self.index_above
        keep = bool(self.index_above) and count >= self.index_above // 2
        built = info.get("vector_index", "")
        stale = bool(valid) and keep and (built.split(":")[0] != self.method or _retrain(built, count))
        if not ((valid is True and keep and not stale) or (valid is None and not want)):
            key = (f"docent:index:{self.schema}",)
            if self.conn.execute("SELECT pg_try_advisory_lock(hashtext(?))", key).fetchone()[0]:
                try:
                    built = self._build(count, valid, keep, want, stale) or built
                finally:
                    self.conn.execute("SELECT pg_advisory_unlock(hashtext(?))", key)
            # else another writer is building or dropping it
        ready = self._index_valid(INDEX)
        search = _describe(built, self.probes) if ready else "exact"
        if info.get("vector_search") != search or (ready and info.get("vector_index") != built):
            # A new generation: readers choose their query (index or scan) once per generation.
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT INTO info VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                                  "SET value = excluded.value", [("vector_search", search), ("vector_index", built)])
            self.conn.execute("UPDATE info SET value = (value::bigint + 1)::text WHERE key = 'generation'")
            self.conn.execute("COMMIT")

    def _build(self, count: int, valid: bool | None, keep: bool, want: bool, stale: bool) -> str | None:
        """Drop, build or rebuild the approximate index (under the caller's lock); returns
        what was built ("ivfflat:LISTS:CHUNKS" or "hnsw"), or None."""
        if valid is False or (valid and not keep):
            self.conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        if not want or (valid and not stale):
            return None
        if self.method == "hnsw":
            # The graph built in memory: ~1.4 KB a chunk at 384 dims (benchmarks/postgres.py);
            # past maintenance_work_mem the build goes on several times slower.
            memory_mb, options, built = min(max(1024, count * 2 // 1024), 8192), HNSW_OPTIONS, "hnsw"
        else:
            lists = nlist_for(count)
            memory_mb, options, built = 1024, f"lists = {lists}", f"ivfflat:{lists}:{count}"
        create = (f"CREATE INDEX CONCURRENTLY {INDEX}_next ON chunks USING {self.method} "
                  f"(({halfvec(self.dim)}) halfvec_ip_ops) WITH ({options})")
        # Built beside the one it replaces (searches keep an index meanwhile), then swapped.
        for _ in range(2):
            self.conn.execute(f"SET maintenance_work_mem = '{memory_mb}MB'")
            self.conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}_next")
            try:
                self.conn.execute(create)
                break
            except Exception as exc:
                # IVFFlat's k-means says what it needs (3.4 GB for 4,096 lists at 1M chunks): once more with it.
                needed = re.search(r"memory required is (\d+) MB", str(exc))
                if needed is None or int(needed.group(1)) < memory_mb:
                    raise
                memory_mb = int(needed.group(1)) + 64
        self.conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        self.conn.execute(f"ALTER INDEX {INDEX}_next RENAME TO {INDEX}")
        return built

    def _index_valid(self, name: str) -> bool | None:
        """True: the index is ready; False: a killed build left it invalid; None: none."""
        row = self.conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(?)",
                                (name,)).fetchone()
        return None if row is None else bool(row[0])

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self._dirty = False
