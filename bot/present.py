"""An answer laid out for a reader: the text cut into pieces that carry the guard flag
they fall under, the cited passages with the sentence each answer sentence restates,
and the warnings that concern the whole answer. The chat window (app.py) turns this
into HTML; nothing here knows about HTML or Gradio.

    view = present(answer)
    for piece in view.pieces: piece.text, piece.flag      # flag: None or the flag dict
    for source in view.sources: source.n, source.location, source.before, source.mark, source.after
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.citations import cited_numbers, strip_markers
from bot.guard.sentences import split_claims

# Flags about a sentence of the answer (marked where they apply) ...
SENTENCE_KINDS = ("unsupported", "contradicted")
# ... and flags shown as a warning above the sources.
LEAK_KINDS = ("secret", "pii", "confidential", "extraction_attempt", "prompt_injection", "restricted_overlap")
# Below this share of an answer sentence's content words, no passage sentence is marked.
MARK_SHARE = 0.34


@dataclass
class Piece:
    text: str
    flag: dict | None = None

    @property
    def quiet(self) -> bool:
        """The guard could not confirm this text (low confidence): marked, not warned about."""
        return bool(self.flag) and self.flag.get("confidence", "high") == "low"


@dataclass
class Source:
    n: int
    location: str                 # file, page, heading
    source: str
    page: int | None
    heading: str
    before: str                   # passage text before the marked sentence
    mark: str                     # the sentence an answer sentence restates ("" when none)
    after: str
    cited: bool                   # cited by the answer, or only among the closest passages
    link: str | None = None       # opens the page the passage came from, at its heading

    @property
    def text(self) -> str:
        return self.before + self.mark + self.after


@dataclass
class AnswerView:
    pieces: list[Piece]
    sources: list[Source]
    warnings: list[dict] = field(default_factory=list)    # leak and injection flags
    notes: list[dict] = field(default_factory=list)       # corrected or removed citations
    abstained: bool = False
    blocked: bool = False
    groundedness: float | None = None


def present(answer) -> AnswerView:
    """`answer`: a bot.answer.Answer (or anything with its fields)."""
    text = answer.text
    sentence_flags = [f for f in answer.flags if f["kind"] in SENTENCE_KINDS and f.get("action") != "redacted"
                      and _inside(f["span"], text)]
    warnings = [f for f in answer.flags if f["kind"] in LEAK_KINDS]
    notes = [f for f in answer.flags if f["kind"] not in SENTENCE_KINDS + LEAK_KINDS or
             (f["kind"] in SENTENCE_KINDS and f.get("action") == "redacted")]
    lead = getattr(answer, "lead", "")
    if answer.abstained and not answer.blocked and lead and text.startswith(lead):
        # The statement only: its closest passages are listed as sources below.
        text = lead
        sentence_flags = [f for f in sentence_flags if f["span"][1] <= len(lead)]
    pieces = _pieces(text, sentence_flags)
    if answer.abstained or answer.blocked:
        # Nothing is cited: the closest passages are listed so the reader can look.
        shown = [] if answer.blocked else list(range(1, min(3, len(answer.passages)) + 1))
        sources = [_source(n, answer.passages[n - 1], [], cited=False) for n in shown]
    else:
        claims = _claims_by_passage(text)
        sources = [_source(n, answer.passages[n - 1], claims.get(n, []), cited=True)
                   for n in answer.cited if 0 < n <= len(answer.passages)]
    return AnswerView(pieces, sources, warnings, notes, answer.abstained, answer.blocked, answer.groundedness)


def _inside(span, text: str) -> bool:
    start, end = span
    return 0 <= start < end <= len(text)


def _pieces(text: str, flags: list[dict]) -> list[Piece]:
    """The text cut at the flagged spans (overlapping spans: the first one wins)."""
    pieces, at = [], 0
    for flag in sorted(flags, key=lambda f: f["span"][0]):
        start, end = flag["span"]
        if start < at:
            continue
        if start > at:
            pieces.append(Piece(text[at:start]))
        pieces.append(Piece(text[start:end], flag))
        at = end
    if at < len(text):
        pieces.append(Piece(text[at:]))
    return pieces


def _claims_by_passage(text: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for claim in split_claims(text):
        for n in cited_numbers(claim.text):
            out.setdefault(n, []).append(strip_markers(claim.text))
    return out


def _source(n: int, passage, claims: list[str], cited: bool) -> Source:
    before, mark, after = split_at_best_sentence(passage.text, claims)
    return Source(n, passage.location, passage.source, passage.page, passage.heading, before, mark, after, cited,
                  passage.link)


def split_at_best_sentence(passage: str, claims: list[str]) -> tuple[str, str, str]:
    """(before, sentence, after): the passage sentence that shares most of some claim's
    content words (the guard's best_sentence), when it shares enough to be worth pointing at."""
    from bot.guard.facts import best_sentence
    best, best_share = None, MARK_SHARE
    for claim in claims:
        sentence, share = best_sentence(claim, [passage])
        if sentence is not None and share > best_share:
            best, best_share = sentence.strip(), share
    start = passage.find(best) if best else -1
    if start < 0:
        return passage, "", ""
    return passage[:start], best, passage[start + len(best):]
