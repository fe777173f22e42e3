"""Copy a collection from one store to another (`docent store migrate`): files, chunks,
labels, sources and every vector as stored, so nothing is embedded again and the copy
answers exactly as the original did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ingest.errors import StoreError
from ingest.store.records import NewChunk

CHECKPOINT_FILES = 200       # files per commit: an interrupted copy keeps what it committed


@dataclass
class CopyReport:
    name: str
    files: int = 0
    chunks: int = 0
    vectors_reused: int = 0      # chunks whose stored vector was copied
    embedded: int = 0            # chunks embedded again: always 0 (a chunk without a vector stops the copy)
    sources: int = 0

    def summary(self) -> str:
        return (f"collection '{self.name}': copied {self.files} files, {self.chunks} chunks and {self.sources} "
                f"sources; {self.vectors_reused} vectors reused, {self.embedded} embedded")


def copy_collection(source, target, name: str, replace: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> CopyReport:
    """Copy collection `name` from store `source` to store `target` (ingest.store.backends).
    A collection already in the target is refused unless `replace` (its files are then
    removed first, in the same transactions as the copy)."""
    report = CopyReport(name)
    with source.reader(name) as src:
        info = src.info()
        model, dim = info["embedding_model"], int(info["embedding_dim"])
        records = src.files()
        with target.writer(name, model, dim) as dst:
            present = [f.path for f in dst.files()]
            if present and not replace:
                raise StoreError(f"collection '{name}' already holds {len(present)} files in {target.describe()}: "
                                 f"add --replace to overwrite it with the copy")
            kept = {r.path for r in records}
            for path in present:
                if path not in kept:
                    dst.remove_file(path)
            for done, record in enumerate(records, start=1):
                chunks = src.chunks_of(record.path)
                labels = src.labels_of([c.id for c in chunks])
                vectors = src.known_vectors([c.chunk_hash for c in chunks])
                missing = [c.chunk_hash for c in chunks if c.chunk_hash not in vectors]
                if missing:
                    raise StoreError(f"collection '{name}': {record.path} has {len(missing)} chunks without a stored "
                                     f"vector; run `docent ingest --reembed` on the original first")
                new = [NewChunk(c.text, c.heading_path, c.page, c.page_end, c.start, c.end, c.chunk_hash, c.n_tokens,
                                labels=labels.get(c.id, ())) for c in chunks]
                matrix = np.vstack([vectors[c.chunk_hash] for c in chunks]) if chunks else np.zeros((0, dim), np.float32)
                dst.put_file(record, new, matrix)
                report.files += 1
                report.chunks += len(chunks)
                report.vectors_reused += len(chunks)
                if done % CHECKPOINT_FILES == 0:
                    dst.commit()
                if progress is not None:
                    progress(done, len(records))
            for rec in src.sources():
                dst.put_source(rec.spec, rec.kind, rec.state, rec.error)
                report.sources += 1
            if "labels_version" in info:
                dst.set_labels_version(info["labels_version"])
            dst.commit()
    return report
