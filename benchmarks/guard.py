"""Guard benchmark: is each claim backed by its passage? Per signal and combined.

    .venv/bin/python benchmarks/guard.py            # ~1 min (builds the docs index once via answer.py)

Sets (positive class = "not supported", the thing the guard must catch):
- HaluEval QA evaluation half (records 500-999; 0-499 trained the model): knowledge +
  right answer vs knowledge + hallucinated answer;
- docs perturbations: claims made by bot/guard/perturb.py from chunks of
  ../shared/eval/docs (never used in training, which perturbs SQuAD passages).
Signals: the trivial lexical baseline (share of the claim's content words absent from the
passage, cut at the threshold that is best on the training data), the exact checks alone
(a fact missing or a conflict), and the combined score of bot/guard/groundedness.py.
Figures are printed and written to benchmarks/results/guard.json.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL = ROOT.parent / "shared" / "eval"
RESULTS = ROOT / "benchmarks" / "results" / "guard.json"


def docs_chunks(limit: int, seed: int = 3) -> list[str]:
    """Chunk texts of the eval docs (the collection answer.py builds under benchmarks/.work)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from answer import docent_home
    from docent.settings import load_settings
    from ingest.store import Collection
    home = docent_home(ROOT / "benchmarks" / ".work", load_settings())
    with Collection(home, "docs") as collection:
        texts = [row[0] for row in collection.conn.execute("SELECT text FROM chunks ORDER BY id")]
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def evaluate(name: str, items: list[tuple[str, str, int, str]], guard, lexical_cut: float) -> dict:
    """items: (claim, passage, supported, kind). Positive = not supported."""
    from bot.guard import facts as exact
    from bot.guard.groundedness import features
    from docent.metrics import auroc, balanced_accuracy, f1, recall
    truth = [1 - supported for _, _, supported, _ in items]
    lexical, exact_flags, combined, labels = [], [], [], []
    started = time.perf_counter()
    for claim, passage, _, _ in items:
        row, result = features(claim, [passage])
        lexical.append(1 - row[1])                        # absent share: higher = less supported
        exact_flags.append(int(not result.ok))
        verdict = guard.check(claim, [passage]).sentences
        score = min((s.score for s in verdict if s.label != "skipped"), default=1.0)
        labels.append(int(any(s.label in ("unsupported", "contradicted") for s in verdict)))
        combined.append(1 - score)
    ms = (time.perf_counter() - started) * 1000 / len(items)
    out = {"examples": len(items), "not_supported": sum(truth), "ms_per_claim": round(ms, 2)}
    for signal, scores, predicted in (("lexical baseline", lexical, [1 - s < lexical_cut for s in lexical]),
                                      ("exact checks", exact_flags, exact_flags),
                                      ("combined", combined, labels)):
        row = {"balanced_accuracy": balanced_accuracy(truth, predicted), "auroc": auroc(truth, scores),
               "f1": f1(truth, predicted)}
        kinds = sorted({kind for *_, kind in items if kind})
        for kind in kinds:
            picked = [i for i, item in enumerate(items) if item[3] == kind]
            row[f"recall {kind}" if items[picked[0]][2] == 0 else f"specificity {kind}"] = \
                recall([truth[i] for i in picked], [predicted[i] for i in picked]) if items[picked[0]][2] == 0 else \
                1 - sum(predicted[i] for i in picked) / len(picked)
        out[signal] = {k: round(v, 3) for k, v in row.items()}
        print(f"{name:22} {signal:17} BA {row['balanced_accuracy']:.3f}  AUROC {row['auroc']:.3f}  F1 {row['f1']:.3f}",
              flush=True)
    print(f"{name:22} {ms:.2f} ms per claim (all signals)", flush=True)
    return out


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bot.guard.groundedness import GroundednessGuard, features
    from bot.guard.perturb import make_examples
    from bot.guard.train import halueval, squad_examples
    from docent.metrics import best_threshold
    guard = GroundednessGuard()
    # The lexical baseline's cut, chosen on the same training data as the model's.
    train = halueval(EVAL / "halueval_qa" / "qa_sample.jsonl", range(0, 500)) + \
        squad_examples(EVAL / "squad2" / "passages.jsonl", 300)
    train_lexical = [features(c, [p])[0][1] for c, p, _ in train]
    lexical_cut = best_threshold([label for *_, label in train], train_lexical)
    print(f"lexical baseline: supported when >= {lexical_cut:.2f} of the claim's content words are in the passage")
    results = {"date": time.strftime("%Y-%m-%d"), "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
               "model": json.loads((ROOT / "bot" / "guard" / "groundedness.json").read_text()),
               "lexical_cut": round(lexical_cut, 3)}
    halu = [(c, p, s, "hallucinated" if s == 0 else "right")
            for c, p, s in halueval(EVAL / "halueval_qa" / "qa_sample.jsonl", range(500, 1000))]
    results["halueval_eval"] = evaluate("halueval 500-999", halu, guard, lexical_cut)
    examples = make_examples(docs_chunks(400), seed=11)
    docs = [(e.claim, e.passage, int(e.label == "supported"), e.how) for e in examples]
    results["docs_perturbations"] = evaluate("docs perturbations", docs, guard, lexical_cut)
    contradicted = [d for d, e in zip(docs, examples) if e.label != "unsupported"]
    unsupported = [d for d, e in zip(docs, examples) if e.label != "contradicted"]
    results["docs_contradicted_only"] = evaluate("docs contradicted", contradicted, guard, lexical_cut)
    results["docs_unsupported_only"] = evaluate("docs unsupported", unsupported, guard, lexical_cut)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
