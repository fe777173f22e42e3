"""Builders for test fixtures: real files made on the fly (no binary fixtures in git)."""

from __future__ import annotations

from pathlib import Path


def make_pdf(path: Path, pages: list[str], outline: list[tuple[str, int, int]] | None = None,
             password: str | None = None) -> Path:
    """A real PDF with one text page per entry; `outline` is (title, page number, level);
    `password` encrypts it (an empty string: encrypted, but opens without a password)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.set_title("Test handbook")
    raw = bytes(pdf.output())
    path.write_bytes(raw)
    if outline or password is not None:
        from pypdf import PdfReader, PdfWriter
        writer = PdfWriter(clone_from=PdfReader(path))
        parents: dict[int, object] = {}
        for title, page, level in outline or []:
            parents[level] = writer.add_outline_item(title=title, page_number=page - 1, parent=parents.get(level - 1))
        if password is not None:
            writer.encrypt(user_password=password, owner_password="owner-secret", algorithm="AES-128")
        with open(path, "wb") as fh:
            writer.write(fh)
    return path


def make_docx(path: Path, blocks: list[tuple[str, str]]) -> Path:
    """blocks: ("title"|"h1".."h3"|"p", text) or ("table", "a,b;c,d")."""
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind == "title":
            document.add_heading(text, level=0)
        elif kind.startswith("h"):
            document.add_heading(text, level=int(kind[1]))
        elif kind == "table":
            rows = [r.split(",") for r in text.split(";")]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
        else:
            document.add_paragraph(text)
    document.core_properties.title = "Word handbook"
    document.save(path)
    return path
