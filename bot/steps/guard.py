"""Step 7: every sentence checked against the passages it cites (bot/guard/groundedness.py).
Findings go into the answer's flags; sentences the guard is sure of are cut when the
policy says drop; an answer whose every sentence it flags is replaced by the passages'
own best sentences (fallback auto or extractive)."""

from __future__ import annotations

import time

from bot.citations import cited_numbers
from bot.steps.abstain import Abstainer
from bot.steps.finish import Extractor
from bot.steps.result import Answer
from docent.settings import AnswerSettings
from docent.timing import elapsed_ms


class GroundednessStep:
    def __init__(self, guard, config: AnswerSettings, abstainer: Abstainer, extractor: Extractor):
        self.guard, self.config, self.abstainer, self.extractor = guard, config, abstainer, extractor

    def check(self, answer: Answer):
        """Findings into flags, unsupported sentences cut when the policy says drop, the
        answer-level score kept. Returns the guard's verdict."""
        from bot.guard.groundedness import apply_policy
        from bot.guard.spans import shift_span
        started = time.perf_counter()
        texts = [f"{p.heading}\n{p.text}" if p.heading else p.text for p in answer.passages]
        verdict = self.guard.check(answer.text, texts, answer.question)
        # Wrong citations are repoint()'s to correct and report (answer.repoint_citations).
        findings = [f for f in self.guard.findings(verdict) if f.kind != "wrong_citation"]
        answer.groundedness = round(verdict.score, 3)
        answer.flags += [f.to_dict() for f in findings]
        if any(f.action == "redacted" for f in findings):
            answer.text, edits = apply_policy(answer.text, findings)
            for flag in answer.flags:
                flag["span"] = shift_span(flag["span"], edits)
            answer.cited = [n for n in cited_numbers(answer.text) if 0 < n <= len(answer.passages)]
            if not answer.text:
                answer.abstained, answer.abstain_reason, answer.cited = True, "unsupported", []
                self.abstainer.apply(answer)
        answer.guard_ms = round(answer.guard_ms + elapsed_ms(started), 1)
        return verdict

    def run(self, answer: Answer, standalone: str) -> None:
        if answer.abstained:
            return
        verdict = self.check(answer)
        if verdict.flagged and all(s.level == "flagged" for s in verdict.sentences if s.label != "skipped") \
                and self.config.fallback in ("auto", "extractive") and answer.fallback is None:
            # The guard is sure no sentence is backed: the passages' own sentences instead.
            replacement, cited = self.extractor.run(standalone, answer.passages)
            if replacement:
                answer.text, answer.cited, answer.fallback = replacement, cited, "extractive"
                answer.flags = [f for f in answer.flags if f["kind"] not in ("unsupported", "contradicted")]
                self.check(answer)
