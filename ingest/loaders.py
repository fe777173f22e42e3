"""One loader per format: file -> ExtractedDocument (text + headings + pages + title).

Every bad input raises LoadError with a one-line reason (the caller adds the file name);
parser exceptions are wrapped, never passed on. Parsers are imported inside the loaders
that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import errno
import io
import logging
import re
import stat
from pathlib import Path
from typing import Callable

from ingest.document import ExtractedDocument, Heading, LoadError, PageStart
from ingest.textdecode import decode_text, looks_binary

FORMATS: dict[str, str] = {
    ".md": "markdown", ".markdown": "markdown",
    ".txt": "text", ".text": "text",
    ".rst": "rst", ".rest": "rst",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}


def format_for(path: Path) -> str | None:
    """The format name for a file's extension, or None when it is not supported."""
    name = Path(path).name.lower()
    if name.endswith(".rst.txt"):          # Sphinx ships its sources as _sources/*.rst.txt
        return "rst"
    dot = name.rfind(".")
    return FORMATS.get(name[dot:]) if dot > 0 else None


def load_file(path: Path, max_bytes: int | None = None) -> ExtractedDocument:
    """Read and parse one file. Raises LoadError (only) for anything wrong with it."""
    path = Path(path)
    fmt = format_for(path)
    if fmt is None:
        raise LoadError(f"unsupported file type ({path.suffix or 'no extension'})")
    doc = _LOADERS[fmt](_read(path, max_bytes))
    doc.headings.sort(key=lambda h: h.start)
    return doc


# ---------------------------------------------------------------- reading

def _read(path: Path, max_bytes: int | None) -> bytes:
    check_file(path, max_bytes)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LoadError(_os_reason(exc)) from None


def check_file(path: Path, max_bytes: int | None = None):
    """stat() a file we are about to read; LoadError if it is missing, not a regular file,
    too large or empty. Cheap: the pipeline calls it before hashing."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LoadError("broken symlink (target missing)" if path.is_symlink() else "file not found") from None
    except OSError as exc:
        raise LoadError(_os_reason(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise LoadError("is a directory")
    if not stat.S_ISREG(st.st_mode):       # a FIFO or device would block or never end
        raise LoadError("not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise LoadError(f"too large: {st.st_size / 1e6:.1f} MB (limit {max_bytes / 1e6:.3g} MB; see ingest.max_file_mb)")
    if st.st_size == 0:
        raise LoadError("empty file")
    return st


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return (exc.strerror or type(exc).__name__).lower()


def _short(exc: BaseException) -> str:
    """A parser exception as a short one-liner (no traceback, no multi-line dumps)."""
    msg = " ".join(str(exc).split())
    msg = msg or type(exc).__name__
    return msg if len(msg) <= 100 else msg[:97] + "..."


def _collapse(s: str) -> str:
    return " ".join(s.split())


# ---------------------------------------------------------------- plain text

def _load_text(data: bytes) -> ExtractedDocument:
    return ExtractedDocument(_nonempty(decode_text(data)), "text")


def _nonempty(text: str, reason: str = "empty file") -> str:
    text = text.rstrip()
    if not text.strip():
        raise LoadError(reason)
    return text


# ---------------------------------------------------------------- markdown

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)^(?:---|\.\.\.)[ \t]*$\n?", re.S | re.M)
_FM_LINE = re.compile(r"^([A-Za-z_][\w.-]*)[ \t]*:[ \t]*(.*?)[ \t]*$", re.M)


def _load_markdown(data: bytes) -> ExtractedDocument:
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
    text = _nonempty(text)
    return ExtractedDocument(text, "markdown", _markdown_headings(text),
                             title=metadata.get("title"), metadata=metadata)


def _markdown_headings(text: str) -> list[Heading]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)      # 0.1 ms to build; one per call is thread-safe
    line_starts = _line_starts(text)
    headings = []
    for i, tok in enumerate(tokens):
        # level 0 only: a "#" line inside a quote or list item is not a section of the document
        if tok.type == "heading_open" and tok.level == 0 and tok.map and i + 1 < len(tokens):
            title = _inline_text(tokens[i + 1])
            if title:
                headings.append(Heading(line_starts[tok.map[0]], int(tok.tag[1]), title))
    return headings


def _inline_text(inline) -> str:
    parts = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline", "image"):   # image: its alt text
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return _collapse("".join(parts)) or _collapse(inline.content)


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


# ---------------------------------------------------------------- reStructuredText

_RST_ADORNMENT = set("=-~^\"'`#*+:._")


def _load_rst(data: bytes) -> ExtractedDocument:
    text = _nonempty(decode_text(data))
    return ExtractedDocument(text, "rst", _rst_headings(text))


def _is_adornment(line: str, min_len: int = 2) -> bool:
    s = line.rstrip()
    return len(s) >= min_len and s[0] in _RST_ADORNMENT and s == s[0] * len(s)


def _rst_headings(text: str) -> list[Heading]:
    """Section titles as docutils finds them: a title line with an underline (and maybe an
    overline) of one punctuation character, at least as long as the title. Levels follow
    the order in which each style first appears."""
    lines = text.split("\n")
    starts = _line_starts(text)
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


# ---------------------------------------------------------------- HTML

_DROP_TAGS = ["script", "style", "noscript", "template", "svg", "nav", "header", "footer",
              "aside", "form", "button", "iframe", "object", "embed", "canvas"]
_DROP_ROLES = {"navigation", "banner", "contentinfo", "search"}
# Class/id words that mark page chrome (DocBook navheader/navfooter tables, sidebars, TOCs,
# SQLite's nosearch menus); matched as whole words inside e.g. "fancy_toc" or "toc_sub".
_CHROME = re.compile(r"(?:^|[-_])(?:toc|sidebar|breadcrumbs?|navheader|navfooter|skip-?link|"
                     r"menu|nosearch|footer)(?:$|[-_\d])", re.I)
_INLINE = {"a", "abbr", "acronym", "b", "bdi", "bdo", "big", "cite", "code", "data", "del",
           "dfn", "em", "font", "i", "img", "ins", "kbd", "label", "mark", "nobr", "q", "s",
           "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var", "wbr"}
# Every other element (p, li, div, dt, td, ...) is a block: its text becomes its own paragraph.
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_CELL_BLOCKS = ["p", "div", "pre", "table", "ul", "ol", "dl", "blockquote", *_HEADINGS]
_ADMONITION = re.compile(r"^(?:note|tip|warning|caution|important|admonition)$", re.I)
_END = object()                       # stack marker: a block element's content has ended


def _load_html(data: bytes) -> ExtractedDocument:
    import warnings

    from bs4 import BeautifulSoup, CData, NavigableString, XMLParsedAsHTMLWarning

    warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)   # XHTML pages parse fine
    if looks_binary(data) and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("binary content, not text")
    try:
        markup: str | bytes = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        markup = data                          # bs4 honours <meta charset> and sniffs the rest
    soup = None
    for parser in ("lxml", "html.parser"):
        try:
            soup = BeautifulSoup(markup, parser)
            break
        except Exception as exc:               # lxml missing or markup rejected
            error = exc
    if soup is None:
        raise LoadError(f"corrupt HTML: {_short(error)}")

    title = _collapse(soup.title.get_text()) if soup.title else ""
    root = soup.body or soup
    for tag in root.find_all(_is_chrome):
        if not tag.decomposed:                 # its parent may have gone already
            tag.decompose()
    for br in root.find_all("br"):
        br.replace_with("\n")                  # whitespace outside <pre>, a line break inside

    out = _Blocks()
    buf: list[str] = []

    def flush() -> None:
        s = _collapse("".join(buf))
        buf.clear()
        if s:
            out.add(s)

    stack = list(reversed(root.contents))
    while stack:
        node = stack.pop()
        if node is _END:
            flush()
        elif isinstance(node, NavigableString):
            if type(node) in (NavigableString, CData):    # not comments, doctypes, ...
                buf.append(str(node))
        elif node.name in _HEADINGS:
            flush()
            text = _collapse(node.get_text())
            if text and node.find_parent(_is_admonition) is None:
                out.add(text, level=int(node.name[1]))
            elif text:                                     # DocBook's "Note" box titles
                out.add(text)
        elif node.name == "pre":
            flush()
            text = node.get_text().strip("\n").rstrip()
            if text.strip():
                out.add(text)
        elif node.name == "tr" and not node.find(_CELL_BLOCKS):
            flush()
            cells = [_collapse(c.get_text()) for c in node.find_all(["td", "th"], recursive=False)]
            row = " | ".join(c for c in cells if c)
            if row:
                out.add(row)
        elif node.name not in _INLINE:
            flush()
            stack.append(_END)
            stack.extend(reversed(node.contents))
        else:
            stack.extend(reversed(node.contents))
    flush()
    return ExtractedDocument(_nonempty(out.text(), "no text"), "html", out.headings, title=title or None)


def _is_chrome(tag) -> bool:
    name = tag.name
    attrs = tag.attrs
    words = list(attrs.get("class") or ()) + [attrs.get("id") or ""]
    if name in _DROP_TAGS:
        if name == "aside":                  # Sphinx puts footnotes in <aside>: content
            return not any("footnote" in w for w in words)
        # <header>/<footer> inside an article or section hold its title/notes, not site chrome
        return name not in ("header", "footer") or tag.find_parent(["article", "main", "section"]) is None
    if attrs.get("role") in _DROP_ROLES or "hidden" in attrs:
        return True
    if name in _INLINE:     # inline: only skip links and permalink marks ("toc-backref" wraps titles)
        return any(w == "headerlink" or ("skip" in w.lower() and "link" in w.lower()) for w in words)
    return any(_CHROME.search(w) for w in words if w)


def _is_admonition(tag) -> bool:
    return any(_ADMONITION.match(c) for c in tag.attrs.get("class") or ())


class _Blocks:
    """Paragraph blocks joined by blank lines, with heading offsets tracked as they are added."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.headings: list[Heading] = []

    def add(self, text: str, level: int | None = None) -> None:
        start = self.length + (2 if self.parts else 0)
        if level is not None:
            self.headings.append(Heading(start, level, text.split("\n", 1)[0]))
        self.parts.append(text)
        self.length = start + len(text)

    def text(self) -> str:
        return "\n\n".join(self.parts)


# ---------------------------------------------------------------- PDF

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


def _load_pdf(data: bytes) -> ExtractedDocument:
    logging.getLogger("pypdf").setLevel(logging.ERROR)     # malformed-but-readable noise
    from pypdf import PdfReader

    _widen_pypdf_word_gaps()

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")     # many PDFs are "encrypted" with no user password
            except Exception as exc:
                raise LoadError(f"encrypted PDF (cannot decrypt: {_short(exc)})") from None
            if not opened:
                raise LoadError("encrypted PDF (needs a password)")
        n_pages = len(reader.pages)
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"corrupt PDF: {_short(exc)}") from None

    out = _Blocks()
    pages: list[PageStart] = []
    spans: dict[int, tuple[int, int]] = {}      # page index -> (start, end) in text
    failed = 0
    for i in range(n_pages):
        try:
            raw = reader.pages[i].extract_text() or ""
        except Exception:                       # one broken page must not lose the others
            failed += 1
            continue
        page_text = _clean_pdf_text(raw)
        if page_text:
            out.add(page_text)
            pages.append(PageStart(out.length - len(page_text), i + 1))
            spans[i] = (pages[-1].start, out.length)
    if not pages:
        if failed == n_pages and n_pages:
            raise LoadError("corrupt PDF: no page could be read")
        raise LoadError("no extractable text (scanned PDF?)")
    text = out.text()
    return ExtractedDocument(text, "pdf", _pdf_headings(reader, text, spans), pages, title=_pdf_title(reader))


def _clean_pdf_text(raw: str) -> str:
    text = raw.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _pdf_title(reader) -> str | None:
    try:
        meta = reader.metadata
        return _collapse(str(meta.title or "")) or None if meta else None
    except Exception:
        return None


def _pdf_headings(reader, text: str, spans: dict[int, tuple[int, int]]) -> list[Heading]:
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
                title = _collapse(str(item.title or ""))
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


# ---------------------------------------------------------------- Word (.docx)

_DOCX_HEADING = re.compile(r"^Heading (\d)$")


def _load_docx(data: bytes) -> ExtractedDocument:
    try:
        import docx
        document = docx.Document(io.BytesIO(data))
        out = _Blocks()
        for text, level in _docx_blocks(document):
            out.add(text, level)
        title = _collapse(document.core_properties.title or "") or None
    except LoadError:
        raise
    except Exception as exc:        # not a zip, missing parts, bad XML: python-docx lets all through
        raise LoadError(f"corrupt Word file: {_short(exc)}") from None
    return ExtractedDocument(_nonempty(out.text(), "no text"), "docx", out.headings, title=title)


def _docx_blocks(document):
    """(text, heading level or None) for each paragraph and table row, in body order."""
    from docx.oxml.ns import qn
    from docx.text.paragraph import Paragraph

    p_tag, tbl_tag, sdt_tag = qn("w:p"), qn("w:tbl"), qn("w:sdt")
    tr_tag, tc_tag, t_tag = qn("w:tr"), qn("w:tc"), qn("w:t")
    gallery_tag, content_tag = qn("w:docPartGallery"), qn("w:sdtContent")
    stack = list(reversed(list(document.element.body.iterchildren())))
    while stack:
        el = stack.pop()
        if el.tag == p_tag:
            para = Paragraph(el, document)
            text = para.text.strip()
            if text:
                yield text, _docx_level(para)
        elif el.tag == tbl_tag:
            # Rows and cells straight from the XML: a merged cell is one w:tc there (python-docx's
            # grid view repeats it and raises on irregular grids).
            for tr in el.iterchildren(tr_tag):
                cells = (_collapse(" ".join("".join(t.text or "" for t in p.iter(t_tag)) for p in tc.iter(p_tag)))
                         for tc in tr.iterchildren(tc_tag))
                line = " | ".join(c for c in cells if c)
                if line:
                    yield line, None
        elif el.tag == sdt_tag:
            # Content controls: a generated table of contents is navigation, anything else is text.
            gallery = next(el.iter(gallery_tag), None)
            if gallery is not None and "contents" in (gallery.get(qn("w:val")) or "").lower():
                continue
            content = el.find(content_tag)
            if content is not None:
                stack.extend(reversed(list(content.iterchildren())))


def _docx_level(para) -> int | None:
    try:
        name = para.style.name if para.style is not None else ""
    except Exception:
        return None
    if name == "Title":
        return 1
    m = _DOCX_HEADING.match(name or "")
    return int(m.group(1)) if m else None


_LOADERS: dict[str, Callable[[bytes], ExtractedDocument]] = {
    "markdown": _load_markdown, "text": _load_text, "rst": _load_rst,
    "html": _load_html, "pdf": _load_pdf, "docx": _load_docx,
}
