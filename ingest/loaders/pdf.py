"""PDF: each page's text (pypdf) as a block with its page number; bookmarks as headings;
encrypted files opened with the empty password when they allow it. A page with (almost)
no text but with images is a scan: its images are read by OCR (ocr.py)."""

from __future__ import annotations

import io
import logging
import re

from ingest.document import ExtractedDocument, Heading, LoadError, PageStart
from ingest.loaders.base import Blocks, Loader, collapse, short, tell
from ingest.loaders.ocr import MIN_SIDE, page_metadata, recognize

# pypdf adds a space for a TJ gap wider than ~half its idea of the font's space. For the
# subset CID fonts of LaTeX/Sphinx PDFs it often takes the space to be ~560/1000 em, so
# word gaps on tight justified lines (~270) came out as "thepackage'scontrolfiles": the
# Debian Policy PDF read as 40k words instead of 72k. 150/1000 em is wider than kerning,
# narrower than any word gap; fonts whose own threshold is lower keep it.
_TJ_WORD_GAP = 150.0
# A page with fewer non-space characters than this (a page number, a stamp) and with
# images is taken for a scan and read by OCR.
_SCANNED_CHARS = 20
_MAX_OCR_IMAGES = 8         # per page: the largest ones (a page of icons is not a scan)


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
    confidences: dict[int, float] = {}          # page number -> OCR confidence
    ocr_failed: list[int] = []
    ocr_reason = None                           # why OCR failed, for a PDF with no text at all
    ocr_empty = False                           # OCR ran and found nothing
    for i in range(n_pages):
        try:
            page = reader.pages[i]
            raw = page.extract_text() or ""
        except Exception:                       # one broken page must not lose the others
            failed += 1
            continue
        page_text = _clean_text(raw)
        if len("".join(page_text.split())) < _SCANNED_CHARS:
            tell(f"OCR of page {i + 1} of {n_pages}")       # 10-25 s a page: say where it is
            try:
                scanned = _ocr_page(page)
            except LoadError as exc:            # this page stays as it was; the others go on
                ocr_failed.append(i + 1)
                ocr_reason = str(exc)
                scanned = None
            if scanned and scanned[0]:
                page_text, confidences[i + 1] = scanned
            elif scanned:
                ocr_empty = True
        if page_text:
            out.add(page_text)
            pages.append(PageStart(out.length - len(page_text), i + 1))
            spans[i] = (pages[-1].start, out.length)
    if not pages:
        if failed == n_pages and n_pages:
            raise LoadError("corrupt PDF: no page could be read")
        if ocr_reason:
            raise LoadError(ocr_reason)
        if ocr_empty:
            raise LoadError("no extractable text (and OCR found none in its images)")
        raise LoadError("no extractable text (scanned PDF?)")
    text = out.text()
    metadata = page_metadata(confidences)
    if ocr_failed:
        metadata["ocr_failed"] = ",".join(map(str, ocr_failed))
    return ExtractedDocument(text, "pdf", _headings(reader, text, spans), pages, title=_title(reader),
                             metadata=metadata)


def _ocr_page(page) -> tuple[str, float] | None:
    """(text, confidence) read by OCR from the page's images; None when it has no image
    large enough to hold text; ("", 0.0) when OCR found none. LoadError when OCR is not
    available or no image could be decoded."""
    images, errors = [], []
    try:
        files = page.images
        for k in range(len(files)):
            try:
                image = files[k].image          # decoding: JBIG2 and some filters are not supported
            except Exception as exc:
                errors.append(short(exc))
                continue
            if image is not None and min(image.size) >= MIN_SIDE:
                images.append((k, image))
    except Exception as exc:                    # a broken resource dictionary or inline image
        errors.append(short(exc))
    if not images:
        if errors:
            raise LoadError(f"page image could not be decoded: {errors[0]}")
        return None
    # The largest few, read in the order they are drawn (strips of one scan stay in order).
    images = sorted(sorted(images, key=lambda ki: -ki[1].width * ki[1].height)[:_MAX_OCR_IMAGES])
    texts, weighted, chars = [], 0.0, 0
    for _, image in images:
        result = recognize(image)
        if result.text:
            texts.append(result.text)
            n = len("".join(result.text.split()))
            weighted, chars = weighted + result.confidence * n, chars + n
    return ("\n\n".join(texts), weighted / chars) if chars else ("", 0.0)


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
