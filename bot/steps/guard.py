"""Step 7: every sentence checked against the passages it cites (bot/guard/groundedness.py).
Findings go into the answer's flags; sentences the guard is sure of are cut when the
policy says drop; an answer whose every sentence it flags is replaced by the passages'
own best sentences (fallback auto or extractive), or, when they lack what was asked
(bot/steps/asked.py), by an abstention."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import PurePosixPath

from bot.citations import cited_numbers
from bot.steps.abstain import Abstainer
from bot.guard.findings import Finding
from bot.guard.sentences import split_claims
from bot.guard.spans import replace_spans, shift_span
from bot.steps.asked import mismatch
from bot.steps.finish import Extractor, cite
from bot.steps.result import Answer
from docent.settings import AnswerSettings
from docent.timing import elapsed_ms


class GroundednessStep:
    def __init__(self, guard, config: AnswerSettings, abstainer: Abstainer, extractor: Extractor):
        self.guard, self.config, self.abstainer, self.extractor = guard, config, abstainer, extractor
        self._verdicts: dict = {}     # one step per answer: a text judged once, by whoever asks first

    def verdict(self, text: str, passages, question: str):
        """The guard's verdict on `text` against the passages, each under its document's
        name and its headings (they name the subject a paraphrase keeps: "According to the
        FHS, /opt is ..." from fhs-3.0.pdf, whose pages never write "FHS"), instructions
        planted for the assistant left out (they back nothing); computed once per text."""
        from bot.guard.injection import leave_out_instructions
        key = (text, tuple(p.chunk_ids for p in passages), question)
        if key not in self._verdicts:
            bodies = [leave_out_instructions(p.text) for p in passages]
            texts = [" > ".join(filter(None, (document_name(p.source), p.heading))) + "\n" + body
                     for p, body in zip(passages, bodies)]
            self._verdicts[key] = self.guard.check(text, texts, question)
        return self._verdicts[key]

    def backs(self, text: str, passages, question: str) -> str | None:
        """When the words alone back no sentence of `text` (finish.py): the guard, with the
        model as its judge, reads the sentences as reworded. Returns the text with each
        sentence it finds backed citing the passage that backs it (an uncited sentence gets
        its citation, a miscited one the right one), or None when it backs none. Without a
        judge the guard's signals are word overlap again: None, and the words decide."""
        if self.guard is None or getattr(self.guard, "judge", None) is None:
            return None
        verdict = self.verdict(text, passages, question)
        moves = [s for s in verdict.sentences if s.label in ("supported", "wrong_citation") and s.best_passage
                 and (not s.cited or s.label == "wrong_citation")]
        if not moves and not any(s.label == "supported" and s.cited for s in verdict.sentences):
            return None
        return replace_spans(text, _citing(text, moves))[0]

    def cite_uncited(self, answer: Answer, verdict, findings: list[Finding]) -> list[Finding]:
        """Each sentence without a citation that the guard finds backed cites the passage
        that backs it best (the model leaves 7% of docs_qa sentences and 19% of their
        rewordings' uncited). The abstention decisions are taken by then: this changes no
        answer's words, only adds citations. Returns `findings` moved to the new text."""
        edits = _citing(answer.text, [s for s in verdict.sentences
                                      if s.label == "supported" and not s.cited and s.best_passage])
        if not edits:
            return findings
        text, moves = replace_spans(answer.text, edits)
        for flag in answer.flags:
            flag["span"] = shift_span(flag["span"], moves)
        answer.text = text
        answer.cited = [n for n in cited_numbers(text) if 0 < n <= len(answer.passages)]
        return [replace(f, span=tuple(shift_span(f.span, moves))) for f in findings]

    def check(self, answer: Answer):
        """Findings into flags, unsupported sentences cut when the policy says drop, the
        answer-level score kept. Returns the guard's verdict."""
        from bot.guard.groundedness import apply_policy
        started = time.perf_counter()
        verdict = self.verdict(answer.text, answer.passages, answer.question)
        # Wrong citations are repoint()'s to correct and report (answer.repoint_citations).
        findings = [f for f in self.guard.findings(verdict) if f.kind != "wrong_citation"]
        if self.config.cite_uncited:
            findings = self.cite_uncited(answer, verdict, findings)
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
            if replacement and self.config.answers_asked and mismatch(standalone, replacement):
                # They lack what was asked too (the number, the action): the documents don't say.
                answer.flags = [f for f in answer.flags if f["kind"] not in ("unsupported", "contradicted")]
                answer.abstained, answer.abstain_reason, answer.cited, answer.fallback = True, "unsupported", [], "abstain"
                self.abstainer.apply(answer)
                return
            if replacement:
                answer.text, answer.cited, answer.fallback = replacement, cited, "extractive"
                answer.flags = [f for f in answer.flags if f["kind"] not in ("unsupported", "contradicted")]
                self.check(answer)


def document_name(source: str) -> str:
    """A file's name without its folders and extension ("fhs-3.0" for .../fhs-3.0.pdf)."""
    return PurePosixPath(source.replace("\\", "/")).stem


def _citing(text: str, sentences) -> list[tuple[int, int, str]]:
    """Edits of `text` making each of the guard's `sentences` cite its best passage alone.
    Prose and list items only: a marker after a code block's closing fence breaks the block."""
    prose = {(c.start, c.end) for c in split_claims(text) if c.kind in ("prose", "item")}
    return [(s.span[0], s.span[1], cite(s.text, s.best_passage)) for s in sentences if tuple(s.span) in prose]
