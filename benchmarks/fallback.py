"""What docent does with the model's text, rule by rule, replayed on the recorded model
outputs of the last answer run (docs_qa and the person-written rewordings of 25 of its
questions), so every row reads the same answers and the difference is the rule alone.

    .venv/bin/python benchmarks/answer.py --part answer --configs docent --sets docs_qa,docs_qa_reworded --questions 0
    .venv/bin/python benchmarks/answer.py --part fallback     # who decides that an answer is unbacked
    .venv/bin/python benchmarks/answer.py --part citations    # uncited backed sentences cite their passage
    .venv/bin/python benchmarks/answer.py --part yes_no       # a bare yes / no gives way to the passages
    .venv/bin/python benchmarks/answer.py --part rules        # today's rules against the answers as recorded

Who decides that an answer is unbacked: the words alone, or the guard with the model as
its judge?
When no sentence of an answer holds most of its cited passage's words, docent abstains
(or, when the passages name every topic word of the question, quotes their best
sentences). A right answer reworded by the model holds few of the passage's words; the
guard's judge reads the rewording. Rows: right + cited by the answer keys, abstention on
the unanswerable questions, and agreement between each rewording's answer and its
original's (both abstain, or token F1 >= 0.5; and docent eval's guard entailment and
same cited files), warnings on right and on wrong answers, how many sentences carry a
citation, and what the decision costs (the guard's time, which the answer then reuses).
"""

from __future__ import annotations

import time
from pathlib import Path

from answer import (REWORDED_HELDOUT, agreement, all_items, answer_keys, answer_row, cached_guard, key_correct,
                    latest_records, recorded_answers, reworded_items, score_rows, trace_passages)

# The [answer] settings each variant sets (later rules off, as they were when it was measured).
LATER = dict(cite_uncited=False, restated_yes_no=False)
VARIANTS = {"words decide (before)": dict(LATER, judge_backs=False, restated=False),
            "the guard's judge may back a rewording": dict(LATER, judge_backs=True, restated=False),
            "a restated question falls back": dict(LATER, judge_backs=False, restated=True),
            "both (the new default)": dict(LATER, judge_backs=True, restated=True)}
# Uncited sentences the guard finds backed cite their passage (answer.cite_uncited).
CITATION_VARIANTS = {"the model's citations, re-pointed by words (before)": dict(cite_uncited=False, restated_yes_no=False),
                     "+ uncited backed sentences cite their passage": dict(cite_uncited=True, restated_yes_no=False)}
# A bare yes / no restating a yes / no question falls back (answer.restated_yes_no).
YES_NO_VARIANTS = {"a bare yes / no stands (before)": dict(restated_yes_no=False),
                   "a bare yes / no restating the question falls back": dict(restated_yes_no=True)}


def _outcome(row: dict) -> str:
    if row["abstained"]:
        return "abstained"
    if row.get("key_correct") is None:
        return "answered"
    return "right" if row["key_correct"] and any(row["cited_hits"]) else "wrong"


def _warned(answer) -> bool:
    """The answer carries a warning: a sentence flagged unsupported or contradicted with
    high confidence (what a reader sees as "not backed")."""
    return any(f["kind"] in ("unsupported", "contradicted") and f.get("confidence") == "high" for f in answer.flags)


def _citation_cover(answer) -> tuple[int, int]:
    """(sentences, sentences with a citation) of a shown answer's prose and list items."""
    from bot.citations import cited_numbers
    from bot.steps.finish import split_sentences
    if answer.abstained:
        return 0, 0
    sentences = split_sentences(answer.text, ("prose", "item"))
    return len(sentences), sum(1 for s in sentences if cited_numbers(s))


def _replay_items() -> dict[str, dict]:
    """Every docs_qa question and every rewording (both sets), by question text."""
    keys = answer_keys()
    return {**all_items("docs_qa"), **{i["question"]: i for i in reworded_items(keys)},
            **{i["question"]: i for i in reworded_items(keys, REWORDED_HELDOUT)}}


def _recorded_sets(work: Path, names: tuple[str, ...]) -> dict[str, dict[str, dict]]:
    """The latest recorded answers of each set by question (docs_qa must be there)."""
    records = recorded_answers(work)
    sets = {name: latest_records(records, name) for name in names}
    if not sets["docs_qa"]:
        raise SystemExit(f"no recorded docs_qa answers in {work / 'answers.jsonl'}: run --part answer first "
                         "(see this module's help)")
    return sets


def _replayed(answerer, item: dict, question: str, r: dict):
    """The recorded model output finished by `answerer` (no LLM but the guard's judge):
    (its answer row, with whether it carries a warning; the Answer)."""
    t = r["trace"]
    a = answerer.finalize(question, question, t["model_text"], trace_passages(t), judged=t.get("judged"))
    row = answer_row(item, a.text, a.abstained, [t["passages"][n - 1] for n in a.cited], r, a.fallback)
    row["warned"] = _warned(a)
    return row, a


def _right_and_wrong(rows) -> tuple[list[dict], list[dict]]:
    """Answers shown to answerable questions: right by the key, and the others. A warning on
    the first is a false alarm, on the second a catch."""
    shown = [row for row in rows if row["answerable"] and not row["abstained"]]
    return [row for row in shown if row.get("key_correct")], [row for row in shown if not row.get("key_correct")]


def part_fallback(work: Path, settings, variants: dict = VARIANTS) -> dict:
    from bot.answer import BEFORE_MODEL, Answerer
    from bot.generators import make_generator
    from bot.retrieval import Retriever
    from ingest.embedder import make_embedder
    sets = _recorded_sets(work, ("docs_qa", "docs_qa_reworded"))
    items = _replay_items()
    embedder = make_embedder(settings.embedding)
    generator = make_generator(settings.generation)
    generator.warm_up()
    guard = cached_guard(work, settings, generator)        # one judge for every variant
    out: dict = {"recorded": {name: len(rows) for name, rows in sets.items()}}
    rows_of: dict[str, dict[str, dict]] = {}
    for label, values in variants.items():
        s = settings.with_values("answer", **values)
        answerer = Answerer(s, retriever=Retriever(s, embedder), generator=generator, guard=guard)
        answers: dict[str, dict] = {}
        figures: dict = {}
        for set_name, latest in sets.items():
            rows, spent, changed = [], [], 0
            for question, r in latest.items():
                item, t = items[question], r["trace"]
                if t["abstain_reason"] in BEFORE_MODEL:
                    row = answer_row(item, "", True, [], r, None)
                else:
                    mark = time.perf_counter()
                    row, a = _replayed(answerer, item, question, r)
                    spent.append(time.perf_counter() - mark)
                    # Looser than a hit (the annotators' quote): a cited passage states the key fact.
                    row["cited_key"] = bool(item.get("key")) and any(
                        key_correct(t["passages"][n - 1]["text"], item["key"]) for n in a.cited)
                    row["sentences"], row["sentences_cited"] = _citation_cover(a)
                    row["cited_sources"] = [t["passages"][n - 1]["source"] for n in a.cited]
                    changed += (a.abstained, a.fallback) != (r["abstained"], r.get("fallback"))
                answers[question] = row
                rows.append(row)
            right, wrong = _right_and_wrong(rows)
            shown = right + wrong
            answered = [row for row in shown if "sentences" in row]
            figures[set_name] = {**score_rows(rows), "finalize_s_mean": sum(spent) / max(1, len(spent)),
                                 "key_correct_cited_key": sum(bool(row.get("key_correct") and row.get("cited_key"))
                                                              for row in shown) / max(1, sum(r["answerable"] for r in rows)),
                                 "sentences_cited": sum(r["sentences_cited"] for r in answered)
                                                    / max(1, sum(r["sentences"] for r in answered)),
                                 "differs_from_recorded": changed,
                                 "warned_right": sum(row.get("warned", False) for row in right) / max(1, len(right)),
                                 "warned_wrong": sum(row.get("warned", False) for row in wrong) / max(1, len(wrong)),
                                 "right_shown": len(right), "wrong_shown": len(wrong)}
        # Each rewording's answer against its original's, both under this variant.
        pairs = [(answers[i["original"]], answers[q]) for q, i in items.items()
                 if "original" in i and q in answers and i["original"] in answers]
        figures["rewordings"] = {**agreement(pairs, guard),
                                 "rewordings_right_by_key": sum(bool(r.get("key_correct")) for _, r in pairs)}
        # What this variant changed against the first, answer by answer (right = by the key, and cited).
        if rows_of:
            first = rows_of[next(iter(variants))]
            figures["changed"] = [{"question": q, "answerable": row["answerable"],
                                   "before": _outcome(first[q]), "after": _outcome(row), "answer": row["answer"][:300]}
                                  for q, row in answers.items() if _outcome(first[q]) != _outcome(row)
                                  or first[q]["answer"] != row["answer"]]
        rows_of[label] = answers
        out[label] = figures
    keys = ["key_correct_with_citation", "key_correct", "abstain_precision", "abstain_recall", "abstain_f1",
            "answered", "fallbacks", "finalize_s_mean", "differs_from_recorded", "warned_right", "warned_wrong",
            "key_correct_cited_key", "sentences_cited", "citation_precision"]
    print("  " + f"{'variant / set':52}" + "".join(f"{k[:14]:>15}" for k in keys))
    for label in variants:
        for set_name in sets:
            f = out[label][set_name]
            print("  " + f"{label + ' / ' + set_name:52}" + "".join(f"{f.get(k, 0):15.3f}" for k in keys))
        for change in out[label].get("changed", []):
            print(f"    {change['before']:>9} -> {change['after']:<9} {change['question'][:70]}")
        w = out[label]["rewordings"]
        print(f"  {label}: rewordings agree {w['agreement']:.3f} on {w['pairs']} pairs, right by key "
              f"{w['rewordings_right_by_key']}; entailment {w['entailment']:.3f} on the {w['both_answered']} "
              f"both answered, same cited files {w['same_citations']:.3f}")
    return out


def part_rules(work: Path, settings) -> dict:
    """Each recorded answer as it was given live, beside the same model output finished by
    today's code (citations, fallback, guard): what the rules changed since the recording,
    answer by answer. Sets: docs_qa and whichever rewordings were recorded (record them with
    `--part answer --configs docent --sets docs_qa,docs_qa_reworded,docs_qa_reworded_heldout`)."""
    from bot.answer import BEFORE_MODEL, Answerer
    from bot.generators import make_generator
    from bot.retrieval import Retriever
    from ingest.embedder import make_embedder
    items = _replay_items()
    sets = _recorded_sets(work, ("docs_qa", "docs_qa_reworded", "docs_qa_reworded_heldout"))
    sets = {name: latest for name, latest in sets.items() if latest}
    generator = make_generator(settings.generation)
    generator.warm_up()
    guard = cached_guard(work, settings, generator)
    answerer = Answerer(settings, retriever=Retriever(settings, make_embedder(settings.embedding)), generator=generator,
                        guard=guard)
    rows: dict[str, dict[str, dict]] = {"recorded": {}, "today": {}}
    out: dict = {"recorded": {name: len(latest) for name, latest in sets.items()}, "changed": []}
    for set_name, latest in sets.items():
        for question, r in latest.items():
            item, t = items[question], r["trace"]
            r = {**r, "warned": any(kind in ("unsupported", "contradicted") and confidence == "high"
                                    for kind, confidence in t.get("flags", []))}
            if t["abstain_reason"] in BEFORE_MODEL:
                now = {**r}
            else:
                now, _ = _replayed(answerer, item, question, r)
            rows["recorded"][question], rows["today"][question] = r, now
            # (Abstentions list the closest passages by path: the replay's paths are shorter.)
            if _outcome(r) != _outcome(now) or (r["answer"] != now["answer"] and not (r["abstained"] and now["abstained"])):
                out["changed"].append({"set": set_name, "question": question, "answerable": item["answerable"],
                                       "before": _outcome(r), "after": _outcome(now),
                                       "answer_before": r["answer"][:300], "answer_after": now["answer"][:300]})
    for label, answers in rows.items():
        figures = {name: score_rows([answers[q] for q in latest]) for name, latest in sets.items()}
        for name in [n for n in sets if n != "docs_qa"]:
            pairs = [(answers[items[q]["original"]], answers[q]) for q in sets[name] if items[q]["original"] in answers]
            figures[name + " agreement"] = {**agreement(pairs, guard),
                                            "rewordings_right_by_key": sum(bool(r.get("key_correct")) for _, r in pairs)}
        right, wrong = _right_and_wrong(answers.values())
        figures["warned"] = {"right": sum(r["warned"] for r in right), "right_shown": len(right),
                             "wrong": sum(r["warned"] for r in wrong), "wrong_shown": len(wrong)}
        out[label] = figures
    keys_shown = ["key_correct_with_citation", "key_correct", "abstain_precision", "abstain_recall", "abstain_f1",
                  "citation_precision"]
    print("  " + f"{'answers / set':44}" + "".join(f"{k[:14]:>15}" for k in keys_shown))
    for label in rows:
        for name in sets:
            print("  " + f"{label + ' / ' + name:44}" + "".join(f"{out[label][name][k]:15.3f}" for k in keys_shown))
        for name in [n for n in sets if n != "docs_qa"]:
            w = out[label][name + " agreement"]
            print(f"  {label} / {name}: agree {w['agreement']:.3f} on {w['pairs']} pairs, entailment "
                  f"{w['entailment']:.3f} ({w['both_answered']} both answered), same cited files {w['same_citations']:.3f}")
        print(f"  {label}: warnings on right answers {out[label]['warned']['right']} of {out[label]['warned']['right_shown']}, "
              f"on wrong ones {out[label]['warned']['wrong']} of {out[label]['warned']['wrong_shown']}")
    for c in out["changed"]:
        print(f"    {c['set'][:10]:10} {'A' if c['answerable'] else 'U'} {c['before']:>9} -> {c['after']:<9} {c['question'][:70]}")
    return out
