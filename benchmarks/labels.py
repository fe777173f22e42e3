"""What leak labelling costs at ingest: the same files ingested twice into fresh
collections, with and without the chunk labeller (bot/guard/labels.py), real embedder;
plus the labeller's own time per chunk and the labels it found. Target (issue 6): the
labels add at most 25% to ingest time.

    .venv/bin/python benchmarks/labels.py [--files 30]      # ../shared/eval/docs, ~6 min
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT.parent / "shared" / "eval" / "docs"


class TimedLabeller:
    def __init__(self, inner):
        self.inner, self.version, self.seconds, self.chunks = inner, inner.version, 0.0, 0

    def for_collection(self, name):
        return self

    def label(self, path, texts, spans=None):
        started = time.perf_counter()
        try:
            return self.inner.label(path, texts, spans)
        finally:
            self.seconds += time.perf_counter() - started
            self.chunks += len(texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=30, help="how many files of ../shared/eval/docs (spread)")
    args = parser.parse_args()
    if not DOCS.is_dir():
        print(f"no evaluation documents at {DOCS}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from bot.guard.labels import ChunkLabeller
    from docent.settings import load_settings
    from ingest.embedder import make_embedder
    from ingest.pipeline import Ingestor
    every = sorted(p for p in DOCS.rglob("*") if p.is_file())
    files = every[::max(1, len(every) // args.files)][:args.files]     # spread over the corpus: all formats
    work = Path(tempfile.mkdtemp(prefix="docent-labels-"))
    corpus = work / "docs"
    for f in files:
        target = corpus / f.relative_to(DOCS)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    settings = load_settings(env={}).with_values("paths", home=str(work / "home"))
    embedder = make_embedder(settings.embedding)
    embedder.warm_up()
    ChunkLabeller(settings.leaks).label("/warm/up.md", ["warm up the detectors"])
    runs = {}
    # Each order once, so neither run always gets the warmer caches.
    for name, labelled in (("plain", False), ("labelled", True), ("labelled-2", True), ("plain-2", False)):
        timed = TimedLabeller(ChunkLabeller(settings.leaks)) if labelled else None
        started = time.perf_counter()
        report = Ingestor(settings, embedder=embedder, labeller=timed).ingest([corpus], collection=name)
        wall = time.perf_counter() - started
        runs[name] = {"wall_s": round(wall, 2), "chunks": sum(r.chunks for r in report.results),
                      "labeller_s": round(timed.seconds, 2) if timed else 0.0}
        print(f"{name:<11} {wall:6.1f} s  {runs[name]['chunks']} chunks"
              + (f"  labeller {timed.seconds:5.1f} s ({1000 * timed.seconds / max(1, timed.chunks):.1f} ms/chunk)"
                 if timed else ""))
    plain = (runs["plain"]["wall_s"] + runs["plain-2"]["wall_s"]) / 2
    labelled = (runs["labelled"]["wall_s"] + runs["labelled-2"]["wall_s"]) / 2
    overhead = labelled / plain - 1
    ingestor = Ingestor(settings, embedder=embedder)
    totals: dict[str, int] = {}
    for counts in ingestor.label_counts("labelled").values():
        for label, n in counts.items():
            totals[label] = totals.get(label, 0) + n
    result = {"date": time.strftime("%Y-%m-%d"), "files": len(files), "runs": runs,
              "overhead": round(overhead, 3), "labelled_chunks": totals}
    print(f"ingest with labels / without: {labelled:.1f} / {plain:.1f} s = {overhead:+.1%} (target <= +25%); "
          f"labelled chunks: {totals}")
    out = ROOT / "benchmarks" / "results" / "labels.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    from report import refresh      # all benchmarks' figures on one page
    refresh()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
