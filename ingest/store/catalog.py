"""Queries on the catalog (files, chunks, labels) shared by the reader and the writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path
import json
import threading
import time
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ingest.errors import CollectionNotFound, EmbeddingMismatch
from ingest.store import keywords
from ingest.store.filters import NO_FILTER, ChunkFilter
from ingest.store.records import FileRecord, SourceRecord, StoredChunk, file_record, source_record, stored_chunk


class Catalog:
    """Mixed into Collection and CollectionWriter; both are context managers."""

    directory: Path
    name: str

    @property
    def conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.conn.execute("SELECT key, value FROM info")}

    def files(self) -> list[FileRecord]:
        return [file_record(r) for r in self.conn.execute("SELECT * FROM files ORDER BY path")]

    def file(self, path: str) -> FileRecord | None:
        row = self.conn.execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        return file_record(row) if row else None

    def sources(self) -> list[SourceRecord]:
        """The sources the collection was built from, in the order they were first added."""
        return [source_record(r) for r in self.conn.execute("SELECT * FROM sources ORDER BY added_at, spec")]

    def origins(self, paths: Sequence[str]) -> dict[str, dict]:
        """{path: where it came from} (a git commit, a page URL and its heading anchors) for
        the files among `paths` that have an origin."""
        paths = list(dict.fromkeys(paths))
        if not paths:
            return {}
        marks = ",".join("?" * len(paths))
        rows = self.conn.execute(f"SELECT * FROM files WHERE origin IS NOT NULL AND path IN ({marks})", paths)
        return {record.path: record.origin_info() for record in map(file_record, rows)}

    def chunk_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def chunks(self, ids: Sequence[int]) -> list[StoredChunk]:
        """Chunks by id, in the order asked; ids no longer in the index are left out."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = {r["id"]: r for r in self.conn.execute(f"SELECT * FROM chunks WHERE id IN ({marks})", list(ids))}
        return [stored_chunk(rows[i]) for i in ids if i in rows]

    def chunks_of(self, path: str) -> list[StoredChunk]:
        return [stored_chunk(r) for r in self.conn.execute(
            "SELECT * FROM chunks WHERE path = ? ORDER BY ord", (path,))]

    def chunks_between(self, path: str, first: int, last: int) -> list[StoredChunk]:
        """A file's chunks with `first` <= ord <= `last`, in file order."""
        return [stored_chunk(r) for r in self.conn.execute(
            "SELECT * FROM chunks WHERE path = ? AND ord BETWEEN ? AND ? ORDER BY ord", (path, first, last))]

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

    def labels_of(self, ids: Sequence[int]) -> dict[int, tuple[tuple[str, int], ...]]:
        """{chunk id: ((label, count), ...)} for the chunks among `ids` that carry labels."""
        out: dict[int, list[tuple[str, int]]] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            for chunk_id, label, count in self.conn.execute(
                    f"SELECT chunk_id, label, count FROM chunk_labels WHERE chunk_id IN ({','.join('?' * len(part))}) "
                    "ORDER BY chunk_id, label", part):
                out.setdefault(chunk_id, []).append((label, count))
        return {i: tuple(v) for i, v in out.items()}

    def label_counts(self) -> dict[str, dict[str, int]]:
        """{path: {label: chunks with it}}."""
        out: dict[str, dict[str, int]] = {}
        rows = self.conn.execute("SELECT c.path, l.label, COUNT(*) FROM chunk_labels l "
                                 "JOIN chunks c ON c.id = l.chunk_id GROUP BY c.path, l.label").fetchall()
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
        rows = self.conn.execute(f"SELECT DISTINCT chunk_id FROM chunk_labels WHERE label IN "
                                 f"({','.join('?' * len(labels))})", tuple(labels)).fetchall()
        return frozenset(r[0] for r in rows)

    def matching_ids(self, rule: ChunkFilter) -> frozenset[int]:
        """Ids of the chunks `rule` excludes: labelled with one of its labels, or of a file
        its path rule matches."""
        ids = set(self.labelled_ids(rule.labels))
        if rule.path_rule is not None:
            ids |= self.chunk_ids_of([f.path for f in self.files() if rule.path_rule(f.path)])
        return frozenset(ids)

    def document_frequency(self, words: list[str]) -> dict[str, int]:
        """Chunks holding each word (the FTS index's own tokens, so stems match)."""
        return keywords.document_frequency(self.conn, words)

    def fts_search(self, query: str, k: int = 10, max_df: float = 1.0) -> list[tuple[int, float]]:
        """Keyword search by SQLite FTS5 alone (the same ranking, ~50x slower on 100k chunks)."""
        return keywords.fts_search(self.conn, query, k, max_df)

    def check_model(self, model: str, dim: int) -> None:
        info = self.info()
        if info.get("embedding_model") != model or int(info.get("embedding_dim", dim)) != dim:
            raise EmbeddingMismatch(
                f"collection '{self.name}' was embedded with {info.get('embedding_model')} "
                f"({info.get('embedding_dim')} dims) but the settings ask for {model} ({dim} dims): "
                f"run `docent ingest --reembed --collection {self.name}` to re-embed it, "
                f"or set embedding.model back")


class Generations:
    """What a reader builds once per generation (keyword index, excluded ids), kept until a
    writer publishes another; mixed into both stores' readers, which set `_lock`,
    `_built` and `SNAPSHOT` (the statement that opens a read snapshot)."""

    SNAPSHOT = "BEGIN"
    _lock: threading.Lock
    _built: dict

    @property
    def generation(self) -> int:
        row = self.conn.execute("SELECT value FROM info WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def _of_generation(self, kind, build: Callable[[dict], object]):
        """`build(info)` for the current generation, read inside one snapshot, so pointer,
        counts and rows agree."""
        conn = self.conn
        conn.execute(self.SNAPSHOT)
        try:
            info = self.info()
            generation = int(info.get("generation", 0))
            with self._lock:
                built = self._built.get(kind)
                if built is None or built[0] != generation:
                    built = self._built[kind] = (generation, build(info))
            return built[1]
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection (the readers keep `_connections`: (thread, conn))."""
        with self._lock:
            for _, conn in self._connections:
                conn.close()
            self._connections.clear()
            self._built.clear()
        self._local = threading.local()

    def excluded_ids(self, rule: ChunkFilter = NO_FILTER) -> frozenset[int]:
        """The chunks `rule` leaves out, built once per generation and rule."""
        if rule.empty:
            return frozenset()
        return self._of_generation(("excluded", rule.cache_key()), lambda info: self.matching_ids(rule))


class SharedWrites:
    """The writes whose SQL both stores' catalogs take as it is; mixed into both writers,
    which provide `_begin()` (open the staging transaction) and `_init_info(model, dim)`
    (record a new collection's model)."""

    def settle_model(self, model: str | None, dim: int | None, reembed: bool, missing: str) -> tuple[str, int]:
        """The model a writer embeds with: the collection's own when none is asked for
        (`missing` raised when it has none: no such collection), recorded when new, else
        checked against the asked one unless re-embedding."""
        info = self.info()
        if model is None:
            if "embedding_model" not in info:
                raise CollectionNotFound(missing)
            model, dim = info["embedding_model"], int(info["embedding_dim"])
        if "embedding_model" not in info:
            self._init_info(model, dim)
        elif not reembed:
            self.check_model(model, dim)
        return model, int(dim)

    def put_source(self, spec: str, kind: str, state: dict, error: str | None = None) -> None:
        """Remember a source and its state; published with the next commit, so the state never
        runs ahead of the files it describes."""
        self._begin()
        now = time.time()
        self.conn.execute(
            "INSERT INTO sources (spec, kind, state, added_at, synced_at, error) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (spec) DO UPDATE SET kind = excluded.kind, state = excluded.state, "
            "synced_at = excluded.synced_at, error = excluded.error",
            (spec, kind, json.dumps(state, sort_keys=True), now, now, error))

    def forget_source(self, spec: str) -> bool:
        self._begin()
        return self.conn.execute("DELETE FROM sources WHERE spec = ?", (spec,)).rowcount > 0

    def set_labels_version(self, version: str) -> None:
        self._begin()
        self.conn.execute("INSERT INTO info VALUES ('labels_version', ?) ON CONFLICT (key) DO UPDATE "
                          "SET value = excluded.value", (version,))

    def distinct_chunk_texts(self) -> Iterator[tuple[str, tuple[str, ...], str]]:
        """(chunk hash, heading path, text) once per distinct embedded text."""
        seen = set()
        for row in self.conn.execute("SELECT chunk_hash, heading_path, text FROM chunks ORDER BY id").fetchall():
            if row[0] not in seen:
                seen.add(row[0])
                yield row[0], tuple(json.loads(row[1])), row[2]
