"""The read side of a collection in PostgreSQL: `PgCollection`, the twin of
ingest/store/reader.py's `Collection` (the same methods, the same results).

Dense search runs in the database: pgvector ranks the chunks by inner product over
half-precision copies of their vectors (exact, by a scan, until the writer builds an HNSW
index past `store.pg_index_above`), and the filter (labels, paths a rule or a user's
rights exclude) is part of the query's WHERE, so k stays exact. Keyword search is the
same in-memory BM25 as the FAISS store's, built per generation from the stored terms.

Safe across threads: each thread has its own connection; a thread that ended hands its
connection to the next one (a small pool), and one that broke (the database restarted)
is replaced.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ingest.store import keywords
from ingest.store.catalog import Catalog, Generations
from ingest.store.filters import NO_FILTER, ChunkFilter
from ingest.store.postgres import schema
from ingest.store.postgres.connection import Connection, connect
from ingest.store.records import StoredChunk, collection_dir, stored_chunk

CHUNK_COLUMNS = 'id, path, ord, text, heading_path, heading, page, page_end, start, "end", chunk_hash, n_tokens'
EF_SEARCH = 400      # HNSW candidates a search reads (pgvector's hnsw.ef_search); k above it reads k


def probes_for(lists: int, probes: int) -> int:
    """Lists an IVFFlat search reads: `probes`, or all of a small index's."""
    return max(1, min(lists, probes))


def vector_text(vector) -> str:
    """A vector as pgvector's text input; float32 values round-trip exactly."""
    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).tolist())) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.array(text[1:-1].split(","), dtype=np.float32)


def halfvec(dim: int) -> str:
    """The expression searches rank by (and the HNSW index is built on)."""
    return f"embedding::halfvec({int(dim)})"


class PgCatalog(Catalog):
    """The catalog queries whose SQL differs from SQLite's, shared by PgCollection and
    PgCollectionWriter."""

    def chunks(self, ids: Sequence[int]) -> list[StoredChunk]:
        if not len(ids):
            return []
        rows = {r["id"]: r for r in self.conn.execute(f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE id = ANY(?)",
                                                      ([int(i) for i in ids],))}
        return [stored_chunk(rows[i]) for i in ids if i in rows]

    def chunks_of(self, path: str) -> list[StoredChunk]:
        return [stored_chunk(r) for r in self.conn.execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE path = ? ORDER BY ord", (path,))]

    def chunks_between(self, path: str, first: int, last: int) -> list[StoredChunk]:
        return [stored_chunk(r) for r in self.conn.execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks WHERE path = ? AND ord BETWEEN ? AND ? ORDER BY ord",
            (path, first, last))]

    def known_vectors(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors by chunk hash, for chunks whose text is already embedded."""
        hashes = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(hashes), 1000):
            for row in self.conn.execute("SELECT DISTINCT ON (chunk_hash) chunk_hash, embedding::text FROM chunks "
                                         "WHERE chunk_hash = ANY(?)", (hashes[i:i + 1000],)):
                found[row[0]] = parse_vector(row[1])
        return found

    def labelled_ids(self, labels: Sequence[str]) -> frozenset[int]:
        if not labels:
            return frozenset()
        return frozenset(r[0] for r in self.conn.execute(
            "SELECT DISTINCT chunk_id FROM chunk_labels WHERE label = ANY(?)", (list(labels),)))

    def chunk_ids_of(self, paths: Sequence[str]) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE path = ANY(?)", (list(paths),))}


class PgCollection(Generations, PgCatalog):
    """Read side of collection `name` in the database `url` names (or `embedded`); an
    IVFFlat search reads `probes` lists."""
    SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def __init__(self, url: str, home: Path, name: str, probes: int):
        self.name, self.probes = name, probes
        self.url, self.home = url, Path(home)
        self.directory = collection_dir(home, name)     # local files only: git mirrors, uploads
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, Connection]] = []
        self._lock = threading.Lock()
        self._built: dict[object, tuple[int, object]] = {}
        first = connect(url, home)
        try:
            self.schema = schema.open_schema(first, name, create=False)
        except BaseException:
            first.close()
            raise
        self._adopt(first)

    def _adopt(self, conn: Connection) -> None:
        conn.configure(f"SET hnsw.ef_search = {EF_SEARCH}")
        # A filtered approximate search goes on reading until k rows pass the filter.
        conn.configure("SET hnsw.iterative_scan = relaxed_order")
        conn.configure("SET ivfflat.iterative_scan = relaxed_order")
        with self._lock:
            self._connections.append((threading.current_thread(), conn))
        self._local.conn = conn

    @property
    def conn(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.broken:
            return conn
        with self._lock:
            alive = [(t, c) for t, c in self._connections if t.is_alive() and not c.broken and c is not conn]
            spare = [c for t, c in self._connections if not t.is_alive() and not c.broken and c is not conn]
            broken = [c for _, c in self._connections if c.broken or c is conn]
            self._connections = alive
            reused = spare.pop() if spare else None
        for c in spare + broken:
            c.close()
        if reused is None:
            reused = connect(self.url, self.home)
            schema.use(reused, self.schema)
        self._adopt(reused)
        return reused

    def vector_index(self) -> "PgVectors":
        """A view of the vectors in the database (searches go to it; nothing is loaded)."""
        return PgVectors(self, int(self.info()["embedding_dim"]))

    def keyword_index(self):
        return self._of_generation("keywords", lambda info: keywords.load_keyword_index(self.conn))

    def _approximate(self) -> int | None:
        """None: search by a scan; else the IVFFlat probes (0 for HNSW). The writer starts a
        generation when it builds or drops the index."""
        def plan(info: dict):
            built = info.get("vector_index", "").split(":")
            if not info.get("vector_search", "exact").startswith("approximate"):
                return None
            return probes_for(int(built[1]), self.probes) if built[0] == "ivfflat" and len(built) == 3 else 0
        return self._of_generation("plan", plan)

    def _excluded_paths(self, rule: ChunkFilter) -> list[str]:
        """The files a rule's path test excludes (the test is Python: a user's rights, restricted paths)."""
        if rule.path_rule is None:
            return []
        return self._of_generation(("paths", rule.cache_key()),
                                   lambda info: [f.path for f in self.files() if rule.path_rule(f.path)])

    def dense_search(self, queries: np.ndarray, k: int = 10, rule: ChunkFilter = NO_FILTER) -> list[list[tuple[int, float]]]:
        """For each query vector, the k best (chunk id, inner product) the filter lets through."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if not len(queries):
            return []
        probes = self._approximate()
        if probes:
            self.conn.configure_default(f"SET ivfflat.probes = {probes}")
        if probes is not None:     # the index's expression, or the planner cannot use it
            near = f"{halfvec(queries.shape[1])} <#> ?::halfvec({queries.shape[1]})"
        else:                      # a scan: float32 as stored (a third faster than casting each row)
            near = "embedding <#> ?::vector"
        where, params = [], []
        if rule.labels:
            where.append("NOT EXISTS (SELECT 1 FROM chunk_labels l WHERE l.chunk_id = c.id AND l.label = ANY(?))")
            params.append(list(rule.labels))
        paths = self._excluded_paths(rule)
        if paths:
            where.append("c.path <> ALL(?)")
            params.append(paths)
        sql = (f"SELECT id, -({near}) AS score FROM chunks c {'WHERE ' + ' AND '.join(where) if where else ''} "
               f"ORDER BY {near} LIMIT {int(k)}")
        conn = self.conn
        out = []
        for query in queries:
            text = vector_text(query)
            if k > EF_SEARCH:
                conn.execute(f"SET hnsw.ef_search = {min(int(k), 1000)}")
            rows = conn.execute(sql, (text, *params, text)).fetchall()
            if k > EF_SEARCH:
                conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
            # relaxed_order: an HNSW scan may return neighbours slightly out of order
            out.append(sorted(((int(r[0]), float(r[1])) for r in rows), key=lambda hit: -hit[1]))
        return out

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[tuple[int, float]]]:
        return self.dense_search(queries, k)

    def keyword_search(self, query: str, k: int = 10, max_df: float = 1.0,
                       rule: ChunkFilter = NO_FILTER) -> list[tuple[int, float]]:
        """BM25 over chunk text and headings, as the FAISS store ranks it; excluded chunks
        dropped from as many extra results, so k stays exact."""
        excluded = self.excluded_ids(rule)
        index = self.keyword_index()
        hits = keywords.bm25_search(self.conn, index, query, k + len(excluded), max_df)
        return [(i, s) for i, s in hits if i not in excluded][:k]

    def fts_search(self, query: str, k: int = 10, max_df: float = 1.0) -> list[tuple[int, float]]:
        return self.keyword_search(query, k, max_df)

    def document_frequency(self, words: list[str]) -> dict[str, int]:
        """Chunks holding each word (stems, as the keyword index counts them)."""
        index = self.keyword_index()
        frequency = dict.fromkeys(words, 0)
        for word, stems in zip(words, keywords.tokens_of(words)):
            found = dict(self.conn.execute("SELECT term, id FROM terms WHERE term = ANY(?)", (list(stems),))) \
                if stems else {}
            for stem in stems:
                count = index.frequency(found[stem]) if stem in found else 0
                frequency[word] = count if frequency[word] == 0 else min(frequency[word], count)
        return frequency


class PgVectors:
    """What retrieval's warm-up and `len()` need of a vector index, answered by the database."""

    def __init__(self, collection: PgCollection, dim: int):
        self.collection, self.dim = collection, dim

    def __len__(self) -> int:
        return self.collection.chunk_count()

    def ids(self) -> np.ndarray:
        return np.array([r[0] for r in self.collection.conn.execute("SELECT id FROM chunks ORDER BY id")], dtype=np.int64)

    def search(self, queries: np.ndarray, k: int, exclude: frozenset[int] = frozenset()) -> list[list[tuple[int, float]]]:
        found = self.collection.dense_search(queries, k + len(exclude))
        return [[hit for hit in hits if hit[0] not in exclude][:k] for hits in found]
