"""Step 8: the policy step, the one place a guard finding's action takes effect on the
answer: flagged adds a flag, redacted replaces the finding's span by its replacement
(spans of earlier flags move with the edit), blocked withholds the whole answer (the
notice says why). It applies the leak scanner's findings (secrets, personal data,
confidential passages cited), the restricted-text check's, and those of the scanners
settings guard.scanners adds (bot/guard/scanners.py). The groundedness guard's own
"drop" (a whole sentence cut) is its step's (steps/guard.py). The passages shown are
masked as the leak policy says."""

from __future__ import annotations

import time
from typing import Callable, Sequence

from bot.guard.findings import Finding
from bot.prompts import Prompts
from bot.retrieval import Passage
from bot.steps.result import Answer
from docent.settings import LeakSettings
from docent.timing import elapsed_ms

# What a withheld answer's notice says it held, by finding kind (others: the kind in words).
WITHHELD_FOR = {"secret": "a secret", "pii": "personal data", "confidential": "text marked confidential",
                "restricted_overlap": "text from a restricted document"}


class PolicyStep:
    def __init__(self, config: LeakSettings, scanner, prompts: Prompts, restricted: Callable[[], object]):
        """`scanner`: a LeakScanner for `config` (None when it allows every kind);
        `restricted()`: the collection's bot.guard.overlap.RestrictedIndex."""
        self.config, self.scanner, self.prompts, self.restricted = config, scanner, prompts, restricted

    def check_leaks(self, answer: Answer) -> None:
        """Secrets and personal data in the answer, confidential passages cited: flagged,
        masked (in the answer and the passages shown) or the answer withheld, by policy."""
        from bot.guard.leaks import redact
        started = time.perf_counter()
        config, scanner = self.config, self.scanner
        findings = [f for f in scanner.scan(answer.question, answer.text, [p.text for p in answer.passages])
                    if not (f.kind == "confidential" and f.evidence not in answer.cited)]
        if answer.abstained and answer.lead:
            # An abstention quotes its closest passages as they are (masked where the policy
            # masks): like the sources of an answer, they are the documents, not its words.
            findings = [f for f in findings if f.action != "flagged" or f.span == (0, 0)
                        or f.span[0] < len(answer.lead)]
        # What is shown of the passages never holds what the answer may not.
        answer.passages = scanner.shown(answer.passages)
        edits = self.apply(answer, findings)
        if edits and answer.lead:       # the statement is the start of the text: mask it alike
            redacted_kinds = [k for k in ("secret", "pii") if getattr(config, k) == "redact"]
            answer.lead = redact(answer.lead, scanner.find(answer.lead, redacted_kinds))[0]
        if config.secret in ("redact", "block"):
            # Other checks quote the answer's sentences in their messages: mask those too.
            for flag in answer.flags:
                hidden = scanner.find(flag["message"], ("secret",))
                if hidden:
                    flag["message"] = redact(flag["message"], hidden)[0]
        answer.guard_ms = round(answer.guard_ms + elapsed_ms(started), 1)

    def may_withhold(self, passages: Sequence[Passage]) -> bool:
        """Whether the policy could withhold an answer written from these passages: one
        repeats a restricted document's words, holds a secret, or is marked confidential,
        and that kind is blocked. Such an answer is held until checked: blocked text never
        reaches a client, not even for the seconds before it is withheld."""
        texts = [p.text for p in passages]
        if self.config.restricted == "block":
            restricted = self.restricted()
            if any(restricted.shared(text)[0] for text in texts):
                return True
        kinds = [k for k in ("secret", "confidential") if getattr(self.config, k) == "block"]
        return bool(kinds) and self.scanner is not None and any(self.scanner.find(text, kinds) for text in texts)

    def check_restricted(self, answer: Answer) -> None:
        """The answer repeats a run of words of a restricted chunk: flagged, or withheld."""
        started = time.perf_counter()
        shared, source = self.restricted().shared(answer.text)
        if shared:
            action = "blocked" if self.config.restricted == "block" else "flagged"
            self.apply(answer, [Finding("restricted_overlap", "high", (0, len(answer.text)),
                                        f"the answer repeats text of a restricted document ({source}; "
                                        f"{shared} runs of 8 words)", None, action, 1.0)])
        answer.guard_ms = round(answer.guard_ms + elapsed_ms(started), 1)

    def apply(self, answer: Answer, findings: Sequence[Finding]) -> list:
        """Each finding's action on the answer: any blocked one withholds it (every finding
        then covers the notice); redacted ones have their span replaced by their
        replacement, and the spans of earlier flags move with the edits; all become flags.
        Returns the edits made (bot/guard/spans.py)."""
        from bot.guard.spans import replace_spans, shift_span
        blocked = [f for f in findings if f.action == "blocked"]
        if blocked:
            what = sorted({WITHHELD_FOR.get(f.kind, f.kind.replace("_", " ")) for f in blocked})
            self.withhold(answer, " and ".join(what), [f.to_dict() for f in findings])
            return []
        answer.text, edits = replace_spans(answer.text, [(f.span[0], f.span[1], f.replacement) for f in findings
                                                         if f.action == "redacted" and f.replacement is not None
                                                         and f.span != (0, 0)])
        if edits:
            for flag in answer.flags:
                flag["span"] = shift_span(flag["span"], edits)
        # A finding about the question or a passage (span 0, 0) points at no text to move.
        answer.flags += [{**f.to_dict(), "span": list(f.span) if f.span == (0, 0) else shift_span(f.span, edits)}
                         for f in findings]
        return edits

    def run_scanners(self, answer: Answer, scanners: Sequence) -> None:
        """Scanners settings guard.scanners adds, in order, each on the answer as the ones
        before left it; a withheld answer is not scanned further."""
        started = time.perf_counter()
        for scanner in scanners:
            if answer.blocked:
                break
            self.apply(answer, scanner.scan(answer.question, answer.text, [p.text for p in answer.passages]))
        answer.guard_ms = round(answer.guard_ms + elapsed_ms(started), 1)

    def withhold(self, answer: Answer, what: str, flags: list[dict]) -> None:
        """Replace the answer by the notice saying it was withheld (prompts/blocked.txt) and
        why; the flags that quoted or pointed into its text go, the new ones cover the notice."""
        answer.text = self.prompts.render("blocked.txt", what=what)
        answer.blocked, answer.cited = True, []
        answer.flags = [f for f in answer.flags if f["kind"] == "dangling_citation"]
        answer.flags += [{**f, "span": [0, len(answer.text)]} for f in flags]
