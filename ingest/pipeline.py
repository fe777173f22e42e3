"""The ingestion API that the CLI and the chat window call.

    ingestor = Ingestor(settings)                   # embedder built from settings, loaded lazily
    report = ingestor.ingest(["~/company-docs"])    # incremental; crash-safe; see IngestReport
    ingestor.sources()                              # what the collection holds
    ingestor.remove(["~/company-docs/old.md"])

Work per file: hash (unchanged -> done), load, chunk, look up vectors already stored for
identical chunk text (renames and untouched paragraphs cost nothing), embed the rest in
large batches, stage. Staged files are committed every `checkpoint_seconds` and at the
end, so an interrupted run keeps what it finished and never leaves half a file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from docent.settings import Settings
from ingest import loaders
from ingest.chunking import chunk_document, embed_text
from ingest.document import LoadError
from ingest.manifest import absolute, chunk_hash, deleted_paths, discover, file_hash
from ingest.errors import os_reason, storage_faults
from ingest.store import (Collection, CollectionWriter, FileRecord, NewChunk, StoreError, collection_dir,
                          list_collections)

# Exit statuses of `docent ingest` (documented in --help and the README): docent/exits.py.
from docent.exits import (EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_MODEL_MISMATCH, EXIT_OK,  # noqa: E402
                          EXIT_SOME_FAILED, EXIT_STORE, EXIT_USAGE)

# Embed once this many chunk texts are waiting: large batches sort well by length.
_EMBED_POOL = 256


@dataclass
class FileResult:
    path: str
    action: str                 # added | updated | unchanged | removed | failed | skipped
    chunks: int = 0
    embedded: int = 0           # chunks whose vector was computed in this run
    reason: str | None = None   # why it failed or was skipped


@dataclass
class IngestReport:
    collection: str
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    reembedded: int = 0
    relabelled: int = 0
    interrupted: bool = False

    def count(self, action: str) -> int:
        return sum(1 for r in self.results if r.action == action)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.action == "failed"]

    @property
    def skipped(self) -> list[FileResult]:
        return [r for r in self.results if r.action == "skipped"]

    @property
    def chunks_embedded(self) -> int:
        return sum(r.embedded for r in self.results)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_SOME_FAILED if self.failed else EXIT_OK

    def summary(self) -> str:
        parts = [f"{self.count(a)} {a}" for a in ("added", "updated", "unchanged", "removed", "failed")]
        line = (f"{self.collection}: " + ", ".join(parts) + f"; {self.count('skipped')} skipped (format); "
                f"{self.chunks_embedded} chunks embedded in {self.seconds:.1f} s")
        if self.reembedded:
            line += f"; {self.reembedded} chunks re-embedded"
        if self.relabelled:
            line += f"; {self.relabelled} chunks relabelled (new leak rules)"
        if self.interrupted:
            line += " (interrupted: finished files were saved; run again to continue)"
        return line

    def to_dict(self) -> dict:
        return {
            "collection": self.collection,
            "counts": {a: self.count(a) for a in ("added", "updated", "unchanged", "removed", "failed", "skipped")},
            "chunks_embedded": self.chunks_embedded, "seconds": round(self.seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3), "interrupted": self.interrupted,
            "files": [r.__dict__ for r in self.results if r.action != "unchanged"],
        }


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    path: str
    action: str


ProgressCallback = Callable[[Progress], None]


@dataclass
class _Staged:
    record: FileRecord
    chunks: list[NewChunk]
    result: FileResult


@dataclass
class _Examined:
    path: str
    result: FileResult | None = None                      # nothing to do (unchanged, known failure)
    staged: _Staged | None = None                         # new content, chunked, to embed
    failure: tuple[str, str | None, str | None] | None = None   # (reason, content hash, format)


def _prefetch(fn, items: Sequence, ahead: int = 4) -> Iterator:
    """fn over items on one helper thread, a few items ahead, results in order. Parsing
    (pure Python) then overlaps embedding (native code that releases the GIL). The helper
    is a daemon: on Ctrl-C the main thread stops waiting at once, and a big file still
    being read or scanned neither delays the commit of what is done nor holds the process."""
    import queue
    import threading

    items = list(items)
    results: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def work() -> None:
        for item in items:
            if stop.is_set():
                return
            try:
                outcome = (True, fn(item))
            except BaseException as exc:          # handed to the main thread, raised there
                outcome = (False, exc)
            while not stop.is_set():
                try:
                    results.put(outcome, timeout=0.2)
                    break
                except queue.Full:
                    continue

    threading.Thread(target=work, name="docent-load", daemon=True).start()
    try:
        for _ in items:
            ok, value = results.get()
            if not ok:
                raise value
            yield value
    finally:
        stop.set()


class Ingestor:
    def __init__(self, settings: Settings, embedder=None, home: str | os.PathLike | None = None, labeller=None,
                 vectors=None):
        """`labeller`: labels each chunk at ingest (bot.guard.labels.ChunkLabeller: what
        must not leak); anything with `version`, `label(path, texts, spans) -> [{label: count}]` and
        `for_collection(name)` (the labeller with that collection's rules). None: chunks are
        stored without labels. `vectors`: an ingest.store.VectorBackend (None: FAISS)."""
        self.settings = settings
        self.home = settings.home_dir(home)
        self._embedder = embedder
        self.labeller = labeller
        self.vectors = vectors

    @property
    def embedder(self):
        if self._embedder is None:
            from ingest.embedder import make_embedder
            self._embedder = make_embedder(self.settings.embedding)
        return self._embedder

    # -- the main job ----------------------------------------------------------
    def ingest(self, paths: Iterable[str | os.PathLike], collection: str | None = None, reembed: bool = False,
               progress: ProgressCallback | None = None) -> IngestReport:
        """Bring the collection up to date with `paths` (files or folders).

        Raises StoreError subclasses (locked, model mismatch) before touching anything."""
        name = collection or self.settings.ingest.collection
        started = time.perf_counter()
        report = IngestReport(name)
        embedder = self.embedder
        embed_before = embedder.seconds
        with self._faults(name), CollectionWriter(self.home, name, embedder.name, embedder.dim,
                                                  reembed=reembed, vectors=self.vectors) as writer:
            try:
                if reembed:
                    report.reembedded = self._reembed(writer)
                self._run(writer, list(paths), report, progress)
            except KeyboardInterrupt:
                report.interrupted = True
                writer.commit()
            report.seconds = time.perf_counter() - started
            report.embed_seconds = embedder.seconds - embed_before
        return report

    def _faults(self, name: str):
        """A full disk, a read-only home or a damaged database: one StorageFault naming the collection."""
        return storage_faults(name, collection_dir(self.home, name))

    def _run(self, writer: CollectionWriter, paths: list, report: IngestReport,
             progress: ProgressCallback | None) -> None:
        cfg = self.settings.ingest
        found = discover(paths, cfg.exclude, lambda p: loaders.format_for(p) is not None)
        for path in found.unsupported:
            report.results.append(FileResult(str(path), "skipped", reason=f"unsupported format ({path.suffix or 'no extension'})"))
        stored = {rec.path: rec for rec in writer.files()}
        # The collection's own rules (a labeller may hold per-collection path rules).
        labeller = self.labeller.for_collection(writer.name) if self.labeller is not None else None
        if labeller is not None and writer.info().get("labels_version") != labeller.version:
            # New rules (or a collection from before labels): every stored chunk is
            # labelled again, without re-embedding; files changed below get theirs anyway.
            if stored:
                report.relabelled = writer.relabel(labeller.label, labeller.version)
            else:
                writer.set_labels_version(labeller.version)
        total = len(found.files)
        pending: list[_Staged] = []
        last_commit = time.monotonic()
        max_bytes = int(cfg.max_file_mb * 1024 * 1024)

        def flush() -> None:
            self._embed_and_stage(writer, pending)
            for staged in pending:
                report.results.append(staged.result)
            pending.clear()

        examined = _prefetch(lambda p: self._examine(p, stored.get(str(p)), max_bytes, labeller), found.files)
        for done, item in enumerate(examined, 1):
            if item.failure is not None:
                result = self._failed(writer, item, stored.get(item.path))
            elif item.staged is not None:
                result = item.staged.result
                pending.append(item.staged)
                if sum(len(s.chunks) for s in pending) >= _EMBED_POOL:
                    flush()
            else:
                result = item.result
            if item.staged is None:
                report.results.append(result)
            if progress:
                progress(Progress(done, total, item.path, result.action))
            if time.monotonic() - last_commit >= cfg.checkpoint_seconds:
                flush()
                writer.commit()
                last_commit = time.monotonic()
        flush()
        # Deletions last: a renamed file's vectors are reused before the old entry goes.
        present = {str(p) for p in found.files}
        for path in deleted_paths(stored.values(), found.roots, present):
            writer.remove_file(path)
            report.results.append(FileResult(path, "removed", chunks=stored[path].n_chunks))
        writer.commit()

    def _examine(self, path: Path, stored: FileRecord | None, max_bytes: int, labeller=None) -> "_Examined":
        """Hash, and if the file changed, load and chunk it. Runs on a helper thread (no
        database access here) and never raises for bad input."""
        key = str(path)
        fmt = loaders.format_for(path)
        digest = None
        try:
            st = loaders.check_file(path, max_bytes)
            digest = file_hash(path)
            if stored and stored.status == "ok" and stored.content_hash == digest:
                return _Examined(key, result=FileResult(key, "unchanged", chunks=stored.n_chunks))
            if stored and stored.failed_hash == digest:
                return _Examined(key, result=FileResult(key, "failed", reason=stored.error))
            doc = loaders.load_file(path, max_bytes=max_bytes)
            drafts = chunk_document(doc, self.embedder.count_tokens, self.settings.chunking.max_tokens,
                                    self.settings.chunking.min_tokens, self.settings.chunking.overlap_tokens)
        except LoadError as exc:
            return _Examined(key, failure=(str(exc), digest, fmt))
        except OSError as exc:
            return _Examined(key, failure=(os_reason(exc), digest, fmt))
        if not drafts:
            return _Examined(key, failure=("no text to index", digest, fmt))
        try:
            labels = labeller.label(key, [d.text for d in drafts], [(d.start, d.end) for d in drafts]) if labeller else [{}] * len(drafts)
        except Exception as exc:      # a file that cannot be checked for secrets does not go in unchecked
            return _Examined(key, failure=(f"cannot be scanned for sensitive data ({type(exc).__name__}: {exc})",
                                           digest, fmt))
        chunks = [NewChunk(d.text, d.heading_path, d.page, d.page_end, d.start, d.end,
                           chunk_hash(d.embed_text), d.n_tokens, tuple(sorted(found.items())))
                  for d, found in zip(drafts, labels)]
        record = FileRecord(
            path=key, format=doc.format, content_hash=digest, size=st.st_size, mtime_ns=st.st_mtime_ns, status="ok",
            error=None, failed_hash=None, n_chunks=len(chunks), pages=len(doc.pages) or None,
            title=doc.title, ingested_at=time.time())
        result = FileResult(key, "updated" if stored and stored.content_hash else "added", chunks=len(chunks))
        return _Examined(key, staged=_Staged(record, chunks, result))

    @staticmethod
    def _failed(writer: CollectionWriter, item: "_Examined", stored: FileRecord | None) -> FileResult:
        reason, digest, fmt = item.failure
        key = item.path
        writer.mark_failed(key, reason, digest, fmt)
        if stored and stored.status == "ok" and stored.n_chunks:
            reason += " (the previous version stays in the index)"
        return FileResult(key, "failed", reason=reason)

    def _embed_and_stage(self, writer: CollectionWriter, pending: list[_Staged]) -> None:
        if not pending:
            return
        hashes = [c.chunk_hash for s in pending for c in s.chunks]
        known = writer.known_vectors(hashes)
        todo: dict[str, str] = {}
        for staged in pending:
            for c in staged.chunks:
                if c.chunk_hash not in known:
                    todo.setdefault(c.chunk_hash, embed_text(c.heading_path, c.text))
        if todo:
            vectors = self.embedder.embed(list(todo.values()))
            known.update(zip(todo.keys(), vectors))
        new = set(todo)
        for staged in pending:
            vectors = np.vstack([known[c.chunk_hash] for c in staged.chunks])
            staged.result.embedded = sum(1 for c in staged.chunks if c.chunk_hash in new)
            new -= {c.chunk_hash for c in staged.chunks}
            writer.put_file(staged.record, staged.chunks, vectors)

    def _reembed(self, writer: CollectionWriter) -> int:
        rows = list(writer.distinct_chunk_texts())
        vectors = self.embedder.embed([embed_text(path, text) for _, path, text in rows]) if rows else []
        writer.replace_all_vectors(self.embedder.name, self.embedder.dim,
                                   {h: v for (h, _, _), v in zip(rows, vectors)})
        writer.commit()
        return len(rows)

    # -- other verbs -------------------------------------------------------------
    def remove(self, paths: Sequence[str | os.PathLike], collection: str | None = None) -> list[str]:
        """Drop these files (or everything under these folders) from the index."""
        name = collection or self.settings.ingest.collection
        Collection(self.home, name, vectors=self.vectors).close()       # a clear "no such collection" first
        removed = []
        with self._faults(name), CollectionWriter(self.home, name, model=None, dim=None, vectors=self.vectors) as writer:
            stored = [rec.path for rec in writer.files()]
            for given in paths:
                target = str(absolute(given))
                prefix = target.rstrip(os.sep) + os.sep
                for path in stored:
                    if (path == target or path.startswith(prefix)) and writer.remove_file(path):
                        removed.append(path)
            writer.commit()
        return removed

    def sources(self, collection: str | None = None) -> list[FileRecord]:
        name = collection or self.settings.ingest.collection
        with self._faults(name), Collection(self.home, name, vectors=self.vectors) as coll:
            return coll.files()

    def label_counts(self, collection: str | None = None) -> dict[str, dict[str, int]]:
        """{path: {label: chunks}} for the files whose chunks carry labels."""
        name = collection or self.settings.ingest.collection
        with self._faults(name), Collection(self.home, name, vectors=self.vectors) as coll:
            return coll.label_counts()

    def collections(self) -> list[str]:
        return list_collections(self.home)


__all__ = ["Ingestor", "IngestReport", "FileResult", "Progress", "StoreError",
           "EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "EXIT_LOCKED", "EXIT_MODEL_MISMATCH",
           "EXIT_STORE", "EXIT_INTERRUPTED"]
