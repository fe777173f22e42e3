"""Synthetic claims made from passages, labelled: the training data of the groundedness
model and the docs perturbation set of benchmarks/guard.py.

From a sentence of a passage it makes the claim itself and a shortened copy (supported),
and the kinds of error a small model makes: a changed number, a negation added or
removed, a word replaced by its opposite, a name or identifier swapped for one from
another passage (contradicted), the claim paired with an unrelated passage, or an
unsupported detail from elsewhere added to it (unsupported).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from bot.citations import MARKER
from bot.guard.facts import OPPOSITE, facts
from bot.guard.sentences import unwrap

AUXILIARIES = ("is", "are", "was", "were", "can", "will", "should", "must", "does", "do", "has", "have", "may")


@dataclass(frozen=True)
class Example:
    claim: str
    passage: str
    label: str          # supported / unsupported / contradicted
    how: str            # which perturbation made it


def sentences_of(passage: str, min_words: int = 6, max_words: int = 45) -> list[str]:
    # Cutting at a hard wrap would make fragments ("scripts are" / "required to ...")
    # that no answer says.
    passage = unwrap(passage)
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])|\n+", passage)
    return [p.strip() for p in parts if min_words <= len(p.split()) <= max_words and not p.strip().startswith(("#", "|", "```"))]


def make_examples(passages: list[str], seed: int = 0, per_passage: int = 1) -> list[Example]:
    """Up to `per_passage` source sentences from each passage, each with its perturbations."""
    rng = random.Random(seed)
    names = [f.text for p in passages for s in sentences_of(p)[:3] for f in facts(s) if f.kind in ("name", "identifier")]
    out: list[Example] = []
    for index, passage in enumerate(passages):
        candidates = sentences_of(passage)
        rng.shuffle(candidates)
        for sentence in candidates[:per_passage]:
            other = passages[rng.randrange(len(passages))] if len(passages) > 1 else ""
            if other == passage:
                other = passages[(index + 1) % len(passages)]
            out += _variants(sentence, passage, other, names, rng)
    return out


def _variants(sentence: str, passage: str, other: str, names: list[str], rng: random.Random) -> list[Example]:
    out = [Example(sentence, passage, "supported", "verbatim")]
    words = sentence.split()
    if len(words) >= 10:
        cut = rng.randint(max(6, len(words) // 2), len(words) - 2)
        out.append(Example(" ".join(words[:cut]).rstrip(",;:") + ".", passage, "supported", "shortened"))
    # Not the number of a "[5]" or of a list item ("3. Install ..."): in an answer those
    # are a citation marker and markup, not facts.
    numbers = [m for m in re.finditer(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]\w)", sentence)
               if not MARKER.match(sentence[m.start() - 1:m.end() + 1])
               and not (m.start() == 0 and re.match(r"\d+[.)]\s", sentence))]
    if numbers:
        m = rng.choice(numbers)
        value = m.group(0)
        new = str(int(float(value)) + rng.choice([1, 2, 5, 10, 100])) if "." not in value else value + "1"
        out.append(Example(sentence[:m.start()] + new + sentence[m.end():], passage, "contradicted", "number"))
    negated = _negate(sentence)
    if negated:
        out.append(Example(negated, passage, "contradicted", "negation"))
    # Whole words only: "apply" inside remote_apply is not a word to flip.
    flips = [w for w in re.findall(r"\b[a-z]+\b", sentence) if w in OPPOSITE]
    if flips:
        word = rng.choice(flips)
        out.append(Example(re.sub(rf"\b{word}\b", OPPOSITE[word], sentence, count=1), passage, "contradicted", "antonym"))
    own = [f.text for f in facts(sentence) if f.kind in ("name", "identifier")]
    strangers = [n for n in names if n.lower() not in passage.lower()]
    if own and strangers:
        old = rng.choice(own)
        out.append(Example(sentence.replace(old, rng.choice(strangers), 1), passage, "contradicted", "swap"))
    if other:
        out.append(Example(sentence, other, "unsupported", "wrong_passage"))
        extra = sentences_of(other)
        if extra:
            tail = rng.choice(extra).rstrip(".")
            tail = tail[0].lower() + tail[1:]
            out.append(Example(sentence.rstrip(".") + ", and " + tail + ".", passage, "unsupported", "added"))
    # A change that left the sentence as it was is no contradiction.
    return [e for e in out if e.label != "contradicted" or e.claim != sentence]


def _negate(sentence: str) -> str | None:
    if re.search(r"\bnot\b", sentence):
        return re.sub(r"\s+not\b", "", sentence, count=1)
    for aux in AUXILIARIES:
        match = re.search(rf"\b{aux}\b", sentence)
        if match:
            return sentence[:match.end()] + " not" + sentence[match.end():]
    return None
