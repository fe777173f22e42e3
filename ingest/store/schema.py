"""The catalog's SQLite schema as numbered migrations, and how connections are opened.

`PRAGMA user_version` holds the number of the last migration applied; `migrate()` applies
the rest in order, each in its own transaction, so a collection written by an older
docent is brought up to date once (under the writer lock) instead of being read through
shims forever. A collection from a newer docent is refused with a clear message.

Collections made before numbered migrations have user_version 0 and info.schema_version
"1": migration 1 creates only what they lack (every statement is IF NOT EXISTS), and
migration 2 stores the keyword terms of chunks ingested before terms were kept.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from ingest.errors import StoreError, fault_kind

DB_NAME = "docent.sqlite"
LOCK_NAME = "write.lock"
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"

_BASE = f"""
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
    id INTEGER PRIMARY KEY,         -- the vector index's id
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
    tokenize="{FTS_TOKENIZER}");
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) VALUES ('delete', old.id, old.text, old.heading);
END;
"""


def _base(conn: sqlite3.Connection) -> None:
    for statement in _statements(_BASE):
        conn.execute(statement)


def _fill_terms(conn: sqlite3.Connection) -> None:
    from ingest.store.keywords import fill_missing_terms
    fill_missing_terms(conn)


_SOURCES = """
-- Where each file came from, beyond its path: the source that brought it (a folder, a git
-- repository, a site) and what a citation needs to name its version (JSON: commit, url, OCR).
ALTER TABLE files ADD COLUMN source_spec TEXT;
ALTER TABLE files ADD COLUMN origin TEXT;
-- The sources a collection was built from, so `docent sync` can read them all again; state is
-- the source's own JSON (a git commit, a site's ETags and links).
CREATE TABLE IF NOT EXISTS sources (
    spec TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '{}',
    added_at REAL NOT NULL,
    synced_at REAL,
    error TEXT
);
"""


def _sources(conn: sqlite3.Connection) -> None:
    # Idempotent like migration 1: a collection marked older than it is may already have the columns.
    have = {row[1] for row in conn.execute("PRAGMA table_info(files)")}
    for statement in _statements(_SOURCES):
        column = statement.split()[5] if statement.startswith("ALTER TABLE files ADD COLUMN") else None
        if column not in have:
            conn.execute(statement)


# Append only: a migration, once released, is never edited (a collection may have run it).
MIGRATIONS: tuple[tuple[str, Callable[[sqlite3.Connection], None]], ...] = (
    ("the catalog: files, chunks, labels, vectors, keyword terms, FTS5", _base),
    ("keyword terms for chunks ingested before they were stored", _fill_terms),
    ("sources: where files came from, and the sources to sync", _sources),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """A script cut into statements (executescript() would commit an open transaction)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not current.strip():
            continue
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return out


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, name: str) -> int:
    """Apply the migrations this collection lacks, each all-or-nothing; returns how many
    ran. The caller holds the writer lock."""
    current = version(conn)
    if current > SCHEMA_VERSION:
        raise StoreError(f"collection '{name}' was written by a newer docent (format {current}; "
                         f"this one reads up to {SCHEMA_VERSION}): upgrade docent to open it")
    for number in range(current + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[number - 1][1](conn)
            conn.execute("INSERT OR REPLACE INTO info VALUES ('schema_version', ?)", (str(number),))
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION - current


def connect(path: Path) -> sqlite3.Connection:
    """A read-write connection. Autocommit mode: transactions are opened explicitly."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before the vector file of the generation it replaced is deleted.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def connect_for_reading(path: Path) -> sqlite3.Connection:
    """A reader's connection; on a read-only disk (no -shm file can be made) a read-only
    one, and if even that cannot be had, one that takes the file as it is (immutable: no
    writer can change it there). The first read checks the file is a database."""
    try:
        conn = connect(path)
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
