"""Structure-following chunking: sections (by heading) -> paragraphs -> sentences.

Chunks never cut a paragraph unless it alone exceeds the token budget, never mix two
sibling sections, and carry the heading path they sit under, so the embedding sees
"Guide > Install > Linux" as context and retrieval can filter or show it. Sizes are
measured in the embedding model's own tokens so no chunk is silently truncated.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from ingest.document import ExtractedDocument

CountTokens = Callable[[Sequence[str]], list[int]]

HEADING_SEPARATOR = " > "
_SPECIAL_TOKENS = 2            # [CLS] and [SEP], counted once per text by count_tokens
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# A sentence ends at . ! ? followed by space and an upper-case letter/digit/quote, or at a line break.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[ \t]+(?=[A-Z0-9\"'(\[])|\n")


@dataclass(frozen=True)
class ChunkDraft:
    text: str                       # exactly ExtractedDocument.text[start:end]
    start: int
    end: int
    heading_path: tuple[str, ...]
    page: int | None                # page of the chunk's first character (paged formats)
    page_end: int | None            # page of its last character
    n_tokens: int                   # estimate, embedding text (heading prefix included)

    @property
    def embed_text(self) -> str:
        """What is embedded: the heading path as context, then the chunk itself."""
        return embed_text(self.heading_path, self.text)


def embed_text(heading_path: Sequence[str], text: str) -> str:
    if not heading_path:
        return text
    return HEADING_SEPARATOR.join(heading_path) + "\n" + text


@dataclass
class _Unit:
    start: int
    end: int
    section: int
    tokens: int


def chunk_document(
    doc: ExtractedDocument,
    count_tokens: CountTokens,
    max_tokens: int = 240,
    min_tokens: int = 48,
    overlap_tokens: int = 24,
) -> list[ChunkDraft]:
    text = doc.text
    sections = _sections(doc)
    prefix_tokens = _prefix_tokens([path for _, _, path in sections], count_tokens)
    budgets = [max(8, max_tokens - p - _SPECIAL_TOKENS) for p in prefix_tokens]
    units = _units(text, sections, count_tokens, budgets)
    chunks: list[ChunkDraft] = []
    current: list[_Unit] = []

    def budget(section: int) -> int:
        return budgets[section]

    def size(units_: list[_Unit]) -> int:
        return sum(u.tokens for u in units_)

    def flush() -> None:
        if current:
            chunks.append(_make_chunk(doc, current, sections, prefix_tokens))

    for unit in units:
        if current:
            same_section = unit.section == current[-1].section
            # A short chunk may run on into a sub-section: its heading is part of the new path.
            into_child = (not same_section and size(current) < min_tokens
                          and _is_descendant(sections[unit.section][2], sections[current[-1].section][2]))
            fits = size(current) + unit.tokens <= budget(unit.section)
            if (same_section or into_child) and fits:
                current.append(unit)
                continue
            flush()
            # Carry a little context over when a section continues in a new chunk.
            carried: list[_Unit] = []
            if same_section and overlap_tokens > 0:
                for prev in reversed(current):
                    if size(carried) + prev.tokens > overlap_tokens:
                        break
                    carried.insert(0, prev)
                if carried and size(carried) + unit.tokens > budget(unit.section):
                    carried = []
            current = carried
        current.append(unit)
    flush()
    return chunks


def _sections(doc: ExtractedDocument) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, heading path) for the preamble and every heading's section."""
    text = doc.text
    out: list[tuple[int, int, tuple[str, ...]]] = []
    root: tuple[str, ...] = (doc.title,) if doc.title and doc.title.strip() else ()
    headings = sorted((h for h in doc.headings if 0 <= h.start < len(text)), key=lambda h: h.start)
    first = headings[0].start if headings else len(text)
    if text[:first].strip():
        out.append((0, first, root))
    stack: list[tuple[int, str]] = []
    for i, h in enumerate(headings):
        while stack and stack[-1][0] >= h.level:
            stack.pop()
        stack.append((h.level, " ".join(h.title.split())))
        path = tuple(title for _, title in stack)
        if root and path and path[0].lower() != root[0].lower() and root[0].lower() not in path[0].lower():
            path = root + path
        end = headings[i + 1].start if i + 1 < len(headings) else len(text)
        out.append((h.start, end, path))
    return out


def _units(text: str, sections, count_tokens: CountTokens, budgets: list[int]) -> list[_Unit]:
    """Paragraphs, with over-long paragraphs split into sentences, then into word runs."""
    spans: list[tuple[int, int, int]] = []
    for index, (start, end, _) in enumerate(sections):
        for a, b in _split(text, start, end, _PARAGRAPH_BREAK):
            spans.append((a, b, index))
    # Sentences are only needed for paragraphs over the budget; count tokens in batches.
    counts = _count(text, spans, count_tokens)
    units: list[_Unit] = []
    for (a, b, index), n in zip(spans, counts):
        limit = budgets[index]
        if n <= limit:
            units.append(_Unit(a, b, index, n))
            continue
        sentences = _split(text, a, b, _SENTENCE_BREAK)
        for (sa, sb), sn in zip(sentences, _count(text, sentences, count_tokens)):
            if sn <= limit:
                units.append(_Unit(sa, sb, index, sn))
            else:
                units.extend(_word_runs(text, sa, sb, sn, index, limit, count_tokens))
    return units


def _word_runs(text, start, end, tokens, section, limit, count_tokens) -> list[_Unit]:
    """Split a run with no usable sentence breaks (tables, code, PDF soup) at spaces."""
    pieces = max(2, -(-tokens // max(1, int(limit * 0.9))))
    step = max(1, (end - start) // pieces)
    cuts = [start]
    while cuts[-1] + step < end:
        cut = cuts[-1] + step
        space = text.rfind(" ", cuts[-1] + 1, cut + 1)
        cuts.append(space if space > cuts[-1] else cut)
    cuts.append(end)
    spans = []
    for a, b in zip(cuts, cuts[1:]):
        a2, b2 = _trim(text, a, b)
        if a2 < b2:
            spans.append((a2, b2))
    counts = _count(text, spans, count_tokens)
    units = []
    for (a, b), n in zip(spans, counts):
        if n > limit and b - a > 1:
            units.extend(_word_runs(text, a, b, n, section, limit, count_tokens))
        else:
            units.append(_Unit(a, b, section, n))
    return units


# A tokenizer makes one [UNK] of a word past its length limit (WordPiece: 100 characters),
# so a 2 MB line without spaces counts as a single token. Counted here as at least one
# token per this many characters, so no chunk grows past the limit whatever the input.
CHARS_PER_TOKEN_AT_MOST = 12


def _count(text: str, spans, count_tokens: CountTokens) -> list[int]:
    if not spans:
        return []
    counted = count_tokens([text[s[0]:s[1]] for s in spans])
    return [max(0, n - _SPECIAL_TOKENS, -(-(span[1] - span[0]) // CHARS_PER_TOKEN_AT_MOST))
            for n, span in zip(counted, spans)]


def _prefix_tokens(paths: list[tuple[str, ...]], count_tokens: CountTokens) -> list[int]:
    prefixes = [HEADING_SEPARATOR.join(p) for p in paths]
    unique = sorted(set(prefixes))
    counted = dict(zip(unique, count_tokens(unique))) if unique else {}
    return [0 if not p else counted[p] - _SPECIAL_TOKENS + 1 for p in prefixes]


def _split(text: str, start: int, end: int, pattern: re.Pattern) -> list[tuple[int, int]]:
    out = []
    pos = start
    for match in pattern.finditer(text, start, end):
        a, b = _trim(text, pos, match.start())
        if a < b:
            out.append((a, b))
        pos = match.end()
    a, b = _trim(text, pos, end)
    if a < b:
        out.append((a, b))
    return out


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _is_descendant(path: tuple[str, ...], ancestor: tuple[str, ...]) -> bool:
    return len(path) > len(ancestor) and path[: len(ancestor)] == ancestor


def _make_chunk(doc, units: list[_Unit], sections, prefix_tokens) -> ChunkDraft:
    start, end = units[0].start, units[-1].end
    section = units[-1].section
    page = page_end = None
    if doc.pages:
        starts = [p.start for p in doc.pages]
        page = doc.pages[max(0, bisect.bisect_right(starts, start) - 1)].page
        page_end = doc.pages[max(0, bisect.bisect_right(starts, end - 1) - 1)].page
    tokens = sum(u.tokens for u in units) + prefix_tokens[section] + _SPECIAL_TOKENS
    return ChunkDraft(doc.text[start:end], start, end, sections[section][2], page, page_end, tokens)
