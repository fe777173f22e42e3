"""PDF: each page's text (pypdf) as a block with its page number; bookmarks as headings;
encrypted files opened with the empty password when they allow it."""

from __future__ import annotations

import io
import logging
import re

from ingest.document import ExtractedDocument, Heading, LoadError, PageStart
from ingest.loaders.base import Blocks, Loader, collapse, short

# pypdf adds a space for a TJ gap wider than ~half its idea of the font's space. For the
# subset CID fonts of LaTeX/Sphinx PDFs it often takes the space to be ~560/1000 em, so
# word gaps on tight justified lines (~270) came out as "thepackage'scontrolfiles": the
# Debian Policy PDF read as 40k words instead of 72k. 150/1000 em is wider than kerning,
# narrower than any word gap; fonts whose own threshold is lower keep it.
_TJ_WORD_GAP = 150.0


def _widen_pypdf_word_gaps() -> None:
    try:
        from pypdf._text_extraction._text_extractor import TextExtraction
        original = TextExtraction.process_tj_offset
    except (ImportError, AttributeError):     # pypdf internals moved: keep its own rule
        return
    if getattr(original, "_docent", False):
        return

    def process_tj_offset(self, offset: float, space_width: float) -> None:
        original(self, offset, min(space_width, _TJ_WORD_GAP))
    process_tj_offset._docent = True
    TextExtraction.process_tj_offset = process_tj_offset


def load(data: bytes) -> ExtractedDocument:
    logging.getLogger("pypdf").setLevel(logging.ERROR)     # malformed-but-readable noise
    from pypdf import PdfReader

    _widen_pypdf_word_gaps()

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")     # many PDFs are "encrypted" with no user password
            except Exception as exc:
                raise LoadError(f"encrypted PDF (cannot decrypt: {short(exc)})") from None
            if not opened:
                raise LoadError("encrypted PDF (needs a password)")
        n_pages = len(reader.pages)
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"corrupt PDF: {short(exc)}") from None

    out = Blocks()
    pages: list[PageStart] = []
    spans: dict[int, tuple[int, int]] = {}      # page index -> (start, end) in text
    failed = 0
    for i in range(n_pages):
        try:
            raw = reader.pages[i].extract_text() or ""
        except Exception:                       # one broken page must not lose the others
            failed += 1
            continue
        page_text = _clean_text(raw)
        if page_text:
            out.add(page_text)
            pages.append(PageStart(out.length - len(page_text), i + 1))
            spans[i] = (pages[-1].start, out.length)
    if not pages:
        if failed == n_pages and n_pages:
            raise LoadError("corrupt PDF: no page could be read")
        raise LoadError("no extractable text (scanned PDF?)")
    text = out.text()
    return ExtractedDocument(text, "pdf", _headings(reader, text, spans), pages, title=_title(reader))


def _clean_text(raw: str) -> str:
    text = raw.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _title(reader) -> str | None:
    try:
        meta = reader.metadata
        return collapse(str(meta.title or "")) or None if meta else None
    except Exception:
        return None


def _headings(reader, text: str, spans: dict[int, tuple[int, int]]) -> list[Heading]:
    """Bookmarks as headings, placed where their title appears on their page (else at the
    page's start). Searching on from the previous bookmark keeps order on a shared page."""
    entries: list[tuple[str, int, int]] = []

    def walk(items, depth: int) -> None:
        for item in items:
            if isinstance(item, list):         # children of the entry before it
                walk(item, depth + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
                title = collapse(str(item.title or ""))
            except Exception:
                continue
            if title and page is not None and page >= 0:
                entries.append((title, depth + 1, page))

    try:
        walk(reader.outline, 0)
    except Exception:                           # a broken outline costs the headings only
        return []
    indexes = sorted(spans)
    cursor: dict[int, int] = {}
    headings = []
    for title, level, page in entries:
        # A bookmark on a page without text points at the next page that has text.
        page = next((p for p in indexes if p >= page), None)
        if page is None:
            continue
        start, end = spans[page]
        pos = _find_title(text, title, cursor.get(page, start), end)
        if pos is None:
            pos = start
        else:
            cursor[page] = pos + 1
        headings.append(Heading(pos, level, title))
    return headings


# What may precede a bookmark's title on its line: "Chapter 3.", "1.3.2", "A.1".
_NUMBERING = r"(?:(?i:chapter|appendix|section|part)[ \t]+)?(?:(?:\d+|[A-Z])(?:\.\d+)*\.?[ \t]+)?"


def _find_title(text: str, title: str, start: int, end: int) -> int | None:
    """Offset of the line that starts with `title` (after any numbering), else of the
    title anywhere in text[start:end], else None."""
    words = title.split()
    if not words or len(title) > 200:
        return None
    pattern = "(?i:" + r"\s*".join(map(re.escape, words)) + ")"
    for regex in (r"(?m)^[ \t]*" + _NUMBERING + pattern, pattern):
        m = re.compile(regex).search(text, start, end)    # pos/endpos: "^" only at real line starts
        if m:
            return m.start()
    return None


LOADER = Loader("pdf", (".pdf",), load)
