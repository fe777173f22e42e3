"""Ask a test set's questions of a collection and keep one row per question asked.

Rows are appended to `rows.jsonl` as they are made (a line is written whole and synced),
so a run stopped by Ctrl-C or a crash loses at most the question being asked, and the
same command resumes where it stopped: rows already there are not asked again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

from evaluation.dataset import EvalItem, answer_f1, contains_reference, holds_answer
from docent.atomic import write_atomically

LEAK_KINDS = frozenset({"secret", "pii", "confidential", "restricted_overlap"})
UNSUPPORTED_KINDS = frozenset({"unsupported", "contradicted"})
ROWS = "rows.jsonl"


def questions_to_ask(items: Iterable[EvalItem]) -> Iterator[tuple[EvalItem, str, str]]:
    """(item, variant, question): each question as written, then its paraphrases."""
    for item in items:
        yield item, "original", item.question
        for n, paraphrase in enumerate(item.paraphrases, start=1):
            yield item, f"paraphrase-{n}", paraphrase


def read_rows(out_dir: Path) -> list[dict]:
    """The rows of an earlier run; a last line cut off by a crash is ignored."""
    path = Path(out_dir) / ROWS
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


class Evaluation:
    def __init__(self, answerer, collection: str | None, out_dir: Path, k: int = 10, rights=None):
        """`rights`: ask as that user (bot/access/rights.py): only what they may read is retrieved."""
        self.answerer = answerer
        self.collection = collection
        self.out_dir = Path(out_dir)
        self.k = k
        self.rights = rights

    def run(self, items: list[EvalItem], progress: Callable[[int, int, str], None] | None = None) -> list[dict]:
        """Every question not asked yet; returns all rows (earlier ones included).
        `progress(done, total, question)` after each."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        rows = read_rows(self.out_dir)
        done = {(r["id"], r["variant"]) for r in rows}
        plan = list(questions_to_ask(items))
        wanted = {(item.id, variant) for item, variant, _ in plan}
        rows = [r for r in rows if (r["id"], r["variant"]) in wanted]       # an edited set: drop what left it
        # Start from the rows kept, whole lines only: a line cut off by a crash is gone
        # before anything is appended after it.
        write_atomically(self.out_dir / ROWS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        originals = {r["id"]: r for r in rows if r["variant"] == "original"}
        with (self.out_dir / ROWS).open("a", encoding="utf-8") as fh:
            for item, variant, question in plan:
                if (item.id, variant) in done:
                    continue
                row = self.ask(item, variant, question)
                if variant == "original":
                    originals[item.id] = row
                else:
                    row["entailment"] = self.entailment(originals.get(item.id), row)
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                rows.append(row)
                if progress:
                    progress(len(rows), len(plan), question)
        return rows

    def entailment(self, original: dict | None, paraphrase: dict) -> float | None:
        """Does the answer to a rewording say what the original's answer says? The share
        of its sentences the groundedness guard finds backed by the original answer (None
        when either abstained or failed, or the guard is off)."""
        from bot.citations import strip_markers
        guard = self.answerer.guard
        if guard is None or not original or any(r["error"] or r["abstained"] or not r["answer"]
                                                for r in (original, paraphrase)):
            return None
        verdict = guard.check(strip_markers(paraphrase["answer"]), [strip_markers(original["answer"])])
        return round(verdict.score, 3)

    def ask(self, item: EvalItem, variant: str, question: str) -> dict:
        from bot.answer import AnswerError
        from bot.generators import GeneratorError
        from bot.retrieval import RetrievalError
        row = {"id": item.id, "question": question, "variant": variant, "of": item.id,
               "answerable": item.answerable, "reference": item.answer if item.answerable else None,
               "abstain_reason": None,
               "source_paths": list(item.source_paths), "retrieved": [], "hit_rank": None, "answer": "",
               "abstained": False, "cited_sources": [], "f1": None, "contains": None, "groundedness": None,
               "unsupported": 0, "leak_flags": 0, "flags": [], "retrieve_ms": 0.0, "first_token_ms": 0.0,
               "total_ms": 0.0, "error": None}
        scanner = self.answerer.leak_scanner(self.collection)
        if scanner is not None and row["reference"]:
            # The reference answer was written from a passage: shown in rows and reports, it
            # is masked like the passages docent shows.
            row["reference"] = scanner.masked(row["reference"])
        try:
            found = self.answerer.retriever.retrieve(question, self.collection, k=self.k, rights=self.rights)
            row["retrieved"] = [{"source": p.source, "chunk_id": p.chunk_ids[0], "score": round(float(p.score), 4)}
                                for p in found.passages]
            if item.answerable:
                row["hit_rank"] = next((rank for rank, p in enumerate(found.passages, start=1)
                                        if holds_answer(p.source, p.text, p.chunk_ids, item)), None)
            answer = self.answerer.ask(question, self.collection, rights=self.rights)
        except (AnswerError, GeneratorError, RetrievalError) as exc:
            row["error"] = str(exc)
            return row
        row.update(answer=answer.text, abstained=answer.abstained, abstain_reason=answer.abstain_reason,
                   cited_sources=[c["source"] for c in answer.citations], groundedness=answer.groundedness,
                   flags=[f["kind"] for f in answer.flags],
                   unsupported=sum(f["kind"] in UNSUPPORTED_KINDS for f in answer.flags),
                   leak_flags=sum(f["kind"] in LEAK_KINDS for f in answer.flags),
                   **{key: float(answer.timings.get(key, 0.0)) for key in ("retrieve_ms", "first_token_ms", "total_ms")})
        if item.answerable and item.answer and not answer.abstained:
            row["f1"] = round(answer_f1(answer.text, item.answer), 4)
            row["contains"] = contains_reference(answer.text, [item.answer])
        return row
