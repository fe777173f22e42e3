"""Each format's loader on small files made by the tests, and every kind of bad input."""

import os
import random
from pathlib import Path

import pytest

from ingest.document import LoadError
from ingest.loaders import format_for, load_file
from ingest.textdecode import decode_text

from make_files import make_binary, make_corrupt_pdf, make_docx, make_pdf, make_pdf_from_stream, make_text


def _headings(doc):
    return [(h.level, h.title) for h in doc.headings]


def _at(doc, heading, n=60):
    return doc.text[heading.start:heading.start + n]


# -- formats -------------------------------------------------------------------

def test_format_for_extensions():
    assert format_for(Path("README.MD")) == "markdown"
    assert format_for(Path("notes.text")) == "text"
    assert format_for(Path("_sources/intro.rst.txt")) == "rst"
    assert format_for(Path("page.xhtml")) == "html"
    assert format_for(Path("report.docx")) == "docx"
    for name in ("drawing.svg", "Makefile", "old.doc", ".md"):
        assert format_for(Path(name)) is None


def test_markdown_headings_ignore_code_fences_and_front_matter_becomes_metadata(tmp_path):
    p = make_text(tmp_path / "guide.md",
                  "---\ntitle: \"Ops Guide\"\nsensitivity: internal\ntags:\n  - ops\n---\n"
                  "# Deploy\n\nRun it.\n\n```bash\n# not a heading, a shell comment\n```\n\n"
                  "## Install `docent` **now**\n\nSetext title\n------------\n\nText.\n")
    doc = load_file(p)
    assert doc.title == "Ops Guide"
    assert doc.metadata == {"title": "Ops Guide", "sensitivity": "internal"}
    assert "sensitivity" not in doc.text and doc.text.startswith("# Deploy")
    assert _headings(doc) == [(1, "Deploy"), (2, "Install docent now"), (2, "Setext title")]
    assert _at(doc, doc.headings[1]).startswith("## Install")
    assert _at(doc, doc.headings[2]).startswith("Setext title")


def test_markdown_opening_rule_is_not_front_matter(tmp_path):
    p = make_text(tmp_path / "rule.md", "---\nJust a rule above this text.\n\n---\n\n# Title\n")
    doc = load_file(p)
    assert doc.metadata == {} and "Just a rule" in doc.text
    assert _headings(doc) == [(1, "Title")]


def test_rst_section_levels_follow_first_use_of_each_style(tmp_path):
    p = make_text(tmp_path / "policy.rst",
                  "=====\nTitle\n=====\n\nIntro.\n\nFirst\n=====\n\nBody.\n\nDeeper\n~~~~~~\n\n"
                  "Not a title, the underline is short\n---\n\nA paragraph\nline two\n--------\n\n"
                  "----------\n\nSecond\n======\n\nEnd.\n")
    doc = load_file(p)
    # An overlined "=" and an underlined "=" are different styles, as in docutils.
    assert _headings(doc) == [(1, "Title"), (2, "First"), (3, "Deeper"), (2, "Second")]
    assert doc.headings[0].start == 0                       # the overline
    assert _at(doc, doc.headings[3]).startswith("Second\n======")


def test_html_keeps_headings_and_drops_scripts_styles_and_navigation(tmp_path):
    p = make_text(tmp_path / "page.html", """<?xml version="1.0" encoding="UTF-8"?>
      <html><head><title>Backups</title><style>body{color:red}</style></head><body>
      <div class="navheader"><table><tr><td>Prev</td><td>Next chapter</td></tr></table></div>
      <nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
      <div class="toc"><ul><li>1. Backups</li></ul></div>
      <div role="navigation">Jump to</div>
      <h1>Backups <a class="headerlink" href="#b">¶</a></h1><p>Backups run <b>nightly</b>
      at 02:00.</p>
      <script>var tracking = "secret-js";</script>
      <div class="note"><h3 class="title">Note</h3><p>Keep copies off site.</p></div>
      <h2>Restore</h2><ul><li>Stop the service.</li><li>Run restore.</li></ul>
      <pre>pg_restore -d db
  dump.sql</pre>
      <table><tr><th>Setting</th><th>Value</th></tr><tr><td>retention</td><td>30 days</td></tr></table>
      <aside class="footnote">[1] Tapes count as off site.</aside>
      <div class="navfooter">Prev | Up | Next</div><footer>© Example</footer></body></html>""")
    doc = load_file(p)
    assert doc.title == "Backups"
    assert _headings(doc) == [(1, "Backups"), (2, "Restore")]     # the note's title is no section
    assert _at(doc, doc.headings[1]).startswith("Restore\n\nStop the service.")
    for junk in ("color:red", "tracking", "Prev", "Home", "Next chapter", "©", "1. Backups", "Jump", "¶"):
        assert junk not in doc.text
    assert doc.text.startswith("Backups\n\nBackups run nightly at 02:00.\n\nNote\n\nKeep copies off site.")
    assert "Stop the service.\n\nRun restore." in doc.text
    assert "pg_restore -d db\n  dump.sql" in doc.text
    assert "Setting | Value\n\nretention | 30 days" in doc.text
    assert "Tapes count as off site." in doc.text


def test_html_in_a_declared_legacy_charset(tmp_path):
    html = '<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head><body><p>Prix : 5 \u20ac</p></body></html>'
    doc = load_file(make_text(tmp_path / "cafe.htm", html, "cp1252"))
    assert doc.title == "Café" and doc.text == "Prix : 5 €"


def test_html_without_text(tmp_path):
    p = make_text(tmp_path / "blank.html", "<html><body><script>x()</script><nav>Home</nav></body></html>")
    with pytest.raises(LoadError, match="no text"):
        load_file(p)


def test_pdf_pages_text_and_outline(tmp_path):
    p = make_pdf(tmp_path / "h.pdf", ["Welcome page about keys.", "",
                                      "Intro words.\nBackups are kept for 30 days.",
                                      "Restore needs the admin role."],
                 outline=[("Backups", 3, 1), ("Restore", 4, 2)], title="Test handbook")
    doc = load_file(p)
    assert [pg.page for pg in doc.pages] == [1, 3, 4]                 # page 2 has no text
    third = doc.text[doc.pages[1].start:doc.pages[2].start]
    assert "30 days" in third and "keys" not in third and "admin" not in third
    assert doc.text[doc.pages[2].start:].startswith("Restore needs")
    assert _headings(doc) == [(1, "Backups"), (2, "Restore")]
    assert _at(doc, doc.headings[0]).startswith("Backups are kept")  # found on its page, not page start
    assert doc.title == "Test handbook"


def test_encrypted_pdf_needs_a_password_but_an_empty_password_opens(tmp_path):
    locked = make_pdf(tmp_path / "locked.pdf", ["Salaries of everyone."], password="hunter2")
    with pytest.raises(LoadError, match=r"^encrypted PDF \(needs a password\)$"):
        load_file(locked)
    open_one = make_pdf(tmp_path / "open.pdf", ["Readable by anyone."], password="")
    assert load_file(open_one).text == "Readable by anyone."


def test_pdf_word_gaps_drawn_as_tj_offsets_become_spaces(tmp_path):
    # LaTeX draws justified lines as [(word)-267(word)]TJ; kerning is a small number.
    p = make_pdf_from_stream(tmp_path / "tj.pdf",
                             b"BT /F1 12 Tf 72 700 Td [(the)-267(packag)-20(e)-600(control)]TJ ET")
    assert load_file(p).text == "the package control"


@pytest.mark.parametrize("kind, reason", [("garbage", "corrupt PDF"), ("truncated", "corrupt PDF"),
                                          ("no-text", r"no extractable text \(scanned PDF\?\)")])
def test_bad_pdfs_are_named_as_such(tmp_path, kind, reason):
    p = make_corrupt_pdf(tmp_path / f"{kind}.pdf", kind)
    with pytest.raises(LoadError, match=reason) as err:
        load_file(p)
    assert "\n" not in str(err.value) and str(p) not in str(err.value)


def test_docx_headings_paragraphs_and_tables_in_order(tmp_path):
    p = make_docx(tmp_path / "w.docx", [("title", "Handbook"), ("h1", "Leave"), ("p", "You get 25 days."),
                                        ("table", [["Type", "Days"], ["Sick", "10"]]),
                                        ("h2", "Carry over"), ("p", "Up to 5 days.")], title="Word handbook")
    doc = load_file(p)
    assert _headings(doc) == [(1, "Handbook"), (1, "Leave"), (2, "Carry over")]
    assert doc.text == ("Handbook\n\nLeave\n\nYou get 25 days.\n\nType | Days\n\nSick | 10\n\n"
                        "Carry over\n\nUp to 5 days.")
    assert _at(doc, doc.headings[2]).startswith("Carry over")
    assert doc.title == "Word handbook"


def test_docx_merged_cells_are_not_repeated(tmp_path):
    import docx
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Wide"
    table.cell(0, 2).text = "Tall"
    table.cell(1, 0).text = "x"
    table.cell(1, 2).add_paragraph("second paragraph")
    table.cell(0, 2).merge(table.cell(1, 2))
    document.save(tmp_path / "m.docx")
    assert load_file(tmp_path / "m.docx").text == "Wide | Tall second paragraph\n\nx"


def test_docx_generated_table_of_contents_is_skipped_but_other_content_controls_are_read(tmp_path):
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    def sdt(gallery, text):
        pr = f'<w:docPartObj><w:docPartGallery w:val="{gallery}"/></w:docPartObj>' if gallery else ""
        return parse_xml(f'<w:sdt {nsdecls("w")}><w:sdtPr>{pr}</w:sdtPr><w:sdtContent><w:p><w:r>'
                         f'<w:t>{text}</w:t></w:r></w:p></w:sdtContent></w:sdt>')
    p = make_docx(tmp_path / "toc.docx", [("h1", "Leave"), ("p", "You get 25 days.")])
    import docx
    document = docx.Document(p)
    body = document.element.body
    body.insert(0, sdt("Table of Contents", "Leave ........ 1"))
    body.insert(1, sdt(None, "Department: Finance"))
    document.save(p)
    doc = load_file(p)
    assert doc.text == "Department: Finance\n\nLeave\n\nYou get 25 days."
    assert _headings(doc) == [(1, "Leave")]


def test_corrupt_and_empty_docx(tmp_path):
    (tmp_path / "bad.docx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(LoadError, match="^corrupt Word file: "):
        load_file(tmp_path / "bad.docx")
    with pytest.raises(LoadError, match="no text"):
        load_file(make_docx(tmp_path / "empty.docx", [("p", "   ")]))


@pytest.mark.parametrize("suffix", [".pdf", ".docx", ".html", ".md", ".rst", ".txt", ".ipynb", ".csv"])
def test_random_bytes_give_load_error_only(tmp_path, suffix):
    rng = random.Random(7)
    for i in range(5):
        p = tmp_path / f"junk{i}{suffix}"
        prefix = {".pdf": b"%PDF-1.4\n", ".docx": b"PK\x03\x04"}.get(suffix, b"")
        p.write_bytes(prefix + bytes(rng.randrange(256) for _ in range(2000)))
        with pytest.raises(LoadError):
            load_file(p)


# -- encodings -----------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_text_in_other_encodings_is_decoded(tmp_path, encoding):
    text = "Café prices: naïve estimate, déjà vu, Ørsted and Müller paid 12 € each.\n" * 3
    if encoding == "latin-1":
        text = text.replace("€", "EUR")
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    p = tmp_path / f"note-{encoding}.txt"
    p.write_bytes(data)
    assert load_file(p).text == text.rstrip()


@pytest.mark.parametrize("text", ["café", "Le café est naïve. Prix: 5 €."])
def test_short_windows_1252_text(text):
    assert decode_text(text.encode("cp1252")) == text


def test_non_western_legacy_text_is_not_forced_into_windows_1252():
    text = "Привет, как дела? Это тест русского текста."
    assert decode_text(text.encode("cp1251")) == text


def test_valid_utf8_does_not_run_the_detector(monkeypatch):
    import charset_normalizer

    def boom(*args, **kwargs):
        raise AssertionError("detector called")
    monkeypatch.setattr(charset_normalizer, "from_bytes", boom)
    assert decode_text("naïve ✓\r\nline".encode()) == "naïve ✓\nline"


def test_windows_newlines_become_unix(tmp_path):
    p = make_text(tmp_path / "crlf.md", "# Title\r\n\r\nLine one.\r\nLine two.\r\n")
    doc = load_file(p)
    assert doc.text == "# Title\n\nLine one.\nLine two." and _headings(doc) == [(1, "Title")]


# -- bad input -----------------------------------------------------------------

def test_empty_and_whitespace_files(tmp_path):
    (tmp_path / "empty.md").write_text("")
    (tmp_path / "blank.txt").write_text("  \n\n\t\n")
    (tmp_path / "front-matter-only.md").write_text("---\ntitle: x\n---\n\n")
    (tmp_path / "empty.pdf").write_bytes(b"")
    for name in ("empty.md", "blank.txt", "front-matter-only.md", "empty.pdf"):
        with pytest.raises(LoadError, match="^empty file$"):
            load_file(tmp_path / name)


@pytest.mark.parametrize("name", ["image.txt", "image.md", "image.html"])
def test_binary_file_with_a_text_extension(tmp_path, name):
    with pytest.raises(LoadError, match="^binary content, not text$"):
        load_file(make_binary(tmp_path / name))


def test_control_characters_without_nul_are_binary(tmp_path):
    (tmp_path / "blob.txt").write_bytes(bytes(range(1, 256)) * 20)
    with pytest.raises(LoadError, match="binary content"):
        load_file(tmp_path / "blob.txt")


def test_too_large_file_is_refused_before_reading(tmp_path, monkeypatch):
    p = make_text(tmp_path / "huge.txt", "x" * 5000)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read a file over the limit"))
    with pytest.raises(LoadError, match=r"^too large: 0\.0 MB \(limit 0\.001 MB; see ingest.max_file_mb\)$"):
        load_file(p, max_bytes=1000)


def test_broken_symlink_directory_and_fifo(tmp_path):
    os.symlink(tmp_path / "gone.md", tmp_path / "link.md")
    with pytest.raises(LoadError, match="^broken symlink \\(target missing\\)$"):
        load_file(tmp_path / "link.md")
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(LoadError, match="directory"):
        load_file(tmp_path / "folder.md")
    os.mkfifo(tmp_path / "pipe.txt")                        # reading it would block forever
    with pytest.raises(LoadError, match="not a regular file"):
        load_file(tmp_path / "pipe.txt")


def test_permission_denied_while_reading(tmp_path, monkeypatch):
    p = make_text(tmp_path / "secret.md", "# Secret\n")

    def denied(self):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(LoadError, match="^permission denied$"):
        load_file(p)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    p = make_text(tmp_path / "secret.md", "# Secret\n")
    p.chmod(0)
    with pytest.raises(LoadError, match="^permission denied$"):
        load_file(p)


def test_unsupported_extension_is_refused(tmp_path):
    with pytest.raises(LoadError, match="unsupported"):
        load_file(make_text(tmp_path / "drawing.svg", "x"))


def test_os_errors_become_one_line_reasons():
    import errno

    from ingest.errors import os_reason
    assert os_reason(OSError(errno.EACCES, "Permission denied")) == "permission denied"
    assert os_reason(OSError(errno.ENOENT, "No such file or directory")) == "file vanished during the run"
    assert os_reason(OSError(errno.ELOOP, "Too many levels of symbolic links")) == "symlink loop"
    assert os_reason(OSError(errno.EIO, "Input/output error")) == "input/output error"


def test_longest_suffix_wins_and_a_bare_suffix_is_a_hidden_file():
    assert format_for(Path("intro.rst.txt")) == "rst" and format_for(Path("notes.v2.txt")) == "text"
    assert format_for(Path(".txt")) is None and format_for(Path("a..md")) == "markdown"


# -- Jupyter notebooks -----------------------------------------------------------

def _notebook(path: Path, cells: list, metadata=None) -> Path:
    import json
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": cells,
                                "metadata": metadata if metadata is not None else
                                {"kernelspec": {"name": "python3", "language": "python"}}}), encoding="utf-8")
    return path


def test_a_notebook_reads_as_its_markdown_and_code_without_outputs(tmp_path):
    p = _notebook(tmp_path / "backfill.ipynb", [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Backfilling events\n", "\n", "Run this after an outage."]},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "events = load('2026-11')\nbackfill(events)",
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["token=ghp_printedwhiledebugging123\n"]}]},
        {"cell_type": "markdown", "metadata": {}, "source": "## Checking the result\n\nCount the rows per day."},
        {"cell_type": "raw", "metadata": {}, "source": "\\LaTeX only"},
    ])
    doc = load_file(p)
    assert doc.format == "notebook" and format_for(p) == "notebook"
    assert "Run this after an outage." in doc.text and "```python\nevents = load('2026-11')" in doc.text
    assert "ghp_printedwhiledebugging" not in doc.text and "LaTeX" not in doc.text
    assert [h.title for h in doc.headings] == ["Backfilling events", "Checking the result"]


@pytest.mark.parametrize("content, reason", [
    ('{"cells": [', "not a notebook: invalid JSON"),
    ('{"worksheets": []}', "not a notebook: no list of cells"),
    ('{"cells": [{"cell_type": "code", "source": "  "}]}', "empty notebook"),
])
def test_a_broken_notebook_says_why_in_one_line(tmp_path, content, reason):
    p = tmp_path / "bad.ipynb"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_file(p)
    assert str(caught.value).startswith(reason) and "\n" not in str(caught.value)


# -- CSV tables --------------------------------------------------------------------

def test_each_row_of_a_table_keeps_its_column_names(tmp_path):
    p = tmp_path / "oncall.csv"
    p.write_text("Team;Engineer;Phone shift\neng;Ada;Mondays 09:00-17:00\n\nhr;;Fridays\n", encoding="utf-8")
    doc = load_file(p)
    assert doc.format == "table" and format_for(p) == "table"
    assert doc.text.splitlines() == ["Team: eng; Engineer: Ada; Phone shift: Mondays 09:00-17:00.",
                                     "Team: hr; Phone shift: Fridays."]
    tabs = tmp_path / "keys.tsv"
    tabs.write_text("service\trotation\napi\t90 days\n", encoding="utf-8")
    assert load_file(tabs).text == "service: api; rotation: 90 days."


def test_a_table_with_only_a_header_or_nothing_says_so(tmp_path):
    header = tmp_path / "header.csv"
    header.write_text("name,team\n", encoding="utf-8")
    assert load_file(header).text == "Columns: name, team."
    empty = tmp_path / "empty.csv"
    empty.write_text("\n,,\n", encoding="utf-8")
    with pytest.raises(LoadError, match="empty file"):
        load_file(empty)
