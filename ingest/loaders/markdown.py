"""Markdown: CommonMark headings (markdown-it-py) and a simple front-matter block as metadata."""

from __future__ import annotations

import re

from ingest.document import ExtractedDocument, Heading
from ingest.loaders.base import Loader, collapse, line_starts, nonempty
from ingest.textdecode import decode_text

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)^(?:---|\.\.\.)[ \t]*$\n?", re.S | re.M)
_FM_LINE = re.compile(r"^([A-Za-z_][\w.-]*)[ \t]*:[ \t]*(.*?)[ \t]*$", re.M)


def load(data: bytes) -> ExtractedDocument:
    text = decode_text(data)
    metadata: dict[str, str] = {}
    m = _FRONT_MATTER.match(text)
    # Only a block that holds "key: value" lines: a document may open with a plain --- rule.
    if m and _FM_LINE.search(m.group(1)):
        for key, value in _FM_LINE.findall(m.group(1)):
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            if value:                                 # "key:" opens a YAML list/map: skip
                metadata[key] = value
        text = text[m.end():].lstrip("\n")
    text = nonempty(text)
    return ExtractedDocument(text, "markdown", _headings(text),
                             title=metadata.get("title"), metadata=metadata)


def _headings(text: str) -> list[Heading]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)      # 0.1 ms to build; one per call is thread-safe
    starts = line_starts(text)
    headings = []
    for i, tok in enumerate(tokens):
        # level 0 only: a "#" line inside a quote or list item is not a section of the document
        if tok.type == "heading_open" and tok.level == 0 and tok.map and i + 1 < len(tokens):
            title = _inline_text(tokens[i + 1])
            if title:
                headings.append(Heading(starts[tok.map[0]], int(tok.tag[1]), title))
    return headings


def _inline_text(inline) -> str:
    parts = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline", "image"):   # image: its alt text
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return collapse("".join(parts)) or collapse(inline.content)


LOADER = Loader("markdown", (".md", ".markdown"), load)
