"""Where collections are kept, chosen by settings `store.backend`: one `Store` interface
over the FAISS store (a folder per collection: SQLite catalog + FAISS file, under the
home folder) and the PostgreSQL store (a schema per collection in a database, pgvector;
several servers and ingest workers can share it).

Both hand out readers (`Collection`/`PgCollection`) and writers
(`CollectionWriter`/`PgCollectionWriter`) with the same methods and the same results;
the pipeline, retrieval and the window see only this interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ingest.store.records import list_collections, validate_name

BACKENDS = ("faiss", "postgres")


class Store(Protocol):
    kind: str

    def reader(self, name: str):
        """The read side of collection `name` (CollectionNotFound when it does not exist)."""
        ...

    def writer(self, name: str, model: str | None, dim: int | None, reembed: bool = False):
        """The write side; `model`/`dim` None for a writer that only removes."""
        ...

    def names(self) -> list[str]: ...

    def describe(self) -> str:
        """Where the collections are, for messages."""
        ...


class FaissStore:
    """Collections as folders under `home`: a SQLite catalog and FAISS vector files."""
    kind = "faiss"

    def __init__(self, home: Path, vectors=None):
        from ingest.store.vectors import VECTOR_BACKENDS
        self.home = Path(home)
        self.vectors = vectors or VECTOR_BACKENDS["faiss"]

    def reader(self, name: str):
        from ingest.store.reader import Collection
        return Collection(self.home, name, vectors=self.vectors)

    def writer(self, name: str, model: str | None, dim: int | None, reembed: bool = False):
        from ingest.store.writer import CollectionWriter
        return CollectionWriter(self.home, name, model, dim, reembed=reembed, vectors=self.vectors)

    def names(self) -> list[str]:
        return list_collections(self.home)

    def describe(self) -> str:
        return str(self.home)


class PostgresStore:
    """Collections in the PostgreSQL database `url` names (`embedded`: a private server
    under `home`). Local files a collection needs (git mirrors, uploads) stay under `home`."""
    kind = "postgres"

    # probes: IVFFlat lists a search reads (store.pg_probes). benchmarks/postgres.py at 1M
    # chunks (4,096 lists): 128 found 0.96 of the exact top 10 (p95 24-33 ms), 192 0.979
    # (39-48 ms), 256 0.985 (51-64 ms).
    def __init__(self, url: str, home: Path, index_above: int = 20_000, index: str = "ivfflat", probes: int = 192):
        self.url, self.home, self.index_above, self.index, self.probes = url, Path(home), index_above, index, probes

    def reader(self, name: str):
        from ingest.store.postgres.reader import PgCollection
        return PgCollection(self.url, self.home, validate_name(name), self.probes)

    def writer(self, name: str, model: str | None, dim: int | None, reembed: bool = False):
        from ingest.store.postgres.writer import PgCollectionWriter
        return PgCollectionWriter(self.url, self.home, validate_name(name), model, dim, reembed=reembed,
                                  index_above=self.index_above, method=self.index, probes=self.probes)

    def names(self) -> list[str]:
        from ingest.store.postgres import schema
        from ingest.store.postgres.connection import connect
        conn = connect(self.url, self.home)
        try:
            return schema.names(conn)
        finally:
            conn.close()

    def describe(self) -> str:
        from ingest.store.postgres.connection import EMBEDDED, shown
        return f"the embedded PostgreSQL in {self.home}" if self.url == EMBEDDED else shown(self.url)


def open_store(store_settings, home: Path, vectors=None, backend: str | None = None) -> Store:
    """The store settings `store.backend` names (`backend` overrides it: `docent store
    migrate --from faiss`). `vectors`: the FAISS store's vector backend (settings
    store.vectors)."""
    backend = backend or store_settings.backend
    if backend == "postgres":
        return PostgresStore(store_settings.url, home, store_settings.pg_index_above, store_settings.pg_index,
                             store_settings.pg_probes)
    return FaissStore(home, vectors)
