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

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from docent.settings import Settings
from ingest import loaders
from ingest.chunking import chunk_document, embed_text
from ingest.document import LoadError
from ingest.manifest import absolute, chunk_hash, content_hash
from ingest.errors import os_reason, storage_faults
from ingest.report import FileResult, IngestReport, Progress, ProgressCallback
from ingest.prefetch import prefetch
from ingest.sources import Item, Source, SourceError, kind_of, open_source
from ingest.sources.origin import anchors
from ingest.store import CollectionWriter, FileRecord, NewChunk, SourceRecord, StoreError, collection_dir

# Exit statuses of `docent ingest` (documented in --help and the README): docent/exits.py.
from docent.exits import (EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_MODEL_MISMATCH, EXIT_OK,  # noqa: E402
                          EXIT_SOME_FAILED, EXIT_STORE, EXIT_USAGE)

# Embed once this many chunk texts are waiting: large batches sort well by length.
_EMBED_POOL = 256


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


@dataclass
class _Unopened:
    """A source that could not be opened (a spec this docent cannot read)."""
    spec: str
    reason: str


class Ingestor:
    def __init__(self, settings: Settings, embedder=None, home: str | os.PathLike | None = None, labeller=None,
                 vectors=None, store=None):
        """`labeller`: labels each chunk at ingest (bot.guard.labels.ChunkLabeller: what
        must not leak); anything with `version`, `label(path, texts, spans) -> [{label: count}]` and
        `for_collection(name)` (the labeller with that collection's rules). None: chunks are
        stored without labels. `vectors`: an ingest.store.VectorBackend (None: the one
        settings store.vectors names, FAISS by default). `store`: where collections are kept
        (ingest.store.backends; None: the one settings store.backend names)."""
        from ingest.store.backends import open_store
        from ingest.store.vectors import vector_backend

        self.settings = settings
        self.home = settings.home_dir(home)
        self._embedder = embedder
        self.labeller = labeller
        self.vectors = vectors if vectors is not None else vector_backend(settings.store.vectors, settings.store)
        self.store = store if store is not None else open_store(settings.store, self.home, self.vectors)

    @property
    def embedder(self):
        if self._embedder is None:
            from ingest.embedder import make_embedder
            self._embedder = make_embedder(self.settings.embedding)
        return self._embedder

    # -- the main job ----------------------------------------------------------
    def ingest(self, paths: Iterable[str | os.PathLike], collection: str | None = None, reembed: bool = False,
               progress: ProgressCallback | None = None, remember: bool = True) -> IngestReport:
        """Bring the collection up to date with `paths`: files, folders, `git+URL@branch`
        or a site's `https://` address (ingest.sources). `remember`: the collection keeps
        them as sources for `docent sync`.

        Raises StoreError subclasses (locked, model mismatch) before touching anything, and
        SourceError for a path that is not a source (a git URL or site that cannot be read
        is reported in the report instead)."""
        specs = [str(p) if kind_of(str(p)) != "folder" else str(absolute(p)) for p in paths]
        def sources_of(writer: CollectionWriter) -> list:
            known = {rec.spec: rec for rec in writer.sources()}      # a source ingested before keeps its state
            return [(self._open(writer, spec, known.get(spec)), remember) for spec in specs]
        return self._update(collection, reembed, progress, sources_of)

    def sync(self, collection: str | None = None, progress: ProgressCallback | None = None) -> IngestReport:
        """Read every source the collection was built from again (docent sync): new,
        edited, moved and deleted files; a source that cannot be read is reported and its
        files stay as they were."""
        name = collection or self.settings.ingest.collection
        self.store.reader(name).close()       # a clear "no such collection" first
        return self._update(name, False, progress, lambda writer: [
            (self._open(writer, rec.spec, rec), True) for rec in writer.sources()])

    def apply(self, batch, collection: str | None = None, progress: ProgressCallback | None = None) -> IngestReport:
        """One batch of watched changes (ingest.sources.watch.Batch): the changed files
        read, the gone ones removed, returned folders read in full."""
        from ingest.sources.watch import ChangedFiles
        return self._update(collection, False, progress, lambda writer: [
            *[(self._open(writer, str(root), None), False) for root in batch.full], (ChangedFiles(batch), False)])

    def _update(self, collection, reembed, progress, sources_of) -> IngestReport:
        name = collection or self.settings.ingest.collection
        started = time.perf_counter()
        report = IngestReport(name)
        embedder = self.embedder
        embed_before = embedder.seconds
        with self._faults(name), self.store.writer(name, embedder.name, embedder.dim,
                                                   reembed=reembed) as writer:
            try:
                if reembed:
                    report.reembedded = self._reembed(writer)
                self._run(writer, sources_of(writer), report, progress)
            except KeyboardInterrupt:
                report.interrupted = True
                writer.commit()
            report.seconds = time.perf_counter() - started
            report.embed_seconds = embedder.seconds - embed_before
        return report

    def _open(self, writer: CollectionWriter, spec: str, record: SourceRecord | None):
        """The source, or an _Unopened naming why it cannot be opened."""
        try:
            return open_source(spec, workdir=writer.directory / "sources", settings=self.settings,
                               state=record.state if record else None)
        except SourceError as exc:
            return _Unopened(spec, str(exc))

    def _faults(self, name: str):
        """A full disk, a read-only home or a damaged database: one StorageFault naming the collection."""
        return storage_faults(name, collection_dir(self.home, name))

    def _run(self, writer: CollectionWriter, sources: list[tuple[Source, bool]], report: IngestReport,
             progress: ProgressCallback | None) -> None:
        cfg = self.settings.ingest
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
        pending: list[_Staged] = []
        remembered = {rec.spec: rec for rec in writer.sources()}
        seen: set[str] = set()                  # keys yielded this run, by any source
        read: list[Source] = []                 # sources listed in full: their missing keys leave
        last_commit = time.monotonic()
        max_bytes = int(cfg.max_file_mb * 1024 * 1024)
        done, total = 0, 0

        def flush() -> None:
            self._embed_and_stage(writer, pending)
            for staged in pending:
                report.results.append(staged.result)
            pending.clear()

        def fresh(listing: Iterable[Item]) -> Iterator[Item]:
            for item in listing:
                if item.key not in seen:
                    seen.add(item.key)
                    yield item

        for source, remember in sources:
            if isinstance(source, _Unopened):
                report.source_errors.append((source.spec, source.reason))
                continue
            try:
                listing = source.items()
                if not getattr(source, "lazy", False):
                    listing = list(listing)     # a folder or a tree: listed at once, so the total is known
                    total = total + len(listing) if total is not None else None
                else:
                    total = None
                def examine(it: Item, spec: str = source.spec):
                    # A long load (OCR of a scan) tells the progress bar how far it is.
                    heard = (lambda note: progress(Progress(done, total, it.key, note))) if progress else None
                    with loaders.reporting(heard):
                        return self._examine(it, stored.get(it.key), max_bytes, labeller, spec)
                examined = prefetch(examine, fresh(listing))
                for item in examined:
                    done += 1
                    if item.failure is not None:
                        result = self._failed(writer, item, stored.get(item.path), source.spec)
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
            except SourceError as exc:
                report.source_errors.append((source.spec, str(exc)))
                previous = remembered.get(source.spec)
                if remember and previous is not None:     # a source never read is not remembered
                    writer.put_source(source.spec, source.kind, previous.state, error=str(exc))
                continue
            report.notes += [*getattr(source, "warnings", ()), *filter(None, [getattr(source, "note", None)])]
            if source.complete:
                read.append(source)
            if remember and not self._covered(remembered, source):
                writer.put_source(source.spec, source.kind, source.state())
                remembered[source.spec] = SourceRecord(source.spec, source.kind, source.state(), 0, None, None)
        flush()
        # Deletions last: a renamed file's vectors are reused before the old entry goes.
        for path, record in stored.items():
            if path not in seen and any(source.owns(path) for source in read):
                writer.remove_file(path)
                report.results.append(FileResult(path, "removed", chunks=record.n_chunks))
        writer.commit()

    @staticmethod
    def _covered(remembered: dict[str, SourceRecord], source: Source) -> bool:
        """A file or folder inside a folder the collection already syncs needs no entry of its own."""
        if source.kind != "folder":
            return False
        return any(rec.kind == "folder" and rec.spec != source.spec
                   and source.spec.startswith(rec.spec.rstrip(os.sep) + os.sep) for rec in remembered.values())

    def _examine(self, item: Item, stored: FileRecord | None, max_bytes: int, labeller=None,
                 source: str | None = None) -> "_Examined":
        """Read and, if the content changed, load and chunk one item. Runs on a helper
        thread (no database access here) and never raises for bad input."""
        key = item.key
        fmt = loaders.format_for(Path(item.name))
        if fmt is None:
            suffix = Path(item.name).suffix
            return _Examined(key, result=FileResult(key, "skipped", reason=f"unsupported format ({suffix or 'no extension'})"))
        digest = item.version
        try:
            if digest is None or not self._known(stored, digest):
                data = item.read(max_bytes)
                digest = digest or content_hash(data)
            if stored and stored.status == "ok" and stored.content_hash == digest:
                return _Examined(key, result=FileResult(key, "unchanged", chunks=stored.n_chunks))
            if stored and stored.failed_hash == digest:
                return _Examined(key, result=FileResult(key, "failed", reason=stored.error))
            doc = loaders.load_bytes(item.name, data)
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
        origin = {**item.origin, **{k: v for k, v in doc.metadata.items() if k.startswith("ocr_")}}
        if "url" in origin and (found := anchors(doc.headings)):   # so that a citation opens the page at its heading
            origin["anchors"] = found
        record = FileRecord(
            path=key, format=doc.format, content_hash=digest, size=item.size or len(data), mtime_ns=item.mtime_ns,
            status="ok", error=None, failed_hash=None, n_chunks=len(chunks), pages=len(doc.pages) or None,
            title=doc.title, ingested_at=time.time(), source_spec=source,
            origin=json.dumps(origin, sort_keys=True) if origin else None)
        result = FileResult(key, "updated" if stored and stored.content_hash else "added", chunks=len(chunks))
        return _Examined(key, staged=_Staged(record, chunks, result))

    @staticmethod
    def _known(stored: FileRecord | None, version: str) -> bool:
        """The source's version token matches what is stored: nothing to read."""
        return stored is not None and version in (stored.content_hash if stored.status == "ok" else None,
                                                  stored.failed_hash)

    @staticmethod
    def _failed(writer: CollectionWriter, item: "_Examined", stored: FileRecord | None,
                source: str | None = None) -> FileResult:
        reason, digest, fmt = item.failure
        key = item.path
        writer.mark_failed(key, reason, digest, fmt, source)
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
        self.store.reader(name).close()       # a clear "no such collection" first
        removed = []
        with self._faults(name), self.store.writer(name, model=None, dim=None) as writer:
            stored = [rec.path for rec in writer.files()]
            for given in paths:
                kind = kind_of(str(given))
                target = str(absolute(given)) if kind == "folder" else str(given)
                # Under a folder, a repository's branch (spec:path) or a site's address.
                prefix = {"folder": target.rstrip(os.sep) + os.sep, "git": target + ":", "site": target}[kind]
                for path in stored:
                    if (path == target or path.startswith(prefix)) and writer.remove_file(path):
                        removed.append(path)
                if writer.forget_source(target):         # `docent sync` no longer reads it
                    removed.append(f"(source) {target}")
            writer.commit()
        return removed

    def sources(self, collection: str | None = None) -> list[FileRecord]:
        name = collection or self.settings.ingest.collection
        with self._faults(name), self.store.reader(name) as coll:
            return coll.files()

    def remembered(self, collection: str | None = None) -> list[SourceRecord]:
        """The sources `docent sync` reads again."""
        name = collection or self.settings.ingest.collection
        with self._faults(name), self.store.reader(name) as coll:
            return coll.sources()

    def label_counts(self, collection: str | None = None) -> dict[str, dict[str, int]]:
        """{path: {label: chunks}} for the files whose chunks carry labels."""
        name = collection or self.settings.ingest.collection
        with self._faults(name), self.store.reader(name) as coll:
            return coll.label_counts()

    def collections(self) -> list[str]:
        return self.store.names()

    def overview(self, name: str) -> dict:
        """A collection at a glance: files, chunks, embedding model, how a search goes
        (exact or approximate, as its last commit left it) and when it last changed."""
        with self._faults(name), self.store.reader(name) as coll:
            info = coll.info()
            return {"name": name, "files": len(coll.files()), "chunks": coll.chunk_count(),
                    "model": info.get("embedding_model"), "search": info.get("vector_search", "exact"),
                    "updated_at": float(info["updated_at"]) if "updated_at" in info else None}


__all__ = ["Ingestor", "IngestReport", "FileResult", "Progress", "StoreError",
           "EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "EXIT_LOCKED", "EXIT_MODEL_MISMATCH",
           "EXIT_STORE", "EXIT_INTERRUPTED"]
