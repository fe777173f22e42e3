"""What an ingest run reports: per file, per run, and its progress events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from docent.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED


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
    source_errors: list[tuple[str, str]] = field(default_factory=list)   # (spec, reason): left as it was
    notes: list[str] = field(default_factory=list)      # what a source wants said (a page budget, a page's 500)

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
        return EXIT_SOME_FAILED if self.failed or self.source_errors else EXIT_OK

    def summary(self) -> str:
        parts = [f"{self.count(a)} {a}" for a in ("added", "updated", "unchanged", "removed", "failed")]
        line = (f"{self.collection}: " + ", ".join(parts) + f"; {self.count('skipped')} skipped (format); "
                f"{self.chunks_embedded} chunks embedded in {self.seconds:.1f} s")
        if self.reembedded:
            line += f"; {self.reembedded} chunks re-embedded"
        if self.relabelled:
            line += f"; {self.relabelled} chunks relabelled (new leak rules)"
        if self.source_errors:
            line += f"; {len(self.source_errors)} source(s) not read (left as they were)"
        if self.interrupted:
            line += " (interrupted: finished files were saved; run again to continue)"
        return line

    def to_dict(self) -> dict:
        return {
            "collection": self.collection,
            "counts": {a: self.count(a) for a in ("added", "updated", "unchanged", "removed", "failed", "skipped")},
            "chunks_embedded": self.chunks_embedded, "seconds": round(self.seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3), "interrupted": self.interrupted,
            "source_errors": [{"source": spec, "reason": reason} for spec, reason in self.source_errors],
            "notes": self.notes,
            "files": [r.__dict__ for r in self.results if r.action != "unchanged"],
        }


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None           # None: not known yet (a site is found while it is crawled)
    path: str
    action: str                 # what became of the file (added, unchanged, ...), or while a long
                                # load runs, how far it is ("OCR of page 3 of 40")


ProgressCallback = Callable[[Progress], None]
