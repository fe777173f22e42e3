"""What a loader hands to the chunker: the extracted text plus where its structure is."""

from __future__ import annotations

from dataclasses import dataclass, field


class LoadError(Exception):
    """A file that cannot be ingested. `str(err)` is one line a user can act on
    (e.g. "encrypted PDF (needs a password)"); the caller adds the file name."""


@dataclass(frozen=True)
class Heading:
    start: int          # offset in ExtractedDocument.text where the heading's line starts
    level: int          # 1 = top level (h1, '#', 'Heading 1', rST's first underline style)
    title: str          # the heading text, without markup
    anchor: str | None = None   # the id a link can jump to (an HTML heading's), when there is one


@dataclass(frozen=True)
class PageStart:
    start: int          # offset in ExtractedDocument.text where this page's text starts
    page: int           # 1-based page number


@dataclass
class ExtractedDocument:
    text: str                                   # the whole extracted text
    format: str                                 # markdown, text, rst, html, pdf, docx, notebook, table
    headings: list[Heading] = field(default_factory=list)   # sorted by start
    pages: list[PageStart] = field(default_factory=list)    # sorted; empty unless paged
    title: str | None = None                    # document title (front matter, <title>, PDF metadata)
    metadata: dict[str, str] = field(default_factory=dict)  # e.g. front matter keys
