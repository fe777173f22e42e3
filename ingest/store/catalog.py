"""Queries on the catalog (files, chunks, labels) shared by the reader and the writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ingest.errors import EmbeddingMismatch
from ingest.store import keywords
from ingest.store.filters import ChunkFilter
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
