"""PowerPoint, Excel, e-mail and EPUB loaders on files the tests make, and their bad inputs."""

import copy
import datetime as dt
import io
import random
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from ingest.document import LoadError
from ingest.loaders import format_for, load_file, xlsx

OLE_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)


def _headings(doc):
    return [(h.level, h.title) for h in doc.headings]


def _at(doc, heading, n=60):
    return doc.text[heading.start:heading.start + n]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _random(n=3000, seed=7, prefix=b""):
    rng = random.Random(seed)
    return prefix + bytes(rng.randrange(256) for _ in range(n))


def _load_error(path: Path) -> str:
    with pytest.raises(LoadError) as caught:
        load_file(path)
    reason = str(caught.value)
    assert "\n" not in reason and str(path) not in reason
    return reason


def test_new_suffixes_are_routed():
    assert format_for(Path("deck.PPTX")) == "pptx"
    assert format_for(Path("budget.xlsx")) == format_for(Path("macros.xlsm")) == "spreadsheet"
    assert format_for(Path("thread.eml")) == format_for(Path("archive.mbox")) == "email"
    assert format_for(Path("book.epub")) == "epub"
    for name in ("old.ppt", "old.xls", "mail.msg"):
        assert format_for(Path(name)) is None


# -- PowerPoint --------------------------------------------------------------------

def _deck(path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    one = deck.slides.add_slide(deck.slide_layouts[1])              # title and content
    one.shapes.title.text = "Quarterly review"
    one.placeholders[1].text_frame.text = "Revenue up 4%\nCosts flat"
    table = one.shapes.add_table(3, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    for (r, c), value in {(0, 0): "Team", (0, 1): "Lead", (1, 0): "eng", (1, 1): "Ada",
                          (2, 0): "ops"}.items():
        table.cell(r, c).text = value
    group = one.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(6), Inches(3), Inches(1)).text_frame.text = "Grouped caption"
    one.notes_slide.notes_text_frame.text = "Mention the hiring freeze."
    footer = next(ph for ph in deck.slide_layouts[1].placeholders if ph.placeholder_format.idx == 11)
    one.shapes._spTree.append(copy.deepcopy(footer._element))      # what "Insert > Footer" does
    one.placeholders[11].text_frame.text = "Company Confidential"
    two = deck.slides.add_slide(deck.slide_layouts[6])              # blank: no title
    two.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1)).text_frame.text = "Untitled thoughts"
    deck.slides.add_slide(deck.slide_layouts[6])                   # empty: nothing to cite
    four = deck.slides.add_slide(deck.slide_layouts[5])             # title only
    four.shapes.title.text = "Next steps"
    deck.core_properties.title = "Q3 deck"
    deck.save(path)
    return path


def test_each_slide_is_a_titled_section_and_a_page_with_its_notes(tmp_path):
    doc = load_file(_deck(tmp_path / "review.pptx"))
    assert doc.format == "pptx" and doc.title == "Q3 deck"
    assert _headings(doc) == [(1, "Quarterly review"), (1, "Slide 2"), (1, "Next steps")]
    assert [(p.page, p.start) for p in doc.pages] == [(1, 0), (2, doc.headings[1].start), (4, doc.headings[2].start)]
    first = doc.text[:doc.headings[1].start]
    assert first.split("\n\n") == ["Quarterly review", "Revenue up 4%\nCosts flat", "Team: eng; Lead: Ada.\nTeam: ops.",
                                   "Grouped caption", "Notes: Mention the hiring freeze.", ""]
    assert _at(doc, doc.headings[1]) == "Slide 2\n\nUntitled thoughts\n\nNext steps"
    assert "Confidential" not in doc.text                          # footers repeat on every slide


def test_bad_powerpoint_files(tmp_path):
    assert _load_error(_write(tmp_path / "junk.pptx", _random())).startswith("corrupt PowerPoint file: ")
    assert _load_error(_write(tmp_path / "zip.pptx", _zip({"a.txt": "hello"}))).startswith("corrupt PowerPoint file: ")
    assert _load_error(_write(tmp_path / "locked.pptx", OLE_HEADER)) == "encrypted or old-format (.ppt) PowerPoint file"
    from pptx import Presentation
    deck = Presentation()
    deck.slides.add_slide(deck.slide_layouts[6])
    deck.save(tmp_path / "blank.pptx")
    assert _load_error(tmp_path / "blank.pptx") == "no text in the slides"


# -- Excel -------------------------------------------------------------------------

def _workbook(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    owners = book.active
    owners.title = "Owners"
    for r, row in enumerate([["Service", "Owner", "Since", "Cost"],
                             ["billing", "Dana", dt.datetime(2024, 3, 1), 1200.0],
                             [], ["search", None, dt.datetime(2024, 5, 2, 9, 30), 0.1 + 0.2, True]], start=3):
        for c, value in enumerate(row, start=1):
            owners.cell(r, c, value)
    scratch = book.create_sheet("Scratch")
    scratch.append(["note"])
    scratch.append(["secret scratch work"])
    scratch.sheet_state = "hidden"
    budget = book.create_sheet("Budget 2025")
    budget.append(["Item", "Amount"])
    budget.append(["Laptops", 42])
    book.create_sheet("Empty")
    columns = book.create_sheet("Template")
    columns.append(["Name", "Email"])
    book.properties.title = "Service costs"
    book.save(path)
    return path


def test_each_row_of_a_sheet_keeps_its_column_names(tmp_path):
    doc = load_file(_workbook(tmp_path / "costs.xlsx"))
    assert doc.format == "spreadsheet" and doc.title == "Service costs"
    assert _headings(doc) == [(1, "Owners"), (1, "Budget 2025"), (1, "Template")]
    assert doc.text == ("Owners\n\n"
                        "Service: billing; Owner: Dana; Since: 2024-03-01; Cost: 1200.\n"
                        "Service: search; Since: 2024-05-02 09:30; Cost: 0.3; column 5: TRUE.\n\n"
                        "Budget 2025\n\nItem: Laptops; Amount: 42.\n\n"
                        "Template\n\nColumns: Name, Email.")
    assert "secret scratch" not in doc.text and "Scratch" not in doc.metadata["sheets"]
    assert _at(doc, doc.headings[1]).startswith("Budget 2025\n\nItem: Laptops")


def test_macro_workbook_is_read_too(tmp_path):
    data = _workbook(tmp_path / "costs.xlsx").read_bytes()
    assert "Owner: Dana" in load_file(_write(tmp_path / "costs.xlsm", data)).text


def test_a_workbook_over_the_row_cap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(xlsx, "MAX_ROWS", 3)
    assert _load_error(_workbook(tmp_path / "big.xlsx")).startswith("too many rows (over 3")


def test_bad_excel_files(tmp_path):
    import openpyxl

    assert _load_error(_write(tmp_path / "junk.xlsx", _random())).startswith("corrupt Excel file: ")
    assert _load_error(_write(tmp_path / "zip.xlsx", _zip({"a.txt": "hello"}))).startswith("corrupt Excel file: ")
    assert _load_error(_write(tmp_path / "locked.xlsx", OLE_HEADER)) == "encrypted or old-format (.xls) Excel file"
    openpyxl.Workbook().save(tmp_path / "empty.xlsx")
    assert _load_error(tmp_path / "empty.xlsx") == "no data in the sheets"
    book = openpyxl.Workbook()
    hidden = book.create_sheet("Hidden")
    hidden.append(["only", "here"])
    hidden.sheet_state = "hidden"
    book.save(tmp_path / "hidden.xlsx")
    assert _load_error(tmp_path / "hidden.xlsx") == "no data in the sheets"


# -- e-mail ------------------------------------------------------------------------

def _mail(subject, body, sender="Dana Smith <dana@example.com>", html=None, date="Fri, 07 Mar 2025 10:15:00 +0000"):
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "team@example.com"
    msg["Date"] = date
    if subject:
        msg["Subject"] = subject
    if body is not None:
        msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html") if body is not None else msg.set_content(html, subtype="html")
    return msg


def test_a_message_with_its_attachments(tmp_path):
    msg = _mail("Offsite plan", "We meet on Friday at 10.\nBring laptops.\n",
                html="<p>We meet on <b>Friday</b> (HTML copy).</p>")
    msg.add_attachment(b"Agenda: budget, hiring.\n", maintype="text", subtype="plain", filename="notes.txt")
    msg.add_attachment(b"Name,Team\nAda,eng\n", maintype="text", subtype="csv", filename="team.csv")
    msg.add_attachment(b"# Travel\n\n## Trains\n\nBook early.\n", maintype="text", subtype="markdown",
                       filename="travel.md")
    msg.add_attachment(b"PK\x03\x04 not really a zip", maintype="application", subtype="octet-stream",
                       filename="broken.docx")
    msg.add_attachment(b"\x00\x01", maintype="application", subtype="zip", filename="photos.zip")
    doc = load_file(_write(tmp_path / "offsite.eml", bytes(msg)))
    assert doc.format == "email" and doc.title == "Offsite plan"
    assert doc.metadata == {"from": "Dana Smith <dana@example.com>", "date": "Fri, 07 Mar 2025 10:15:00 +0000",
                            "subject": "Offsite plan"}
    assert _headings(doc) == [(1, "Offsite plan"), (2, "Attachment: notes.txt"), (2, "Attachment: team.csv"),
                              (2, "Attachment: travel.md"), (3, "Travel"), (4, "Trains")]
    blocks = doc.text.split("\n\n")
    assert blocks[:3] == ["Offsite plan",
                          "From: Dana Smith <dana@example.com>; To: team@example.com; "
                          "Date: Fri, 07 Mar 2025 10:15:00 +0000",
                          "We meet on Friday at 10.\nBring laptops."]          # the plain part, not the HTML copy
    assert "Agenda: budget, hiring." in blocks and "Name: Ada; Team: eng." in blocks
    assert _at(doc, doc.headings[4]).startswith("# Travel")
    note = [b for b in blocks if b.startswith("Attachment broken.docx not read: corrupt Word file: ")]
    assert len(note) == 1 and "\n" not in note[0]
    assert "photos.zip" not in doc.text and "HTML copy" not in doc.text


def test_an_html_only_message_is_read_as_text(tmp_path):
    msg = _mail(None, None, html="<html><body><script>track()</script><h1>Outage</h1><p>DB down 2h.</p></body></html>")
    doc = load_file(_write(tmp_path / "outage.eml", bytes(msg)))
    assert doc.title is None and _headings(doc)[0] == (1, "(no subject)")
    assert "Outage\n\nDB down 2h." in doc.text and "track()" not in doc.text


def test_attached_messages_are_read_two_levels_deep(tmp_path):
    deepest = _mail("Level three", "Third body.")
    deepest.add_attachment(b"too deep to read\n", maintype="text", subtype="plain", filename="c.txt")
    middle = _mail("Level two", "Second body.")
    middle.add_attachment(b"attachment of level two\n", maintype="text", subtype="plain", filename="b.txt")
    middle.add_attachment(bytes(deepest), maintype="application", subtype="octet-stream", filename="three.eml")
    top = _mail("Level one", "First body.")
    top.add_attachment(middle)                                     # message/rfc822
    doc = load_file(_write(tmp_path / "fwd.eml", bytes(top)))
    assert _headings(doc) == [(1, "Level one"), (2, "Attachment: attached message.eml"), (3, "Level two"),
                              (4, "Attachment: b.txt"), (4, "Attachment: three.eml"), (5, "Level three")]
    assert "attachment of level two" in doc.text and "Third body." in doc.text
    assert "too deep to read" not in doc.text
    assert "Attachment c.txt not read: attached more than 2 levels deep" in doc.text


def _mbox(*messages: EmailMessage) -> bytes:
    parts = []
    for n, msg in enumerate(messages):
        raw = bytes(msg).replace(b"\r\n", b"\n")
        raw = raw.replace(b"\n>From ", b"\n>>From ").replace(b"\nFrom the", b"\n>From the")   # mboxrd quoting
        parts.append(b"From dana@example.com Fri Mar  7 10:1%d:00 2025\n" % n + raw + b"\n")
    return b"".join(parts)


def test_a_mailbox_gives_each_message_in_order(tmp_path):
    data = _mbox(_mail("First", "Hello.\nFrom the start it was clear.\n"),
                 _mail("Second", "Quoting:\n\nFrom here on we split nothing.\n"),
                 _mail("Third", "Bye."))
    doc = load_file(_write(tmp_path / "archive.mbox", data))
    assert doc.format == "email" and doc.metadata == {"messages": "3"}
    assert _headings(doc) == [(1, "First"), (1, "Second"), (1, "Third")]
    assert "From the start it was clear." in doc.text and ">From" not in doc.text
    assert "From here on we split nothing." in doc.text


def test_bad_email_files(tmp_path):
    assert _load_error(_write(tmp_path / "junk.eml", _random())) == "not an e-mail message"
    assert _load_error(_write(tmp_path / "ole.eml", OLE_HEADER)) == "not an e-mail message"
    assert _load_error(_write(tmp_path / "prose.eml", b"Just some notes\nabout nothing.\n")) == "not an e-mail message"
    assert _load_error(_write(tmp_path / "junk.mbox", _random())) == "no messages in the mailbox"
    assert _load_error(_write(tmp_path / "prose.mbox", b"From the notes:\nnothing here.\n")) == \
        "no messages in the mailbox"


# -- EPUB --------------------------------------------------------------------------

def _zip(entries: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return buf.getvalue()


CONTAINER = ('<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
             '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
             '</rootfiles></container>')


def _opf(spine=("ch1", "ch2")):
    return ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>The Ops Book</dc:title>'
            '<dc:creator>Dana Smith</dc:creator></metadata><manifest>'
            '<item id="ch2" href="text/chapter%202.xhtml" media-type="application/xhtml+xml"/>'
            '<item id="ch1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/>'
            '<item id="cover" href="cover.xhtml" media-type="application/xhtml+xml"/>'
            '<item id="css" href="style.css" media-type="text/css"/>'
            f'</manifest><spine>{"".join(f"<itemref idref={i!r}/>" for i in spine)}</spine></package>')


def _xhtml(body):
    return ('<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title></head>'
            f"<body>{body}</body></html>")


def _epub(extra=None, spine=("cover", "ch1", "ch2")) -> bytes:
    entries = {"mimetype": "application/epub+zip", "META-INF/container.xml": CONTAINER,
               "OEBPS/content.opf": _opf(spine), "OEBPS/cover.xhtml": _xhtml('<img src="cover.png"/>'),
               "OEBPS/text/chapter 2.xhtml": _xhtml("<h1>Restoring</h1><p>Restore from the nightly copy.</p>"),
               "OEBPS/text/ch1.xhtml": _xhtml("<h1>Backups</h1><p>Backups run nightly.</p>"
                                              "<h2>Retention</h2><p>30 days.</p>"),
               "OEBPS/style.css": "p {}"}
    entries.update(extra or {})
    return _zip(entries)


def test_epub_chapters_in_spine_order_with_their_headings(tmp_path):
    doc = load_file(_write(tmp_path / "ops.epub", _epub()))
    assert doc.format == "epub" and doc.title == "The Ops Book" and doc.metadata == {"author": "Dana Smith"}
    assert doc.text == ("Backups\n\nBackups run nightly.\n\nRetention\n\n30 days.\n\n"
                        "Restoring\n\nRestore from the nightly copy.")
    assert _headings(doc) == [(1, "Backups"), (2, "Retention"), (1, "Restoring")]
    assert _at(doc, doc.headings[2]).startswith("Restoring")


def test_epub_with_obfuscated_fonts_only_is_read(tmp_path):
    fonts = ('<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
             'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
             '<enc:EncryptionMethod Algorithm="http://www.idpf.org/2008/embedding"/>'
             '<enc:CipherData><enc:CipherReference URI="OEBPS/font.otf"/></enc:CipherData>'
             '</enc:EncryptedData></encryption>')
    doc = load_file(_write(tmp_path / "fonts.epub", _epub({"META-INF/encryption.xml": fonts})))
    assert "Backups run nightly." in doc.text


def test_bad_epub_files(tmp_path):
    assert _load_error(_write(tmp_path / "junk.epub", _random())).startswith("corrupt EPUB: ")
    assert _load_error(_write(tmp_path / "ole.epub", OLE_HEADER)).startswith("corrupt EPUB: ")
    assert _load_error(_write(tmp_path / "nopkg.epub", _zip({"mimetype": "application/epub+zip"}))) == \
        "corrupt EPUB: no package (.opf) file"
    drm = ('<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
           'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
           '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
           '<enc:CipherData><enc:CipherReference URI="OEBPS/text/ch1.xhtml"/></enc:CipherData>'
           '</enc:EncryptedData></encryption>')
    assert _load_error(_write(tmp_path / "drm.epub", _epub({"META-INF/encryption.xml": drm}))) == "DRM-protected EPUB"
    assert _load_error(_write(tmp_path / "cover.epub", _epub(spine=("cover",)))) == "no text in the book"
    bomb = _epub({"OEBPS/zeros.bin": bytes(51_000_000)})
    assert len(bomb) < 1_000_000
    assert _load_error(_write(tmp_path / "bomb.epub", bomb)).startswith("too large when unpacked")


def _lying(data: bytes, name: bytes) -> bytes:
    """The zip with entry `name` claiming 1000 bytes unpacked, in both of its headers."""
    import struct

    data = bytearray(data)
    for sig, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):     # local header, central directory
        at = data.find(sig)
        while at >= 0:
            name_at = at + (30 if size_at == 22 else 46)
            if data[name_at:name_at + len(name)] == name:
                struct.pack_into("<I", data, at + size_at, 1000)
            at = data.find(sig, at + 4)
    return bytes(data)


@pytest.mark.parametrize("suffix,what", [(".docx", "Word file"), (".pptx", "PowerPoint file"),
                                         (".xlsx", "Excel file")])
def test_an_office_zip_bomb_is_refused_before_it_is_inflated(tmp_path, suffix, what):
    import tracemalloc

    bomb = _zip({"[Content_Types].xml": "<Types/>", "word/zeros.bin": bytes(60_000_000)})
    assert len(bomb) < 1_000_000
    assert _load_error(_write(tmp_path / f"bomb{suffix}", bomb)).startswith("too large when unpacked")
    liar = _lying(bomb, b"word/zeros.bin")          # claims 1000 bytes: inflated a megabyte at a time
    tracemalloc.start()
    try:
        assert _load_error(_write(tmp_path / f"liar{suffix}", liar)).startswith(f"corrupt {what}: ")
        assert tracemalloc.get_traced_memory()[1] < 20_000_000
    finally:
        tracemalloc.stop()


def test_an_epub_entry_lying_about_its_size_is_not_inflated_past_its_claim(tmp_path):
    import tracemalloc

    name = b"OEBPS/text/ch1.xhtml"
    data = _lying(_epub({name.decode(): _xhtml("<p>" + "a" * 60_000_000 + "</p>")}), name)
    path = _write(tmp_path / "liar.epub", data)
    tracemalloc.start()
    try:
        assert _load_error(path).startswith("corrupt EPUB: Bad CRC-32")
        assert tracemalloc.get_traced_memory()[1] < 20_000_000
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("suffix", [".pptx", ".xlsx", ".eml", ".mbox", ".epub"])
def test_random_bytes_give_load_error_only(tmp_path, suffix):
    for i in range(5):
        prefix = b"PK\x03\x04" if i % 2 else b""
        with pytest.raises(LoadError):
            load_file(_write(tmp_path / f"junk{i}{suffix}", _random(seed=i, prefix=prefix)))
