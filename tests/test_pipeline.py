"""Incremental ingestion through the Python API, with the fake embedder."""

import os
import shutil

import numpy as np
import pytest

from ingest.pipeline import EXIT_INTERRUPTED, EXIT_SOME_FAILED, Ingestor
from ingest.store import Collection, CollectionLocked, CollectionWriter, EmbeddingMismatch

from conftest import FakeEmbedder, on_backend, open_reader

# The FAISS file and the writer lock are the FAISS store's own; these tests stay with it.
faiss_only = pytest.mark.parametrize("settings", ["faiss"], indirect=True)


@pytest.fixture(params=["faiss", "postgres"])
def settings(settings, request):
    """Every test here runs against both stores, unless marked faiss_only."""
    return on_backend(settings, request.param, request)


def _open(settings, name="default") -> Collection:
    return open_reader(settings, name)


def _consistent(coll: Collection) -> None:
    """Vectors and metadata agree: one vector per chunk, every vector id a chunk."""
    index = coll.vector_index()
    assert len(index) == coll.chunk_count()
    ids = [int(i) for i in index.ids()]
    assert len(coll.chunks(ids)) == len(ids)


def _search_paths(settings, embedder, query, k=3):
    with _open(settings) as coll:
        hits = coll.search(embedder.embed([query]), k)[0]
        return [c.path for c in coll.chunks([i for i, _ in hits])]


def test_first_run_indexes_every_file_and_records_where_chunks_come_from(settings, fake_embedder, docs):
    report = Ingestor(settings, fake_embedder).ingest([docs])
    assert report.count("added") == 3 and report.exit_code == 0
    with _open(settings) as coll:
        files = {os.path.basename(f.path): f for f in coll.files()}
        assert set(files) == {"install.md", "faq.txt", "guide.rst"}
        assert all(f.status == "ok" and f.n_chunks > 0 for f in files.values())
        chunks = coll.chunks_of(str(docs / "guide.rst"))
        assert any(c.heading_path == ("User guide", "Restore") and "docent-restore" in c.text for c in chunks)
        _consistent(coll)
    assert _search_paths(settings, fake_embedder, "rotate API keys admin console")[0].endswith("faq.txt")


def test_unchanged_rerun_embeds_nothing(settings, fake_embedder, docs):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([docs])
    calls = len(fake_embedder.calls)
    report = ingestor.ingest([docs])
    assert report.count("unchanged") == 3 and report.count("added") == 0
    assert len(fake_embedder.calls) == calls


def test_editing_a_file_reembeds_only_its_changed_chunks(settings, fake_embedder, docs):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([docs])
    fake_embedder.calls.clear()
    md = docs / "install.md"
    md.write_text(md.read_text().replace("follow the wizard", "follow the setup wizard to the end"))
    report = ingestor.ingest([docs])
    assert report.count("updated") == 1 and report.count("unchanged") == 2
    assert fake_embedder.embedded_texts and all("setup wizard" in t for t in fake_embedder.embedded_texts)
    with _open(settings) as coll:
        texts = " ".join(c.text for c in coll.chunks_of(str(md)))
        assert "setup wizard" in texts and "follow the wizard" not in texts
        _consistent(coll)


def test_deleted_file_leaves_faiss_and_metadata(settings, fake_embedder, docs):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([docs])
    with _open(settings) as coll:
        before = coll.chunk_count()
    (docs / "faq.txt").unlink()
    report = ingestor.ingest([docs])
    assert report.count("removed") == 1
    with _open(settings) as coll:
        assert str(docs / "faq.txt") not in {f.path for f in coll.files()}
        assert coll.chunk_count() < before
        _consistent(coll)
    assert not any(p.endswith("faq.txt") for p in _search_paths(settings, fake_embedder, "rotate API keys", k=10))


def test_renamed_file_reuses_its_vectors(settings, fake_embedder, docs):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([docs])
    fake_embedder.calls.clear()
    shutil.move(docs / "guide.rst", docs / "handbook.rst")
    report = ingestor.ingest([docs])
    assert report.count("added") == 1 and report.count("removed") == 1
    assert fake_embedder.calls == []
    with _open(settings) as coll:
        assert {os.path.basename(f.path) for f in coll.files()} == {"install.md", "faq.txt", "handbook.rst"}
        _consistent(coll)


def test_ingesting_one_file_does_not_remove_the_others(settings, fake_embedder, docs):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([docs])
    report = ingestor.ingest([docs / "faq.txt"])
    assert report.count("unchanged") == 1 and report.count("removed") == 0
    assert len(ingestor.sources()) == 3


def test_collections_are_separate(settings, fake_embedder, docs):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([docs / "faq.txt"], collection="hr")
    ingestor.ingest([docs / "install.md"])
    assert [os.path.basename(r.path) for r in ingestor.sources("hr")] == ["faq.txt"]
    assert [os.path.basename(r.path) for r in ingestor.sources()] == ["install.md"]
    assert ingestor.collections() == ["default", "hr"]


def test_remove_drops_a_files_chunks(settings, fake_embedder, docs):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([docs])
    assert ingestor.remove([docs / "install.md"]) == [str(docs / "install.md")]
    with _open(settings) as coll:
        assert len(coll.files()) == 2
        assert coll.chunks_of(str(docs / "install.md")) == []
        _consistent(coll)


def test_bad_files_are_reported_and_the_rest_is_ingested(settings, fake_embedder, docs):
    (docs / "empty.md").write_text("")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (docs / "picture.png").write_bytes(b"\x89PNG")       # cut short: OCR cannot open it
    (docs / "model.blend").write_bytes(b"BLENDER")
    os.symlink(docs / "missing.md", docs / "dangling.md")
    report = Ingestor(settings, fake_embedder).ingest([docs])
    reasons = {os.path.basename(r.path): r.reason for r in report.failed}
    assert set(reasons) == {"empty.md", "binary.txt", "broken.pdf", "dangling.md", "picture.png"}
    assert "empty" in reasons["empty.md"]
    assert "binary" in reasons["binary.txt"]
    assert "PDF" in reasons["broken.pdf"]
    assert "symlink" in reasons["dangling.md"]
    assert "image" in reasons["picture.png"]
    assert [os.path.basename(r.path) for r in report.skipped] == ["model.blend"]
    assert report.count("added") == 3
    assert report.exit_code == EXIT_SOME_FAILED


def test_a_file_that_turns_corrupt_keeps_its_previous_version(settings, fake_embedder, docs):
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([docs])
    (docs / "faq.txt").write_bytes(b"\x00\x01\x02" * 100)
    report = ingestor.ingest([docs])
    assert report.exit_code == EXIT_SOME_FAILED
    assert "previous version stays" in report.failed[0].reason
    with _open(settings) as coll:
        record = coll.file(str(docs / "faq.txt"))
        assert record.status == "failed" and record.n_chunks > 0
        assert "Rotate" in " ".join(c.text for c in coll.chunks_of(record.path))
    # Reported again on the next run, without parsing it again.
    assert Ingestor(settings, fake_embedder).ingest([docs]).exit_code == EXIT_SOME_FAILED


def test_other_embedding_model_is_refused_with_advice_then_reembedded(settings, fake_embedder, docs):
    Ingestor(settings, fake_embedder).ingest([docs])
    other = FakeEmbedder(name="other-model", dim=32)
    with pytest.raises(EmbeddingMismatch, match="--reembed"):
        Ingestor(settings, other).ingest([docs])
    report = Ingestor(settings, other).ingest([docs], reembed=True)
    assert report.reembedded > 0 and report.count("unchanged") == 3
    with _open(settings) as coll:
        assert coll.info()["embedding_model"] == "other-model"
        assert coll.vector_index().dim == 32
        coll.check_model("other-model", 32)
        _consistent(coll)


@faiss_only
def test_second_writer_is_refused_while_the_first_holds_the_collection(settings, fake_embedder, docs):
    Ingestor(settings, fake_embedder).ingest([docs])
    with CollectionWriter(settings.home_dir(), "default", "fake-embedder", 64):
        with pytest.raises(CollectionLocked, match="another docent process"):
            Ingestor(settings, fake_embedder).ingest([docs])
    assert Ingestor(settings, fake_embedder).ingest([docs]).count("unchanged") == 3


def test_interrupt_keeps_finished_files_and_a_consistent_index(settings, docs):
    for i in range(6):
        (docs / f"note{i}.md").write_text(f"# Note {i}\n\nThis is note number {i} about topic{i}.\n")
    (docs / "note3.md").write_text("# Note 3\n\nBOOM interrupt while embedding this one.\n")
    embedder = FakeEmbedder(fail_on="BOOM")
    settings = settings.with_values("ingest", checkpoint_seconds=0)
    # One file per embedding batch so the interrupt lands mid-run.
    import ingest.pipeline as pipeline
    old_pool, pipeline._EMBED_POOL = pipeline._EMBED_POOL, 1
    try:
        report = Ingestor(settings, embedder).ingest([docs])
    finally:
        pipeline._EMBED_POOL = old_pool
    assert report.interrupted and report.exit_code == EXIT_INTERRUPTED
    with _open(settings) as coll:
        stored = {os.path.basename(f.path) for f in coll.files()}
        assert "note3.md" not in stored and {"faq.txt", "guide.rst", "install.md"} <= stored
        _consistent(coll)
    # The next run finishes the job.
    report = Ingestor(settings, FakeEmbedder()).ingest([docs])
    assert report.count("added") >= 1 and not report.interrupted
    with _open(settings) as coll:
        assert len(coll.files()) == 9
        _consistent(coll)


@faiss_only
def test_crash_while_publishing_leaves_the_last_good_index(settings, fake_embedder, docs, monkeypatch):
    Ingestor(settings, fake_embedder).ingest([docs])
    with _open(settings) as coll:
        before = (coll.generation, coll.chunk_count(), sorted(f.path for f in coll.files()))
    (docs / "new.md").write_text("# New\n\nA brand new page about quotas.\n")
    (docs / "faq.txt").unlink()

    def crash(*args):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr("docent.atomic.os.replace", crash)
    with pytest.raises(OSError, match="simulated"):
        Ingestor(settings, fake_embedder).ingest([docs])
    monkeypatch.undo()
    with _open(settings) as coll:
        assert (coll.generation, coll.chunk_count(), sorted(f.path for f in coll.files())) == before
        _consistent(coll)
    report = Ingestor(settings, fake_embedder).ingest([docs])
    assert report.count("added") == 1 and report.count("removed") == 1
    leftovers = [p.name for p in (settings.home_dir() / "default").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@faiss_only
def test_reader_rebuilds_vectors_if_the_faiss_file_is_lost(settings, fake_embedder, docs):
    Ingestor(settings, fake_embedder).ingest([docs])
    for p in (settings.home_dir() / "default").glob("vectors-*.faiss"):
        p.unlink()
    with _open(settings) as coll:
        _consistent(coll)
        assert coll.search(fake_embedder.embed(["rotate keys"]), 1)[0]


def test_keyword_search_finds_exact_terms(settings, fake_embedder, docs):
    Ingestor(settings, fake_embedder).ingest([docs])
    with _open(settings) as coll:
        hits = coll.keyword_search("docent-restore", 3)
        assert hits and "docent-restore" in coll.chunks([hits[0][0]])[0].text


def test_progress_reports_every_file(settings, fake_embedder, docs):
    events = []
    Ingestor(settings, fake_embedder).ingest([docs], progress=events.append)
    assert [e.done for e in events] == [1, 2, 3] and all(e.total == 3 for e in events)


@faiss_only
def test_vectors_are_normalised_and_stored_once_per_distinct_text(settings, fake_embedder, docs):
    (docs / "copy.txt").write_text((docs / "faq.txt").read_text())
    Ingestor(settings, fake_embedder).ingest([docs])
    with _open(settings) as coll:
        n_vectors = coll.conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        n_hashes = coll.conn.execute("SELECT count(DISTINCT chunk_hash) FROM chunks").fetchone()[0]
        assert n_vectors == n_hashes < coll.chunk_count()
        stored = np.vstack([np.frombuffer(r[0], dtype=np.float32) for r in coll.conn.execute("SELECT vector FROM vectors")])
        assert np.allclose(np.linalg.norm(stored, axis=1), 1, atol=1e-5)
        index = coll.vector_index()          # float16 codes: normalised to their precision
        vecs = np.vstack([index.reconstruct(i) for i in index.ids()])
        assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-3)
