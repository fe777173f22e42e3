"""The index format: one module that writes it (ingest) and reads it (bot).

A collection is a folder:

    <home>/<name>/docent.sqlite          files, chunks, vectors, chunk terms, FTS5 index, info
    <home>/<name>/vectors-<gen>.faiss    FAISS IndexIDMap2(IndexScalarQuantizer fp16, inner
                                         product), ids = chunk ids (older: IndexFlatIP)
    <home>/<name>/write.lock             held (flock) by the one writer

Why it stays consistent: SQLite is the source of truth and names the FAISS file of the
current generation. A writer first writes a *new* FAISS file completely (fsync + rename),
then commits the SQLite transaction that points to it; a crash before the commit leaves
the old pointer and the old file, a crash after leaves the new ones. Readers read the
pointer inside a SQLite snapshot, so they never see a half-written index. Vectors are
also kept in SQLite (keyed by chunk hash), which lets a renamed or unchanged passage
reuse its vector and lets a reader rebuild FAISS if the file is ever lost.
No pickle anywhere: SQLite rows, JSON strings, raw float32 blobs and FAISS's own format.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from docent.atomic import is_scratch, replacing
from ingest.errors import (CollectionLocked, CollectionNotFound, EmbeddingMismatch, StoreError,  # noqa: F401
                           fault_kind, storage_faults)

SCHEMA_VERSION = 1
_FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"     # the one in _SCHEMA below
DB_NAME = "docent.sqlite"
LOCK_NAME = "write.lock"
_VECTOR_FILE = re.compile(r"^vectors-(\d+)\.faiss$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,          -- absolute path as ingested
    format TEXT,
    content_hash TEXT,              -- hash of the bytes whose chunks are in the index
    size INTEGER,
    mtime_ns INTEGER,
    status TEXT NOT NULL,           -- ok | failed
    error TEXT,                     -- last failure reason (status = failed)
    failed_hash TEXT,               -- hash of the bytes that failed (skip re-parsing them)
    n_chunks INTEGER NOT NULL DEFAULT 0,
    pages INTEGER,
    title TEXT,
    ingested_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,         -- the FAISS id
    path TEXT NOT NULL REFERENCES files(path),
    ord INTEGER NOT NULL,           -- position in the file
    text TEXT NOT NULL,
    heading_path TEXT NOT NULL,     -- JSON list of heading titles
    heading TEXT NOT NULL,          -- the same, joined with " > " (searchable)
    page INTEGER,
    page_end INTEGER,
    start INTEGER NOT NULL,         -- character span in the file's extracted text
    end INTEGER NOT NULL,
    chunk_hash TEXT NOT NULL,       -- hash of the embedded text (heading path + text)
    n_tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path, ord);
CREATE TABLE IF NOT EXISTS chunk_labels (  -- what a chunk holds that must not leak (secret, pii, ...)
    chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (chunk_id, label)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_labels_label ON chunk_labels(label, chunk_id);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(chunk_hash);
CREATE TABLE IF NOT EXISTS vectors (chunk_hash TEXT PRIMARY KEY, vector BLOB NOT NULL);
-- The keyword search's input (ingest/bm25.py): each chunk's FTS5 tokens (text and heading)
-- as term ids and counts, little-endian int32 [ids..., counts...].
CREATE TABLE IF NOT EXISTS terms (id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS chunk_terms (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    terms BLOB NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, heading, content='chunks', content_rowid='id',
    tokenize="porter unicode61 remove_diacritics 2");
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) VALUES ('delete', old.id, old.text, old.heading);
END;
"""


@dataclass(frozen=True)
class FileRecord:
    path: str
    format: str | None
    content_hash: str | None
    size: int | None
    mtime_ns: int | None
    status: str
    error: str | None
    failed_hash: str | None
    n_chunks: int
    pages: int | None
    title: str | None
    ingested_at: float


@dataclass(frozen=True)
class StoredChunk:
    id: int
    path: str
    ord: int
    text: str
    heading_path: tuple[str, ...]
    page: int | None
    page_end: int | None
    start: int
    end: int
    chunk_hash: str
    n_tokens: int


@dataclass(frozen=True)
class NewChunk:
    """A chunk to store: what the chunker made plus its hash."""
    text: str
    heading_path: tuple[str, ...]
    page: int | None
    page_end: int | None
    start: int
    end: int
    chunk_hash: str
    n_tokens: int
    labels: tuple[tuple[str, int], ...] = ()     # (label, count): see bot/guard/labels.py


def validate_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise StoreError(f"invalid collection name {name!r}: use letters, digits, '-', '_' or '.' (max 64)")
    return name


def collection_dir(home: Path, name: str) -> Path:
    return Path(home) / validate_name(name)


def list_collections(home: Path) -> list[str]:
    home = Path(home)
    if not home.is_dir():
        return []
    return sorted(p.name for p in home.iterdir() if (p / DB_NAME).is_file())


def _connect_for_reading(path: Path) -> sqlite3.Connection:
    """A reader's connection; on a read-only disk (no -shm file can be made) a read-only
    one, and if even that cannot be had, one that takes the file as it is (immutable: no
    writer can change it there). The first read checks the file is a database."""
    try:
        conn = _connect(path)
    except sqlite3.OperationalError as exc:
        if fault_kind(exc) != "read-only":
            raise
        conn = None
        for options in ("mode=ro", "mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(f"{path.absolute().as_uri()}?{options}", uri=True, isolation_level=None,
                                       check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("SELECT count(*) FROM info").fetchone()
                break
            except sqlite3.OperationalError:
                conn = None
        if conn is None:
            raise exc from None
    conn.execute("SELECT count(*) FROM info").fetchone()
    return conn


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before we delete the FAISS file of the generation it replaced.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _file_record(row: sqlite3.Row) -> FileRecord:
    return FileRecord(**{k: row[k] for k in row.keys()})


def _stored_chunk(row: sqlite3.Row) -> StoredChunk:
    return StoredChunk(
        id=row["id"], path=row["path"], ord=row["ord"], text=row["text"],
        heading_path=tuple(json.loads(row["heading_path"])), page=row["page"],
        page_end=row["page_end"], start=row["start"], end=row["end"],
        chunk_hash=row["chunk_hash"], n_tokens=row["n_tokens"])


class _Base:
    """Queries shared by the reader and the writer; both are context managers."""

    conn: sqlite3.Connection
    directory: Path
    name: str

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.conn.execute("SELECT key, value FROM info")}

    def files(self) -> list[FileRecord]:
        return [_file_record(r) for r in self.conn.execute("SELECT * FROM files ORDER BY path")]

    def file(self, path: str) -> FileRecord | None:
        row = self.conn.execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        return _file_record(row) if row else None

    def chunk_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def chunks(self, ids: Sequence[int]) -> list[StoredChunk]:
        """Chunks by id, in the order asked; ids no longer in the index are left out."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = {r["id"]: r for r in self.conn.execute(f"SELECT * FROM chunks WHERE id IN ({marks})", list(ids))}
        return [_stored_chunk(rows[i]) for i in ids if i in rows]

    def chunks_of(self, path: str) -> list[StoredChunk]:
        return [_stored_chunk(r) for r in self.conn.execute(
            "SELECT * FROM chunks WHERE path = ? ORDER BY ord", (path,))]

    def label_counts(self) -> dict[str, dict[str, int]]:
        """{path: {label: chunks with it}} (collections from before labels: empty)."""
        out: dict[str, dict[str, int]] = {}
        try:
            rows = self.conn.execute("SELECT c.path, l.label, COUNT(*) FROM chunk_labels l "
                                     "JOIN chunks c ON c.id = l.chunk_id GROUP BY c.path, l.label").fetchall()
        except sqlite3.OperationalError:       # no labels table yet
            return out
        for path, label, count in rows:
            out.setdefault(path, {})[label] = count
        return out

    def chunk_ids_of(self, paths: Sequence[str]) -> set[int]:
        out: set[int] = set()
        for path in paths:
            out.update(r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE path = ?", (path,)))
        return out

    def labelled_ids(self, labels: Sequence[str]) -> frozenset[int]:
        """Ids of the chunks carrying any of `labels`."""
        if not labels:
            return frozenset()
        try:
            rows = self.conn.execute(f"SELECT DISTINCT chunk_id FROM chunk_labels WHERE label IN "
                                     f"({','.join('?' * len(labels))})", tuple(labels)).fetchall()
        except sqlite3.OperationalError:
            return frozenset()
        return frozenset(r[0] for r in rows)

    def keyword_search(self, query: str, k: int = 10, max_df: float = 1.0, keywords=None) -> list[tuple[int, float]]:
        """BM25 over chunk text and headings; (chunk id, score) with higher = better.
        In memory (ingest/bm25.py) when every chunk has its terms stored, else by FTS5.
        `keywords`: a keyword_index() already fetched.

        Terms found in more than `max_df` of all chunks (and in over 1,000) are left out
        of the query, unless nothing else is left: they add little to BM25 but FTS5 scores
        every chunk that holds any term, so on a large collection they dominate the time."""
        keywords = keywords if keywords is not None else self.keyword_index()
        if keywords is None:
            return self.fts_search(query, k, max_df)
        stems = _tokens(self.conn, [query])[0]
        found = dict(self.conn.execute(
            f"SELECT term, id FROM terms WHERE term IN ({','.join('?' * len(stems))})", list(stems))) if stems else {}
        ids = [found[t] for t in stems if t in found]
        if max_df < 1.0 and len(ids) > 1:
            limit = max(max_df * len(keywords), 1000)
            rare = [i for i in ids if keywords.frequency(i) <= limit]
            ids = rare or sorted(ids, key=keywords.frequency)[:2]
        return keywords.search(ids, k)

    def fts_search(self, query: str, k: int = 10, max_df: float = 1.0) -> list[tuple[int, float]]:
        """keyword_search by SQLite FTS5 alone (the same ranking, ~50x slower on 100k chunks)."""
        terms = list(dict.fromkeys(re.findall(r"\w+", query.lower())))
        if not terms:
            return []
        if max_df < 1.0 and len(terms) > 1:
            frequency = self.document_frequency(terms)
            terms = [t for t in terms if frequency[t] > 0]          # the rest match nothing
            # A term in fewer than 1,000 chunks is cheap to score whatever its share.
            limit = max(max_df * self.chunk_count(), 1000)
            rare = [t for t in terms if frequency[t] <= limit]
            terms = rare or sorted(terms, key=frequency.__getitem__)[:2]
            if not terms:
                return []
        match = " OR ".join(f'"{t}"' for t in terms)
        rows = self.conn.execute(
            "SELECT rowid, bm25(chunks_fts) AS score FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY score LIMIT ?", (match, k))
        return [(r["rowid"], -r["score"]) for r in rows]

    def document_frequency(self, words: list[str]) -> dict[str, int]:
        """Chunks holding each word, read from the FTS index's vocabulary. The words go
        through the index's own tokenizer (_tokens: nothing written to the collection) so
        stems match."""
        self.conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.docent_vocab USING fts5vocab(main, chunks_fts, 'row')")
        frequency = dict.fromkeys(words, 0)
        for word, stems in zip(words, _tokens(self.conn, words)):
            for stem in stems:
                found = self.conn.execute("SELECT doc FROM temp.docent_vocab WHERE term = ?", (stem,)).fetchone()
                # A word the tokenizer splits (pg_hba) counts as rare if any of its parts is.
                count = found[0] if found else 0
                frequency[word] = count if frequency[word] == 0 else min(frequency[word], count)
        return frequency

    def _model_check(self, model: str, dim: int) -> None:
        info = self.info()
        if info.get("embedding_model") != model or int(info.get("embedding_dim", dim)) != dim:
            raise EmbeddingMismatch(
                f"collection '{self.name}' was embedded with {info.get('embedding_model')} "
                f"({info.get('embedding_dim')} dims) but the settings ask for {model} ({dim} dims): "
                f"run `docent ingest --reembed --collection {self.name}` to re-embed it, "
                f"or set embedding.model back")


def _tokens(conn: sqlite3.Connection, texts: Sequence[str]) -> list[dict[str, int]]:
    """Each text's FTS5 tokens (the collection's own tokenizer: stems, no diacritics) with
    their counts, read back through a scratch FTS5 table in the connection's temp schema."""
    # One statement at a time: executescript() would commit the writer's open transaction.
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.docent_tokens USING fts5(text, tokenize={_FTS_TOKENIZER!r})")
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.docent_token_rows USING fts5vocab(temp, docent_tokens, 'instance')")
    conn.execute("DELETE FROM temp.docent_tokens")
    conn.executemany("INSERT INTO temp.docent_tokens(rowid, text) VALUES (?, ?)", list(enumerate(texts, start=1)))
    out: list[dict[str, int]] = [{} for _ in texts]
    for doc, term, count in conn.execute("SELECT doc, term, count(*) FROM temp.docent_token_rows GROUP BY doc, term"):
        out[doc - 1][term] = count
    conn.execute("DELETE FROM temp.docent_tokens")
    return out


def _term_ids(conn: sqlite3.Connection, words: Sequence[str]) -> dict[str, int]:
    """The ids of these terms in `terms`, adding the new ones."""
    ids: dict[str, int] = {}
    for i in range(0, len(words), 500):
        part = list(words[i:i + 500])
        conn.executemany("INSERT OR IGNORE INTO terms(term) VALUES (?)", [(w,) for w in part])
        ids.update(conn.execute(f"SELECT term, id FROM terms WHERE term IN ({','.join('?' * len(part))})", part))
    return ids


def _keyword_index(conn: sqlite3.Connection):
    """The in-memory BM25 index of the chunks, or None when some chunk has no stored terms
    (a collection from before them, until its next ingest fills them in)."""
    from ingest.bm25 import KeywordIndex
    try:
        stored = conn.execute("SELECT count(*) FROM chunk_terms").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    if stored != conn.execute("SELECT count(*) FROM chunks").fetchone()[0]:
        return None
    ids, terms, counts = [], [], []
    for chunk_id, blob in conn.execute("SELECT chunk_id, terms FROM chunk_terms ORDER BY chunk_id"):
        pair = np.frombuffer(blob, dtype="<i4").reshape(2, -1)
        ids.append(chunk_id)
        terms.append(pair[0])
        counts.append(pair[1])
    return KeywordIndex.build(ids, terms, counts)


def _vectors_file(directory: Path, generation: int) -> Path:
    return directory / f"vectors-{generation:06d}.faiss"


def _new_faiss(dim: int):
    """Cosine (inner product of normalised vectors) over float16 codes: half the memory a
    search reads, twice as fast as float32 on 100k chunks, the same top results."""
    import faiss
    return faiss.IndexIDMap2(faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT))


def _is_current_kind(index) -> bool:
    import faiss
    return isinstance(faiss.downcast_index(index.index), faiss.IndexScalarQuantizer)


def _faiss_from_sqlite(conn: sqlite3.Connection, dim: int):
    """Rebuild the vector index from SQLite (the source of truth)."""
    index = _new_faiss(dim)
    ids, vecs = [], []
    for row in conn.execute(
            "SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.chunk_hash = c.chunk_hash ORDER BY c.id"):
        ids.append(row[0])
        vecs.append(np.frombuffer(row[1], dtype=np.float32))
    if ids:
        index.add_with_ids(np.vstack(vecs).astype(np.float32), np.asarray(ids, dtype=np.int64))
    return index


def _load_vectors(conn: sqlite3.Connection, directory: Path, generation: int, dim: int):
    """The FAISS file of `generation`, or a rebuild from SQLite if that file is missing,
    unreadable or disagrees with the chunk table."""
    index = None
    path = _vectors_file(directory, generation)
    if path.is_file():
        import faiss
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            index = None
    count = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    if index is None or index.ntotal != count or index.d != dim:
        index = _faiss_from_sqlite(conn, dim)
    return index


class Collection(_Base):
    """Read side: what the bot and `docent sources` use. Never takes the writer lock."""

    def __init__(self, home: Path, name: str):
        self.name = name
        self.directory = collection_dir(home, name)
        db = self.directory / DB_NAME
        if not db.is_file():
            raise CollectionNotFound(
                f"no collection '{name}' under {Path(home)} (run `docent ingest PATH --collection {name}` first)")
        with storage_faults(name, self.directory):
            self.conn = _connect_for_reading(db)
        # What was built from one generation, by kind: (generation, value).
        self._built: dict[str, tuple[int, object]] = {}

    def close(self) -> None:
        self.conn.close()

    def check_model(self, model: str, dim: int) -> None:
        self._model_check(model, dim)

    @property
    def generation(self) -> int:
        row = self.conn.execute("SELECT value FROM info WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def _of_generation(self, kind: str, build):
        """`build(info)` for the current generation, kept until a writer publishes another;
        read inside one SQLite snapshot, so pointer, counts and rows agree."""
        self.conn.execute("BEGIN")
        try:
            info = self.info()
            generation = int(info.get("generation", 0))
            built = self._built.get(kind)
            if built is None or built[0] != generation:
                built = self._built[kind] = (generation, build(info))
            return built[1]
        finally:
            self.conn.execute("COMMIT")

    def vector_index(self):
        """The FAISS index of the current generation (reloaded when a writer has published)."""
        return self._of_generation("vectors", lambda info: _load_vectors(
            self.conn, self.directory, int(info.get("generation", 0)), int(info["embedding_dim"])))

    def keyword_index(self):
        """The in-memory BM25 index of the current generation (ingest/bm25.py; built once
        per generation, ~3 s at 100k chunks), or None: then keyword_search uses FTS5."""
        return self._of_generation("keywords", lambda info: _keyword_index(self.conn))

    def search(self, query_vectors: np.ndarray, k: int = 10, index=None) -> list[list[tuple[int, float]]]:
        """Dense search: for each query vector, (chunk id, cosine score), best first.
        `index`: a vector_index() already fetched (then SQLite is not touched)."""
        index = index if index is not None else self.vector_index()
        if index.ntotal == 0:
            return [[] for _ in range(len(query_vectors))]
        scores, ids = index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), min(k, index.ntotal))
        return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0]
                for row_ids, row_scores in zip(ids, scores)]


class WriterLock:
    """An exclusive, non-blocking flock; the kernel drops it if the process dies."""

    def __init__(self, path: Path, name: str):
        self.path, self.name, self._fd = path, name, None

    def acquire(self) -> None:
        import fcntl
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise CollectionLocked(
                f"collection '{self.name}' is being written by another docent process ({holder}); "
                f"wait for it to finish and run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            import fcntl
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class CollectionWriter(_Base):
    """The one writer of a collection. Changes are staged in an open SQLite transaction and
    an in-memory FAISS index; `commit()` publishes both as a new generation."""

    def __init__(self, home: Path, name: str, model: str | None, dim: int | None, reembed: bool = False):
        """`model`/`dim` of the embedder that will add vectors; None for a writer that only
        removes (it then takes them from the collection)."""
        self.name = name
        self.directory = collection_dir(home, name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create collection folder {self.directory}: {exc.strerror}") from None
        self._lock = WriterLock(self.directory / LOCK_NAME, name)
        with storage_faults(name, self.directory):
            self._lock.acquire()
        try:
            self.conn = _connect(self.directory / DB_NAME)
            self.conn.executescript(_SCHEMA)
            info = self.info()
            if model is None:
                if not info:
                    raise CollectionNotFound(f"no collection '{name}' under {Path(home)}")
                model, dim = info["embedding_model"], int(info["embedding_dim"])
            if not info:
                self._init_info(model, dim)
            elif int(info.get("schema_version", 0)) != SCHEMA_VERSION:
                raise StoreError(f"collection '{name}' has index format {info.get('schema_version')}, "
                                 f"this docent reads format {SCHEMA_VERSION}")
            elif not reembed:
                self._model_check(model, dim)
            self.model, self.dim = model, dim
            self._index = None
            self._index_stale = False
            self._dirty = False
            self._cleanup_orphans()
            self._fill_terms()
        except BaseException:
            self._lock.release()
            raise

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
        with_values = {"schema_version": SCHEMA_VERSION, "embedding_model": model, "embedding_dim": dim,
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
            generation = int(self.info().get("generation", 0))
            self._index = _load_vectors(self.conn, self.directory, generation, self.dim)
            if not _is_current_kind(self._index):
                self._index = _faiss_from_sqlite(self.conn, self.dim)     # an older collection's float32 index
        return self._index

    def _cleanup_orphans(self) -> None:
        """Remove FAISS files of generations that are neither current nor previous
        (left by a crash between writing a file and committing its pointer)."""
        gen = int(self.info().get("generation", 0))
        for p in self.directory.iterdir():
            m = _VECTOR_FILE.match(p.name)
            if (m and int(m.group(1)) not in (gen, gen - 1)) or is_scratch(p, ".faiss."):
                p.unlink(missing_ok=True)

    # -- staging ---------------------------------------------------------------
    def known_vectors(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors already stored for these chunk hashes (renamed or unchanged passages)."""
        hashes = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(hashes), 500):
            part = hashes[i:i + 500]
            marks = ",".join("?" * len(part))
            for row in self.conn.execute(f"SELECT chunk_hash, vector FROM vectors WHERE chunk_hash IN ({marks})", part):
                found[row[0]] = np.frombuffer(row[1], dtype=np.float32)
        return found

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
        self.conn.execute("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (
            record.path, record.format, record.content_hash, record.size, record.mtime_ns, record.status,
            record.error, record.failed_hash, record.n_chunks, record.pages, record.title, record.ingested_at))
        ids = []
        for ord_, (chunk, vector) in enumerate(zip(chunks, vectors)):
            cur = self.conn.execute(
                "INSERT INTO chunks (path, ord, text, heading_path, heading, page, page_end, start, end, "
                "chunk_hash, n_tokens) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (record.path, ord_, chunk.text, json.dumps(list(chunk.heading_path), ensure_ascii=False),
                 " > ".join(chunk.heading_path), chunk.page, chunk.page_end, chunk.start, chunk.end,
                 chunk.chunk_hash, chunk.n_tokens))
            ids.append(cur.lastrowid)
            if chunk.labels:
                self.conn.executemany("INSERT INTO chunk_labels VALUES (?, ?, ?)",
                                      [(cur.lastrowid, label, count) for label, count in chunk.labels])
            self.conn.execute("INSERT OR IGNORE INTO vectors VALUES (?, ?)",
                              (chunk.chunk_hash, np.asarray(vector, dtype=np.float32).tobytes()))
        self._put_terms(ids, [f"{c.text}\n{' > '.join(c.heading_path)}" for c in chunks])
        if ids:
            index.add_with_ids(np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim),
                               np.asarray(ids, dtype=np.int64))

    def _put_terms(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        """Each chunk's term counts as stored in chunk_terms; the file's terms are looked up
        (or added) once for all its chunks."""
        counted = _tokens(self.conn, texts)
        term_id = _term_ids(self.conn, list(dict.fromkeys(t for counts in counted for t in counts)))
        self.conn.executemany("INSERT OR REPLACE INTO chunk_terms VALUES (?, ?)", [
            (chunk_id, np.array([[term_id[t] for t in counts], list(counts.values())], dtype="<i4").tobytes())
            for chunk_id, counts in zip(ids, counted)])

    def _fill_terms(self, batch: int = 500) -> None:
        """Store the terms of chunks ingested before they were kept (staged, published
        by the next commit)."""
        missing = [r[0] for r in self.conn.execute(
            "SELECT id FROM chunks WHERE id NOT IN (SELECT chunk_id FROM chunk_terms) ORDER BY id")]
        if not missing:
            return
        self._begin()
        for i in range(0, len(missing), batch):
            rows = self.conn.execute(f"SELECT id, text, heading FROM chunks WHERE id IN "
                                     f"({','.join('?' * len(missing[i:i + batch]))})", missing[i:i + batch]).fetchall()
            self._put_terms([r[0] for r in rows], [f"{r[1]}\n{r[2]}" for r in rows])

    def mark_failed(self, path: str, error: str, failed_hash: str | None, fmt: str | None) -> None:
        """Record a failure; a file that had good content keeps its chunks (nothing is lost)."""
        self._begin()
        if self.file(path):
            self.conn.execute("UPDATE files SET status='failed', error=?, failed_hash=? WHERE path=?",
                              (error, failed_hash, path))
        else:
            self.conn.execute(
                "INSERT INTO files (path, format, status, error, failed_hash, n_chunks, ingested_at) "
                "VALUES (?,?,?,?,?,0,?)", (path, fmt, "failed", error, failed_hash, time.time()))

    def remove_file(self, path: str) -> bool:
        if not self.file(path):
            return False

        def work() -> None:
            self._delete_chunks(path)
            self.conn.execute("DELETE FROM files WHERE path = ?", (path,))
        self._atomic(work)
        return True

    def _delete_chunks(self, path: str) -> None:
        ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE path = ?", (path,))]
        if ids:
            self._vector_index().remove_ids(np.asarray(ids, dtype=np.int64))
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

    def set_labels_version(self, version: str) -> None:
        self._begin()
        self.conn.execute("INSERT OR REPLACE INTO info VALUES ('labels_version', ?)", (version,))

    def replace_all_vectors(self, model: str, dim: int, vectors_by_hash: dict[str, np.ndarray]) -> None:
        """Re-embedding: swap every vector and the recorded model in one transaction."""
        self._begin()
        self.conn.execute("DELETE FROM vectors")
        self.conn.executemany("INSERT INTO vectors VALUES (?, ?)",
                              [(h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors_by_hash.items()])
        self.conn.executemany("INSERT OR REPLACE INTO info VALUES (?, ?)",
                              [("embedding_model", model), ("embedding_dim", str(dim))])
        self.model, self.dim = model, dim
        self._index = _faiss_from_sqlite(self.conn, dim)

    def distinct_chunk_texts(self) -> Iterator[tuple[str, tuple[str, ...], str]]:
        """(chunk hash, heading path, text) once per distinct embedded text."""
        seen = set()
        for row in self.conn.execute("SELECT chunk_hash, heading_path, text FROM chunks ORDER BY id"):
            if row[0] not in seen:
                seen.add(row[0])
                yield row[0], tuple(json.loads(row[1])), row[2]

    # -- publishing ------------------------------------------------------------
    def commit(self) -> bool:
        """Publish staged changes as a new generation. Returns False if nothing changed."""
        if not self._dirty:
            return False
        import faiss
        self.conn.execute("DELETE FROM vectors WHERE chunk_hash NOT IN (SELECT chunk_hash FROM chunks)")
        if self._index_stale:
            self._index, self._index_stale = _faiss_from_sqlite(self.conn, self.dim), False
        gen = int(self.info().get("generation", 0)) + 1
        final = _vectors_file(self.directory, gen)
        with replacing(final) as tmp:
            try:
                faiss.write_index(self._vector_index(), str(tmp))
            except RuntimeError as exc:         # FAISS reports a failed write (a full disk) this way
                full = "No space" in str(exc) or "Disk quota" in str(exc)
                raise OSError(errno.ENOSPC if full else errno.EIO, f"cannot write {final.name}") from None
        self.conn.executemany("INSERT OR REPLACE INTO info VALUES (?, ?)",
                              [("generation", str(gen)), ("updated_at", str(time.time()))])
        self.conn.execute("COMMIT")
        self._dirty = False
        # Keep the previous generation: a reader may have read its pointer a moment ago.
        old = _vectors_file(self.directory, gen - 2)
        old.unlink(missing_ok=True)
        return True

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self._index = None
        self._index_stale = False
        self._dirty = False
