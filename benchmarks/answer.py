"""Answering benchmark: retrieval stages, answer quality with the bundled LLM, latency.

    .venv/bin/python benchmarks/answer.py --part retrieval          # ~10 min the first time
    .venv/bin/python benchmarks/answer.py --part answer --questions 30
    .venv/bin/python benchmarks/answer.py --part latency            # 100k-chunk synthetic index
    .venv/bin/python benchmarks/answer.py --part cold --questions 5 # a new `docent ask` process vs warm (cold.py)
    .venv/bin/python benchmarks/answer.py --part fallback           # who decides "unbacked" (fallback.py), on the recorded answers
    .venv/bin/python benchmarks/answer.py --part citations          # where citations point (fallback.py), on the same
    .venv/bin/python benchmarks/answer.py --part yes_no             # a bare yes / no restating the question (fallback.py)
    .venv/bin/python benchmarks/answer.py --part rewordings         # questions reworded by a person (rewordings.py), ~1 h

Data: ../shared/eval/docs_qa.jsonl over ../shared/eval/docs/, and ../shared/eval/squad2/
(its 20 articles ingested as Markdown, questions matched to their paragraph).
Indexes are built once under --work (default benchmarks/.work, ignored by git) and
reused. The LangChain tutorial baseline (RecursiveCharacterTextSplitter 1,000/200, the
same MiniLM, FAISS similarity search) is built in the same run, stored as a plain FAISS
file + JSON (no pickle). Figures are printed and merged into benchmarks/results/answer.json.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import random
import re
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL = ROOT.parent / "shared" / "eval"
RESULTS = ROOT / "benchmarks" / "results" / "answer.json"
EXCLUDE = ("_licenses", "README.md")
# The corpus holds two books twice (docs/README.md): a passage from either copy answers.
COPIES = {"debian-reference/debian-reference.en.pdf": "debian-reference/ch", "debian-policy/policy.pdf": "debian-policy/rst/"}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


# --- data sets -------------------------------------------------------------------------

def docs_qa() -> list[dict]:
    return _load_jsonl(EVAL / "docs_qa.jsonl")


def squad_questions(n: int, seed: int = 7) -> list[dict]:
    passages = {p["id"]: p for p in _load_jsonl(EVAL / "squad2" / "passages.jsonl")}
    questions = _load_jsonl(EVAL / "squad2" / "questions.jsonl")
    random.Random(seed).shuffle(questions)
    out = []
    for q in questions[:n]:
        p = passages[q["passage_id"]]
        out.append({**q, "passage": p["text"], "doc": Path(p["doc_path"]).name, "section": p["section"]})
    return out


# --- building the indexes ----------------------------------------------------------------

def docent_home(work: Path, settings) -> Path:
    """docent collections `docs` (shared/eval/docs) and `squad` (squad2/docs), built once."""
    from ingest.pipeline import Ingestor
    home = work / "docent-home"
    ingestor = Ingestor(settings, home=home)
    for name, folder in (("docs", EVAL / "docs"), ("squad", EVAL / "squad2" / "docs")):
        marker = home / f".{name}.done"
        if marker.is_file():
            continue
        print(f"ingesting {folder} into collection {name} (once)...", flush=True)
        s = settings.with_values("ingest", exclude=settings.ingest.exclude + EXCLUDE)
        report = Ingestor(s, home=home, embedder=ingestor.embedder).ingest([folder], collection=name)
        print("  " + report.summary(), flush=True)
        marker.write_text("ok")
    for name in ("docs", "squad"):
        _up_to_date(home, name)
    return home


def _up_to_date(home: Path, name: str) -> None:
    """A collection built by an older docent gets what this one stores (chunk terms for
    the in-memory keyword search, the float16 vector index): a writer fills them in."""
    from ingest.store import CollectionWriter
    started = time.perf_counter()
    with CollectionWriter(home, name, None, None) as writer:
        if writer.commit():
            print(f"collection {name} brought up to date in {time.perf_counter() - started:.1f} s", flush=True)


def _lc_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDE)
        files += [Path(dirpath) / f for f in sorted(filenames)
                  if f not in EXCLUDE and Path(f).suffix.lower() in (".html", ".htm", ".pdf", ".md", ".txt", ".rst")]
    return files


class Baseline:
    """The LangChain tutorial retriever: loaders, RecursiveCharacterTextSplitter(1000, 200),
    MiniLM embeddings, FAISS inner-product search (vectors are normalised)."""

    def __init__(self, work: Path, name: str, folder: Path, embedder):
        import faiss
        self.embedder = embedder
        directory = work / f"langchain-{name}"
        meta = directory / "chunks.json"
        if not meta.is_file():
            print(f"building the LangChain baseline for {folder} (once)...", flush=True)
            from langchain_text_splitters import RecursiveCharacterTextSplitter
            from lc_tutorial import load_documents
            documents, _ = load_documents(_lc_files(folder))
            chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(documents)
            vectors = embedder.embed([c.page_content for c in chunks])
            directory.mkdir(parents=True, exist_ok=True)
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            faiss.write_index(index, str(directory / "index.faiss"))
            meta.write_text(json.dumps([{"text": c.page_content, "source": os.path.relpath(c.metadata["source"], folder),
                                         "page": c.metadata.get("page")} for c in chunks]))
        self.chunks = json.loads(meta.read_text())
        self.index = faiss.read_index(str(directory / "index.faiss"))

    def search(self, question: str, k: int) -> list[dict]:
        _, ids = self.index.search(self.embedder.embed([question]), k)
        return [self.chunks[i] for i in ids[0] if i >= 0]


# --- retrieval -------------------------------------------------------------------------

def _same_source(rel: str, sources: list[str]) -> bool:
    if rel in sources:
        return True
    return any((rel == pdf and any(s.startswith(prefix) for s in sources))
               or (rel.startswith(prefix) and pdf in sources) for pdf, prefix in COPIES.items())


def docs_hit(passage: dict, q: dict) -> bool:
    """The passage comes from a source file and holds one of the supporting quotes (spaces
    aside: PDF extraction glues words, "under thePAM")."""
    if not _same_source(passage["source"], q["source_paths"]):
        return False
    text = _norm(passage["text"]).replace(" ", "")
    return any(_norm(quote)[:120].replace(" ", "") in text for quote in q["quotes"])


KEYS = ROOT / "benchmarks" / "data" / "docs_qa_keys.jsonl"


def answer_keys() -> dict[str, list[list[str]]]:
    """docs_qa answer keys (benchmarks/data/README.md): per question, groups of patterns;
    an answer is right when each group has a pattern found in it. The references are
    sentences ("Four (counter, gauge, histogram and summary).") that a right answer seldom
    holds word for word, so containment and token F1 miss right answers."""
    return {row["id"]: row["all_of"] for row in _load_jsonl(KEYS)} if KEYS.is_file() else {}


def key_correct(answer: str, key: list[list[str]] | None) -> bool | None:
    if not key:
        return None
    from bot.citations import strip_markers
    text = " ".join(strip_markers(answer).split())        # one line: "^" in a pattern is the answer's start
    return all(any(re.search(pattern, text, re.IGNORECASE) for pattern in group) for group in key)


def squad_hit(passage: dict, q: dict) -> bool:
    """The passage is (part of) the question's paragraph: same file, and most of one's word
    3-grams are in the other."""
    if passage["source"] != q["doc"]:
        return False
    a, b = _grams(passage["text"]), _grams(q["passage"])
    return bool(a and b) and len(a & b) / min(len(a), len(b)) >= 0.5


def _grams(text: str) -> set:
    words = _norm(text).split()
    return {tuple(words[i:i + 3]) for i in range(max(0, len(words) - 2))}


def rank_figures(ranked: list[list[dict]], questions: list[dict], hit) -> dict:
    ranks = []
    for passages, q in zip(ranked, questions):
        ranks.append(next((i + 1 for i, p in enumerate(passages) if hit(p, q)), None))
    n = len(ranks) or 1
    return {"questions": len(ranks), "recall@1": sum(r == 1 for r in ranks) / n,
            "recall@4": sum(1 for r in ranks if r and r <= 4) / n,
            "recall@5": sum(1 for r in ranks if r and r <= 5) / n,
            "mrr@5": sum(1 / r for r in ranks if r) / n}


def part_retrieval(work: Path, settings, squad_n: int) -> dict:
    from bot.retrieval import Retriever
    from ingest.embedder import make_embedder
    embedder = make_embedder(settings.embedding)
    home = docent_home(work, settings)
    retriever = Retriever(settings, embedder, home=home)
    sets = {
        "docs_qa": ([q for q in docs_qa() if q["answerable"]], "docs", EVAL / "docs", docs_hit),
        "squad2": ([q for q in squad_questions(squad_n) if not q["is_impossible"]], "squad", EVAL / "squad2" / "docs", squad_hit),
    }
    out: dict = {}
    for set_name, (questions, collection, folder, hit) in sets.items():
        figures: dict = {}
        baseline = Baseline(work, collection, folder, embedder)
        started = time.perf_counter()
        ranked = [baseline.search(q["question"], 5) for q in questions]
        figures["langchain-tutorial"] = {**rank_figures(ranked, questions, hit),
                                         "ms_per_query": (time.perf_counter() - started) * 1000 / len(questions)}
        variants = [("dense", "dense", False), ("keyword", "keyword", False), ("hybrid", "hybrid", False)]
        if settings.retrieval.rerank not in ("", "none"):
            variants.append(("hybrid+rerank", "hybrid", True))
        for label, mode, rerank in variants:
            for merge in (False, True):
                r = retriever if merge == settings.retrieval.merge_neighbours else Retriever(
                    settings.with_values("retrieval", merge_neighbours=merge), embedder, home=home,
                    reranker=retriever.reranker if rerank else None)
                started = time.perf_counter()
                ranked = []
                for q in questions:
                    result = r.retrieve(q["question"], collection=collection, k=5, mode=mode, rerank=rerank)
                    ranked.append(as_dicts(result.passages, folder))
                name = label + ("+merge" if merge else "")
                figures[name] = {**rank_figures(ranked, questions, hit),
                                 "ms_per_query": (time.perf_counter() - started) * 1000 / len(questions)}
        out[set_name] = figures
        print(f"\n{set_name} ({len(questions)} answerable questions)")
        print(f"  {'retriever':24} {'R@1':>6} {'R@4':>6} {'R@5':>6} {'MRR@5':>6} {'ms/q':>7}")
        for name, f in figures.items():
            print(f"  {name:24} {f['recall@1']:6.3f} {f['recall@4']:6.3f} {f['recall@5']:6.3f} {f['mrr@5']:6.3f} {f['ms_per_query']:7.1f}")
    return out


def as_dicts(passages, folder: Path) -> list[dict]:
    """Passages as the hit checks and the log read them: source relative to the corpus."""
    return [{"source": os.path.relpath(p.source, folder), "text": p.text, "heading": list(p.heading_path)}
            for p in passages]


def part_calibrate(work: Path, settings, squad_n: int) -> dict:
    """The best dense cosine per question, answerable vs not: where retrieval.min_score
    can stop a question before the model sees it without losing answerable ones."""
    from bot.retrieval import Retriever
    from ingest.embedder import make_embedder
    embedder = make_embedder(settings.embedding)
    retriever = Retriever(settings, embedder, home=docent_home(work, settings))
    scores = []
    for q in docs_qa():
        scores.append(("docs_qa", q["answerable"], retriever.retrieve(q["question"], "docs", k=1).top_dense))
    for q in squad_questions(squad_n):
        scores.append(("squad2", not q["is_impossible"], retriever.retrieve(q["question"], "squad", k=1).top_dense))
    out: dict = {"thresholds": {}}
    for t in [round(0.20 + 0.025 * i, 3) for i in range(13)]:
        row = {}
        for name in ("docs_qa", "squad2"):
            yes = [sc for n, a, sc in scores if n == name and a]
            no = [sc for n, a, sc in scores if n == name and not a]
            row[name] = {"answerable_lost": sum(sc < t for sc in yes) / len(yes),
                         "unanswerable_stopped": sum(sc < t for sc in no) / len(no)}
        out["thresholds"][t] = row
    print("\nabstention threshold on the best dense cosine (share below it)")
    print(f"  {'min_score':>9} {'docs_qa answerable lost':>24} {'docs_qa unanswerable stopped':>29} {'squad2 lost':>12} {'squad2 stopped':>15}")
    for t, row in out["thresholds"].items():
        print(f"  {t:9.3f} {row['docs_qa']['answerable_lost']:24.3f} {row['docs_qa']['unanswerable_stopped']:29.3f} "
              f"{row['squad2']['answerable_lost']:12.3f} {row['squad2']['unanswerable_stopped']:15.3f}")
    return out


def part_ttft(work: Path, settings, n: int = 8) -> dict:
    """Time to first token of a whole `ask` (retrieval, prompt, grammar, prefill) beside
    llama.cpp's prefill of the same prompt alone from an empty cache."""
    from bot.answer import Answerer
    from bot.generators import make_generator
    from bot.retrieval import Retriever
    from ingest.embedder import make_embedder
    embedder = make_embedder(settings.embedding)
    generator = make_generator(settings.generation)
    answerer = Answerer(settings, retriever=Retriever(settings, embedder, home=docent_home(work, settings)),
                        generator=generator)
    answerer.warm_up("docs")
    questions = _sample([q for q in docs_qa() if q["answerable"]], n)
    answerer.ask("What is a gauge?", "docs")          # steady state: the fixed prompt prefix is cached
    rows = []
    for q in questions:
        # Warm: the cache holds the previous question's prompt, so the shared prefix
        # (rules + examples) is reused, as it is for every question after the first.
        answer = answerer.ask(q["question"], "docs")
        if "prompt_tokens" not in answer.timings:       # stopped before the model: nothing to time
            continue
        warm_first = answer.timings["first_token_ms"]
        messages, _ = answerer.build_messages(answer.standalone_question, answer.passages)
        prefill = generator.prefill_seconds(messages) * 1000        # alone, from an empty cache
        generator.forget_prompt_cache()
        cold = answerer.ask(q["question"], "docs").timings["first_token_ms"]
        rows.append({"prompt_tokens": answer.timings["prompt_tokens"], "first_token_ms": warm_first,
                     "first_token_cold_ms": cold, "prefill_ms": prefill})
        print(f"  {answer.timings['prompt_tokens']:5d} tokens: first token {warm_first:7.0f} ms (cold cache {cold:7.0f} ms), "
              f"bare prefill {prefill:7.0f} ms", flush=True)
    out = {"questions": len(rows), "rows": rows,
           "ratio_p50": statistics.median(r["first_token_ms"] / r["prefill_ms"] for r in rows),
           "ratio_max": max(r["first_token_ms"] / r["prefill_ms"] for r in rows),
           "ratio_cold_p50": statistics.median(r["first_token_cold_ms"] / r["prefill_ms"] for r in rows),
           "prompt_tokens_p50": statistics.median(r["prompt_tokens"] for r in rows),
           "prefill_tokens_per_s": statistics.median(r["prompt_tokens"] / r["prefill_ms"] * 1000 for r in rows)}
    print(f"time to first token / bare prefill: p50 {out['ratio_p50']:.2f}, max {out['ratio_max']:.2f} "
          f"(cold prompt cache: p50 {out['ratio_cold_p50']:.2f}); prefill {out['prefill_tokens_per_s']:.0f} tokens/s")
    return out


def part_replay(work: Path, settings) -> dict:
    """Post-processing choices replayed on the recorded model outputs of the last answer
    run (no LLM): citation re-pointing, extractive fallback, the abstention threshold."""
    from bot.answer import BEFORE_MODEL, Answerer
    from bot.retrieval import Retriever
    from ingest.embedder import make_embedder
    records = recorded_answers(work)
    embedder = make_embedder(settings.embedding)
    out: dict = {}
    for set_name in ("docs_qa", "squad2"):
        for config in ("docent", "docent-grammar"):
            latest = latest_records(records, set_name, config)
            if not latest:
                continue
            items = all_items(set_name)
            variants = {
                "as recorded": None,
                "no repoint, no fallback": dict(repoint_citations=False, fallback="none"),
                "repoint, no fallback": dict(repoint_citations=True, fallback="none"),
                "no repoint, fallback": dict(repoint_citations=False, fallback="extractive"),
                "repoint + fallback": dict(repoint_citations=True, fallback="extractive"),
                "repoint + fallback + coverage 0.5": dict(repoint_citations=True, fallback="extractive", min_coverage=0.5),
                "repoint + fallback + coverage 0.67": dict(repoint_citations=True, fallback="extractive", min_coverage=0.67),
                "repoint + auto": dict(repoint_citations=True, fallback="auto"),
                "repoint + auto + coverage 0.5": dict(repoint_citations=True, fallback="auto", min_coverage=0.5),
                "repoint + abstain if unbacked": dict(repoint_citations=True, fallback="abstain"),
            }
            for label, values in variants.items():
                for threshold in ((None,) if values is None else (0.0, 0.3, 0.35, 0.4)):
                    rows = []
                    # The recorded traces' finish step replayed; the collection is not at hand.
                    s = settings if values is None else settings.with_values("answer", unnamed=False, **values)
                    answerer = Answerer(s, retriever=Retriever(s, embedder), generator=object())
                    for question, r in latest.items():
                        item = items.get(question)
                        if item is None:
                            continue
                        if values is None:
                            rows.append({**r, "hit": item["hit"]})
                            continue
                        t = r["trace"]
                        passages = trace_passages(t)
                        answerer.settings = answerer.settings.with_values("retrieval", min_score=threshold or 0.0)
                        if t["abstain_reason"] in BEFORE_MODEL or answerer.nothing_relevant(question, passages,
                                                                                             t["top_dense"])[0]:
                            rows.append(answer_row(item, "", True, [], r, None))
                            continue
                        a = answerer.finalize(question, question, t["model_text"], passages)
                        rows.append(answer_row(item, a.text, a.abstained, [t["passages"][n - 1] for n in a.cited], r, a.fallback))
                    name = f"{set_name}/{config}/{label}" + (f"/min_score={threshold}" if threshold is not None else "")
                    out[name] = score_rows(rows)
    keys = ["token_f1", "contains_reference", "correct_with_citation", "citation_precision", "abstain_precision",
            "abstain_recall", "abstain_f1"]
    print("  " + f"{'replay':70}" + "".join(f"{k[:14]:>15}" for k in keys))
    for name, f in out.items():
        print("  " + f"{name:70}" + "".join(f"{f[k]:15.3f}" for k in keys))
    return out


# --- main ------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", choices=["retrieval", "calibrate", "answer", "latency", "ttft", "replay", "cold", "fallback", "citations", "yes_no", "rules", "rewordings", "asked", "widen"],
                        help="which part to run (repeatable; default: all but cold)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work", help="where indexes are kept")
    parser.add_argument("--squad", type=int, default=400, help="SQuAD questions sampled (answerable ones are used for retrieval)")
    parser.add_argument("--questions", type=int, default=0, help="answer part: N questions per set (0: all); cold part: N questions (0: 5)")
    parser.add_argument("--configs", default="langchain-tutorial,docent,docent-grammar",
                        help="answer part: which pipelines to run (figures of others are kept from the last run)")
    parser.add_argument("--sets", default="docs_qa,squad2", help="answer part: which question sets (docs_qa, squad2, docs_qa_reworded: the tuning rewordings, docs_qa_reworded_heldout)")
    parser.add_argument("--answer-sets", default="held-out",
                        help="rewordings part: which sets (tuning, held-out) to answer live besides the retrieval figures ('' for none)")
    parser.add_argument("--squad-live", type=int, default=0,
                        help="asked part: also answer live this many SQuAD 2.0 questions that ask for a number (241 in all)")
    parser.add_argument("--only-changed", action="store_true",
                        help="answer part: ask only the questions whose passages differ from their latest recorded answer's "
                             "(after a retrieval change; score all with --part rules)")
    parser.add_argument("--verbose", action="store_true", help="cold part: each cold answer's stages")
    parser.add_argument("--fresh-state", action="store_true",
                        help="cold part: delete the saved prompt states first (the first answer saves them)")
    parser.add_argument("--rerank", default=None, help="second-stage model for the hybrid+rerank row (e.g. all-mpnet-base-v2)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from docent.settings import load_settings
    settings = load_settings()
    if args.rerank:
        settings = settings.with_values("retrieval", rerank=args.rerank)
    parts = args.part or ["retrieval", "calibrate", "latency", "answer", "ttft", "replay"]
    args.work.mkdir(parents=True, exist_ok=True)
    if "cold" in parts:         # its own results file (benchmarks/cold.py)
        from cold import part_cold
        part_cold(args.work, settings, args.questions, args.verbose, args.fresh_state)
        parts = [p for p in parts if p != "cold"]
        if not parts:
            from report import refresh
            refresh()
            return
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    results["date"] = time.strftime("%Y-%m-%d")
    if "retrieval" in parts:
        results["retrieval"] = part_retrieval(args.work, settings, args.squad)
    if "calibrate" in parts:
        results["calibrate"] = part_calibrate(args.work, settings, args.squad)
    if "latency" in parts:
        results["latency"] = part_latency(args.work, settings)
    if "answer" in parts:
        results["answer"] = part_answer(args.work, settings, args.questions, args.squad, args.configs.split(","),
                                        results.get("answer", {}), args.sets.split(","), args.only_changed)
    if "ttft" in parts:
        results["ttft"] = part_ttft(args.work, settings)
    if "replay" in parts:
        results["replay"] = part_replay(args.work, settings)
    if "fallback" in parts:
        from fallback import part_fallback
        results["fallback"] = part_fallback(args.work, settings)
    if "citations" in parts:
        from fallback import CITATION_VARIANTS, part_fallback
        results["citations"] = part_fallback(args.work, settings, CITATION_VARIANTS)
    if "yes_no" in parts:
        from fallback import YES_NO_VARIANTS, part_fallback
        results["yes_no"] = part_fallback(args.work, settings, YES_NO_VARIANTS)
    if "rules" in parts:
        from fallback import part_rules
        results["rules"] = part_rules(args.work, settings)
    if "rewordings" in parts:
        from rewordings import part_rewordings
        results["rewordings"] = part_rewordings(args.work, settings, [s for s in args.answer_sets.split(",") if s])
    if "widen" in parts:
        from widen import part_widen
        results["widen"] = part_widen(args.work, settings)
    if "asked" in parts:
        from asked import part_asked
        results["asked"] = part_asked(args.work, settings, args.squad_live)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    from report import refresh      # all benchmarks' figures on one page
    refresh()
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


# --- answers ---------------------------------------------------------------------------

# The LangChain RAG tutorial's prompt, sent through the same model.
TUTORIAL_PROMPT = ("Use the following pieces of context to answer the question at the end. If you don't know the "
                   "answer, just say that you don't know, don't try to make up an answer. Use three sentences "
                   "maximum and keep the answer as concise as possible.\n\n{context}\n\nQuestion: {question}\n\n"
                   "Helpful Answer:")
TUTORIAL_ABSTAIN = re.compile(r"(don'?t|do not|does not|doesn'?t) (know|contain|provide|mention|specify|say)|"
                              r"not (mentioned|provided|specified|stated|available)|no information|cannot (be )?(answer|determine)", re.I)


def _f1(prediction: str, reference: str) -> float:
    from evaluation.dataset import answer_f1          # the measure docent eval reports
    return answer_f1(prediction, reference)


def _contains(prediction: str, references: list[str]) -> bool:
    from evaluation.dataset import contains_reference
    return contains_reference(prediction, references)


def _sample(items: list[dict], n: int) -> list[dict]:
    """Every `len/n`-th item, so a small run still spans the whole set."""
    if not n or n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _answer_sets(limit: int, squad_n: int) -> dict:
    qa = docs_qa()
    answerable = [q for q in qa if q["answerable"]]
    unanswerable = [q for q in qa if not q["answerable"]]
    squad = squad_questions(squad_n)
    sq_yes = [q for q in squad if not q["is_impossible"]]
    sq_no = [q for q in squad if q["is_impossible"]]
    half = limit // 2 if limit else 0
    docs = _sample(answerable, limit - half if limit else 0) + _sample(unanswerable, half)
    sq = _sample(sq_yes, limit - half if limit else 40) + _sample(sq_no, half if limit else 20)
    keys = answer_keys()
    return {"docs_qa": [_docs_item(q, keys) for q in docs], "squad2": [_squad_item(q) for q in sq],
            "docs_qa_reworded": reworded_items(keys),
            "docs_qa_reworded_heldout": reworded_items(keys, REWORDED_HELDOUT)}


REWORDED = ROOT / "benchmarks" / "data" / "docs_qa_paraphrased.jsonl"
REWORDED_HELDOUT = ROOT / "benchmarks" / "data" / "docs_qa_reworded_heldout.jsonl"


def reworded_items(keys: dict, path: Path = REWORDED) -> list[dict]:
    """docs_qa questions reworded by a person (benchmarks/data/README.md): each rewording
    is asked and judged by its original's reference, key and source. REWORDED: 25
    questions, two rewordings each, read while docent's answer rules were written;
    REWORDED_HELDOUT: the other 52, one each, written later and kept for measuring."""
    items = []
    for q in _load_jsonl(path):
        for text in q["paraphrases"]:
            item = _docs_item({**q, "question": text}, keys)
            items.append({**item, "original": q["question"]})
    return items


def _docs_item(q: dict, keys: dict) -> dict:
    return {"question": q["question"], "references": [q["answer"]] if q["answer"] else [], "answerable": q["answerable"],
            "hit": (lambda p: docs_hit(p, q)), "q": q, "key": keys.get(q["id"])}


def _squad_item(q: dict) -> dict:
    return {"question": q["question"], "references": q["answers"], "answerable": not q["is_impossible"],
            "hit": (lambda p: squad_hit(p, q)), "q": q}


def all_items(set_name: str) -> dict[str, dict]:
    """Every question of a set as the answer part builds it, by question text (replay)."""
    if set_name == "docs_qa":
        keys = answer_keys()
        return {q["question"]: _docs_item(q, keys) for q in docs_qa()}
    return {q["question"]: _squad_item(q) for q in squad_questions(2000)}


def score_rows(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    abstained_right = sum(r["abstained"] for r in unanswerable)
    abstained_all = sum(r["abstained"] for r in rows)
    precision = abstained_right / abstained_all if abstained_all else 0.0
    recall = abstained_right / len(unanswerable) if unanswerable else 0.0
    answered = [r for r in answerable if not r["abstained"]]
    cited = [c for r in answered for c in r["cited_hits"]]
    n = len(answerable) or 1
    first = sorted(r["first_token_ms"] for r in rows)
    total = sorted(r["total_ms"] for r in rows)
    return {
        "answerable": len(answerable), "unanswerable": len(unanswerable),
        "token_f1": sum(r["f1"] for r in answerable) / n,
        "contains_reference": sum(r["contains"] for r in answerable) / n,
        "answered": len(answered) / n,
        "correct_with_citation": sum(1 for r in answered if (r["contains"] or r["f1"] >= 0.5) and any(r["cited_hits"])) / n,
        # The same by the answer keys (docs_qa only): right, and citing a passage that holds it.
        **({"key_correct": sum(1 for r in answered if r["key_correct"]) / n,
            "key_correct_with_citation": sum(1 for r in answered if r["key_correct"] and any(r["cited_hits"])) / n}
           if any(r.get("key_correct") is not None for r in answerable) else {}),
        "citation_precision": (sum(cited) / len(cited)) if cited else 0.0,
        "answers_with_citation": sum(1 for r in answered if r["cited_hits"]) / (len(answered) or 1),
        "abstain_precision": precision, "abstain_recall": recall,
        "abstain_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "fallbacks": sum(1 for r in rows if r.get("fallback")),
        "first_token_ms_p50": statistics.median(first) if first else 0, "total_ms_p50": statistics.median(total) if total else 0,
        "total_ms_p95": total[min(len(total) - 1, int(0.95 * len(total)))] if total else 0,
        "tokens_per_s": sum(r["tokens"] for r in rows) / max(1e-9, sum((r["total_ms"] - r["first_token_ms"]) / 1000 for r in rows)),
    }


def part_answer(work: Path, settings, limit: int, squad_n: int, wanted: list[str], previous: dict,
                sets_wanted: list[str] = ("docs_qa", "squad2"), only_changed: bool = False) -> dict:
    from bot.answer import BEFORE_MODEL, Answerer
    from bot.retrieval import Retriever
    from ingest.embedder import make_embedder
    embedder = make_embedder(settings.embedding)
    home = docent_home(work, settings)
    from bot.generators import make_generator
    generator = make_generator(settings.generation)
    started = time.perf_counter()
    generator.warm_up()
    load_s = time.perf_counter() - started
    sets = {name: items for name, items in _answer_sets(limit, squad_n).items() if name in sets_wanted}
    configs = {
        "langchain-tutorial": None,
        "docent": settings,
        "docent-grammar": settings.with_values("answer", style="grammar"),
    }
    configs = {name: c for name, c in configs.items() if name in wanted}
    # The model's own answer, with only dangling markers removed (no re-pointing, no
    # fallback): what the post-processing adds is the difference.
    raw_settings = settings.with_values("answer", repoint_citations=False, fallback="none")
    out: dict = {**previous, "model": settings.generation.model, "load_s": load_s}
    recorded = recorded_answers(work) if only_changed else []
    log = (work / "answers.jsonl").open("a", encoding="utf-8")
    for set_name, items in sets.items():
        collection, folder = ("docs", EVAL / "docs") if set_name.startswith("docs_qa") else ("squad", EVAL / "squad2" / "docs")
        if only_changed:
            # At temperature 0 the same prompt gives the same text: a question whose
            # passages are as recorded keeps its recording (`--part rules` scores them all).
            latest, retriever = latest_records(recorded, set_name), Retriever(settings, embedder, home=home)
            items = [item for item in items if _passages_changed(
                latest.get(item["question"]), retriever.retrieve(item["question"], collection).passages, folder)]
        # Keep the baseline's figures from the last run when it is not rerun.
        figures = {k: v for k, v in previous.get(set_name, {}).items() if k == "langchain-tutorial" and k not in wanted}
        for config, s in configs.items():
            rows, rows_nofallback = [], []
            if s is None:
                baseline = Baseline(work, collection, folder, embedder)
            else:
                answerer = Answerer(s, retriever=Retriever(s, embedder, home=home), generator=generator)
            print(f"{set_name} / {config}: {len(items)} questions", flush=True)
            for item in items:
                if s is None:
                    row = _tutorial_answer(generator, baseline, item, settings)
                else:
                    answer = answerer.ask(item["question"], collection)
                    passages = as_dicts(answer.passages, folder)
                    row = answer_row(item, answer.text, answer.abstained, [passages[n - 1] for n in answer.cited],
                               answer.timings, answer.fallback)
                    # Enough to replay other post-processing rules offline without the LLM.
                    row["trace"] = {"model_text": answer.model_text, "passages": passages, "abstain_reason": answer.abstain_reason,
                                    "top_dense": max((p.dense or 0) for p in answer.passages) if answer.passages else 0,
                                    "source_paths": item["q"].get("source_paths"), "quotes": item["q"].get("quotes"),
                                    "gold_passage": item["q"].get("passage"), "gold_doc": item["q"].get("doc"),
                                    "judged": answer.judged, "guard_ms": answer.guard_ms,
                                    "groundedness": answer.groundedness,
                                    "flags": [[f["kind"], f.get("confidence", "high")] for f in answer.flags]}
                    if not answer.abstained and answer.model_text:
                        # Does the answer give what was asked? Measured on every answer, acted on
                        # only when answer.judge_addresses is set.
                        if "off_question" not in answer.judged:
                            messages, _ = answerer.build_messages(answer.standalone_question, answer.passages)
                            row["trace"]["judged"] = {**answer.judged, "off_question": answerer.off_question(
                                messages, answer.model_text, answer.standalone_question)}
                    raw = Answerer(raw_settings, retriever=answerer.retriever, generator=generator)
                    if answer.abstain_reason in BEFORE_MODEL:
                        rows_nofallback.append(row)
                    else:
                        plain = raw.finalize(item["question"], answer.standalone_question, answer.model_text, answer.passages)
                        rows_nofallback.append(answer_row(item, plain.text, plain.abstained, [passages[n - 1] for n in plain.cited],
                                                    answer.timings, None))
                rows.append(row)
                log.write(json.dumps({"set": set_name, "config": config, **row}) + "\n")
                log.flush()
            figures[config] = score_rows(rows)
            for r in rows:
                r.pop("trace", None)
            if s is not None:
                figures[config + " (model text only)"] = score_rows(rows_nofallback)
        out[set_name] = figures
        print(f"\n{set_name}: {len(items)} questions ({sum(i['answerable'] for i in items)} answerable)")
        keys = ["token_f1", "contains_reference", "correct_with_citation", "citation_precision", "abstain_precision",
                "abstain_recall", "abstain_f1", "first_token_ms_p50", "total_ms_p95"]
        print("  " + f"{'config':28}" + "".join(f"{k[:14]:>15}" for k in keys))
        for name, f in figures.items():
            print("  " + f"{name:28}" + "".join(f"{f[k]:15.3f}" if f[k] < 100 else f"{f[k]:15.0f}" for k in keys))
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _passages_changed(record: dict | None, passages, folder: Path) -> bool:
    """Do today's passages differ from those the question's latest recorded answer read?"""
    if not record or "trace" not in record:
        return True
    now = as_dicts(passages, folder)
    then = record["trace"]["passages"]
    # The answerer leaves out the passages past the prompt's budget (the recording may hold
    # fewer), and the recording shows secrets masked (a few characters differ).
    return len(now) < len(then) or any(
        a["source"] != b["source"] or difflib.SequenceMatcher(None, a["text"], b["text"], autojunk=False).ratio() < 0.98
        for a, b in zip(now, then))


def _cited(text: str, k: int) -> list[int]:
    from bot.citations import cited_numbers
    return [n for n in cited_numbers(text) if 1 <= n <= k]


def recorded_answers(work: Path) -> list[dict]:
    """The answers --part answer recorded (answers.jsonl), oldest first."""
    path = work / "answers.jsonl"
    return [json.loads(line) for line in path.open(encoding="utf-8")] if path.is_file() else []


def latest_records(records: list[dict], set_name: str, config: str = "docent") -> dict[str, dict]:
    """The latest recorded answer per question of a set and config, with its trace."""
    latest = {}
    for r in records:
        if r["set"] == set_name and r["config"] == config and "trace" in r:
            latest[r["question"]] = r
    return latest


def trace_passages(trace: dict) -> list:
    """The passages a recorded answer read, as the answer pipeline takes them (replays)."""
    from bot.retrieval import Passage
    return [Passage((i,), p["source"], None, None, tuple(p.get("heading", ())), p["text"], 0.0)
            for i, p in enumerate(trace["passages"])]


def cached_guard(work: Path, settings, generator):
    """The groundedness guard with the bundled model as its judge, the judge's answers cached
    by (claim, passage) in work/judge-cache.jsonl: replays and reruns judge mostly the same
    sentences."""
    from bot.answer import Answerer
    from bot.guard.groundedness import GroundednessGuard
    from bot.guard.train import CachedJudge
    judge = CachedJudge(Answerer(settings, generator=generator).sentence_judge(), work / "judge-cache.jsonl")
    return GroundednessGuard(settings.guard.threshold or None, settings.guard.unsupported, judge=judge)


def agreement(pairs: list[tuple[dict, dict]], guard) -> dict:
    """Each rewording's answer row against its original's: token F1 at docent eval's cut (or
    both abstain), and the issue's measures as docent eval computes them: the guard's
    entailment of the rewording's answer by the original's where both answered, and the same
    cited files (or both abstain)."""
    from bot.citations import strip_markers
    from evaluation.metrics import AGREE_F1, agreement_f1, same_citations
    agree = sum((o["abstained"] and r["abstained"]) or (not o["abstained"] and not r["abstained"]
                and agreement_f1(o["answer"], r["answer"]) >= AGREE_F1) for o, r in pairs)
    entailed = [guard.check(strip_markers(r["answer"]), [strip_markers(o["answer"])]).score
                for o, r in pairs if not o["abstained"] and not r["abstained"]]
    return {"pairs": len(pairs), "agreement": agree / max(1, len(pairs)),
            "entailment": sum(entailed) / max(1, len(entailed)), "both_answered": len(entailed),
            "same_citations": sum(same_citations(o, r) for o, r in pairs) / max(1, len(pairs))}


def answer_row(item: dict, text: str, abstained: bool, cited: list[dict], timings: dict, fallback) -> dict:
    return {"question": item["question"], "answerable": item["answerable"], "answer": text, "abstained": abstained,
            "f1": max((_f1(text, r) for r in item["references"]), default=0.0) if not abstained else 0.0,
            "contains": _contains(text, item["references"]) if not abstained else False,
            "key_correct": None if not item.get("key") else not abstained and key_correct(text, item["key"]),
            "cited_hits": [bool(item["hit"](p)) for p in cited], "fallback": fallback,
            "first_token_ms": timings.get("first_token_ms", 0), "total_ms": timings.get("total_ms", 0),
            "tokens": timings.get("tokens", 0)}


def _tutorial_answer(generator, baseline: Baseline, item: dict, settings) -> dict:
    started = time.perf_counter()
    docs = baseline.search(item["question"], 4)
    prompt = TUTORIAL_PROMPT.format(context="\n\n".join(d["text"] for d in docs), question=item["question"])
    pieces, first = [], None
    for piece in generator.stream([{"role": "user", "content": prompt}], max_tokens=settings.generation.max_answer_tokens):
        first = first or (time.perf_counter() - started) * 1000
        pieces.append(piece)
    text = "".join(pieces).strip()
    timings = {"first_token_ms": first or 0, "total_ms": (time.perf_counter() - started) * 1000, "tokens": len(pieces)}
    return answer_row(item, text, bool(TUTORIAL_ABSTAIN.search(text)), [], timings, None)


def _synthetic_collection(home: Path, embedder, chunks: int) -> None:
    """A collection of `chunks` synthetic passages: real docs_qa-like vocabulary for FTS,
    vectors that are the real chunk vectors of the docs collection plus noise (so the
    dense scores have a realistic spread)."""
    import numpy as np
    from ingest.store import Collection, CollectionWriter, FileRecord, NewChunk
    marker = home / ".synthetic.done"
    if marker.is_file():
        return
    print(f"building a synthetic {chunks:,}-chunk collection (once)...", flush=True)
    with Collection(home, "docs") as source:
        rows = source.conn.execute("SELECT id, text FROM chunks ORDER BY id").fetchall()
        base_texts = [r[1] for r in rows]
        index = source.vector_index()
        base_vectors = np.vstack([index.reconstruct(int(r[0])) for r in rows])
    rng = np.random.default_rng(0)
    per_file = 50
    with CollectionWriter(home, "synthetic", embedder.name, embedder.dim) as writer:
        for f in range(chunks // per_file):
            picks = rng.integers(0, len(base_texts), per_file)
            vectors = base_vectors[picks] + rng.normal(0, 0.02, (per_file, embedder.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            new = [NewChunk(f"{base_texts[p]} (copy {f}-{j})", (f"File {f}", f"Part {j}"), None, None, 0, 1,
                            f"syn-{f}-{j}", 100) for j, p in enumerate(picks)]
            record = FileRecord(f"/synthetic/file-{f:05d}.md", "markdown", f"h{f}", 1, 0, "ok", None, None,
                                per_file, None, None, time.time())
            writer.put_file(record, new, vectors.astype(np.float32))
            if f % 200 == 199:
                writer.commit()
        writer.commit()
    marker.write_text("ok")


def _latency(name: str, questions: list[str], run) -> dict:
    """p50, p95 and max of `run(question)` over the questions, in ms (printed)."""
    times = []
    for q in questions:
        started = time.perf_counter()
        run(q)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    out = {"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))], "max_ms": times[-1]}
    print(f"{name:40}: p50 {out['p50_ms']:.1f} ms, p95 {out['p95_ms']:.1f} ms", flush=True)
    return out


def part_latency(work: Path, settings, chunks: int = 100_000) -> dict:
    """Retrieval latency (question embedding included, no LLM) on a 100k-chunk collection."""
    from bot.retrieval import Retriever, keyword_query
    from ingest.embedder import make_embedder
    embedder = make_embedder(settings.embedding)
    home = docent_home(work, settings)
    _synthetic_collection(home, embedder, chunks)
    _up_to_date(home, "synthetic")
    questions = [q["question"] for q in docs_qa()]
    out = {"chunks": chunks, "questions": len(questions)}
    for mode in ("dense", "keyword", "hybrid"):
        retriever = Retriever(settings, embedder, home=home)
        started = time.perf_counter()
        retriever.warm_up("synthetic")
        out.setdefault("warm_up_s", round(time.perf_counter() - started, 2))   # models, vectors, keyword index
        retriever.retrieve(questions[0], "synthetic", mode=mode)     # first call: page cache, FTS warm-up
        out[mode] = _latency(f"retrieval on {chunks:,} chunks, {mode}", questions,
                             lambda q: retriever.retrieve(q, "synthetic", mode=mode))
    # The keyword search alone, in memory against SQLite FTS5 (what it was before), same run.
    store = retriever.collection("synthetic")
    for name, search in (("keyword search in memory", store.keyword_search), ("keyword search by FTS5", store.fts_search)):
        out[name] = _latency(name, questions, lambda q: search(keyword_query(q), settings.retrieval.candidates,
                                                               settings.retrieval.keyword_max_df))
    out["peak_rss_mb"] = _peak_rss_mb()
    return out



if __name__ == "__main__":
    main()
