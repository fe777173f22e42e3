"""Builders for test fixtures: real files made on the fly (no binary fixtures in git).

PDFs are drawn with fpdf2 (a test-only dependency) and post-processed with pypdf for
bookmarks and encryption; .docx files are written with python-docx.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence


def make_pdf(path: Path, pages: Sequence[str], outline: Sequence[tuple] | None = None,
             password: str | None = None, title: str | None = None) -> Path:
    """A real PDF with one page per entry of `pages` (an empty string: a page without text;
    Latin-1 characters only, the core fonts have no others). `outline` entries are
    (title, page) or (title, page, level), pages 1-based, level 1 = top. `password`
    encrypts it (AES-128); an empty string encrypts it with an empty user password, which
    any reader opens without asking."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    if title:
        pdf.set_title(title)
    raw = bytes(pdf.output())
    if outline or password is not None:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(raw)))
        parents: dict[int, object] = {}
        for entry in outline or []:
            name, page, level = (*entry, 1)[:3]
            parents[level] = writer.add_outline_item(title=name, page_number=page - 1, parent=parents.get(level - 1))
        if password is not None:
            writer.encrypt(user_password=password, owner_password="owner-secret", algorithm="AES-128")
        buf = io.BytesIO()
        writer.write(buf)
        raw = buf.getvalue()
    path.write_bytes(raw)
    return path


def make_corrupt_pdf(path: Path, kind: str = "garbage") -> Path:
    """"garbage": a PDF header and nonsense; "truncated": a real PDF cut to a third;
    "no-text": a valid PDF whose pages have no text (like a scan)."""
    if kind == "garbage":
        path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage \x00\xff" * 3)
    elif kind == "truncated":
        good = make_pdf(path, ["Some text that will be cut off."]).read_bytes()
        path.write_bytes(good[: len(good) // 3])
    elif kind == "no-text":
        make_pdf(path, ["", ""])
    else:
        raise ValueError(kind)
    return path


def make_docx(path: Path, blocks: Sequence[tuple[str, object]], title: str | None = None) -> Path:
    """blocks: ("title" | "h1".."h9" | "p", text) or ("table", rows) where rows is a list
    of lists of cell texts or the shorthand "a,b;c,d"."""
    import docx

    document = docx.Document()
    for kind, value in blocks:
        if kind == "title":
            document.add_heading(value, level=0)
        elif kind[0] == "h" and kind[1:].isdigit():
            document.add_heading(value, level=int(kind[1:]))
        elif kind == "table":
            rows = [r.split(",") for r in value.split(";")] if isinstance(value, str) else value
            table = document.add_table(rows=len(rows), cols=max(len(r) for r in rows))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
        elif kind == "p":
            document.add_paragraph(value)
        else:
            raise ValueError(kind)
    if title:
        document.core_properties.title = title
    document.save(path)
    return path


def make_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """A text file in any codec; "utf-16" and "utf-8-sig" write a byte-order mark."""
    path.write_bytes(text.encode(encoding))
    return path


def make_binary(path: Path, size: int = 4096) -> Path:
    """Bytes that are no text in any encoding (NULs and control characters included)."""
    path.write_bytes(bytes(range(256)) * (size // 256 + 1))
    return path


def make_pdf_from_stream(path: Path, content: bytes, base_font: str = "Courier") -> Path:
    """A one-page PDF whose page runs the raw content stream `content`, with one of the
    standard 14 fonts as /F1: for text drawn the way other PDF producers draw it
    (e.g. TJ arrays whose number gaps stand for the spaces)."""
    from pypdf import PdfWriter
    from pypdf.generic import ContentStream, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/" + base_font)})
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    stream = ContentStream(None, None)
    stream.set_data(content)
    page.replace_contents(stream)
    with open(path, "wb") as fh:
        writer.write(fh)
    return path
