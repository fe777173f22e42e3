"""Step 6: what the model wrote -> the answer shown. Markers checked, citations pointed at
the passage that holds the sentence, abstention recognised, and when no sentence is
backed by its passage, or the answer lacks what was asked (bot/steps/asked.py): the
passages' own best sentences (extractive), or an abstention."""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Sequence

from bot.citations import clean, cited_numbers, strip_markers
from bot.guard.lexical import content_tokens, stem, support
from bot.guard.sentences import split_claims
from bot.retrieval import Passage
from bot.steps.abstain import Abstainer
from bot.steps.asked import mismatch
from bot.steps.gate import question_coverage
from bot.steps.result import ABSTAIN_PATTERN, Answer
from docent.settings import AnswerSettings
from docent.words import OPEN_QUESTION


def split_sentences(text: str, kinds: tuple[str, ...] = ("prose", "item", "heading", "code")) -> list[str]:
    """The text's sentences (and list items, headings, code blocks), as the guard splits it."""
    return [claim.text for claim in split_claims(text) if claim.kind in kinds]


def supported_by(sentence: str, passage: str, threshold: float = 0.6) -> bool:
    """Cheap lexical check: most of the sentence's content words are in the passage.
    (Decides the fallback; the groundedness guard in bot/guard does the real check.)"""
    return support(sentence, passage) >= threshold


def backed(text: str, passages: Sequence[Passage]) -> bool:
    """At least one sentence cites a passage that holds most of its words."""
    for sentence in split_sentences(text):
        numbers = cited_numbers(sentence)
        if any(0 < n <= len(passages) and supported_by(sentence, passages[n - 1].text) for n in numbers):
            return True
    return False


def restates(question: str, text: str) -> bool:
    """An answer to a what / when / which / how question that names nothing the question
    does not: "The value of a Prometheus counter can go back to zero [1]." for "When can
    the value of a Prometheus counter go back to zero?". The passage may well say it, so
    the guard passes it, and it tells the reader nothing. Words are compared with their
    repeats ("The plural of Prometheus is Prometheus." answers "What is the plural of
    Prometheus?"); a number, code or an identifier the question lacks is something new.
    (A yes / no question may be answered by restating it: see bare_yes_no.)"""
    return _open(question) and _only_asked(question, strip_markers(text))


def bare_yes_no(question: str, text: str) -> bool:
    """An answer to a yes / no question that is a yes or a no and the question's own words
    ("Yes, later records are tried [3]." for "... are later records tried?"): it shows no
    evidence, and the bundled model says yes to what the passage denies (10 of its 12 bare
    yeses to docs_qa questions and their rewordings were wrong)."""
    if not question.strip() or _open(question):
        return False
    answer = strip_markers(text)
    said = _YES_NO.match(answer)
    if said is None:
        return False
    rest = answer[said.end():]
    return not rest.strip() or _only_asked(question, rest)        # "Yes." alone is bare too


def _open(question: str) -> bool:
    words = question.strip().lower().split()
    return bool(words) and words[0].strip("\"'(") in OPEN_QUESTION


def _only_asked(question: str, answer: str) -> bool:
    """Every word of the answer, with its repeats, is the question's; no new number, code or name."""
    if set(_NAMED.findall(answer.lower())) - set(_NAMED.findall(question.lower())):
        return False
    said, asked = _counted(answer), _counted(question)
    return bool(said) and all(asked[key] >= n for key, n in said.items())


# Digits, code and names with underscores: facts even when they are not words.
_NAMED = re.compile(r"`[^`]*`|\w*\d\w*|\w*_\w*")
# A yes or a no opening an answer ("Yes, ...", "No."): not "No module is ..." (a determiner).
_YES_NO = re.compile(r"\s*(?:yes|no)\b\s*[,.!;:]\s*", re.IGNORECASE)


def _counted(text: str) -> Counter:
    """Content words by their stems ("creates" ~ "created"), with repeats. Not by their first
    five letters, as the guard matches words: "createdb" answers "which command creates ...?"."""
    return Counter(stem(w) for w in content_tokens(text))


def cite(sentence: str, n: int) -> str:
    """The sentence citing passage [n] alone, the marker before its full stop."""
    fixed = strip_markers(sentence).rstrip()
    end = "." if fixed.endswith(".") else ""
    return fixed.rstrip(".").rstrip() + f" [{n}]" + end


def repoint(text: str, passages: Sequence[Passage], margin: float = 0.25) -> tuple[str, list[dict]]:
    """Point each sentence's citation at the passage that holds its words when the cited
    one clearly does not (small models often cite the wrong number). Reported as
    `wrong_citation` findings. (Giving an uncited sentence the passage that holds its
    words was measured and not kept: docs_qa abstention recall 0.80 -> 0.67.)"""
    out, findings, pos = [], [], 0
    for sentence in split_sentences(text):
        start = text.find(sentence, pos)
        if start < 0:
            return text, []
        out.append(text[pos:start])
        pos = start + len(sentence)
        numbers = [n for n in cited_numbers(sentence) if 0 < n <= len(passages)]
        if not numbers:
            out.append(sentence)
            continue
        scores = [support(sentence, p.text) for p in passages]
        best = max(range(len(passages)), key=lambda i: scores[i]) + 1
        cited_best = max(scores[n - 1] for n in numbers)
        if best not in numbers and scores[best - 1] >= cited_best + margin:
            fixed = cite(sentence, best)
            findings.append({"kind": "wrong_citation", "severity": "low", "span": [start, start + len(sentence)],
                             "message": f"cited [{', '.join(map(str, numbers))}], but the words are in passage "
                                        f"[{best}]; the citation was corrected",
                             "evidence": best, "action": "flagged", "score": round(scores[best - 1] - cited_best, 3),
                             "confidence": "high"})
            out.append(fixed)
        else:
            out.append(sentence)
    out.append(text[pos:])
    return "".join(out), findings


class Extractor:
    """The passages' own sentences that best match the question, with their citations."""

    def __init__(self, embedder):
        self.embedder = embedder

    def run(self, question: str, passages: Sequence[Passage], limit: int = 2,
            margin: float = 0.05) -> tuple[str, list[int]]:
        from bot.guard.injection import find_injection
        # Prose and list items only: a heading, a code block or a question (an FAQ's) is not
        # an answer sentence, nor is an instruction planted for the assistant ("If the user
        # asks, reply only with ..."), which would otherwise be shown as docent's answer.
        candidates = [(n + 1, s) for n, p in enumerate(passages) for s in split_sentences(p.text, ("prose", "item"))
                      if 20 <= len(s) <= 600 and not s.rstrip().endswith("?") and not find_injection(s)]
        if not candidates:
            return "", []
        vectors = self.embedder.embed([question] + [s for _, s in candidates])
        scores = vectors[1:] @ vectors[0]
        # Earlier (better-ranked) passages get a small edge on ties.
        order = sorted(range(len(candidates)), key=lambda i: -(float(scores[i]) - 0.01 * candidates[i][0]))
        # A further sentence only when it matches the question about as well as the best one:
        # on docs_qa every runner-up 0.06 or more behind was off the point ("Imitate git
        # clone but track only selected branches" under the answer about worktrees).
        chosen = sorted([i for i in order[:limit] if scores[i] >= scores[order[0]] - margin],
                        key=lambda i: (candidates[i][0], i))
        text = " ".join(f"{_strip_end(candidates[i][1])} [{candidates[i][0]}]." for i in chosen)
        return text, list(dict.fromkeys(candidates[i][0] for i in chosen))


class Finisher:
    def __init__(self, config: AnswerSettings, abstainer: Abstainer, extractor: Extractor,
                 backs: Callable[[str, Sequence[Passage]], str | None] | None = None):
        """`backs(text, passages)`: a check that understands rewording (the guard with the
        model as judge), asked when the words alone back no sentence: the text with each
        sentence it finds backed citing the passage that backs it, or None."""
        self.config, self.abstainer, self.extractor, self.backs = config, abstainer, extractor, backs

    def run(self, question: str, standalone: str, raw: str, passages: Sequence[Passage],
            judged: dict | None = None) -> Answer:
        valid = range(1, len(passages) + 1)
        text, flags = clean(raw, valid)
        if self.config.repoint_citations:
            text, moved = repoint(text, passages)
            flags += moved
        answer = Answer(question, standalone, text, False, list(passages),
                        [n for n in cited_numbers(text) if n in valid], flags=flags, model_text=raw,
                        judged=dict(judged or {}))
        off = answer.judged.get("off_question")
        if not text or ABSTAIN_PATTERN.match(text):
            answer.abstained, answer.abstain_reason, answer.cited = True, "model", []
            self.abstainer.apply(answer, raw)
        elif off is not None and self.config.judge_addresses and off >= self.config.judge_addresses:
            # Backed or not, it answers another question than the one asked ("how to add"
            # for "how to remove"): say so and list the closest passages.
            answer.abstained, answer.abstain_reason, answer.cited = True, "off_question", []
            self.abstainer.apply(answer)
        elif self.config.fallback != "none":
            # Not one sentence is backed by the passage it cites, or the answer only restates the question.
            if self.config.restated and restates(standalone, text):
                self.fall_back(answer, standalone, passages, "off_question")
            elif self.config.restated_yes_no and bare_yes_no(standalone, text):
                # A bare yes or no shows no evidence: the passages' sentences that decide it,
                # even where they do not name every word of the question.
                self.fall_back(answer, standalone, passages, "off_question", quote=True)
            elif self.config.answers_asked and mismatch(standalone, text):
                # Backed or not, it lacks what was asked (a number, the action): the passages'
                # own sentences if they give it, else an abstention.
                self.fall_back(answer, standalone, passages, "off_question")
            elif not backed(text, passages):
                recited = self.backs(text, passages) if self.backs is not None else None
                if recited:
                    answer.text, answer.cited = recited, [n for n in cited_numbers(recited) if n in valid]
                else:
                    self.fall_back(answer, standalone, passages, "unbacked")
        return answer

    def fall_back(self, answer: Answer, standalone: str, passages: Sequence[Passage], reason: str,
                  quote: bool = False) -> None:
        """If the passages do not even name everything the question asks about, the model was
        most likely answering from elsewhere: abstain. Otherwise it misread: quote the passages.
        `quote`: quote them either way (fallback auto)."""
        mode = self.config.fallback
        if mode == "auto" and quote:
            mode = "extractive"
        if mode == "auto":
            mode = "extractive" if question_coverage(standalone, passages) >= 1.0 else "abstain"
        replacement, cited = self.extractor.run(standalone, passages) if mode == "extractive" else ("", [])
        if replacement and self.config.answers_asked and mismatch(standalone, replacement):
            replacement = ""        # the passages' best sentences lack what was asked too
        if replacement:
            answer.text, answer.cited, answer.fallback = replacement, cited, "extractive"
        else:
            answer.abstained, answer.abstain_reason, answer.cited, answer.fallback = True, reason, [], "abstain"
            self.abstainer.apply(answer)


def _strip_end(sentence: str) -> str:
    return sentence.rstrip().rstrip(".").rstrip()
