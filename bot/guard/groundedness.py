"""Is each sentence of an answer backed by the passages it cites?

    guard = GroundednessGuard(threshold=None, policy=settings.guard.unsupported)   # None: the fitted cut
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

Two cuts on that score give three levels (precision first: a warning on a correct
answer costs as much trust as a missed error):
- below `flag_threshold`: flagged, confidence "high" (shown as a warning);
- below `threshold`: not confirmed, confidence "low" (shown quietly);
- else supported.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from bot.citations import cited_numbers, strip_markers
from bot.guard import facts as exact
from bot.guard.findings import Finding
from bot.guard.lexical import content_words, support
from bot.guard.quantities import normalise
from bot.guard.sentences import Sentence, split_claims
from bot.guard.spans import Edit, replace_spans

LABELS = ("supported", "unsupported", "contradicted", "wrong_citation")
MODEL_FILE = Path(__file__).with_name("groundedness.json")
FEATURES = ("bias", "lexical", "has_missing", "missing_share", "conflict")
ENCODER = "encoder"          # the optional cross-encoder's probability (bot/guard/claim_encoder.py)
JUDGE = "judge"              # the model judge's P(yes) (bot/guard/judge.py), when the generator gives one


@dataclass
class SentenceVerdict:
    text: str
    span: tuple[int, int]
    label: str
    score: float                 # probability that the cited passages back the sentence
    best_passage: int | None     # 1-based number of the passage that backs it best
    cited: list[int]
    reason: str = ""
    confidence: str = "high"     # of a label other than supported: high (a warning) / low (quiet)

    @property
    def level(self) -> str:
        """What a reader is shown: "flagged" (a warning), "uncertain" (not confirmed by
        the passages, shown quietly) or "supported"."""
        if self.label in ("unsupported", "contradicted"):
            return "flagged" if self.confidence == "high" else "uncertain"
        return "supported"

    def to_dict(self) -> dict:
        return {"text": self.text, "label": self.label, "level": self.level, "score": round(self.score, 3),
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

    @property
    def flagged(self) -> bool:
        """Some sentence is flagged with high confidence."""
        return any(s.level == "flagged" for s in self.sentences)

    def to_dict(self) -> dict:
        return {"sentences": [s.to_dict() for s in self.sentences if s.label != "skipped"],
                "groundedness": round(self.score, 3)}


@dataclass(frozen=True)
class Model:
    names: tuple[str, ...]            # FEATURES, then ENCODER and/or JUDGE when used
    weights: tuple[float, ...]
    threshold: float                  # below: not supported
    flag_threshold: float             # below: flagged with high confidence

    @property
    def uses_encoder(self) -> bool:
        return ENCODER in self.names

    @property
    def uses_judge(self) -> bool:
        return JUDGE in self.names

    @classmethod
    def load(cls, path: Path = MODEL_FILE, judge: bool = False) -> "Model":
        """The fitted model; `judge`: the one that also reads the model judge's P(yes)
        (groundedness.json keeps it under "judge"), when it was fitted."""
        data = json.loads(path.read_text())
        if judge and "judge" in data:
            data = data["judge"]
        names = tuple(n for n in FEATURES + (ENCODER, JUDGE) if n in data["weights"])
        threshold = float(data["threshold"])
        return cls(names, tuple(float(data["weights"][n]) for n in names), threshold,
                   float(data.get("flag_threshold", threshold)))

    def score(self, values: Mapping[str, float]) -> float:
        z = sum(w * values[name] for name, w in zip(self.names, self.weights))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def features(sentence: str, passages: Sequence[str], encoder: Sequence[float] | None = None,
             judge: float | None = None) -> tuple[dict[str, float], exact.ExactResult]:
    """The signals for one sentence against the text of the passages it is compared with
    (`encoder`: the cross-encoder's probability for each of those passages; `judge`: the
    model judge's P(yes) for the sentence against them; each when used)."""
    # "four megabytes" and "4MB" are one quantity: both texts spell numbers and units alike.
    sentence, passages = normalise(sentence), [normalise(p) for p in passages]
    joined = "\n".join(passages)
    result = exact.check(sentence, list(passages))
    values = {"bias": 1.0, "lexical": support(sentence, joined), "has_missing": float(bool(result.missing)),
              "missing_share": len(result.missing) / len(result.facts) if result.facts else 0.0,
              "conflict": float(bool(result.conflicts))}
    if encoder is not None:
        values[ENCODER] = max(encoder, default=0.0)
    if judge is not None:
        values[JUDGE] = judge
    return values, result


def quoted(claim: str, passages: Sequence[str]) -> bool:
    """A passage says the claim word for word (the judge is not asked then)."""
    return any(exact.quoted_in(claim, p) for p in passages)


class GroundednessGuard:
    """The groundedness scanner. `threshold` (from settings) overrides the fitted one."""

    def __init__(self, threshold: float | None = None, policy: str = "flag", model: Model | None = None,
                 encoder=None, flag_threshold: float | None = None, judge=None):
        """`judge`: a bot.guard.judge.ModelJudge; used when it is available and a model
        was fitted with it (else the signals without it decide)."""
        self.judge = judge if judge is not None and getattr(judge, "available", True) else None
        self.model = model or Model.load(judge=self.judge is not None)
        if not self.model.uses_judge:
            self.judge = None
        # Other passages than the cited ones are scored without the judge (one question per sentence).
        self.base = Model.load() if self.model.uses_judge else self.model
        self.threshold = self.model.threshold if threshold is None else threshold
        # A warning never needs less evidence than a quiet note.
        self.flag_threshold = min(self.threshold, self.model.flag_threshold if flag_threshold is None else flag_threshold)
        # Kept although guard.unsupported is checked when settings load: `policy` is also
        # passed directly (tests, benchmarks, scripts), and a typo would silently flag.
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
        if self.judge is not None:
            self.judge.warm_up()

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
        cited = [passages[n - 1] for n in pool]
        judged = None
        if self.judge is not None:
            # A sentence a passage says word for word needs no judge.
            judged = 1.0 if quoted(claim, cited) else self.judge.backed(claim, cited)
        cited_features, cited_exact = features(claim, cited, pick(pool), judged)
        cited_score = self.model.score(cited_features)
        # The other passages, each alone, by the signals without the judge (they only
        # decide which passage would back the sentence: a wrong citation).
        base = {n: self.base.score(features(claim, [passages[n - 1]], pick([n]))[0]) for n in range(1, len(passages) + 1)}
        scores = {**base, **({pool[0]: cited_score} if len(pool) == 1 else {})}
        best = max(scores, key=scores.__getitem__)
        confidence = "high" if cited_score < self.flag_threshold else "low"
        if cited_exact.certain:
            # A number changed, or a negator toggled in a sentence repeated word for word:
            # a contradiction whatever the scores say (on the realistic train claims the
            # number check fired on 1 supported claim against 14 wrong ones).
            cited_score, confidence = min(cited_score, self.flag_threshold * 0.99), "high"
        if cited_exact.conflicts and cited_score < self.threshold:
            # The evidence is the cited passage that the sentence restates (and contradicts).
            closest = max(pool, key=lambda n: support(claim, passages[n - 1]))
            return SentenceVerdict(sentence.text, span, "contradicted", cited_score, closest, valid,
                                   "; ".join(cited_exact.conflicts), confidence)
        if cited_score >= self.threshold:
            top = best if best in pool else max(pool, key=scores.__getitem__)
            return SentenceVerdict(sentence.text, span, "supported", cited_score, top, valid)
        if valid and best not in valid and base[best] >= self.base.threshold:
            return SentenceVerdict(sentence.text, span, "wrong_citation", scores[best], best, valid,
                                   f"cited [{', '.join(map(str, valid))}], but passage [{best}] backs it")
        missing = ", ".join(f.text for f in cited_exact.missing[:3])
        reason = f"not in the cited passages: {missing}" if missing else "the cited passages do not say this"
        return SentenceVerdict(sentence.text, span, "unsupported", cited_score, best, valid, reason, confidence)

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
            sure = s.confidence == "high"
            severity = ("high" if s.label == "contradicted" else "medium") if sure else "low"
            # Only what the guard is sure of is cut; a sentence it could not confirm stays, marked.
            action = "redacted" if self.policy == "drop" and sure else "flagged"
            quote = s.text if len(s.text) <= 80 else s.text[:77].rsplit(" ", 1)[0] + "…"
            message = f"{s.label}: “{quote}” ({s.reason})" if sure else \
                f"not confirmed by the passages: “{quote}” ({s.reason})"
            findings.append(Finding(s.label, severity, s.span, message, s.best_passage, action, 1.0 - s.score,
                                    s.confidence))
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
