"""The one finding shape every guard check reports, and the scanner interface.

A scanner is anything with `scan(question, answer, passages) -> list[Finding]` (the
llm-guard shape, minus the rewritten text: an action that changes the answer is applied
by the caller from the findings). Findings land in `flags` of `docent ask --json`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, Sequence

SEVERITIES = ("low", "medium", "high")
ACTIONS = ("flagged", "redacted", "blocked")
# How sure the check is. "high": shown as a warning; "low": the check could not confirm the
# text, shown quietly ("not confirmed by the passages"), never as a warning: a warning on
# a correct answer costs as much trust as a missed error.
CONFIDENCES = ("high", "low")


@dataclass(frozen=True)
class Finding:
    kind: str                     # unsupported, contradicted, wrong_citation, dangling_citation, ...
    severity: str                 # low / medium / high
    span: tuple[int, int]         # (start, end) in the answer text
    message: str                  # one line a user can read
    evidence: int | None          # the passage number (1-based) the finding points at
    action: str                   # flagged / redacted / blocked
    score: float                  # the check's score, 0..1
    confidence: str = "high"      # high (a warning) / low (shown quietly)
    # What a "redacted" finding's span becomes in the answer ("[EMAIL_ADDRESS redacted]");
    # None: the span is left alone. Not part of the flag a user sees.
    replacement: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["replacement"]
        out["span"] = list(self.span)
        out["score"] = round(float(self.score), 3)
        return out


class Scanner(Protocol):
    """A guard check. The policy step (bot/steps/policy.py) applies each finding's action:
    flagged adds a flag, redacted replaces the span by `replacement`, blocked withholds the
    answer. An optional attribute `may_block = False` says the scanner never blocks, so
    answers can stream (bot/guard/scanners.py)."""

    def scan(self, question: str, answer: str, passages: Sequence[str]) -> list[Finding]:
        ...
