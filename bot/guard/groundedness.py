"""Is each sentence of an answer backed by the passages it cites?

    guard = GroundednessGuard(settings.guard)
    verdict = guard.check(answer_text, [passage texts, numbered from 1])
    verdict.sentences[0].label        # supported / unsupported / contradicted / wrong_citation
    guard.scan(question, answer_text, passages)   # the same, as findings for `flags`

Signals per (sentence, passage), combined by a logistic model into one score, the
probability that the passage backs the sentence (weights and threshold fitted by
`python -m bot.guard.train` and stored in bot/guard/groundedness.json):
- lexical: share of the sentence's content words the passage holds (the trivial
  baseline, also reported alone by benchmarks/guard.py);
- exact: numbers, versions, names, identifiers, paths and quoted strings of the
  sentence that the passage lacks;
- conflict: the passage sentence it restates says otherwise (another number, a
  negation, an antonym).
A sentence without a citation is checked against every passage.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from bot.citations import cited_numbers, strip_markers
from bot.guard import facts as exact
from bot.guard.findings import Finding
from bot.guard.lexical import content_words, support
from bot.guard.sentences import Sentence, split_claims
from bot.guard.spans import Edit, replace_spans

LABELS = ("supported", "unsupported", "contradicted", "wrong_citation")
MODEL_FILE = Path(__file__).with_name("groundedness.json")
FEATURES = ("bias", "lexical", "has_missing", "missing_share", "conflict")
ENCODER = "encoder"          # the optional cross-encoder's probability (bot/guard/claim_encoder.py)


@dataclass
class SentenceVerdict:
    text: str
    span: tuple[int, int]
    label: str
    score: float                 # probability that the cited passages back the sentence
    best_passage: int | None     # 1-based number of the passage that backs it best
    cited: list[int]
    reason: str = ""

    def to_dict(self) -> dict:
        return {"text": self.text, "label": self.label, "score": round(self.score, 3),
                "best_passage": self.best_passage, "cited": self.cited, "span": list(self.span),
                "reason": self.reason}


@dataclass
class Verdict:
    sentences: list[SentenceVerdict] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Answer-level groundedness: the share of checked sentences that are supported
        (a wrongly cited but backed sentence counts as supported)."""
        checked = [s for s in self.sentences if s.label != "skipped"]
        if not checked:
            return 1.0
        return sum(1 for s in checked if s.label in ("supported", "wrong_citation")) / len(checked)

    @property
    def all_supported(self) -> bool:
        """Every checked sentence is backed by the passages it cites, as cited."""
        return all(s.label in ("supported", "skipped") for s in self.sentences)

    def to_dict(self) -> dict:
        return {"sentences": [s.to_dict() for s in self.sentences if s.label != "skipped"],
                "groundedness": round(self.score, 3)}


@dataclass(frozen=True)
class Model:
    weights: tuple[float, ...]
    threshold: float
    uses_encoder: bool = False

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> "Model":
        data = json.loads(path.read_text())
        names = FEATURES + ((ENCODER,) if ENCODER in data["weights"] else ())
        return cls(tuple(data["weights"][name] for name in names), float(data["threshold"]), ENCODER in data["weights"])

    def score(self, features: Sequence[float]) -> float:
        z = sum(w * x for w, x in zip(self.weights, features))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def features(sentence: str, passages: Sequence[str], encoder: Sequence[float] | None = None
             ) -> tuple[tuple[float, ...], exact.ExactResult]:
    """The signals for one sentence against the text of the passages it is compared with
    (`encoder`: the cross-encoder's probability for each of those passages, when used)."""
    joined = "\n".join(passages)
    result = exact.check(sentence, list(passages))
    missing_share = len(result.missing) / len(result.facts) if result.facts else 0.0
    row = (1.0, support(sentence, joined), float(bool(result.missing)), missing_share, float(bool(result.conflicts)))
    if encoder is not None:
        row += (max(encoder, default=0.0),)
    return row, result


class GroundednessGuard:
    """The groundedness scanner. `threshold` (from settings) overrides the fitted one."""

    def __init__(self, threshold: float | None = None, policy: str = "flag", model: Model | None = None,
                 encoder=None):
        self.model = model or Model.load()
        self.threshold = self.model.threshold if threshold is None else threshold
        if policy not in ("flag", "drop"):
            raise ValueError(f"guard.unsupported must be 'flag' or 'drop', not {policy!r}")
        self.policy = policy
        self._encoder = encoder

    @property
    def encoder(self):
        if self._encoder is None and self.model.uses_encoder:
            from bot.guard.claim_encoder import ClaimEncoder
            self._encoder = ClaimEncoder()
        return self._encoder

    def warm_up(self) -> None:
        if self.encoder is not None:
            self.encoder.warm_up()

    def check(self, answer: str, passages: Sequence[str], question: str = "") -> Verdict:
        """`question`: what the answer answers; a bare "Yes." asserts it, so the question is
        what the passages must back."""
        claims = [(s, claim_of(s.text, question)) for s in split_claims(answer)]
        claims = [(s, claim, self._checkable(s, claim, passages)) for s, claim in claims]
        encoded: dict[int, list[float]] = {}
        if self.encoder is not None:
            # One batch for every (sentence, passage) pair of the answer.
            wanted = [i for i, (*_, ok) in enumerate(claims) if ok]
            flat = self.encoder.score([(strip_markers(claims[i][1]), p) for i in wanted for p in passages])
            encoded = {i: flat[j * len(passages):(j + 1) * len(passages)] for j, i in enumerate(wanted)}
        verdict = Verdict()
        for index, (sentence, claim, checkable) in enumerate(claims):
            if not checkable:
                verdict.sentences.append(SentenceVerdict(sentence.text, (sentence.start, sentence.end), "skipped", 1.0,
                                                         None, []))
            else:
                verdict.sentences.append(self._judge(sentence, claim, passages, encoded.get(index)))
        return verdict

    @staticmethod
    def _checkable(sentence: Sentence, claim: str, passages: Sequence[str]) -> bool:
        """Headings and sentences with no content word or fact ("Steps:") say nothing to check."""
        return bool(passages) and sentence.kind != "heading" and bool(
            content_words(strip_markers(claim)) or exact.facts(claim))

    def _judge(self, sentence: Sentence, claim: str, passages: Sequence[str], encoded: list[float] | None
               ) -> SentenceVerdict:
        valid = [n for n in cited_numbers(sentence.text) if 0 < n <= len(passages)]
        span = (sentence.start, sentence.end)
        pool = valid or list(range(1, len(passages) + 1))
        pick = (lambda numbers: [encoded[n - 1] for n in numbers]) if encoded is not None else (lambda numbers: None)
        cited_features, cited_exact = features(claim, [passages[n - 1] for n in pool], pick(pool))
        cited_score = self.model.score(cited_features)
        # A sentence citing one passage was just scored against it: not again.
        scores = {n: cited_score if pool == [n] else self.model.score(features(claim, [passages[n - 1]],
                                                                                pick([n]))[0])
                  for n in range(1, len(passages) + 1)}
        best = max(scores, key=scores.__getitem__)
        if cited_exact.conflicts:
            # The evidence is the cited passage that the sentence restates (and contradicts).
            closest = max(pool, key=lambda n: support(claim, passages[n - 1]))
            return SentenceVerdict(sentence.text, span, "contradicted", cited_score, closest, valid,
                                   "; ".join(cited_exact.conflicts))
        if cited_score >= self.threshold:
            top = best if best in pool else max(pool, key=scores.__getitem__)
            return SentenceVerdict(sentence.text, span, "supported", cited_score, top, valid)
        if valid and best not in valid and scores[best] >= self.threshold:
            return SentenceVerdict(sentence.text, span, "wrong_citation", scores[best], best, valid,
                                   f"cited [{', '.join(map(str, valid))}], but passage [{best}] backs it")
        missing = ", ".join(f.text for f in cited_exact.missing[:3])
        reason = f"not in the cited passages: {missing}" if missing else "the cited passages do not say this"
        return SentenceVerdict(sentence.text, span, "unsupported", cited_score, best, valid, reason)

    def scan(self, question: str, answer: str, passages: Sequence[str]) -> list[Finding]:
        """One finding per sentence that is not supported as cited."""
        return self.findings(self.check(answer, passages, question))

    def findings(self, verdict: Verdict) -> list[Finding]:
        findings = []
        for s in verdict.sentences:
            if s.label in ("supported", "skipped"):
                continue
            if s.label == "wrong_citation":
                findings.append(Finding("wrong_citation", "low", s.span, s.reason,
                                        s.best_passage, "flagged", s.score))
                continue
            severity = "high" if s.label == "contradicted" else "medium"
            action = "redacted" if self.policy == "drop" else "flagged"
            quote = s.text if len(s.text) <= 80 else s.text[:77].rsplit(" ", 1)[0] + "…"
            findings.append(Finding(s.label, severity, s.span, f"{s.label}: “{quote}” ({s.reason})", s.best_passage, action,
                                    1.0 - s.score))
        return findings


# An answer sentence that only says yes ("Yes.", "Correct [2].") asserts the question.
_AFFIRMATIVE = re.compile(r"(?i)\s*(?:yes|yep|correct|that is correct|that's right|right|true|indeed)[.!]?\s*")


_FRAMING = re.compile(r"(?i)\b(?:both|either|each)\b ?")


def claim_of(sentence: str, question: str) -> str:
    """What a sentence claims: the question when the sentence only says yes to it (its
    citations are still read from the sentence), else the sentence."""
    if question.strip() and _AFFIRMATIVE.fullmatch(strip_markers(sentence)):
        # "Are X and Y both ...?": "both" frames the question, no passage says it.
        return _FRAMING.sub("", question).strip()
    return sentence


def apply_policy(answer: str, findings: Sequence[Finding]) -> tuple[str, list[Edit]]:
    """The answer with every redacted (dropped) sentence cut out, with the space after it,
    and the edits made (shift_span moves the other findings' spans)."""
    cuts = []
    for finding in findings:
        if finding.action == "redacted":
            start, end = finding.span
            end += len(answer[end:]) - len(answer[end:].lstrip(" "))
            cuts.append((start, end, ""))
    text, edits = replace_spans(answer, cuts)
    return text.strip(), edits
