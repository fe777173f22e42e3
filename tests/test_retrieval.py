"""Hybrid retrieval over a real collection (fake embedder): what a user sees from
`docent retrieve` and what the answer step is given."""

from __future__ import annotations

import pytest

from bot.retrieval import RetrievalError, Retriever, keyword_query, near_duplicate, rrf
from ingest.pipeline import Ingestor

from conftest import on_backend, open_reader

@pytest.fixture(params=["faiss", "postgres"])
def settings(settings, request):
    """Every test here runs against both stores (FAISS folders, PostgreSQL), unless marked faiss_only."""
    return on_backend(settings, request.param, request)


# What only a FAISS collection has (its SQLite file, FTS5); these tests stay with it.
faiss_only = pytest.mark.parametrize("settings", ["faiss"], indirect=True)


def test_passages_keep_their_place(collection, fake_embedder):
    result = Retriever(collection, fake_embedder).retrieve("How do I rotate API keys?", k=3)
    top = result.passages[0]
    assert top.source.endswith("faq.txt")
    assert "Rotate" in top.text
    assert result.top_dense > 0
    d = top.to_dict(1)
    assert set(d) == {"n", "source", "page", "heading", "text", "score"} and d["n"] == 1


def test_keyword_search_finds_a_rare_word_the_dense_side_misses(collection, fake_embedder):
    # "docent-restore" is one token to BM25; the query shares almost nothing else with it.
    retriever = Retriever(collection, fake_embedder)
    keyword = retriever.retrieve("docent-restore", k=2, mode="keyword").passages
    hybrid = retriever.retrieve("docent-restore", k=2, mode="hybrid").passages
    assert keyword and "docent-restore" in keyword[0].text
    assert "docent-restore" in hybrid[0].text


def test_heading_path_is_reported(collection, fake_embedder):
    passages = Retriever(collection, fake_embedder).retrieve("Windows MSI package wizard", k=1).passages
    assert passages[0].heading_path[-1] == "Windows"
    assert "Install > Windows" in passages[0].location


def test_rrf_rewards_agreement():
    scores = rrf([[1, 2, 3], [3, 1, 4]], k=60)
    assert max(scores, key=scores.get) == 1          # ranks 1 and 2 beat 3's ranks 3 and 1
    assert scores[4] < scores[2]                     # found once, lower
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)


def test_stopwords_leave_the_keyword_query():
    assert keyword_query("How do I rotate the API keys?") == "rotate api keys"
    assert keyword_query("what is it") == "what is it"     # nothing but stop words: keep them


def test_near_duplicates_are_dropped(settings, fake_embedder, tmp_path):
    text = ("The audit log is kept for ninety days and then deleted by the nightly cleanup job. "
            "Administrators can export it as CSV from the console before it expires.")
    folder = tmp_path / "dup"
    folder.mkdir()
    (folder / "a.md").write_text(f"# Audit\n\n{text}\n")
    (folder / "copy-of-a.txt").write_text(text + "\n")
    (folder / "other.md").write_text("# Audit export\n\nThe audit export runs weekly.\n")
    Ingestor(settings, embedder=fake_embedder).ingest([folder], collection="dup")
    passages = Retriever(settings, fake_embedder).retrieve("how long is the audit log kept", "dup", k=3).passages
    texts = [p.text for p in passages]
    assert sum("ninety days" in t for t in texts) == 1
    assert near_duplicate(text, text.upper(), 0.8) and not near_duplicate(text, "The audit export runs weekly.", 0.8)


def test_neighbouring_chunks_are_merged_in_file_order(settings, fake_embedder, tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    parts = [f"Step {i}: the deployment pipeline stage number {i} checks the release artefacts carefully."
             for i in range(1, 41)]
    (folder / "deploy.md").write_text("# Deploy\n\n" + "\n\n".join(parts) + "\n")
    Ingestor(settings, embedder=fake_embedder).ingest([folder], collection="long")
    merged = Retriever(settings, fake_embedder).retrieve("deployment pipeline stage release artefacts", "long", k=3)
    plain = Retriever(settings.with_values("retrieval", merge_neighbours=False), fake_embedder).retrieve(
        "deployment pipeline stage release artefacts", "long", k=3)
    assert len(plain.passages) == 3
    assert len(merged.passages) < 3
    joined = max(merged.passages, key=lambda p: len(p.chunk_ids))
    assert len(joined.chunk_ids) >= 2
    # In file order, without the overlap repeated.
    numbers = [int(n) for n in __import__("re").findall(r"Step (\d+):", joined.text)]
    assert numbers == sorted(set(numbers))


def test_missing_and_empty_collections_say_so(settings, fake_embedder, tmp_path):
    retriever = Retriever(settings, fake_embedder)
    with pytest.raises(RetrievalError, match="no collection 'nope'"):
        retriever.retrieve("anything", "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.md").write_text("# A\n\nSomething.\n")
    ingestor = Ingestor(settings, embedder=fake_embedder)
    ingestor.ingest([empty], collection="empty")
    ingestor.remove([empty / "a.md"], "empty")
    with pytest.raises(RetrievalError, match="holds no passages"):
        retriever.retrieve("anything", "empty")


def test_langchain_retriever_returns_documents(collection, fake_embedder):
    from langchain_core.documents import Document
    from bot.lc_retriever import DocentRetriever
    lc = DocentRetriever.from_settings(collection, k=2, embedder=fake_embedder)
    docs = lc.invoke("rotate API keys")
    assert docs and all(isinstance(d, Document) for d in docs)
    assert docs[0].metadata["source"].endswith("faq.txt") and "Rotate" in docs[0].page_content


def test_very_common_words_leave_a_large_collections_keyword_query(settings, fake_embedder, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(1100):   # "service" is in every chunk, "zebra" in one
        (folder / f"n{i:04d}.txt").write_text(f"The service note number {i}." + (" A zebra escaped." if i == 7 else ""))
    Ingestor(settings, embedder=fake_embedder).ingest([folder], collection="big")
    with open_reader(settings, "big") as store:
        assert store.document_frequency(["service", "zebra", "absent"]) == {"service": 1100, "zebra": 1, "absent": 0}
        pruned = store.keyword_search("service zebra", k=5, max_df=0.1)
        full = store.keyword_search("service zebra", k=5, max_df=1.0)
        assert pruned[0][0] == full[0][0] and len(pruned) == 1 and len(full) == 5   # only the zebra note
        assert len(store.keyword_search("service", k=5, max_df=0.1)) == 5            # a lone word is kept
        assert store.keyword_search("absent words", k=5, max_df=0.1) == []


def _fts_only(settings) -> None:
    """Make the default collection look like one from before chunk terms were stored."""
    import sqlite3
    from ingest.store import DB_NAME, collection_dir
    conn = sqlite3.connect(collection_dir(settings.home_dir(), settings.ingest.collection) / DB_NAME)
    conn.execute("DELETE FROM chunk_terms")
    conn.commit()
    conn.close()


@faiss_only
@pytest.mark.parametrize("query", ["rotate API keys", "docent-restore backup", "install windows wizard", "zzz"])
def test_keyword_ranking_is_the_same_in_memory_and_by_fts5(collection, fake_embedder, query):
    from ingest.store import Collection
    name = collection.ingest.collection
    with Collection(collection.home_dir(), name) as store:
        assert store.keyword_index() is not None
        in_memory = store.keyword_search(query, 10)
    _fts_only(collection)
    with Collection(collection.home_dir(), name) as store:
        assert store.keyword_index() is None                 # an older collection: FTS5 answers
        by_fts5 = store.keyword_search(query, 10)
    assert [i for i, _ in in_memory] == [i for i, _ in by_fts5]
    assert [s for _, s in in_memory] == pytest.approx([s for _, s in by_fts5], rel=1e-4)
    if query != "zzz":
        assert in_memory


@faiss_only
def test_an_older_collection_gets_its_chunk_terms_on_the_next_ingest(collection, fake_embedder, docs):
    import sqlite3
    from ingest.store import DB_NAME, Collection, collection_dir
    _fts_only(collection)
    conn = sqlite3.connect(collection_dir(collection.home_dir(), collection.ingest.collection) / DB_NAME)
    conn.execute("PRAGMA user_version = 0")          # from before numbered migrations
    conn.close()
    Ingestor(collection, embedder=fake_embedder).ingest([docs])      # nothing changed in the files
    with Collection(collection.home_dir(), collection.ingest.collection) as store:
        assert store.keyword_index() is not None and len(store.keyword_index()) == store.chunk_count()


def test_a_deleted_files_words_leave_the_keyword_search(collection, fake_embedder, docs):
    retriever = Retriever(collection, fake_embedder)
    assert "docent-restore" in retriever.retrieve("docent-restore", k=1, mode="keyword").passages[0].text
    for path in docs.rglob("*"):
        if path.is_file() and "docent-restore" in path.read_text(errors="ignore"):
            path.unlink()
    Ingestor(collection, embedder=fake_embedder).ingest([docs])
    passages = retriever.retrieve("docent-restore", k=3, mode="keyword").passages
    assert not any("docent-restore" in p.text for p in passages)


def _sectioned(tmp_path, middle: str):
    """A section whose last chunk is a short line (the kind a search finds alone), then a
    sibling section."""
    folder = tmp_path / "sections"
    folder.mkdir()
    (folder / "backup.md").write_text(
        "# Backups\n\n## Schedule\n\n"
        "The nightly backup starts at 02:00 and copies every volume of the cluster to the vault "
        "in the second region, where it is checked the next morning.\n\n"
        f"{middle}\n\n"
        "Questions about the vault go to the ops channel.\n\n"
        "## Retention\n\n"
        "Backups are kept for thirty days in the vault and are then removed by the cleanup "
        "job that runs every Sunday.\n")
    return folder


def _tail_passage(settings, fake_embedder, folder, widen: int):
    s = settings.with_values("chunking", max_tokens=30, min_tokens=4, overlap_tokens=0).with_values(
        "leaks", exclude=("restricted", "secret"))
    from bot.guard.labels import ChunkLabeller
    Ingestor(s, embedder=fake_embedder, labeller=ChunkLabeller(s.leaks)).ingest([folder], collection="sections")
    s = s.with_values("retrieval", widen_chars=widen)
    return Retriever(s, fake_embedder).retrieve("ops channel questions", "sections", k=1, mode="keyword").passages[0]


def test_a_short_passage_is_widened_within_its_section(settings, fake_embedder, tmp_path):
    folder = _sectioned(tmp_path, "Each copy is encrypted before it leaves the cluster, with a key that only "
                                  "the backup service account can read.")
    alone = _tail_passage(settings, fake_embedder, folder, widen=0)
    assert alone.text == "Questions about the vault go to the ops channel."
    wide = _tail_passage(settings, fake_embedder, folder, widen=400)
    # The section's opening is read with it, in file order; the next section is not.
    assert wide.text.index("02:00") < wide.text.index("encrypted") < wide.text.index("ops channel")
    assert "thirty days" not in wide.text and "Retention" not in wide.text
    assert wide.heading_path == ("Backups", "Schedule")


def test_widening_never_takes_in_a_chunk_a_search_leaves_out(settings, fake_embedder, tmp_path):
    folder = _sectioned(tmp_path, "The vault is opened with the access key AKIAZ7Q3M5R2X9W4K6TB, which the backup job reads "
                                  "from its own configuration file.")
    wide = _tail_passage(settings, fake_embedder, folder, widen=400)
    assert "AKIA" not in wide.text and "02:00" not in wide.text
    assert wide.text == "Questions about the vault go to the ops channel."
