"""The vector side of a collection behind one small interface, `VectorIndex`, and the
FAISS implementation.

The catalog (SQLite) is the source of truth: it holds every vector by chunk hash, so an
index can always be rebuilt from it (`rebuild`). A backend only has to add, remove,
search and persist; the reader and the writer publish its file per generation (see
ingest/store/writer.py). Another backend is chosen by settings `store.vectors` (a
package registers it under the entry point group docent.vector_backends) or passed to
bot.builder.Components(vectors=...), without touching retrieval or answering.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

VECTOR_FILE = re.compile(r"^vectors-(\d+)\.faiss$")
Hit = tuple[int, float]


@runtime_checkable
class VectorIndex(Protocol):
    """Chunk ids → unit vectors; search by inner product (cosine), best first."""
    dim: int

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> None: ...

    def ids(self) -> np.ndarray:
        """Every id held (for consistency checks)."""
        ...

    def search(self, queries: np.ndarray, k: int, exclude: frozenset[int] = frozenset()) -> list[list[Hit]]:
        """For each query row, the k best (id, score) whose id is not in `exclude`."""
        ...

    def save(self, path: Path) -> None: ...


class VectorBackend(Protocol):
    """Makes and loads one kind of VectorIndex. Optional, looked up with getattr:
    `from_vectors(dim, ids, vectors)` (an index holding these, made in one go: rebuild
    uses it) and `suited(index, conn)` (the index to publish for its size: commit uses it)."""

    def new(self, dim: int) -> VectorIndex: ...

    def load(self, path: Path) -> VectorIndex | None:
        """The index saved at `path`, or None when it is missing or unreadable."""
        ...

    def is_current(self, index: VectorIndex) -> bool:
        """False for an index of an older layout, which the writer rebuilds."""
        ...


class FaissIndex:
    """IndexIDMap2 over float16 scalar-quantised codes, inner product: half the memory a
    search reads, twice as fast as float32 on 100k chunks, the same top results. Older
    collections' IndexFlatIP files are still read. A large collection's index is an IVF
    over the same codes instead (ingest/store/approximate.py): approximate, and as fast
    at a million chunks as the flat one at fifty thousand."""

    def __init__(self, index):
        self.index = index

    @property
    def dim(self) -> int:
        return self.index.d

    def __len__(self) -> int:
        return self.index.ntotal

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_with_ids(np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim),
                                np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    @property
    def approximate(self) -> bool:
        from ingest.store.approximate import is_ivf
        return is_ivf(self.index)

    def describe(self) -> str:
        """How a search goes, for `docent collections`."""
        if not self.approximate:
            return "exact"
        import faiss
        ivf = faiss.extract_index_ivf(self.index)
        return f"approximate (IVF: {ivf.nprobe} of {ivf.nlist} lists a search)"

    def ids(self) -> np.ndarray:
        import faiss
        if self.approximate:
            from ingest.store.approximate import ids_of
            return ids_of(self.index)
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def reconstruct(self, chunk_id: int) -> np.ndarray:
        return self.index.reconstruct(int(chunk_id))

    def search(self, queries: np.ndarray, k: int, exclude: frozenset[int] = frozenset()) -> list[list[Hit]]:
        # Excluded ids are dropped from as many extra results, so k stays exact.
        want = min(k + len(exclude), self.index.ntotal)
        if want == 0:
            return [[] for _ in range(len(queries))]
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), want)
        return [[(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i >= 0 and int(i) not in exclude][:k]
                for row_ids, row_scores in zip(ids, scores)]

    def save(self, path: Path) -> None:
        import faiss
        try:
            faiss.write_index(self.index, str(path))
        except RuntimeError as exc:         # FAISS reports a failed write (a full disk) this way
            import errno
            full = "No space" in str(exc) or "Disk quota" in str(exc)
            raise OSError(errno.ENOSPC if full else errno.EIO, f"cannot write {Path(path).name}") from None


class FaissBackend:
    """Exact search up to `approximate_above` chunks (0: always exact), IVF above it,
    searching `nprobe` lists (settings store.approximate_above, store.nprobe)."""

    def __init__(self, approximate_above: int = 250_000, nprobe: int = 512):
        self.approximate_above = approximate_above
        self.nprobe = nprobe

    def new(self, dim: int) -> FaissIndex:
        import faiss
        return FaissIndex(faiss.IndexIDMap2(faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16,
                                                                       faiss.METRIC_INNER_PRODUCT)))

    def load(self, path: Path) -> FaissIndex | None:
        if not Path(path).is_file():
            return None
        import faiss
        try:
            return FaissIndex(faiss.read_index(str(path)))
        except RuntimeError:
            return None

    def is_current(self, index: VectorIndex) -> bool:
        import faiss
        if not isinstance(index, FaissIndex):
            return False
        if index.approximate:
            return True
        return isinstance(faiss.downcast_index(index.index.index), faiss.IndexScalarQuantizer)

    def suited(self, index: FaissIndex, conn: sqlite3.Connection) -> FaissIndex:
        """The index to publish for its size: the same one, or (past the threshold either
        way, or when IVF's lists were trained for a very different size) a new one built
        from the catalog's vectors. Called by the writer before it saves a generation."""
        from ingest.store.approximate import needs_training
        n = len(index)
        want = bool(self.approximate_above) and n > self.approximate_above
        if want == index.approximate and not (want and needs_training(index.index, n)):
            return index
        if not want and n >= self.approximate_above // 2 and self.approximate_above:
            return index                 # a little under the threshold: no flapping between the two
        ids, vectors = catalog_vectors(conn, index.dim)
        return self._made(index.dim, ids, vectors, want)

    def from_vectors(self, dim: int, ids: np.ndarray, vectors: np.ndarray) -> FaissIndex:
        """A new index holding these vectors: approximate past the threshold, else exact
        (rebuild's one pass over the catalog; no exact index built only to be replaced)."""
        return self._made(dim, ids, vectors, bool(self.approximate_above) and len(ids) > self.approximate_above)

    def _made(self, dim: int, ids: np.ndarray, vectors: np.ndarray, approximate: bool) -> FaissIndex:
        if approximate:
            from ingest.store.approximate import build
            return FaissIndex(build(dim, ids, vectors, self.nprobe))
        exact = self.new(dim)
        if len(ids):
            exact.add(ids, vectors)
        return exact


VECTOR_BACKENDS: dict[str, VectorBackend] = {"faiss": FaissBackend()}
ENTRY_POINT_GROUP = "docent.vector_backends"


def vector_backend(name: str, settings=None) -> VectorBackend:
    """The backend settings `store.vectors` names: built in, or registered by another
    package under the entry point group docent.vector_backends (the object: a
    VectorBackend, or a class making one). `settings`: the StoreSettings (FAISS's
    approximate_above and nprobe)."""
    if isinstance(VECTOR_BACKENDS.get(name), FaissBackend) and settings is not None:
        return FaissBackend(settings.approximate_above, settings.nprobe)
    if name in VECTOR_BACKENDS:
        return VECTOR_BACKENDS[name]
    from importlib.metadata import entry_points
    points = {p.name: p for p in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in points:
        from ingest.errors import StoreError
        known = ", ".join(sorted(set(VECTOR_BACKENDS) | set(points)))
        raise StoreError(f"unknown store.vectors {name!r}: use one of {known}")
    try:
        found = points[name].load()
    except Exception as exc:          # a broken third-party package: say which, not a traceback
        from ingest.errors import StoreError
        raise StoreError(f"the vector backend {name!r} ({points[name].value}) cannot be loaded: {exc}") from None
    return found() if isinstance(found, type) else found


def vectors_file(directory: Path, generation: int) -> Path:
    return directory / f"vectors-{generation:06d}.faiss"


def stored_vectors(conn: sqlite3.Connection, ids: Sequence[int] | None = None) -> Iterable[tuple[int, bytes]]:
    """(chunk id, vector bytes) of every chunk, or of the chunks `ids` (at most a few
    hundred: one SQL parameter each), in id order."""
    where = f"WHERE c.id IN ({','.join('?' * len(ids))}) " if ids is not None else ""
    return conn.execute("SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.chunk_hash = c.chunk_hash "
                        f"{where}ORDER BY c.id", [int(i) for i in ids] if ids is not None else [])


def catalog_vectors(conn: sqlite3.Connection, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of every chunk, from the catalog, in id order."""
    most = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    ids = np.empty(most, dtype=np.int64)
    vectors = np.empty((most, dim), dtype=np.float32)     # filled row by row: no list of blobs on the side
    n = 0
    for n, (chunk_id, blob) in enumerate(stored_vectors(conn), start=1):
        ids[n - 1] = chunk_id
        vectors[n - 1] = np.frombuffer(blob, dtype=np.float32)
    return ids[:n], vectors[:n]


def rebuild(backend: VectorBackend, conn: sqlite3.Connection, dim: int) -> VectorIndex:
    """A new index holding every chunk's vector from the catalog (approximate when the
    backend says the collection is large enough)."""
    ids, vectors = catalog_vectors(conn, dim)
    make = getattr(backend, "from_vectors", None)
    if make is not None:
        return make(dim, ids, vectors)
    index = backend.new(dim)
    if len(ids):
        index.add(ids, vectors)
    return index


def load_generation(backend: VectorBackend, conn: sqlite3.Connection, directory: Path, generation: int,
                    dim: int, base: int | None = None) -> VectorIndex:
    """The index of `generation`: its file, or the file of its `base` generation brought up
    to date from the catalog (a large collection's writer saves a full file only when the
    changes since the last one add up; see CollectionWriter.commit). A rebuild from the
    catalog when the file is missing, unreadable or disagrees with the chunk table."""
    index = backend.load(vectors_file(directory, generation if base is None else base))
    if index is not None and index.dim == dim and base is not None and base != generation:
        catch_up(index, conn)
    count = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    if index is None or len(index) != count or index.dim != dim:
        index = rebuild(backend, conn, dim)
    return index


def catch_up(index: VectorIndex, conn: sqlite3.Connection) -> int:
    """Apply to `index` what changed in the catalog since it was saved: chunks gone are
    removed, chunks new are added with their stored vectors. Chunk ids are never reused
    (the writer hands them out), so an id names one chunk and one vector for good.
    Returns how many ids changed."""
    held = np.sort(index.ids())
    stored = np.fromiter((r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY id")), dtype=np.int64)
    gone = np.setdiff1d(held, stored, assume_unique=True)
    new = np.setdiff1d(stored, held, assume_unique=True)
    if len(gone):
        index.remove(gone)
    for start in range(0, len(new), 500):
        rows = stored_vectors(conn, new[start:start + 500]).fetchall()
        if rows:
            index.add(np.array([r[0] for r in rows], dtype=np.int64),
                      np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows]))
    return len(gone) + len(new)
