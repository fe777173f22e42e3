"""HTML: the page's text as paragraph blocks, h1-h6 as headings, site chrome (navigation,
headers, sidebars, tables of contents, scripts) left out. BeautifulSoup with lxml."""

from __future__ import annotations

import re

from ingest.document import ExtractedDocument, LoadError
from ingest.loaders.base import Blocks, Loader, collapse, nonempty, short
from ingest.textdecode import looks_binary

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


def load(data: bytes) -> ExtractedDocument:
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
        raise LoadError(f"corrupt HTML: {short(error)}")

    title = collapse(soup.title.get_text()) if soup.title else ""
    root = soup.body or soup
    # Read before the chrome goes (permalinks are chrome); keyed by identity, with the
    # headings kept alive so that no id is reused.
    headings = root.find_all(list(_HEADINGS))
    anchors = {id(h): _anchor(h) for h in headings}
    for tag in root.find_all(_is_chrome):
        if not tag.decomposed:                 # its parent may have gone already
            tag.decompose()
    for br in root.find_all("br"):
        br.replace_with("\n")                  # whitespace outside <pre>, a line break inside

    out = Blocks()
    buf: list[str] = []

    def flush() -> None:
        s = collapse("".join(buf))
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
            text = collapse(node.get_text())
            if text and node.find_parent(_is_admonition) is None:
                out.add(text, level=int(node.name[1]), anchor=anchors.get(id(node)))
            elif text:                                     # DocBook's "Note" box titles
                out.add(text)
        elif node.name == "pre":
            flush()
            text = node.get_text().strip("\n").rstrip()
            if text.strip():
                out.add(text)
        elif node.name == "tr" and not node.find(_CELL_BLOCKS):
            flush()
            cells = [collapse(c.get_text()) for c in node.find_all(["td", "th"], recursive=False)]
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
    return ExtractedDocument(nonempty(out.text(), "no text"), "html", out.headings, title=title or None)


def _anchor(heading) -> str | None:
    """The fragment a link to this heading uses: its own id, an id or name inside it
    (<a name="x">), its permalink's "#x", or the id of the section it opens (Sphinx)."""
    if heading.get("id"):
        return heading["id"]
    for tag in heading.find_all(True):
        if tag.get("id") or (tag.name == "a" and tag.get("name")):
            return tag.get("id") or tag.get("name")
        href = tag.get("href") if tag.name == "a" else None
        if href and href.startswith("#") and len(href) > 1:
            return href[1:]
    parent = heading.parent
    if parent is not None and parent.get("id") and parent.name in ("section", "div", "article") \
            and parent.find(list(_HEADINGS)) is heading:
        return parent["id"]
    return None


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


LOADER = Loader("html", (".html", ".htm", ".xhtml"), load)
