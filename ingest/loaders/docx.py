"""Word (.docx): paragraphs and table rows in body order, Title/Heading N styles as headings.
python-docx, with tables read from the XML (merged cells once) and generated TOCs skipped."""

from __future__ import annotations

import io
import re

from ingest.document import ExtractedDocument, LoadError
from ingest.loaders.base import Blocks, Loader, collapse, nonempty, open_zip, short

_HEADING = re.compile(r"^Heading (\d)$")


def load(data: bytes) -> ExtractedDocument:
    open_zip(data, "Word file").close()        # a zip bomb stops here, before the parser inflates it
    try:
        import docx
        document = docx.Document(io.BytesIO(data))
        out = Blocks()
        for text, level in _blocks(document):
            out.add(text, level)
        title = collapse(document.core_properties.title or "") or None
    except LoadError:
        raise
    except Exception as exc:        # not a zip, missing parts, bad XML: python-docx lets all through
        raise LoadError(f"corrupt Word file: {short(exc)}") from None
    return ExtractedDocument(nonempty(out.text(), "no text"), "docx", out.headings, title=title)


def _blocks(document):
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
                yield text, _level(para)
        elif el.tag == tbl_tag:
            # Rows and cells straight from the XML: a merged cell is one w:tc there (python-docx's
            # grid view repeats it and raises on irregular grids).
            for tr in el.iterchildren(tr_tag):
                cells = (collapse(" ".join("".join(t.text or "" for t in p.iter(t_tag)) for p in tc.iter(p_tag)))
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


def _level(para) -> int | None:
    try:
        name = para.style.name if para.style is not None else ""
    except Exception:
        return None
    if name == "Title":
        return 1
    m = _HEADING.match(name or "")
    return int(m.group(1)) if m else None


LOADER = Loader("docx", (".docx",), load)
