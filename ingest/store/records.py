"""The catalog's rows as typed records, and where collections live on disk."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import StoreError
from ingest.store.schema import DB_NAME

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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
    source_spec: str | None = None  # the spec of the source that brought it (ingest.sources)
    origin: str | None = None       # JSON: its version where it came from (git commit, page URL, OCR)

    def origin_info(self) -> dict:
        try:
            value = json.loads(self.origin) if self.origin else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class SourceRecord:
    spec: str                       # what the user gave: a folder, git+URL@branch, a site URL
    kind: str                       # folder | git | site
    state: dict                     # the source's own memory between syncs
    added_at: float
    synced_at: float | None
    error: str | None               # why the last sync of it failed (None: it went well)


@dataclass(frozen=True)
class ChunkContent:
    """What a chunk is: its text, where it sits in its file, and the hash of what was embedded."""
    text: str
    heading_path: tuple[str, ...]
    page: int | None
    page_end: int | None
    start: int                    # character span in the file's extracted text
    end: int
    chunk_hash: str
    n_tokens: int


@dataclass(frozen=True, kw_only=True)
class StoredChunk(ChunkContent):
    """A chunk as the catalog holds it: its id (the vector index's), file and position."""
    id: int
    path: str
    ord: int


@dataclass(frozen=True)
class NewChunk(ChunkContent):
    """A chunk to store: what the chunker made plus its hash."""
    labels: tuple[tuple[str, int], ...] = ()     # (label, count): see bot/guard/labels.py


def file_record(row: sqlite3.Row) -> FileRecord:
    return FileRecord(**{k: row[k] for k in row.keys()})


def source_record(row: sqlite3.Row) -> SourceRecord:
    try:
        state = json.loads(row["state"] or "{}")
    except ValueError:
        state = {}
    return SourceRecord(row["spec"], row["kind"], state if isinstance(state, dict) else {}, row["added_at"],
                        row["synced_at"], row["error"])


def stored_chunk(row: sqlite3.Row) -> StoredChunk:
    return StoredChunk(
        id=row["id"], path=row["path"], ord=row["ord"], text=row["text"],
        heading_path=tuple(json.loads(row["heading_path"])), page=row["page"],
        page_end=row["page_end"], start=row["start"], end=row["end"],
        chunk_hash=row["chunk_hash"], n_tokens=row["n_tokens"])


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
