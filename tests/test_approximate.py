"""A large collection switches to approximate (IVF) search and back, through real ingests:
the index holds exactly the catalog's chunks, follows edits and deletions in place, and
finds what exact search finds."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bot.retrieval import Retriever
from ingest.pipeline import Ingestor
from ingest.store import Collection
from ingest.store.approximate import nlist_for

WORDS = ("backup restore deploy invoice payroll laptop printer badge vpn proxy wiki ticket "
         "release branch server database index cluster replica schedule holiday refund audit "
         "policy budget travel expense contract vendor license patch kernel disk memory").split()


@pytest.fixture
def big(settings):
    # One commit per ingest (the test profile commits after every file).
    return settings.with_values("store", approximate_above=100, nprobe=64).with_values(
        "ingest", checkpoint_seconds=3600)


def _write(folder, n, seed=0):
    rng = random.Random(seed)
    folder.mkdir(exist_ok=True)
    for i in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(12))
        (folder / f"note{i:03d}.txt").write_text(f"Note {i} says {words} item{i}.\n")


def _index_and_ids(settings):
    with Collection(settings.home_dir(), "default") as coll:
        index = coll.vector_index()
        chunk_ids = {row[0] for row in coll.conn.execute("SELECT id FROM chunks")}
        return index, chunk_ids


def test_a_collection_past_the_threshold_is_searched_approximately_and_finds_the_same(big, fake_embedder, tmp_path):
    folder = tmp_path / "notes"
    _write(folder, 160)
    Ingestor(big, fake_embedder).ingest([folder])
    index, chunk_ids = _index_and_ids(big)
    assert index.approximate and len(index) == len(chunk_ids) == 160
    assert set(index.ids().tolist()) == chunk_ids

    exact = big.with_values("store", approximate_above=0)
    queries = [f"Note {i} says item{i}" for i in range(0, 160, 8)]
    approx_hits = [Retriever(big, fake_embedder).retrieve(q, k=5, mode="dense").passages for q in queries]
    # The same collection rebuilt exact (the threshold off): the reference ranking.
    Ingestor(exact, fake_embedder).ingest([folder], reembed=True)
    index, _ = _index_and_ids(exact)
    assert not index.approximate
    exact_hits = [Retriever(exact, fake_embedder).retrieve(q, k=5, mode="dense").passages for q in queries]
    found = sum(len({p.source for p in a} & {p.source for p in e}) for a, e in zip(approx_hits, exact_hits))
    assert found >= 0.9 * 5 * len(queries)


def test_edits_and_deletions_reach_the_approximate_index_in_place_and_a_shrunk_one_turns_exact(
        big, fake_embedder, tmp_path):
    folder = tmp_path / "notes"
    _write(folder, 160)
    ingestor = Ingestor(big, fake_embedder)
    ingestor.ingest([folder])
    before, _ = _index_and_ids(big)
    nlist = before.index.nlist
    (folder / "note007.txt").write_text("Note 7 now says the zeppelin hangar opens at dawn.\n")
    for i in range(150, 160):
        (folder / f"note{i:03d}.txt").unlink()
    ingestor.ingest([folder])
    index, chunk_ids = _index_and_ids(big)
    assert index.approximate and index.index.nlist == nlist          # updated in place, not retrained
    assert set(index.ids().tolist()) == chunk_ids and len(chunk_ids) == 150
    [top] = Retriever(big, fake_embedder).retrieve("zeppelin hangar dawn", k=1, mode="dense").passages
    assert top.source.endswith("note007.txt") and "zeppelin" in top.text

    for i in range(40, 150):                     # 40 left: under half the threshold
        (folder / f"note{i:03d}.txt").unlink()
    ingestor.ingest([folder])
    index, chunk_ids = _index_and_ids(big)
    assert not index.approximate and set(index.ids().tolist()) == chunk_ids and len(chunk_ids) == 40


def test_lists_grow_with_the_collection_and_never_outnumber_its_vectors():
    sizes = [1_000, 10_000, 100_000, 1_000_000]
    lists = [nlist_for(n) for n in sizes]
    assert lists == sorted(lists) and all(2 * np.sqrt(n) <= m <= 8 * np.sqrt(n) for n, m in zip(sizes, lists))
    assert [nlist_for(n) for n in (1, 22, 160)] == [1, 2, 16]


def test_a_threshold_of_a_few_chunks_works(settings, fake_embedder, tmp_path):
    tiny = settings.with_values("store", approximate_above=3)
    folder = tmp_path / "notes"
    _write(folder, 5)
    Ingestor(tiny, fake_embedder).ingest([folder])
    index, chunk_ids = _index_and_ids(tiny)
    assert index.approximate and set(index.ids().tolist()) == chunk_ids
    [top] = Retriever(tiny, fake_embedder).retrieve("Note 3 says item3", k=1, mode="dense").passages
    assert top.source.endswith("note003.txt")


def _vector_files(settings):
    with Collection(settings.home_dir(), "default") as coll:
        return sorted(p.name for p in coll.directory.glob("vectors-*.faiss")), coll.info()


def test_small_changes_to_a_large_index_are_not_rewritten_in_full_and_readers_see_them(big, fake_embedder, tmp_path):
    folder = tmp_path / "notes"
    _write(folder, 160)
    ingestor = Ingestor(big, fake_embedder)
    ingestor.ingest([folder])
    files, info = _vector_files(big)
    base = info["vectors_base"]
    assert files == [f"vectors-{int(base):06d}.faiss"]

    (folder / "note007.txt").write_text("Note 7 now says the zeppelin hangar opens at dawn.\n")
    (folder / "note008.txt").unlink()
    ingestor.ingest([folder])
    files, info = _vector_files(big)
    assert files == [f"vectors-{int(base):06d}.faiss"] and info["vectors_base"] == base     # no new full file
    assert int(info["generation"]) > int(base) and int(info["vectors_changes"]) == 3
    # A reader opens the old file and adds what changed from the catalog.
    index, chunk_ids = _index_and_ids(big)
    assert set(index.ids().tolist()) == chunk_ids
    [top] = Retriever(big, fake_embedder).retrieve("zeppelin hangar dawn", k=1, mode="dense").passages
    assert top.source.endswith("note007.txt") and "zeppelin" in top.text

    for i in range(20, 40):                      # 20 more changed files: past 5% of the index
        (folder / f"note{i:03d}.txt").write_text(f"Note {i} was rewritten about quasars.\n")
    ingestor.ingest([folder])
    files, info = _vector_files(big)
    assert int(info["vectors_base"]) > int(base) and int(info["vectors_changes"]) < 20
    assert f"vectors-{int(info['vectors_base']):06d}.faiss" in files and len(files) <= 2
    index, chunk_ids = _index_and_ids(big)
    assert set(index.ids().tolist()) == chunk_ids


def test_chunk_ids_are_never_reused(settings, fake_embedder, tmp_path):
    folder = tmp_path / "notes"
    _write(folder, 3)
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([folder])
    _, before = _index_and_ids(settings)
    (folder / "note002.txt").unlink()            # the file holding the highest id
    ingestor.ingest([folder])
    (folder / "note009.txt").write_text("A new note about lighthouses.\n")
    ingestor.ingest([folder])
    _, after = _index_and_ids(settings)
    assert min(after - before) > max(before)


def test_collections_lists_size_and_how_each_is_searched(big, fake_embedder, tmp_path):
    from click.testing import CliRunner

    from docent.cli import main

    folder = tmp_path / "notes"
    _write(folder, 160)
    Ingestor(big, fake_embedder).ingest([folder])
    Ingestor(big, fake_embedder).ingest([folder / "note001.txt"], collection="small", remember=False)
    (big.home_dir() / "broken").mkdir()
    (big.home_dir() / "broken" / "docent.sqlite").write_bytes(b"not a database at all" * 100)
    result = CliRunner().invoke(main, ["--home", str(big.home_dir()), "collections"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "160 files, 160 chunks, fake-embedder, search approximate (IVF: 16 of 16 lists a search)" in lines["default"]
    assert "1 files, 1 chunks, fake-embedder, search exact" in lines["small"]
    assert "cannot be read" in lines["broken"]


def test_readers_in_threads_while_a_writer_publishes_incremental_generations(big, fake_embedder, tmp_path):
    import threading

    folder = tmp_path / "notes"
    _write(folder, 160)
    ingestor = Ingestor(big, fake_embedder)
    ingestor.ingest([folder])
    retriever = Retriever(big, fake_embedder)
    errors, searches, done = [], [0], threading.Event()

    def read():
        while not done.is_set():
            try:
                passages = retriever.retrieve("Note says backup restore", k=3, mode="dense").passages
                assert len(passages) == 3
                searches[0] += 1
            except Exception as exc:           # any failure in a reader thread fails the test
                errors.append(exc)
                return
    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for i in range(6):                     # six generations, each naming the same full file
            (folder / f"note{i:03d}.txt").write_text(f"Note {i} is now about walrus number {i}.\n")
            ingestor.ingest([folder / f"note{i:03d}.txt"], remember=False)
    finally:
        done.set()
        for thread in readers:
            thread.join(timeout=30)
    assert not errors and searches[0] > 0
    _, info = _vector_files(big)
    assert int(info["vectors_changes"]) > 0          # the generations above were incremental
    for i in range(6):
        [top] = retriever.retrieve(f"walrus number {i}", k=1, mode="dense").passages
        assert top.source.endswith(f"note{i:03d}.txt")
    retriever.close()
