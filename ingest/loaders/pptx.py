"""PowerPoint (.pptx): one section per slide, its title a heading, then the text of its shapes
and table rows in reading order, then the speaker notes. Each slide is a page, so a citation
names the slide. python-pptx."""

from __future__ import annotations

import io

from ingest.document import ExtractedDocument, LoadError, PageStart
from ingest.loaders.base import Blocks, Loader, collapse, column_names, header_line, named_row, open_zip, short

# An OLE compound file: what Office writes for a password-protected .pptx, and a .ppt.
OLE_MAGIC = b"\xd0\xcf\x11\xe0"


def load(data: bytes) -> ExtractedDocument:
    if data.startswith(OLE_MAGIC):
        raise LoadError("encrypted or old-format (.ppt) PowerPoint file")
    open_zip(data, "PowerPoint file").close()        # a zip bomb stops here, before the parser inflates it
    try:
        from pptx import Presentation
        presentation = Presentation(io.BytesIO(data))
        out = Blocks()
        pages: list[PageStart] = []
        for number, slide in enumerate(presentation.slides, start=1):
            heading, parts = _slide(slide)
            if not heading and not parts:
                continue                # an empty slide: no section, its number is simply skipped
            out.add(heading or f"Slide {number}", level=1)
            pages.append(PageStart(out.headings[-1].start, number))
            for part in parts:
                out.add(part)
        title = collapse(presentation.core_properties.title or "") or None
    except LoadError:
        raise
    except Exception as exc:        # not a zip, missing parts, bad XML: python-pptx lets all through
        raise LoadError(f"corrupt PowerPoint file: {short(exc)}") from None
    if not pages:
        raise LoadError("no text in the slides")
    return ExtractedDocument(out.text(), "pptx", out.headings, pages, title=title)


def _slide(slide) -> tuple[str, list[str]]:
    """The slide's title and its text blocks: shapes, then the notes."""
    title_shape = slide.shapes.title
    title = collapse(title_shape.text_frame.text) if title_shape is not None else ""
    skip = title_shape.shape_id if title_shape is not None else None
    parts = list(_shapes(slide.shapes, skip))
    if slide.has_notes_slide:
        frame = slide.notes_slide.notes_text_frame
        notes = _frame_text(frame) if frame is not None else ""
        if notes:
            parts.append(f"Notes: {notes}")
    return title, parts


def _shapes(shapes, skip):
    # Tree order is PowerPoint's reading order (what its Reading Order pane edits and
    # screen readers follow), not the position on the slide.
    for shape in shapes:
        if shape.shape_id == skip or _is_furniture(shape):
            continue
        if hasattr(shape, "shapes"):                # a group: its members, in their order
            yield from _shapes(shape.shapes, skip)
        elif shape.has_text_frame:
            text = _frame_text(shape.text_frame)
            if text:
                yield text
        elif getattr(shape, "has_table", False):
            text = _table(shape.table)
            if text:
                yield text
        # pictures, charts, media: nothing to read (SmartArt is not reachable through python-pptx)


def _is_furniture(shape) -> bool:
    # Footer, date and slide-number placeholders repeat on every slide and say nothing.
    from pptx.enum.shapes import PP_PLACEHOLDER

    return shape.is_placeholder and shape.placeholder_format.type in (
        PP_PLACEHOLDER.FOOTER, PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.SLIDE_NUMBER)


def _frame_text(frame) -> str:
    """One line per non-empty paragraph (bullets stay apart; a soft line break is a space)."""
    return "\n".join(line for line in (collapse(p.text) for p in frame.paragraphs) if line)


def _table(table) -> str:
    """Rows as "Header: value; ..." lines, the first row naming the columns, as CSV tables read."""
    rows = [[collapse(cell.text) if not cell.is_spanned else "" for cell in row.cells] for row in table.rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return ""
    names = column_names(rows[0])
    return "\n".join(named_row(names, row) for row in rows[1:]) or header_line(names)


LOADER = Loader("pptx", (".pptx",), load)
