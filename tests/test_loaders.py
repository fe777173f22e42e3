"""Each format's loader on small files made by the tests, and every kind of bad input."""

import os
from pathlib import Path

import pytest

from ingest.document import LoadError
from ingest.loaders import format_for, load_file

from make_files import make_docx, make_pdf


def _heading_texts(doc):
    return [(h.level, h.title) for h in doc.headings]


def _at(doc, heading):
    return doc.text[heading.start:heading.start + 60]


# -- formats -------------------------------------------------------------------

def test_markdown_headings_ignore_code_fences_and_front_matter_becomes_metadata(tmp_path):
    p = tmp_path / "guide.md"
    p.write_text("---\ntitle: Ops Guide\nsensitivity: internal\n---\n# Deploy\n\nRun it.\n\n"
                 "```bash\n# not a heading, a shell comment\n```\n\nSetext title\n------------\n\nText.\n")
    doc = load_file(p)
    assert doc.title == "Ops Guide" and doc.metadata["sensitivity"] == "internal"
    assert "sensitivity" not in doc.text
    assert _heading_texts(doc) == [(1, "Deploy"), (2, "Setext title")]
    assert _at(doc, doc.headings[0]).startswith("# Deploy")
    assert _at(doc, doc.headings[1]).startswith("Setext title")


def test_rst_section_levels_follow_first_use_of_each_underline(tmp_path):
    p = tmp_path / "policy.rst"
    p.write_text("=====\nTitle\n=====\n\nIntro.\n\nFirst\n-----\n\nBody.\n\nDeeper\n~~~~~~\n\nMore.\n\n"
                 "Second\n------\n\nEnd.\n")
    doc = load_file(p)
    assert _heading_texts(doc) == [(1, "Title"), (2, "First"), (3, "Deeper"), (2, "Second")]
    assert _at(doc, doc.headings[3]).startswith("Second")
    assert format_for(Path("chapter.rst.txt")) == "rst"


def test_html_keeps_headings_and_drops_scripts_styles_and_navigation(tmp_path):
    p = tmp_path / "page.html"
    p.write_text("""<html><head><title>Backups</title><style>body{color:red}</style></head><body>
      <div class="navheader"><table><tr><td>Prev</td><td>Next chapter</td></tr></table></div>
      <nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
      <h1>Backups</h1><p>Backups run <b>nightly</b> at 02:00.</p>
      <script>var tracking = "secret-js";</script>
      <h2>Restore</h2><ul><li>Stop the service.</li><li>Run restore.</li></ul>
      <pre>pg_restore -d db
  dump.sql</pre>
      <table><tr><th>Setting</th><th>Value</th></tr><tr><td>retention</td><td>30 days</td></tr></table>
      <div class="navfooter">Prev | Up | Next</div><footer>© Example</footer></body></html>""")
    doc = load_file(p)
    assert doc.title == "Backups"
    assert _heading_texts(doc) == [(1, "Backups"), (2, "Restore")]
    assert _at(doc, doc.headings[1]).startswith("Restore")
    for junk in ("color:red", "tracking", "Prev", "Home", "Next chapter", "©"):
        assert junk not in doc.text
    assert "Backups run nightly at 02:00." in doc.text
    assert "Stop the service.\n\nRun restore." in doc.text
    assert "pg_restore -d db\n  dump.sql" in doc.text
    assert "retention | 30 days" in doc.text


def test_pdf_pages_text_and_outline(tmp_path):
    p = make_pdf(tmp_path / "h.pdf", ["Welcome page about keys.", "Backups are kept for 30 days.",
                                      "Restore needs the admin role."],
                 outline=[("Backups", 2, 1), ("Restore", 3, 2)])
    doc = load_file(p)
    assert [pg.page for pg in doc.pages] == [1, 2, 3]
    second = doc.text[doc.pages[1].start:doc.pages[2].start]
    assert "30 days" in second and "keys" not in second
    assert _heading_texts(doc) == [(1, "Backups"), (2, "Restore")]
    assert doc.headings[0].start >= doc.pages[1].start
    assert doc.title == "Test handbook"


def test_encrypted_pdf_needs_a_password_but_an_empty_password_opens(tmp_path):
    locked = make_pdf(tmp_path / "locked.pdf", ["Salaries of everyone."], password="hunter2")
    with pytest.raises(LoadError, match="encrypted PDF"):
        load_file(locked)
    open_one = make_pdf(tmp_path / "open.pdf", ["Readable by anyone."], password="")
    assert "Readable by anyone." in load_file(open_one).text


def test_corrupt_and_truncated_pdfs_are_named_as_such(tmp_path):
    (tmp_path / "junk.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage")
    with pytest.raises(LoadError, match="corrupt PDF|no extractable text"):
        load_file(tmp_path / "junk.pdf")
    good = make_pdf(tmp_path / "good.pdf", ["Some text."]).read_bytes()
    (tmp_path / "cut.pdf").write_bytes(good[: len(good) // 3])
    with pytest.raises(LoadError, match="corrupt PDF|no extractable text"):
        load_file(tmp_path / "cut.pdf")


def test_docx_headings_paragraphs_and_tables_in_order(tmp_path):
    p = make_docx(tmp_path / "w.docx", [("title", "Handbook"), ("h1", "Leave"), ("p", "You get 25 days."),
                                        ("table", "Type,Days;Sick,10"), ("h2", "Carry over"), ("p", "Up to 5 days.")])
    doc = load_file(p)
    assert _heading_texts(doc) == [(1, "Handbook"), (1, "Leave"), (2, "Carry over")]
    assert doc.text.index("25 days") < doc.text.index("Sick | 10") < doc.text.index("Up to 5 days")
    assert _at(doc, doc.headings[2]).startswith("Carry over")
    assert doc.title == "Word handbook"


def test_corrupt_docx(tmp_path):
    (tmp_path / "bad.docx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(LoadError, match="corrupt Word file"):
        load_file(tmp_path / "bad.docx")


# -- encodings -----------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16", "utf-8-sig"])
def test_text_in_other_encodings_is_decoded(tmp_path, encoding):
    text = "Café prices: naïve estimate, déjà vu, Ørsted and Müller paid 12 € each." * 3
    if encoding == "latin-1":
        text = text.replace("€", "EUR")
    p = tmp_path / f"note-{encoding}.txt"
    p.write_bytes(text.encode(encoding))
    assert load_file(p).text == text


def test_windows_newlines_become_unix(tmp_path):
    p = tmp_path / "crlf.md"
    p.write_bytes(b"# Title\r\n\r\nLine one.\r\nLine two.\r\n")
    doc = load_file(p)
    assert "\r" not in doc.text and _heading_texts(doc) == [(1, "Title")]


# -- bad input -----------------------------------------------------------------

def test_empty_and_whitespace_files(tmp_path):
    (tmp_path / "empty.md").write_text("")
    (tmp_path / "blank.txt").write_text("  \n\n\t\n")
    for name in ("empty.md", "blank.txt"):
        with pytest.raises(LoadError, match="empty file"):
            load_file(tmp_path / name)


def test_binary_file_with_a_text_extension(tmp_path):
    (tmp_path / "image.txt").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(LoadError, match="binary content"):
        load_file(tmp_path / "image.txt")


def test_too_large_file_is_refused_before_reading(tmp_path):
    p = tmp_path / "huge.txt"
    p.write_text("x" * 5000)
    with pytest.raises(LoadError, match="too large"):
        load_file(p, max_bytes=1000)


def test_broken_symlink(tmp_path):
    os.symlink(tmp_path / "gone.md", tmp_path / "link.md")
    with pytest.raises(LoadError, match="broken symlink"):
        load_file(tmp_path / "link.md")


def test_unreadable_file(tmp_path, monkeypatch):
    p = tmp_path / "secret.md"
    p.write_text("# Secret\n")

    def denied(self):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(LoadError, match="permission denied"):
        load_file(p)


def test_unknown_extensions_are_not_read():
    assert format_for(Path("photo.jpg")) is None
    assert format_for(Path("Makefile")) is None
    assert format_for(Path("README.MD")) == "markdown"
