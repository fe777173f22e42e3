from ingest.chunking import chunk_document, embed_text
from ingest.document import ExtractedDocument, Heading, PageStart

from conftest import FakeEmbedder

count = FakeEmbedder().count_tokens


def _doc(text: str, headings=(), pages=(), title=None, fmt="markdown") -> ExtractedDocument:
    return ExtractedDocument(text=text, format=fmt, headings=list(headings), pages=list(pages), title=title)


def _with_headings(lines: list[tuple[int, str] | str]) -> ExtractedDocument:
    """Build a doc from (level, title) headings and paragraph strings."""
    text, headings = "", []
    for item in lines:
        if text:
            text += "\n\n"
        if isinstance(item, tuple):
            headings.append(Heading(len(text), item[0], item[1]))
            text += "#" * item[0] + " " + item[1]
        else:
            text += item
    return _doc(text, headings)


def test_spans_point_into_the_extracted_text():
    doc = _with_headings([(1, "Guide"), "Intro words here.", (2, "Install"), "Run the installer now.",
                          (2, "Remove"), "Delete the folder."])
    chunks = chunk_document(doc, count, max_tokens=60, min_tokens=4)
    assert chunks
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text


def test_chunks_carry_heading_path_and_do_not_mix_sibling_sections():
    doc = _with_headings([(1, "Guide"), "Intro words here.", (2, "Install"), "Run the installer now. " * 3,
                          (3, "Linux"), "Use apt. " * 3, (2, "Remove"), "Delete the folder. " * 3])
    chunks = chunk_document(doc, count, max_tokens=80, min_tokens=4)
    by_path = {c.heading_path: c.text for c in chunks}
    assert ("Guide", "Install", "Linux") in by_path
    assert "Use apt." in by_path[("Guide", "Install", "Linux")]
    remove = by_path[("Guide", "Remove")]
    assert "Delete the folder." in remove and "installer" not in remove and "apt" not in remove


def test_no_chunk_exceeds_the_token_budget_even_for_a_huge_paragraph():
    long_paragraph = " ".join(f"Sentence number {i} talks about item {i}." for i in range(300))
    doc = _with_headings([(1, "Big"), long_paragraph, "A short closing paragraph."])
    chunks = chunk_document(doc, count, max_tokens=64, min_tokens=8, overlap_tokens=10)
    assert len(chunks) > 10
    for c in chunks:
        assert count([embed_text(c.heading_path, c.text)])[0] <= 64
    # Every sentence of the paragraph is somewhere: nothing is dropped.
    joined = " ".join(c.text for c in chunks)
    assert all(f"Sentence number {i} " in joined for i in range(300))


def test_text_without_sentence_breaks_is_still_split():
    doc = _doc("word " * 2000)
    chunks = chunk_document(doc, count, max_tokens=50, min_tokens=8)
    assert all(c.n_tokens <= 50 for c in chunks)
    assert sum(c.text.count("word") for c in chunks) >= 2000


def test_consecutive_chunks_of_a_long_section_overlap():
    sentences = [f"Fact {i} is stated here." for i in range(40)]
    doc = _with_headings([(1, "Facts"), " ".join(sentences)])
    chunks = chunk_document(doc, count, max_tokens=48, min_tokens=8, overlap_tokens=12)
    assert len(chunks) >= 3
    assert any(chunks[i].end > chunks[i + 1].start for i in range(len(chunks) - 1))


def test_a_heading_only_section_runs_into_its_subsection():
    doc = _with_headings([(1, "Setup"), (2, "Database"), "Create the database with createdb."])
    chunks = chunk_document(doc, count, max_tokens=100, min_tokens=10)
    assert len(chunks) == 1
    assert chunks[0].text.startswith("# Setup")
    assert chunks[0].heading_path == ("Setup", "Database")


def test_pages_are_recorded_for_paged_documents():
    pages = ["Page one talks about keys. " * 5, "Page two talks about backups. " * 5, "Page three. " * 5]
    text, starts = "", []
    for number, page_text in enumerate(pages, 1):
        if text:
            text += "\n\n"
        starts.append(PageStart(len(text), number))
        text += page_text
    doc = _doc(text, pages=starts, fmt="pdf")
    chunks = chunk_document(doc, count, max_tokens=40, min_tokens=4, overlap_tokens=0)
    for c in chunks:
        assert c.page is not None and c.page <= c.page_end
        if "backups" in c.text and "keys" not in c.text:
            assert c.page == 2
    assert {c.page for c in chunks} == {1, 2, 3}


def test_document_title_heads_chunks_before_any_heading():
    doc = _doc("Some preface text.\n\n# Part\n\nBody.", [Heading(20, 1, "Part")], title="Handbook")
    chunks = chunk_document(doc, count, max_tokens=100, min_tokens=1)
    assert chunks[0].heading_path == ("Handbook",)
    assert chunks[-1].heading_path[-1] == "Part"
    assert embed_text(chunks[0].heading_path, chunks[0].text).startswith("Handbook\n")


def test_no_chunk_exceeds_the_limit_whatever_the_input():
    # A 2 MB line without whitespace is one "word": a tokenizer counts it as one [UNK].
    from ingest.chunking import CHARS_PER_TOKEN_AT_MOST
    blob = "QUJD" * 500_000
    doc = _doc("# Dump\n\nBefore it.\n\n" + blob + "\n\nAfter it.")
    chunks = chunk_document(doc, lambda texts: [3 for _ in texts], max_tokens=240, min_tokens=48)
    start = doc.text.index(blob)
    covered = set()
    for c in chunks:
        covered.update(range(max(c.start, start), min(c.end, start + len(blob))))
    assert len(covered) == len(blob)                                         # nothing lost
    assert max(len(c.text) for c in chunks) <= 240 * CHARS_PER_TOKEN_AT_MOST
    assert any("After it." in c.text for c in chunks)
