"""The store's seams: numbered migrations of older collections, readers safe across
threads, one ChunkFilter honoured by every search with k exact, a second VectorIndex
plugged in without touching retrieval."""

from __future__ import annotations

import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.retrieval import Retriever
from ingest.pipeline import Ingestor
from ingest.store import (DB_NAME, SCHEMA_VERSION, ChunkFilter, Collection, CollectionWriter, StoreError,
                          VectorIndex)
from ingest.store import schema

# A collection written by docent before numbered migrations (02cc813), with the fake
# embedder: files faq.txt, install.md, secret-plans.md under /tmp/oldcoll/docs.
V1 = Path(__file__).parent / "data" / "collection-v1"


def _old_collection(settings, name="v1", before_terms=False) -> Path:
    folder = settings.home_dir() / name
    shutil.copytree(V1, folder)
    if before_terms:            # older still: from before labels and stored keyword terms
        conn = sqlite3.connect(folder / DB_NAME)
        conn.executescript("DROP TABLE chunk_terms; DROP TABLE terms; DROP TABLE chunk_labels;")
        conn.close()
    return folder


def _version(folder: Path) -> int:
    conn = sqlite3.connect(folder / DB_NAME)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("before_terms", [False, True])
def test_an_old_collection_opens_and_is_migrated_once(settings, fake_embedder, before_terms, monkeypatch):
    folder = _old_collection(settings, before_terms=before_terms)
    assert _version(folder) == 0
    retriever = Retriever(settings.with_values("retrieval", min_score=0.0), fake_embedder)
    passages = retriever.retrieve("rotate API keys", "v1", k=2, mode="keyword").passages
    assert passages and "Rotate" in passages[0].text
    retriever.close()
    assert _version(folder) == SCHEMA_VERSION
    with Collection(settings.home_dir(), "v1") as store:
        assert store.keyword_index() is not None and len(store.keyword_index()) == store.chunk_count() == 3
        assert store.label_counts() is not None
        assert store.info()["schema_version"] == str(SCHEMA_VERSION)

    ran = []
    monkeypatch.setattr(schema, "MIGRATIONS", tuple((why, lambda conn, f=f: ran.append(f) or f(conn))
                                                     for why, f in schema.MIGRATIONS))
    Collection(settings.home_dir(), "v1").close()
    with CollectionWriter(settings.home_dir(), "v1", None, None):
        pass
    assert ran == []                                    # once: never again


def test_an_old_collection_keeps_its_files_and_takes_new_ones(settings, fake_embedder, tmp_path):
    _old_collection(settings)
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "backup.md").write_text("# Backups\n\nBackups run nightly and are kept for 30 days.\n")
    report = Ingestor(settings, embedder=fake_embedder).ingest([extra], collection="v1")
    assert report.count("added") == 1
    with Collection(settings.home_dir(), "v1") as store:
        names = sorted(Path(f.path).name for f in store.files())
        assert names == ["backup.md", "faq.txt", "install.md", "secret-plans.md"]
        assert len(store.vector_index()) == store.chunk_count() == 4


def test_a_collection_from_a_newer_docent_is_refused_clearly(settings):
    folder = _old_collection(settings)
    conn = sqlite3.connect(folder / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer docent"):
        CollectionWriter(settings.home_dir(), "v1", None, None)
    # Nothing was changed, and the lock was let go.
    assert _version(folder) == SCHEMA_VERSION + 5
    with pytest.raises(StoreError, match="newer docent"):
        CollectionWriter(settings.home_dir(), "v1", None, None)


def test_readers_are_safe_across_threads(collection, fake_embedder):
    """Many questions at once through one Retriever: each thread reads with its own
    connection (a shared one failed with 'cannot start a transaction within a transaction')."""
    retriever = Retriever(collection.with_values("retrieval", min_score=0.0), fake_embedder)
    questions = ["rotate API keys", "install on windows", "when do backups run", "restore a backup",
                 "apt repository", "disk space needed"] * 4
    expected = {q: [p.text for p in retriever.retrieve(q, k=2).passages] for q in set(questions)}
    for _ in range(5):
        retriever.close()          # fresh collections: the first reads race to open and build

        def ask(q):
            return q, [p.text for p in retriever.retrieve(q, k=2).passages]
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(ask, questions))
        assert all(expected[q] == texts for q, texts in results)
    retriever.close()


def test_threads_that_ended_leave_no_open_connections_behind(collection, fake_embedder):
    """A server that answers each request in a thread of its own: every thread opens its
    own connection, and one per finished thread stayed open (memory and file handles grew
    with every request)."""
    import os
    import threading
    retriever = Retriever(collection.with_values("retrieval", min_score=0.0), fake_embedder)

    home = os.path.realpath(collection.home_dir())

    def open_catalogs() -> int:            # of this collection: other tests' may still be open
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir() if os.path.realpath(fd).startswith(home)
                   and os.path.realpath(fd).endswith(DB_NAME)) if fds.is_dir() else 0
    retriever.retrieve("rotate API keys", k=2)
    for _ in range(30):
        thread = threading.Thread(target=retriever.retrieve, args=("restore a backup",), kwargs={"k": 2})
        thread.start()
        thread.join(30)
    retriever.retrieve("when do backups run", k=2)
    assert open_catalogs() <= 4           # this thread's, the last one's, and the keyword pool's
    retriever.close()


def _restricted_setup(settings, fake_embedder, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "hr").mkdir(parents=True)
    for i in range(6):
        (folder / f"note{i}.md").write_text(f"# Note {i}\n\nThe quota for team {i} is {i + 1} terabytes of storage.\n")
        (folder / "hr" / f"pay{i}.md").write_text(f"# Pay {i}\n\nThe storage quota bonus for grade {i} is secret.\n")
    Ingestor(settings, embedder=fake_embedder).ingest([folder], collection="mixed")


def test_a_chunk_filter_is_honoured_by_dense_and_keyword_search_with_k_exact(settings, fake_embedder, tmp_path):
    _restricted_setup(settings, fake_embedder, tmp_path)
    rule = ChunkFilter(path_rule=lambda path: "/hr/" in path, key="hr")
    with Collection(settings.home_dir(), "mixed") as store:
        hr = store.excluded_ids(rule)
        assert len(hr) == 6
        query = fake_embedder.embed(["storage quota"])
        for k in (1, 3, 6):
            dense = store.dense_search(query, k, rule)[0]
            words = store.keyword_search("storage quota", k, rule=rule)
            assert len(dense) == len(words) == k
            assert not hr & {i for i, _ in dense} and not hr & {i for i, _ in words}
        # Unfiltered, the hr files do rank among them: the filter is what keeps them out.
        assert hr & {i for i, _ in store.keyword_search("storage quota bonus", 3)}
        assert len(store.dense_search(query, 20, rule)[0]) == 6          # all that is left


def test_restricted_paths_reach_every_search_through_the_retriever(settings, fake_embedder, tmp_path):
    _restricted_setup(settings, fake_embedder, tmp_path)
    s = settings.with_values("leaks", restricted_paths=("hr/**",)).with_values("retrieval", min_score=0.0)
    retriever = Retriever(s, fake_embedder)
    for mode in ("dense", "keyword", "hybrid"):
        passages = retriever.retrieve("storage quota bonus grade", "mixed", k=4, mode=mode).passages
        assert passages and not any("/hr/" in p.source for p in passages), mode
    retriever.close()


class ArrayIndex:
    """A second VectorIndex: brute force over a numpy array, saved as .npy (no pickle)."""
    searches = 0

    def __init__(self, dim, ids=None, vectors=None):
        self.dim = dim
        self._ids = np.zeros(0, dtype=np.int64) if ids is None else ids
        self._vectors = np.zeros((0, dim), dtype=np.float32) if vectors is None else vectors

    def __len__(self):
        return len(self._ids)

    def ids(self):
        return self._ids

    def add(self, ids, vectors):
        self._ids = np.concatenate([self._ids, ids])
        self._vectors = np.vstack([self._vectors, np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)])

    def remove(self, ids):
        keep = ~np.isin(self._ids, ids)
        self._ids, self._vectors = self._ids[keep], self._vectors[keep]

    def search(self, queries, k, exclude=frozenset()):
        ArrayIndex.searches += 1
        out = []
        for scores in np.asarray(queries) @ self._vectors.T:
            order = np.argsort(-scores)
            out.append([(int(self._ids[i]), float(scores[i])) for i in order if int(self._ids[i]) not in exclude][:k])
        return out

    def save(self, path):
        with open(path, "wb") as fh:
            np.save(fh, np.column_stack([self._ids.astype(np.float32), self._vectors]), allow_pickle=False)


class ArrayBackend:
    def new(self, dim):
        return ArrayIndex(dim)

    def load(self, path):
        if not Path(path).is_file():
            return None
        data = np.load(path, allow_pickle=False)
        return ArrayIndex(data.shape[1] - 1, data[:, 0].astype(np.int64), data[:, 1:].copy())

    def is_current(self, index):
        return isinstance(index, ArrayIndex)


def test_a_second_vector_index_serves_retrieval_without_touching_it(settings, fake_embedder, docs, monkeypatch):
    from ingest.store import VECTOR_BACKENDS
    questions = ["backups run nightly", "rotate API keys", "apt install docent"]

    def ranked():
        retriever = Retriever(settings.with_values("retrieval", min_score=0.0), fake_embedder)
        try:
            return [[p.text for p in retriever.retrieve(q, k=3, mode="dense").passages] for q in questions]
        finally:
            retriever.close()
    Ingestor(settings, embedder=fake_embedder).ingest([docs])
    with_faiss = ranked()
    monkeypatch.setitem(VECTOR_BACKENDS, "faiss", ArrayBackend())
    assert isinstance(ArrayIndex(4), VectorIndex)
    Ingestor(settings, embedder=fake_embedder).ingest([docs], reembed=True)      # rewritten by the new backend
    with Collection(settings.home_dir(), settings.ingest.collection) as store:
        assert isinstance(store.vector_index(), ArrayIndex)
    before = ArrayIndex.searches
    # The best passage is the same (the order of near ties may differ: FAISS keeps float16 codes).
    assert [r[0] for r in ranked()] == [r[0] for r in with_faiss] and ArrayIndex.searches > before
    assert "nightly" in with_faiss[0][0]


def test_a_vector_backend_given_to_the_builder_serves_ingest_and_retrieval(settings, fake_embedder, docs):
    from bot.builder import Components
    parts = Components(settings.with_values("retrieval", min_score=0.0), embedder=fake_embedder,
                       vectors=ArrayBackend())
    parts.ingestor.ingest([docs])
    before = ArrayIndex.searches
    passages = parts.retriever.retrieve("backups run nightly", k=1, mode="dense").passages
    assert "nightly" in passages[0].text and ArrayIndex.searches > before
    assert parts.retriever.embedder is parts.ingestor.embedder is fake_embedder      # made once, shared
    parts.close()


def test_a_vector_backend_named_in_settings_comes_from_an_entry_point(settings, fake_embedder, docs, tmp_path,
                                                                      monkeypatch):
    """A package registers a backend under docent.vector_backends; `store.vectors` picks it."""
    from bot.builder import Components
    package = tmp_path / "plugin"
    package.mkdir()
    (package / "arrays_backend.py").write_text(
        "import sys\nsys.path.insert(0, %r)\nfrom test_store import ArrayBackend\n" % str(Path(__file__).parent))
    info = package / "arrays_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: arrays-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[docent.vector_backends]\narrays = arrays_backend:ArrayBackend\n")
    monkeypatch.syspath_prepend(str(package))
    parts = Components(settings.with_values("store", vectors="arrays").with_values("retrieval", min_score=0.0),
                       embedder=fake_embedder)
    parts.check(generator=False)
    parts.ingestor.ingest([docs])
    assert type(parts.vectors).__name__ == "ArrayBackend"
    assert "nightly" in parts.retriever.retrieve("backups run nightly", k=1, mode="dense").passages[0].text
    with Collection(settings.home_dir(), settings.ingest.collection, vectors=parts.vectors) as store:
        assert type(store.vector_index()).__name__ == "ArrayIndex"
    parts.close()


def test_a_vector_leaves_the_catalog_with_the_last_chunk_that_used_it(settings, fake_embedder, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha explains the backup schedule in detail.\n")
    (folder / "copy-of-a.txt").write_text("Alpha explains the backup schedule in detail.\n")     # the same chunk
    (folder / "b.txt").write_text("Bravo explains the restore procedure in detail.\n")
    ingestor = Ingestor(settings, fake_embedder)
    ingestor.ingest([folder])

    def stored():
        with Collection(settings.home_dir(), "default") as coll:
            return (coll.conn.execute("SELECT count(*) FROM vectors").fetchone()[0],
                    coll.conn.execute("SELECT count(DISTINCT chunk_hash) FROM chunks").fetchone()[0])
    assert stored() == (2, 2)
    (folder / "b.txt").write_text("Bravo now explains restores from tape.\n")
    ingestor.ingest([folder])
    assert stored() == (2, 2)                     # the old vector of b went with its chunk
    (folder / "a.txt").unlink()
    ingestor.ingest([folder])
    assert stored() == (2, 2)                     # still used by the copy
    (folder / "copy-of-a.txt").unlink()
    ingestor.ingest([folder])
    assert stored() == (1, 1)
