"""reStructuredText: section titles found the way docutils finds them, without docutils."""

from __future__ import annotations

from ingest.document import ExtractedDocument, Heading
from ingest.loaders.base import Loader, line_starts, nonempty
from ingest.textdecode import decode_text

_ADORNMENT = set("=-~^\"'`#*+:._")


def load(data: bytes) -> ExtractedDocument:
    text = nonempty(decode_text(data))
    return ExtractedDocument(text, "rst", _headings(text))


def _is_adornment(line: str, min_len: int = 2) -> bool:
    s = line.rstrip()
    return len(s) >= min_len and s[0] in _ADORNMENT and s == s[0] * len(s)


def _headings(text: str) -> list[Heading]:
    """Section titles as docutils finds them: a title line with an underline (and maybe an
    overline) of one punctuation character, at least as long as the title. Levels follow
    the order in which each style first appears."""
    lines = text.split("\n")
    starts = line_starts(text)
    styles: dict[tuple[str, bool], int] = {}
    headings = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if i > 0 and lines[i - 1].strip():          # a title opens a text block
            i += 1
            continue
        if (i + 2 < n and _is_adornment(line) and lines[i + 2].rstrip() == line.rstrip()
                and lines[i + 1].strip() and not _is_adornment(lines[i + 1], 1)
                and len(line.rstrip()) >= len(lines[i + 1].strip())):
            style, title, step = (line[0], True), lines[i + 1].strip(), 3
        elif (i + 1 < n and line.strip() and not line[0].isspace() and not _is_adornment(line, 1)
              and _is_adornment(lines[i + 1]) and len(lines[i + 1].rstrip()) >= len(line.rstrip())):
            style, title, step = (lines[i + 1][0], False), line.strip(), 2
        else:
            i += 1
            continue
        level = styles.setdefault(style, len(styles) + 1)
        headings.append(Heading(starts[i], level, title))
        i += step
    return headings


# ".rst.txt": Sphinx ships its sources as _sources/*.rst.txt
LOADER = Loader("rst", (".rst", ".rest", ".rst.txt"), load)
