"""Short passages widened within their section (`retrieval.widen_chars`): how often the
passage holding the answer is among the k given to the model, and how much more it reads.
No model: the answers themselves are measured by `--part answer --only-changed` with the
setting on, then `--part rules` (benchmarks/README.md, "Short passages widened")."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from answer import (EVAL, REWORDED_HELDOUT, answer_keys, as_dicts, docent_home, docs_hit, docs_qa, reworded_items,
                    squad_hit, squad_questions)

WIDTHS = (0, 400, 600, 800)


def part_widen(work: Path, settings, widths=WIDTHS) -> dict:
    from bot.retrieval import Retriever
    from ingest.embedder import make_embedder
    embedder = make_embedder(settings.embedding)
    home = docent_home(work, settings)
    keys = answer_keys()
    docs = ("docs", EVAL / "docs", docs_hit)
    sets = {
        "docs_qa": ([{"question": q["question"], "q": q} for q in docs_qa() if q["answerable"]], *docs),
        "tuning rewordings": ([i for i in reworded_items(keys) if i["answerable"]], *docs),
        "held-out rewordings": ([i for i in reworded_items(keys, REWORDED_HELDOUT) if i["answerable"]], *docs),
        "squad2": ([{"question": q["question"], "q": q} for q in squad_questions(400) if not q["is_impossible"]],
                   "squad", EVAL / "squad2" / "docs", squad_hit),
    }
    out: dict = {"k": settings.retrieval.k}
    print(f"  {'widen_chars':>11} {'set':22} {'answer found':>12} {'chars read':>10} {'ms/q':>6}")
    for width in widths:
        retriever = Retriever(settings.with_values("retrieval", widen_chars=width), embedder, home=home)
        for name, (items, collection, folder, hit) in sets.items():
            found, chars, started = 0, [], time.perf_counter()
            for item in items:
                passages = as_dicts(retriever.retrieve(item["question"], collection).passages, folder)
                found += any(hit(p, item["q"]) for p in passages)
                chars.append(sum(len(p["text"]) for p in passages))
            row = {"questions": len(items), "found": found / len(items), "chars_mean": statistics.mean(chars),
                   "ms_per_question": (time.perf_counter() - started) * 1000 / len(items)}
            out.setdefault(name, {})[str(width)] = row
            print(f"  {width:11d} {name:22} {row['found']:12.3f} {row['chars_mean']:10.0f} {row['ms_per_question']:6.1f}",
                  flush=True)
    return out
