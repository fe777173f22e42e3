"""Step 8: the leak policy applied to the answer (bot/guard/leaks.py, overlap.py): secrets
and personal data flagged or masked, confidential passages cited flagged, text of a
restricted document flagged, or the whole answer withheld (the notice says why). The
passages shown are masked the same way."""

from __future__ import annotations

import time
from typing import Callable, Sequence

from bot.guard.findings import Finding
from bot.prompts import Prompts
from bot.retrieval import Passage
from bot.steps.result import Answer
from docent.settings import LeakSettings
from docent.timing import elapsed_ms


class LeakPolicy:
    def __init__(self, config: LeakSettings, scanner, prompts: Prompts, restricted: Callable[[], object]):
        """`scanner`: a LeakScanner for `config` (None when it allows every kind);
        `restricted()`: the collection's bot.guard.overlap.RestrictedIndex."""
        self.config, self.scanner, self.prompts, self.restricted = config, scanner, prompts, restricted

    def check_leaks(self, answer: Answer) -> None:
        """Secrets and personal data in the answer, confidential passages cited: flagged,
        masked (in the answer and the passages shown) or the answer withheld, by policy."""
        from bot.guard.leaks import redact
        from bot.guard.spans import shift_span
        started = time.perf_counter()
        config, scanner = self.config, self.scanner
        findings = [f for f in scanner.scan(answer.question, answer.text, [p.text for p in answer.passages])
                    if not (f.kind == "confidential" and f.evidence not in answer.cited)]
        if answer.abstained and answer.lead:
            # An abstention quotes its closest passages as they are (masked where the policy
            # masks): like the sources of an answer, they are the documents, not its words.
            findings = [f for f in findings if f.action != "flagged" or f.span == (0, 0)
                        or f.span[0] < len(answer.lead)]
        spanless = [f for f in findings if f.span == (0, 0)]     # about the question or a passage, not the text
        # What is shown of the passages never holds what the answer may not.
        answer.passages = scanner.shown(answer.passages)
        if any(f.action == "blocked" for f in findings):
            what = sorted({"a secret" if f.kind == "secret" else "personal data" if f.kind == "pii"
                           else "text marked confidential" for f in findings if f.action == "blocked"})
            self.withhold(answer, " and ".join(what), [f.to_dict() for f in findings])
        else:
            redacted_kinds = [k for k in ("secret", "pii") if getattr(config, k) == "redact"]
            leaks = scanner.find(answer.text, redacted_kinds) if redacted_kinds else []
            text, edits = redact(answer.text, leaks)
            if edits:
                answer.text = text
                if answer.lead:       # the statement is the start of the text: mask it alike
                    answer.lead = redact(answer.lead, scanner.find(answer.lead, redacted_kinds))[0]
                for flag in answer.flags:
                    flag["span"] = shift_span(flag["span"], edits)
            answer.flags += [{**f.to_dict(), "span": f.to_dict()["span"] if f in spanless else shift_span(f.span, edits)}
                             for f in findings]
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
            flag = Finding("restricted_overlap", "high", (0, len(answer.text)),
                           f"the answer repeats text of a restricted document ({source}; {shared} runs of 8 words)",
                           None, action, 1.0).to_dict()
            if action == "blocked":
                self.withhold(answer, "text from a restricted document", [flag])
            else:
                answer.flags.append(flag)
        answer.guard_ms = round(answer.guard_ms + elapsed_ms(started), 1)

    def withhold(self, answer: Answer, what: str, flags: list[dict]) -> None:
        """Replace the answer by the notice saying it was withheld (prompts/blocked.txt) and
        why; the flags that quoted or pointed into its text go, the new ones cover the notice."""
        answer.text = self.prompts.render("blocked.txt", what=what)
        answer.blocked, answer.cited = True, []
        answer.flags = [f for f in answer.flags if f["kind"] == "dangling_citation"]
        answer.flags += [{**f, "span": [0, len(answer.text)]} for f in flags]
