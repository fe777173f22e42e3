"""Draft the realistic claim set: the bundled model writes claims the way models write
answers, from passages of ../shared/eval/docs; people label them afterwards.

    .venv/bin/python benchmarks/write_claims.py --passages 160      # -> benchmarks/.work/claim-drafts.jsonl

Nothing here comes from bot/guard/perturb.py: each draft is the model's own sentence,
asked for in one of these ways (what it was asked is kept as `asked`, never used as the
label; the label is given by a person reading the passage, see benchmarks/data/README.md):
- supported: paraphrase one fact, combine two sentences, summarise a list or the passage,
  answer a question a user might ask (the model writes both);
- unsupported: add a plausible detail the passage lacks, generalise beyond what it says,
  and a supported draft of another passage of the same documentation set ("wrong passage",
  no model call);
- contradicted: a paraphrase with one fact changed (a number, a negation, a name or
  thing, a direction, a condition).
Passages come from every documentation set; `split` is by documentation set (train:
postgresql, git, debian-policy, debian-reference; test: prometheus, sqlite,
developers-reference), so no document, nor a copy of one, is in both parts.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
EVAL_DOCS = ROOT.parent / "shared" / "eval" / "docs"
OUT = ROOT / "benchmarks" / ".work" / "claim-drafts.jsonl"
TEST_SETS = ("prometheus", "sqlite", "developers-reference")

SYSTEM = ("You help build a test for a fact checker that reads technical documentation. You write one sentence "
          "of the kind an assistant writes when it answers a question from the passage. Write only that sentence.")

ASK = {
    "paraphrase": "Restate one fact from the passage in your own words, as one sentence. Do not copy the "
                  "passage's wording; keep the fact exactly true.",
    "combine": "Write one sentence that combines two different facts stated in the passage. Use your own words; "
               "keep both facts exactly true.",
    "summarise": "Summarise what the passage says (or what its list contains) in one short sentence. Say only "
                 "what the passage says.",
    "answer": "Think of a question a user might ask that this passage answers. Write the question on the first "
              "line, starting with 'Q:', and the answer, as one sentence in your own words, on the second line, "
              "starting with 'A:'.",
    "detail": "Write one sentence about the subject of the passage that sounds plausible and fits the passage, "
              "but adds a specific detail the passage does not mention (a number, a default, a name, an option, "
              "a reason or a consequence).",
    "generalise": "Write one sentence that takes something the passage says about a particular case and states "
                  "it as if it held in general (always, for everything, in every version), which the passage "
                  "does not say.",
    "number": "Restate one fact from the passage in your own words, but change one number or quantity so that "
              "the sentence becomes false.",
    "negation": "Restate one fact from the passage in your own words, but turn it into its negation (what is "
                "allowed becomes forbidden, what happens does not happen, or the reverse), so that it becomes false.",
    "entity": "Restate one fact from the passage in your own words, but replace the name of one thing (a "
              "command, option, file, program or setting) with another that fits, so that it becomes false.",
    "direction": "Restate one fact from the passage in your own words, but reverse one direction or order "
                 "(before/after, more/less, increase/decrease, client/server, first/last), so that it becomes false.",
    "condition": "Restate one fact from the passage in your own words, but change the condition under which "
                 "it holds (when, unless, only if), so that it becomes false.",
}
# How many of each a passage gets, about half of them asked to be supported (the model often fails a request to
# be wrong, so the labels end up about half supported).
PLAN = [("paraphrase", 1.0), ("combine", 0.6), ("summarise", 0.3), ("answer", 0.7), ("detail", 0.8),
        ("generalise", 0.4), ("number", 0.45), ("negation", 0.5), ("entity", 0.35), ("direction", 0.3),
        ("condition", 0.3)]


def split_of(path: str) -> str:
    return "test" if path.split("/", 1)[0] in TEST_SETS else "train"


def prose_share(text: str) -> float:
    """Share of lines that read as sentences (not code, tables, link lists)."""
    lines = [line for line in text.splitlines() if line.strip()]
    prose = [line for line in lines if len(line.split()) >= 6 and not line.lstrip().startswith(("|", "```", "    ", "*  [", "<"))
             and sum(c.isalpha() or c == " " for c in line) / len(line) > 0.8]
    return len(prose) / max(1, len(lines))


def passages(limit: int, seed: int) -> list[dict]:
    """Prose chunks of the docs collection (benchmarks/.work), at most two per file,
    spread over the files, as the guard sees them: heading path, then the text."""
    from answer import docent_home
    from docent.settings import load_settings
    from ingest.store import Collection
    home = docent_home(ROOT / "benchmarks" / ".work", load_settings())
    with Collection(home, "docs") as collection:
        rows = collection.conn.execute("SELECT id, path, heading, text FROM chunks").fetchall()
    docs = str(EVAL_DOCS) + "/"
    by_file: dict[str, list] = {}
    for chunk_id, path, heading, text in rows:
        path = path[len(docs):] if path.startswith(docs) else path
        if 500 <= len(text) <= 1600 and prose_share(text) >= 0.6 and len(re.findall(r"[.!?](\s|$)", text)) >= 3:
            by_file.setdefault(path, []).append((chunk_id, heading, text))
    rng = random.Random(seed)
    picked = []
    for path in sorted(by_file):
        chosen = rng.sample(by_file[path], min(2, len(by_file[path])))
        picked += [{"chunk_id": c, "source": path, "heading": h, "text": t} for c, h, t in chosen]
    rng.shuffle(picked)
    out = picked[:limit]
    for p in out:
        p["passage"] = f"{p['heading']}\n{p['text']}" if p["heading"] else p["text"]
        p["split"] = split_of(p["source"])
    return out


def clean(text: str, asked: str) -> str:
    text = text.strip()
    if asked == "answer":
        match = re.search(r"A:\s*(.+)", text)
        text = match.group(1) if match else ""
    text = text.splitlines()[0].strip() if text else ""
    text = re.sub(r"^(sentence|answer|statement)\s*:\s*", "", text, flags=re.I).strip().strip('"').strip()
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=160)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--split", choices=["train", "test"], help="only passages of this part")
    args = parser.parse_args()
    from bot.generators import make_generator
    from docent.settings import load_settings
    settings = load_settings().with_values("generation", temperature=0.7, seed=args.seed)
    generator = make_generator(settings.generation)
    generator.warm_up()
    rng = random.Random(args.seed)
    chosen = passages(args.passages, args.seed)
    if args.split:
        chosen = [p for p in chosen if p["split"] == args.split]
    done = set()
    if args.out.is_file():
        done = {(r["chunk_id"], r["asked"]) for r in map(json.loads, args.out.open())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with args.out.open("a", encoding="utf-8") as out:
        for index, p in enumerate(chosen):
            kinds = [kind for kind, share in PLAN if rng.random() < share]
            question = None
            for kind in kinds:
                if (p["chunk_id"], kind) in done:
                    continue
                # The passage first, the request last: llama.cpp reuses the passage's tokens.
                messages = [{"role": "system", "content": SYSTEM},
                            {"role": "user", "content": f"Passage:\n{p['passage']}\n\n{ASK[kind]}"}]
                raw = "".join(generator.stream(messages, max_tokens=110 if kind == "answer" else 80))
                claim = clean(raw, kind)
                if kind == "answer":
                    match = re.search(r"Q:\s*(.+)", raw)
                    question = match.group(1).strip() if match else None
                if len(claim.split()) < 4:
                    continue
                row = {"chunk_id": p["chunk_id"], "source": p["source"], "split": p["split"], "passage": p["passage"],
                       "claim": claim, "asked": kind}
                if kind == "answer" and question:
                    row["question"] = question
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
            print(f"{index + 1}/{len(chosen)} passages, {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
