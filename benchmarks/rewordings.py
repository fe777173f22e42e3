"""The same question in a person's words: does retrieval find the same passage, and does
docent give the same answer? (issue 16; `benchmarks/answer.py --part rewordings`)

Two sets of docs_qa questions reworded by a person (benchmarks/data/README.md):
"tuning", the 25 questions x 2 rewordings read while the answer rules and these settings
were chosen, and "held-out", the other 52 questions x 1 rewording, written before any
figure on them was seen. For each variant of the retrieval settings:

- retrieval (no LLM, k = the answer's): the original's and the rewording's quote passage
  among the passages (hit), the same first passage, top-k Jaccard of the chunks;
- answers (with --answer-sets): each original and rewording answered live by the bundled
  model through the whole pipeline. An answer depends on the question and its passages
  only (temperature 0), so one cached by (question, passage chunks) in
  `.work/rewordings-answers.jsonl` serves every variant that retrieves the same passages,
  and an interrupted run resumes. Figures: right + cited by the answer key, abstention,
  agreement between each rewording's answer and its original's (docent eval's measures:
  the guard's entailment where both answered, the same cited files, token F1).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from answer import (EVAL, REWORDED, REWORDED_HELDOUT, agreement, all_items, answer_keys, answer_row, as_dicts,
                    cached_guard, docent_home, docs_hit, reworded_items, score_rows)

VARIANTS = {"keyword weight 2.0 (before)": dict(keyword_weight=2.0),
            "keyword weight 1.0": dict(keyword_weight=1.0)}
SETS = {"tuning": REWORDED, "held-out": REWORDED_HELDOUT}


def set_pairs(set_name: str) -> list[tuple[dict, dict]]:
    """(original item, rewording item) of a set."""
    originals = all_items("docs_qa")
    return [(originals[i["original"]], i) for i in reworded_items(answer_keys(), SETS[set_name])]


def _retrieval(retriever, pairs: list[tuple[dict, dict]], k: int) -> dict:
    folder = EVAL / "docs"
    hits_o, hits_r, first, jaccard = [], [], [], []
    for original, reworded in pairs:
        po = retriever.retrieve(original["question"], "docs", k=k).passages
        pr = retriever.retrieve(reworded["question"], "docs", k=k).passages
        if original["answerable"]:
            hits_o.append(any(docs_hit(p, original["q"]) for p in as_dicts(po, folder)))
            hits_r.append(any(docs_hit(p, reworded["q"]) for p in as_dicts(pr, folder)))
        first.append(bool(po and pr and set(po[0].chunk_ids) & set(pr[0].chunk_ids)))
        so = {i for p in po for i in p.chunk_ids}
        sr = {i for p in pr for i in p.chunk_ids}
        jaccard.append(len(so & sr) / max(1, len(so | sr)))
    return {"answerable": len(hits_o), "hit_original": statistics.mean(hits_o), "hit_reworded": statistics.mean(hits_r),
            "same_first": statistics.mean(first), "jaccard": statistics.mean(jaccard)}


class AnswerCache:
    """Rows answered live, by (question, passage chunk ids), kept on disk."""

    def __init__(self, path: Path, collection: str = "docs", folder: Path = EVAL / "docs"):
        """`folder`: the collection's source folder (passages' paths are read relative to it)."""
        self.path, self.collection, self.folder = path, collection, folder
        self.rows: dict[str, dict] = {}
        if path.is_file():
            for line in path.open(encoding="utf-8"):
                row = json.loads(line)
                self.rows[row["key"]] = row

    @staticmethod
    def key(question: str, passages) -> str:
        return json.dumps([question, [list(p.chunk_ids) for p in passages]])

    def answer(self, answerer, item: dict) -> dict:
        result = answerer.retriever.retrieve(item["question"], self.collection)
        key = self.key(item["question"], result.passages)
        if key not in self.rows:
            a = answerer.ask(item["question"], self.collection)
            passages = as_dicts(a.passages, self.folder)
            cited = [passages[n - 1] for n in a.cited]
            row = answer_row(item, a.text, a.abstained, cited, a.timings, a.fallback)
            row.update(key=key, cited_sources=[p["source"] for p in cited], abstain_reason=a.abstain_reason)
            self.rows[key] = row
            with self.path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(row) + "\n")
            print(f"  answered ({len(self.rows)} cached) {item['question'][:70]}", flush=True)
        return self.rows[key]


def _answers(answerer, cache: AnswerCache, pairs: list[tuple[dict, dict]], guard) -> tuple[dict, list[dict]]:
    """The set's figures, and the originals' answer rows (for the figures over all docs_qa)."""
    rows = {}
    for original, reworded in pairs:
        for item in (original, reworded):
            if item["question"] not in rows:
                rows[item["question"]] = cache.answer(answerer, item)
    originals = [rows[q] for q in dict.fromkeys(o["question"] for o, _ in pairs)]
    reworded = [rows[r["question"]] for _, r in pairs]
    figures = {"originals": score_rows(originals), "rewordings": score_rows(reworded),
               **agreement([(rows[o["question"]], rows[r["question"]]) for o, r in pairs], guard),
               "rewordings_right_cited": sum(bool(r.get("key_correct") and any(r["cited_hits"])) for r in reworded),
               "rewordings_answerable": sum(r["answerable"] for r in reworded)}
    return figures, originals


def part_rewordings(work: Path, settings, answer_sets: list[str]) -> dict:
    from bot.answer import Answerer
    from bot.retrieval import Retriever
    from ingest.embedder import make_embedder
    embedder = make_embedder(settings.embedding)
    home = docent_home(work, settings)
    cache = AnswerCache(work / "rewordings-answers.jsonl")
    generator = guard = None
    if answer_sets:
        from bot.generators import make_generator
        generator = make_generator(settings.generation)
        generator.warm_up()
        guard = cached_guard(work, settings, generator)
    out: dict = {}
    for label, values in VARIANTS.items():
        s = settings.with_values("retrieval", **values)
        retriever = Retriever(s, embedder, home=home)
        out[label] = {}
        originals: list[dict] = []
        for set_name in SETS:
            pairs = set_pairs(set_name)
            figures = {"retrieval": _retrieval(retriever, pairs, s.retrieval.k)}
            if set_name in answer_sets:
                answerer = Answerer(s, retriever=retriever, generator=generator, guard=guard)
                figures["answers"], rows = _answers(answerer, cache, pairs, guard)
                originals += rows
            out[label][set_name] = figures
            _print(label, set_name, figures)
        if set(answer_sets) >= set(SETS):      # every docs_qa question, as the target counts it
            out[label]["docs_qa"] = score_rows(originals)
            f = out[label]["docs_qa"]
            print(f"  all {len(originals)} docs_qa questions: right + cited {f['key_correct_with_citation']:.3f}, abstain "
                  f"P / R / F1 {f['abstain_precision']:.3f} / {f['abstain_recall']:.3f} / {f['abstain_f1']:.3f}", flush=True)
    return out


def _print(label: str, set_name: str, f: dict) -> None:
    r = f["retrieval"]
    print(f"{label} / {set_name}: quote passage found for {r['hit_original']:.3f} of the originals, "
          f"{r['hit_reworded']:.3f} of the rewordings ({r['answerable']} answerable); same first passage "
          f"{r['same_first']:.3f}, top-k Jaccard {r['jaccard']:.3f}", flush=True)
    if "answers" in f:
        a = f["answers"]
        print(f"  answers: originals right + cited {a['originals']['key_correct_with_citation']:.3f}, rewordings "
              f"{a['rewordings_right_cited']} of {a['rewordings_answerable']}; abstain F1 originals "
              f"{a['originals']['abstain_f1']:.3f} rewordings {a['rewordings']['abstain_f1']:.3f}; agreement: token F1 "
              f"{a['agreement']:.3f}, same cited files {a['same_citations']:.3f}, entailment {a['entailment']:.3f} "
              f"on {a['both_answered']} of {a['pairs']} pairs", flush=True)
