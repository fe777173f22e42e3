"""Fit the groundedness model (bot/guard/groundedness.json): a logistic combination of
the lexical, exact and conflict signals, and the threshold with the best balanced
accuracy, from licensed data only:
- HaluEval QA records 0-499 (the training half; 500-999 are kept for evaluation):
  knowledge + right answer = supported, knowledge + hallucinated answer = not;
- synthetic claims made from SQuAD v2 passages (bot/guard/perturb.py).

    python -m bot.guard.train [--eval-dir ../shared/eval] [--out bot/guard/groundedness.json]

Seconds on 2 cores; the same data and seed give the same weights.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from bot.guard.groundedness import FEATURES, MODEL_FILE, features
from bot.guard.perturb import make_examples

ROOT = Path(__file__).resolve().parents[2]
TRAIN_HALUEVAL = range(0, 500)


def halueval(path: Path, records: range) -> list[tuple[str, str, int]]:
    """(claim, passage, supported) pairs from HaluEval QA records in `records`."""
    out = []
    with path.open() as handle:
        for index, line in enumerate(handle):
            if index in records:
                row = json.loads(line)
                out.append((row["right_answer"], row["knowledge"], 1))
                out.append((row["hallucinated_answer"], row["knowledge"], 0))
    return out


def squad_examples(path: Path, limit: int = 300, seed: int = 0) -> list[tuple[str, str, int]]:
    passages = [json.loads(line)["text"] for line in path.open()][:limit]
    return [(e.claim, e.passage, int(e.label == "supported")) for e in make_examples(passages, seed)]


def fit(rows: list[tuple[float, ...]], labels: list[int], l2: float = 0.01, steps: int = 300) -> list[float]:
    """Logistic regression by Newton's method (a handful of features: exact and quick)."""
    import numpy as np
    x = np.asarray(rows, dtype=float)
    y = np.asarray(labels, dtype=float)
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (p - y) / len(y) + l2 * w
        hessian = (x.T * (p * (1 - p))) @ x / len(y) + l2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return [float(v) for v in w]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument("--squad-passages", type=int, default=300, help="SQuAD passages to perturb")
    parser.add_argument("--halueval-records", type=int, default=500, help="HaluEval records used (from 0, at most 500)")
    args = parser.parse_args(argv)
    halu_path = args.eval_dir / "halueval_qa" / "qa_sample.jsonl"
    squad_path = args.eval_dir / "squad2" / "passages.jsonl"
    for path in (halu_path, squad_path):
        if not path.is_file():
            print(f"error: training data not found: {path} (give --eval-dir)", file=sys.stderr)
            return 2
    started = time.perf_counter()
    data = halueval(halu_path, range(0, min(args.halueval_records, 500))) + squad_examples(squad_path, args.squad_passages)
    rows = [features(claim, [passage])[0] for claim, passage, _ in data]
    labels = [label for _, _, label in data]
    weights = fit(rows, labels)
    from docent.metrics import balanced_accuracy, best_threshold
    scores = [1 / (1 + math.exp(-max(-30, min(30, sum(w * x for w, x in zip(weights, row)))))) for row in rows]
    threshold = best_threshold(labels, scores)
    accuracy = balanced_accuracy(labels, [s >= threshold for s in scores])
    model = {"weights": dict(zip(FEATURES, [round(w, 4) for w in weights])), "threshold": round(threshold, 4),
             "fitted_by": "python -m bot.guard.train " + " ".join(argv if argv is not None else sys.argv[1:]),
             "data": {"halueval_qa records": f"0-{min(args.halueval_records, 500) - 1}",
                      "squad2 passages perturbed": args.squad_passages, "examples": len(data),
                      "supported": sum(labels)},
             "train_balanced_accuracy": round(accuracy, 4)}
    args.out.write_text(json.dumps(model, indent=1) + "\n")
    print(f"{len(data)} examples, train balanced accuracy {accuracy:.3f} at threshold {threshold:.3f}, "
          f"{time.perf_counter() - started:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
