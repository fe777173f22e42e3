"""The postgres store's schema: one PostgreSQL schema per collection, listed in
`docent_collections`, holding the same catalog as a FAISS collection's SQLite file (files,
chunks, labels, keyword terms, sources, info) with each chunk's vector in the chunks
table itself (pgvector), so a search filters and ranks in one query.

Numbered migrations, applied on open under an advisory lock (two processes opening an old
collection at once migrate it once); `info.schema_version` holds the last applied. Append
only: a released migration is never edited.
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable

from ingest.errors import CollectionNotFound, StoreError
from ingest.store.postgres.connection import Connection, ensure_vector_extension

REGISTRY = "public.docent_collections"

_CATALOG = """
CREATE TABLE info (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE files (
    path text PRIMARY KEY, format text, content_hash text, size bigint, mtime_ns bigint,
    status text NOT NULL, error text, failed_hash text, n_chunks integer NOT NULL DEFAULT 0,
    pages integer, title text, ingested_at double precision NOT NULL,
    source_spec text, origin text);
-- Chunk ids are never reused (a sequence), as in the FAISS store.
CREATE SEQUENCE chunk_ids;
CREATE TABLE chunks (
    id bigint PRIMARY KEY, path text NOT NULL REFERENCES files(path), ord integer NOT NULL,
    text text NOT NULL, heading_path text NOT NULL, heading text NOT NULL,
    page integer, page_end integer, start integer NOT NULL, "end" integer NOT NULL,
    chunk_hash text NOT NULL, n_tokens integer NOT NULL,
    embedding vector NOT NULL);        -- float32, as embedded: reused exactly by chunk hash
-- In the row, not in the TOAST table (pgvector's default once a row passes 2 kB, as a
-- chunk's text and vector do): a scan read it from there at 5 us a chunk instead of 1.
ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN;
CREATE INDEX chunks_path ON chunks(path, ord);
CREATE INDEX chunks_hash ON chunks(chunk_hash);
CREATE TABLE chunk_labels (
    chunk_id bigint NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    label text NOT NULL, count integer NOT NULL, PRIMARY KEY (chunk_id, label));
CREATE INDEX chunk_labels_label ON chunk_labels(label, chunk_id);
-- The keyword search's input, as in SQLite: FTS5 tokens as term ids and counts (int32 LE).
CREATE TABLE terms (id serial PRIMARY KEY, term text NOT NULL UNIQUE);
CREATE TABLE chunk_terms (
    chunk_id bigint PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE, terms bytea NOT NULL);
CREATE TABLE sources (
    spec text PRIMARY KEY, kind text NOT NULL, state text NOT NULL DEFAULT '{}',
    added_at double precision NOT NULL, synced_at double precision, error text)
"""


def _catalog(conn: Connection) -> None:
    for statement in _CATALOG.split(";\n"):
        lines = [line for line in statement.splitlines() if not line.lstrip().startswith("--")]
        if "".join(lines).strip():
            conn.execute("\n".join(lines))


MIGRATIONS: tuple[tuple[str, Callable[[Connection], None]], ...] = (
    ("the catalog: files, chunks with their vectors, labels, keyword terms, sources", _catalog),
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_name(name: str) -> str:
    """The collection's PostgreSQL schema: readable, unique (a hash of the exact name),
    within PostgreSQL's 63-byte identifiers."""
    readable = re.sub(r"[^a-z0-9_]", "_", name.lower())[:40]
    return f"docent_{readable}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def prepare_database(conn: Connection) -> None:
    """pgvector and the registry of collections (once per database; two processes doing
    it at once would collide in PostgreSQL's catalog, hence the lock)."""
    conn.execute("SELECT pg_advisory_lock(hashtext('docent:prepare'))")
    try:
        ensure_vector_extension(conn)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {REGISTRY} (name text PRIMARY KEY, schema text NOT NULL UNIQUE, "
                     "created_at timestamptz NOT NULL DEFAULT now())")
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext('docent:prepare'))")


def names(conn: Connection) -> list[str]:
    if conn.execute("SELECT to_regclass(?)", (REGISTRY,)).fetchone()[0] is None:
        return []
    return [r[0] for r in conn.execute(f"SELECT name FROM {REGISTRY} ORDER BY name")]


def find(conn: Connection, name: str) -> str | None:
    """The schema of collection `name`, or None."""
    if conn.execute("SELECT to_regclass(?)", (REGISTRY,)).fetchone()[0] is None:
        return None
    row = conn.execute(f"SELECT schema FROM {REGISTRY} WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def use(conn: Connection, schema: str) -> None:
    """Unqualified table names mean the collection's (pgvector's types stay reachable in public)."""
    conn.configure(f"SET search_path TO {quoted(schema)}, public")


def version(conn: Connection) -> int:
    if conn.execute("SELECT to_regclass('info')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT value FROM info WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def open_schema(conn: Connection, name: str, create: bool) -> str:
    """Point `conn` at collection `name`, creating it when `create`, and bring its schema
    up to date; returns the schema. CollectionNotFound when it does not exist and may not
    be created."""
    schema = find(conn, name)
    if schema is None:
        if not create:
            raise CollectionNotFound(f"no collection '{name}' in {conn.where} (run `docent ingest PATH "
                                     f"--collection {name}` first)")
        prepare_database(conn)
        schema = schema_name(name)
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"docent:create:{name}",))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(schema)}")
            conn.execute(f"INSERT INTO {REGISTRY} (name, schema) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                         (name, schema))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        schema = find(conn, name) or schema
    use(conn, schema)
    if version(conn) < SCHEMA_VERSION:
        migrate(conn, name, schema)
    elif version(conn) > SCHEMA_VERSION:
        raise StoreError(f"collection '{name}' was written by a newer docent (format {version(conn)}; this one "
                         f"reads up to {SCHEMA_VERSION}): upgrade docent to open it")
    return schema


def migrate(conn: Connection, name: str, schema: str) -> int:
    """Apply the migrations the collection lacks, each in its own transaction, under a
    lock that makes a second process wait and then find them applied. The lock is taken
    before each transaction starts, so the transaction sees what the other one made."""
    applied = 0
    key = (f"docent:migrate:{schema}",)
    conn.execute("SELECT pg_advisory_lock(hashtext(?))", key)
    try:
        for number in range(version(conn) + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN")
            try:
                MIGRATIONS[number - 1][1](conn)
                conn.execute("INSERT INTO info VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE "
                             "SET value = excluded.value", (str(number),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            applied += 1
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(?))", key)
    return applied


def drop(conn: Connection, name: str) -> bool:
    """Delete collection `name` and everything in it (tests, `docent store migrate --replace`)."""
    schema = find(conn, name)
    if schema is None:
        return False
    conn.execute("BEGIN")
    conn.execute(f"DROP SCHEMA IF EXISTS {quoted(schema)} CASCADE")
    conn.execute(f"DELETE FROM {REGISTRY} WHERE name = ?", (name,))
    conn.execute("COMMIT")
    return True
