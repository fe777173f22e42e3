"""One loader per format, each turning a file into an ExtractedDocument (text, headings,
pages). Parsers are well-kept libraries, imported only when their format is met:
markdown-it-py, BeautifulSoup (lxml), pypdf, python-docx. Every bad input becomes a
LoadError whose message is one line a user can act on.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

from ingest.document import ExtractedDocument, Heading, LoadError, PageStart
from ingest.textdecode import decode_text

FORMATS = {
    ".md": "markdown", ".markdown": "markdown",
    ".txt": "text", ".text": "text",
    ".rst": "rst", ".rest": "rst",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}


def format_for(path: Path) -> str | None:
    """The format docent reads `path` as, or None if it does not read it."""
    name = Path(path).name.lower()
    if name.endswith(".rst.txt"):          # Sphinx ships its sources like this
        return "rst"
    return FORMATS.get(Path(name).suffix)


def load_file(path: Path, max_bytes: int | None = None) -> ExtractedDocument:
    path = Path(path)
    fmt = format_for(path)
    if fmt is None:
        raise LoadError(f"unsupported format ({path.suffix or 'no extension'})")
    data = _read(path, max_bytes)
    if not data.strip():
        raise LoadError("empty file")
    doc = _LOADERS[fmt](data)
    doc.text = doc.text.rstrip()
    if not doc.text.strip():
        raise LoadError({"pdf": "no extractable text (scanned PDF?)", "html": "no text in the page",
                         "docx": "no text in the document"}.get(fmt, "empty file"))
    doc.headings = sorted((h for h in doc.headings if h.start < len(doc.text)), key=lambda h: h.start)
    return doc


def _read(path: Path, max_bytes: int | None) -> bytes:
    try:
        if path.is_symlink() and not path.exists():
            raise LoadError("broken symlink (target missing)")
        if path.is_dir():
            raise LoadError("is a folder, not a file")
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise LoadError(f"too large: {size / 1e6:.1f} MB (limit {max_bytes / 1e6:.0f} MB)")
        return path.read_bytes()
    except PermissionError:
        raise LoadError("permission denied") from None
    except FileNotFoundError:
        raise LoadError("file not found") from None
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None


# -- plain text formats: the text is the file; headings point into it ----------------

def _load_text(data: bytes) -> ExtractedDocument:
    return ExtractedDocument(text=decode_text(data), format="text")


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)


def _load_markdown(data: bytes) -> ExtractedDocument:
    from markdown_it import MarkdownIt

    text = decode_text(data)
    metadata: dict[str, str] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        for line in match.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() and not line.startswith((" ", "\t", "-")):
                metadata[key.strip().lower()] = value.strip().strip("'\"")
        text = text[match.end():]
    line_starts = _line_starts(text)
    tokens = MarkdownIt("commonmark").parse(text)
    headings = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            title = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            if title:
                headings.append(Heading(line_starts[token.map[0]], int(token.tag[1]), _plain(title)))
    return ExtractedDocument(text=text, format="markdown", headings=headings,
                             title=metadata.get("title") or None, metadata=metadata)


def _plain(markdown_inline: str) -> str:
    """Heading text without inline markup: `code`, **bold**, [link](url)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", markdown_inline)
    return re.sub(r"[`*_]", "", text).strip()


_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:._!$%&,;<>?@\\/|])\1{2,}\s*$")


def _load_rst(data: bytes) -> ExtractedDocument:
    """Section titles are a line underlined (optionally overlined too) with one repeated
    punctuation character; levels follow the order in which styles first appear, as in
    docutils. A line-based reading keeps offsets in the raw text, which docutils' tree
    would lose."""
    text = decode_text(data)
    lines = text.split("\n")
    starts = _line_starts(text)
    styles: list[tuple[str, bool]] = []
    headings = []
    i = 0
    while i < len(lines) - 1:
        line, below = lines[i], lines[i + 1]
        title = line.strip()
        over = None
        if _RST_ADORNMENT.match(line) and i + 2 < len(lines) and lines[i + 1].strip() \
                and lines[i + 2].rstrip() == line.rstrip():
            over, title, start, skip = line.strip()[0], lines[i + 1].strip(), starts[i], 3
        elif title and not _RST_ADORNMENT.match(line) and _RST_ADORNMENT.match(below) \
                and len(below.rstrip()) >= len(line.rstrip()) and (i == 0 or not lines[i - 1].strip()):
            start, skip = starts[i], 2
        else:
            i += 1
            continue
        style = ((over or below.strip()[0]), over is not None)
        if style not in styles:
            styles.append(style)
        headings.append(Heading(start, styles.index(style) + 1, title))
        i += skip
    return ExtractedDocument(text=text, format="rst", headings=headings)


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
    return starts


# -- HTML -------------------------------------------------------------------------

_DROP_TAGS = ["script", "style", "noscript", "template", "svg", "nav", "footer", "aside",
              "form", "button", "iframe", "head"]
_DROP_ROLES = {"navigation", "banner", "contentinfo", "search"}
_DROP_CLASSES = {"navheader", "navfooter", "sidebar", "breadcrumb", "breadcrumbs", "skip-link", "toc",
                 "navigation", "nav", "menu", "footer"}
_BLOCKS = {"p", "li", "pre", "blockquote", "dt", "dd", "tr", "div", "section", "article", "main", "table",
           "ul", "ol", "dl", "figure", "figcaption", "caption", "address", "details", "summary", "body", "td", "th"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


def _load_html(data: bytes) -> ExtractedDocument:
    from bs4 import BeautifulSoup, NavigableString, Tag
    from bs4 import Comment, Doctype, ProcessingInstruction

    import warnings
    from bs4 import XMLParsedAsHTMLWarning

    warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)   # XHTML pages parse fine
    try:
        soup = BeautifulSoup(data, "lxml")
    except Exception:  # lxml missing or choking: the pure-Python parser is slower but lenient
        soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    # A <header> is a site banner unless it carries the page's own title.
    for tag in soup.find_all("header"):
        if not tag.find(["h1", "h2", "h3"]):
            tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed:
            continue
        classes = {c.lower() for c in (tag.get("class") or [])}
        if tag.get("role", "").lower() in _DROP_ROLES or classes & _DROP_CLASSES \
                or (tag.get("id") or "").lower() in _DROP_CLASSES or tag.get("hidden") is not None:
            tag.decompose()

    parts: list[str] = []          # finished blocks
    headings: list[tuple[int, int, str]] = []   # (block index, level, title)
    current: list[str] = []

    def end_block() -> None:
        block = " ".join("".join(current).split()) if current else ""
        current.clear()
        if block:
            parts.append(block)

    def walk(node) -> None:
        for child in node.children:
            if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                current.append(str(child))
            elif isinstance(child, Tag):
                name = child.name.lower()
                if name in _HEADINGS:
                    end_block()
                    heading = " ".join(child.get_text(" ").split())
                    if heading:
                        headings.append((len(parts), _HEADINGS[name], heading))
                        parts.append(heading)
                elif name == "pre":
                    end_block()
                    block = child.get_text().strip("\n")
                    if block.strip():
                        parts.append(block)
                elif name == "br":
                    current.append("\n")
                elif name in ("td", "th"):
                    current.append(" | " if current and "".join(current).strip() else "")
                    walk(child)
                elif name in _BLOCKS:
                    end_block()
                    walk(child)
                    end_block()
                else:
                    walk(child)

    walk(soup.body or soup)
    end_block()
    text, offsets = _join_blocks(parts)
    return ExtractedDocument(text=text, format="html", title=title or None,
                             headings=[Heading(offsets[i], level, t) for i, level, t in headings])


def _join_blocks(parts: list[str]) -> tuple[str, list[int]]:
    offsets, pos = [], 0
    for part in parts:
        offsets.append(pos)
        pos += len(part) + 2
    return "\n\n".join(parts), offsets


# -- PDF --------------------------------------------------------------------------

def _load_pdf(data: bytes) -> ExtractedDocument:
    import io

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password and open for anyone.
            try:
                opened = reader.decrypt("")
            except DependencyError:
                raise LoadError("encrypted PDF (AES: install the cryptography package)") from None
            except Exception:
                opened = False
            if not opened:
                raise LoadError("encrypted PDF (needs a password)")
        n_pages = len(reader.pages)
    except LoadError:
        raise
    except FileNotDecryptedError:
        raise LoadError("encrypted PDF (needs a password)") from None
    except Exception as exc:  # pypdf raises many types for broken files
        raise LoadError(f"corrupt PDF: {_short(exc)}") from None

    texts, pages = [], []
    pos = 0
    for number in range(n_pages):
        try:
            page_text = reader.pages[number].extract_text() or ""
        except Exception:  # one damaged page should not cost the whole document
            continue
        page_text = page_text.replace("\r\n", "\n").replace("\x00", "").strip()
        if not page_text:
            continue
        if texts:
            pos += 2
        pages.append(PageStart(pos, number + 1))
        texts.append(page_text)
        pos += len(page_text)
    text = "\n\n".join(texts)
    headings = _pdf_outline(reader, text, pages)
    title = None
    try:
        meta = reader.metadata
        title = (meta.title or "").strip() or None if meta else None
    except Exception:
        pass
    return ExtractedDocument(text=text, format="pdf", headings=headings, pages=pages, title=title)


def _pdf_outline(reader, text: str, pages: list[PageStart]) -> list[Heading]:
    """Bookmarks become headings at the start of their page (or at their title, if the
    page's text contains it)."""
    try:
        outline = reader.outline
    except Exception:
        return []
    page_start = {p.page: p.start for p in pages}
    page_end = {p.page: (pages[i + 1].start if i + 1 < len(pages) else len(text)) for i, p in enumerate(pages)}
    headings: list[Heading] = []

    def visit(items, level: int) -> None:
        for item in items:
            if isinstance(item, list):
                visit(item, level + 1)
                continue
            try:
                number = reader.get_destination_page_number(item) + 1
                title = " ".join(str(item.title).split())
            except Exception:
                continue
            if number not in page_start or not title:
                continue
            start = page_start[number]
            found = text.lower().find(title.lower(), start, page_end[number])
            headings.append(Heading(found if found >= 0 else start, level, title))

    visit(outline, 1)
    return headings


# -- Word -------------------------------------------------------------------------

def _load_docx(data: bytes) -> ExtractedDocument:
    import io

    try:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise LoadError(f"corrupt Word file: {_short(exc)}") from None
    except Exception as exc:  # python-docx and lxml raise many types for damaged files
        raise LoadError(f"corrupt Word file: {_short(exc)}") from None

    parts: list[str] = []
    headings: list[tuple[int, int, str]] = []
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(element, document)
            content = paragraph.text.strip()
            if not content:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            level = 1 if style == "Title" else _heading_level(style)
            if level:
                headings.append((len(parts), level, " ".join(content.split())))
            parts.append(content)
        elif tag == "tbl":
            for row in Table(element, document).rows:
                cells = []
                for cell in row.cells:
                    value = " ".join(cell.text.split())
                    if value and (not cells or cells[-1] != value):   # merged cells repeat
                        cells.append(value)
                if cells:
                    parts.append(" | ".join(cells))
    text, offsets = _join_blocks(parts)
    title = (document.core_properties.title or "").strip() or None
    return ExtractedDocument(text=text, format="docx", title=title,
                             headings=[Heading(offsets[i], level, t) for i, level, t in headings])


def _heading_level(style: str) -> int:
    match = re.match(r"Heading (\d)$", style)
    return int(match.group(1)) if match else 0


def _short(exc: Exception) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return message[:120]


_LOADERS = {"markdown": _load_markdown, "text": _load_text, "rst": _load_rst, "html": _load_html,
            "pdf": _load_pdf, "docx": _load_docx}
