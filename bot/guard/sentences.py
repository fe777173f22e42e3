"""The one place text is cut into sentences: an answer into the claims to check, each
with its span (`split_claims`), and a passage into its lines and sentences
(`passage_sentences`, what a claim is compared with).

Sentences end at . ! ? followed by a capital, digit or quote, but not after common
abbreviations (e.g., i.e., etc.) and not inside versions, file names or numbers (v1.2,
pg_hba.conf, 3.5). Each list item and each heading is a claim of its own; a fenced code
block is one claim (its identifiers are still checked). A citation marker written after
the full stop ("... keys. [2] Next") stays with the sentence before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

ABBREVIATIONS = frozenset("e.g i.e etc vs cf approx fig no nr mr mrs ms dr st jr sr inc ltd co corp dept est "
                          "min max sec ver vol p pp ch art ex".split())
_FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?(^\1[^\n]*$|\Z)", re.M | re.S)
_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_END = re.compile(r"[.!?]+[\"')\]]*(?:\s*\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\])*[.!?]?"
                  r"(?=\s+(?!\[\s*\d)[\"'(\[`*]?[A-Z0-9])")


def unwrap(text: str, min_line: int = 40) -> str:
    """Text with its hard wraps undone: a line break after a long line that ends no
    sentence, before a lower-case word, joins one sentence's two halves (plain-text and
    PDF docs wrap at ~70-80 characters). Short lines (code, tables, lists) are kept."""
    lines = text.split("\n")
    out = [lines[0]]
    for line in lines[1:]:
        previous = out[-1].rstrip()
        if len(previous) >= min_line and previous[-1] not in ".!?:;" and line.lstrip()[:1].islower():
            out[-1] = previous + " " + line.lstrip()
        else:
            out.append(line)
    return "\n".join(out)


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int
    end: int
    kind: str = "prose"           # prose / item / heading / code


def split_claims(text: str) -> list[Sentence]:
    """The answer cut into claims, in order, with their (start, end) spans."""
    out: list[Sentence] = []
    pos = 0
    for fence in _FENCE.finditer(text):
        out += _split_lines(text, pos, fence.start())
        block = fence.group(0).rstrip()
        out.append(Sentence(block, fence.start(), fence.start() + len(block), "code"))
        pos = fence.end()
    out += _split_lines(text, pos, len(text))
    return [s for s in out if s.text]


def _split_lines(text: str, start: int, end: int) -> list[Sentence]:
    """Prose between code blocks: paragraphs, list items and headings, then sentences."""
    out: list[Sentence] = []
    block_start, kind = None, "prose"
    offset = start
    for line in text[start:end].splitlines(keepends=True):
        stripped = line.strip()
        item = _ITEM.match(line)
        heading = stripped.startswith("#")
        if not stripped or item or heading:
            if block_start is not None:
                out += _sentences(text, block_start, offset, kind)
                block_start = None
        if heading:
            # "### Title? More text." on one line: the title is the heading, the rest prose.
            parts = _sentences(text, offset + line.index("#"), offset + len(line.rstrip()), "prose")
            out += [Sentence(parts[0].text, parts[0].start, parts[0].end, "heading")] + parts[1:]
        elif item:
            block_start, kind = offset + item.end(), "item"
        elif stripped and block_start is None:
            block_start, kind = offset, "prose"
        offset += len(line)
    if block_start is not None:
        out += _sentences(text, block_start, end, kind)
    return out


def _sentences(text: str, start: int, end: int, kind: str) -> list[Sentence]:
    out, pos = [], start
    for match in _END.finditer(text, start, end):
        before = text[pos:match.start()]
        word = re.search(r"(\w+)$", before)
        if word and match.group(0).startswith(".") and (word.group(1).lower() in ABBREVIATIONS or len(word.group(1)) == 1
                                                        and word.group(1).isupper()):
            continue                      # "e.g. Foo", "J. Smith": not a sentence end
        if match.group(0).startswith("....") or match.group(0).startswith(".") and before.rstrip().endswith("."):
            continue                      # a dot leader ("Setup . . . . 35"): a table of contents' line
        out += _trimmed(text, pos, match.end(), kind)
        pos = match.end()
    out += _trimmed(text, pos, end, kind)
    return out


def _trimmed(text: str, start: int, end: int, kind: str) -> list[Sentence]:
    chunk = text[start:end]
    lead = len(chunk) - len(chunk.lstrip())
    body = chunk.strip()
    if not body:
        return []
    return [Sentence(body, start + lead, start + lead + len(body), kind)]


@lru_cache(maxsize=1024)
def passage_sentences(passage: str) -> tuple[str, ...]:
    """Lines and sentences of a passage; not cut at a hard wrap or after an abbreviation
    ("e.g. in a bare repository"), which would leave half a sentence to compare with."""
    out: list[str] = []
    for piece in re.split(r"(?<=[.!?])\s+|\n+", unwrap(passage)):
        if not piece.strip():
            continue
        last = re.search(r"(\w+(?:\.\w+)*)\.$", out[-1]) if out else None
        if last and last.group(1).lower() in ABBREVIATIONS:
            out[-1] += " " + piece
        else:
            out.append(piece)
    return tuple(out)
