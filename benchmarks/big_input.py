"""One big text file through ingest's reading stages: load, chunk (the real tokenizer),
label (secrets on the whole document, personal data, markings), with the seconds of each
and the process's peak memory. Run at two sizes to see that the cost grows linearly.

    .venv/bin/python benchmarks/big_input.py FILE [--fraction 0.25]

FILE: e.g. the eval docs concatenated to 49 MiB (the README says how it was made).
Embedding is left out: its cost is measured in benchmarks/ingest.py.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--fraction", type=float, default=1.0, help="read only this share of the file")
    args = parser.parse_args()
    from bot.guard.labels import ChunkLabeller
    from docent.settings import load_settings
    from ingest import loaders
    from ingest.chunking import chunk_document
    from ingest.embedder import make_embedder

    settings = load_settings(env={})
    source = args.file
    if args.fraction < 1:
        text = source.read_text(errors="replace")
        source = Path("/tmp") / f"part-{args.fraction}-{source.name}"
        source.write_text(text[: int(len(text) * args.fraction)])
        del text
    embedder = make_embedder(settings.embedding)
    figures = {"file_mib": round(source.stat().st_size / 2 ** 20, 1)}
    started = time.perf_counter()
    doc = loaders.load_file(source, max_bytes=int(60 * 2 ** 20))
    figures["load_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    drafts = chunk_document(doc, embedder.count_tokens, settings.chunking.max_tokens, settings.chunking.min_tokens,
                            settings.chunking.overlap_tokens)
    figures["chunk_s"] = round(time.perf_counter() - started, 1)
    figures["chunks"] = len(drafts)
    started = time.perf_counter()
    labels = ChunkLabeller(settings.leaks).label(str(source), [d.text for d in drafts], [(d.start, d.end) for d in drafts])
    figures["label_s"] = round(time.perf_counter() - started, 1)
    figures["labelled_secret"] = sum(1 for found in labels if "secret" in found)
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
