"""EPUB (2 and 3): the book's XHTML documents in reading (spine) order, each read as HTML
with its headings kept; the title from the package's dc:title. An EPUB is a zip:
META-INF/container.xml names the package (.opf) file, whose manifest lists the files and
whose spine orders them. Read with zipfile and ElementTree, no new dependency."""

from __future__ import annotations

import posixpath
import zipfile
from urllib.parse import unquote

from ingest.document import ExtractedDocument, Heading, LoadError
from ingest.loaders.base import Blocks, Loader, collapse, open_zip, short

_HTML_TYPES = {"application/xhtml+xml", "text/html"}
# Font obfuscation (IDPF, Adobe) hides embedded fonts only; any other algorithm locks the text.
_FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}


def load(data: bytes) -> ExtractedDocument:
    with open_zip(data, "EPUB") as book:
        try:
            if _drm(book):
                raise LoadError("DRM-protected EPUB")
            title, author, chapters = _package(book)
        except LoadError:
            raise
        except Exception as exc:    # missing files, bad XML, a damaged entry
            raise LoadError(f"corrupt EPUB: {short(exc)}") from None
        out = Blocks()
        for name in chapters:
            doc = _chapter(book, name)
            if doc is not None:
                out.add(doc.text)
                base = out.length - len(doc.text)
                out.headings.extend(Heading(base + h.start, h.level, h.title) for h in doc.headings)
    if not out.parts:
        raise LoadError("no text in the book")
    return ExtractedDocument(out.text(), "epub", out.headings, title=title,
                             metadata={"author": author} if author else {})


def _read(book: zipfile.ZipFile, name: str) -> bytes:
    # open_zip checked the sizes; read(claim) inflates no more than the claim.
    info = book.getinfo(name)
    with book.open(info) as entry:
        return entry.read(info.file_size)


def _xml(book: zipfile.ZipFile, name: str):
    # ElementTree resolves no external entities, and expat >= 2.4 stops entity expansion bombs.
    from xml.etree import ElementTree

    return ElementTree.fromstring(_read(book, name))


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _drm(book: zipfile.ZipFile) -> bool:
    if "META-INF/encryption.xml" not in book.namelist():
        return False
    methods = [el.get("Algorithm", "") for el in _xml(book, "META-INF/encryption.xml").iter()
               if _local(el.tag) == "EncryptionMethod"]
    return any(m not in _FONT_OBFUSCATION for m in methods)


def _package(book: zipfile.ZipFile) -> tuple[str | None, str | None, list[str]]:
    """The title, the author and the spine's XHTML entries in reading order."""
    names = set(book.namelist())
    opf = None
    if "META-INF/container.xml" in names:
        opf = next((el.get("full-path") for el in _xml(book, "META-INF/container.xml").iter()
                    if _local(el.tag) == "rootfile" and el.get("full-path")), None)
    if opf is None:                 # no container: some tools forget it; the package is findable
        opf = next((n for n in sorted(names) if n.lower().endswith(".opf")), None)
    if opf is None or opf not in names:
        raise LoadError("corrupt EPUB: no package (.opf) file")
    root = _xml(book, opf)
    base = posixpath.dirname(opf)
    meta = {}
    manifest: dict[str, tuple[str, str]] = {}
    spine: list[str] = []
    for el in root.iter():
        tag = _local(el.tag)
        if tag in ("title", "creator") and tag not in meta and collapse(el.text or ""):
            meta[tag] = collapse(el.text or "")
        elif tag == "item" and el.get("id") and el.get("href"):
            href = unquote(el.get("href").split("#", 1)[0])
            manifest[el.get("id")] = (posixpath.normpath(posixpath.join(base, href)), el.get("media-type", ""))
        elif tag == "itemref" and el.get("idref"):
            spine.append(el.get("idref"))
    chapters = [manifest[i][0] for i in spine if i in manifest and manifest[i][1] in _HTML_TYPES]
    return meta.get("title"), meta.get("creator"), chapters


def _chapter(book: zipfile.ZipFile, name: str):
    """A spine document as HTML, or None when it has no text (a cover picture) or is missing."""
    from ingest.loaders import html as html_loader

    try:
        return html_loader.load(_read(book, name))
    except (KeyError, LoadError):   # a dangling manifest entry costs that entry only
        return None
    except Exception as exc:        # a damaged entry: bad CRC, truncated data
        raise LoadError(f"corrupt EPUB: {short(exc)}") from None


LOADER = Loader("epub", (".epub",), load)
