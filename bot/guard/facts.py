"""Exact checks: the hard facts of a claim (numbers, versions, dates, names, identifiers,
paths, quoted strings) must appear in the passages it cites, and the passage sentence
the claim restates must not say the opposite (a different number, a negation, an
antonym such as enable/disable).

Cheap and precise: a fact that is in no cited passage is almost always a hallucination
or a wrong citation. What these checks cannot see (a paraphrase that changes the
meaning without changing a fact) is left to the other signals.

`check` is the entry point; the work is split in two: fact_extract.py finds the facts and
looks for them in a passage, fact_conflicts.py compares the claim with the sentence it
restates. Their public names are re-exported here, where callers import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.guard.fact_conflicts import (ANTONYMS, NEGATORS, OPPOSITE, Conflict, best_sentence, claim_conflicts,
                                      conflicts, quoted_in)
from bot.guard.fact_extract import COMMON_CAPS, MONTHS, NUMBER_WORDS, Fact, facts, found_in, number_key, numbers_in
from bot.guard.sentences import passage_sentences

__all__ = ["ANTONYMS", "COMMON_CAPS", "MONTHS", "NEGATORS", "NUMBER_WORDS", "OPPOSITE", "Conflict", "ExactResult",
           "Fact", "best_sentence", "check", "conflicts", "facts", "found_in", "number_key", "numbers_in",
           "passage_sentences", "quoted_in"]


@dataclass
class ExactResult:
    facts: list[Fact] = field(default_factory=list)          # every checkable fact of the claim
    missing: list[Fact] = field(default_factory=list)        # facts found in none of the passages
    conflicts: list[str] = field(default_factory=list)       # why the passage says otherwise
    # Some conflict was read exactly (Conflict.exact), not one a rewording can produce.
    certain: bool = False

    @property
    def ok(self) -> bool:
        return not self.missing and not self.conflicts


def check(claim: str, passages: list[str]) -> ExactResult:
    """Facts of the claim that none of `passages` holds, and contradictions between the
    claim and the passage sentence it most resembles."""
    result = ExactResult(facts(claim))
    result.missing = [fact for fact in result.facts if not any(found_in(fact, p) for p in passages)]
    found = claim_conflicts(claim, passages, result.facts, result.missing)
    result.conflicts = [c.why for c in found]
    result.certain = any(c.exact for c in found)
    return result
