"""Step 3: abstain before any model reads the passages, when they cannot answer."""

from __future__ import annotations

import re
from typing import Callable, Sequence

from bot.guard.lexical import content_words, share_found
from bot.retrieval import Passage, holds_word
from bot.steps.asked import names, spelled_near
from docent.words import QUESTION_STOP


def question_coverage(question: str, passages: Sequence[Passage]) -> float:
    """Share of the question's topic words (or their 5-letter stems) that the passages
    mention at all. An answer about a subject the passages never name cannot be backed."""
    present = frozenset().union(*(content_words(p.text + " " + p.heading) for p in passages))
    return share_found(content_words(question, QUESTION_STOP, 3), present)


class Gate:
    def __init__(self, min_score: float, min_coverage: float, mentions: Callable[[str], bool] | None = None):
        """`mentions(word)`: whether the documents the asker may read hold the word (None:
        not checked)."""
        self.min_score, self.min_coverage, self.mentions = min_score, min_coverage, mentions
        self.unnamed: list[str] = []

    def run(self, question: str, passages: Sequence[Passage], top_dense: float) -> str | None:
        """Why the passages cannot answer the question: "retrieval" (nothing similar
        enough), "coverage" (the question's subject is not named in them) or "unnamed" (it
        names something no document mentions: those names are left in `self.unnamed`);
        None when the model should try."""
        if not passages or top_dense < self.min_score:
            return "retrieval"
        if self.min_coverage and question_coverage(question, passages) < self.min_coverage:
            return "coverage"
        if self.mentions is not None:
            self.unnamed = self.names_missing(question, passages)
            if self.unnamed:
                return "unnamed"
        return None

    def names_missing(self, question: str, passages: Sequence[Passage]) -> list[str]:
        """The question's names that neither the passages nor the documents mention. The
        passages at hand first: they find "PostgreSQL" for "Postgres", which the keyword
        index, by stems, may not, and the name misspelt or inflected ("Intercolleiate",
        "Buddhist" where they say "Buddhism"): a typo is not a subject the documents lack."""
        asked = names(question)
        if not asked:           # most questions: no passage text to gather
            return []
        text = "\n".join(f"{p.text}\n{p.heading}" for p in passages)
        words = frozenset(re.findall(r"[^\W\d_]{5,}", text.lower()))
        return [name for name in asked if not (holds_word(text, name) or spelled_near(name, words)
                                               or (self.mentions is not None and self.mentions(name)))]
