"""Step 3: abstain before any model reads the passages, when they cannot answer."""

from __future__ import annotations

from typing import Sequence

from bot.guard.lexical import content_words, share_found
from bot.retrieval import Passage
from docent.words import QUESTION_STOP


def question_coverage(question: str, passages: Sequence[Passage]) -> float:
    """Share of the question's topic words (or their 5-letter stems) that the passages
    mention at all. An answer about a subject the passages never name cannot be backed."""
    present = frozenset().union(*(content_words(p.text + " " + p.heading) for p in passages))
    return share_found(content_words(question, QUESTION_STOP, 3), present)


class Gate:
    def __init__(self, min_score: float, min_coverage: float):
        self.min_score, self.min_coverage = min_score, min_coverage

    def run(self, question: str, passages: Sequence[Passage], top_dense: float) -> str | None:
        """Why the passages cannot answer the question: "retrieval" (nothing similar
        enough) or "coverage" (the question's subject is not named in them); None when
        the model should try."""
        if not passages or top_dense < self.min_score:
            return "retrieval"
        if self.min_coverage and question_coverage(question, passages) < self.min_coverage:
            return "coverage"
        return None
