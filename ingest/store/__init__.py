"""The index format: the one package that writes a collection (ingest) and reads it (bot).

A collection is a folder:

    <home>/<name>/docent.sqlite          the catalog: files, chunks, labels, vectors, chunk
                                         terms, FTS5 index, info (schema.py: numbered migrations)
    <home>/<name>/vectors-<gen>.faiss    the vector index of one generation (vectors.py:
                                         the VectorIndex interface and its FAISS implementation)
    <home>/<name>/write.lock             held (flock) by the one writer (lock.py)

Or, with settings store.backend = "postgres", a schema in a PostgreSQL database with
pgvector (postgres/: the same catalog, vectors in the chunks table, many writers at
once). backends.py opens either behind one `Store` interface; copy.py copies a collection
from one to the other with its vectors.

Modules: records.py (typed rows, names and folders), catalog.py (queries both sides
share), keywords.py (stored terms, BM25 input, FTS5), filters.py (`ChunkFilter`: what a
search leaves out), reader.py (`Collection`, safe across threads), writer.py
(`CollectionWriter`: staged changes published as generations; why that stays consistent).
"""

from ingest.errors import (CollectionLocked, CollectionNotFound, EmbeddingMismatch, StoreError,
                           storage_faults)
from ingest.store.backends import FaissStore, PostgresStore, Store, open_store
from ingest.store.filters import NO_FILTER, ChunkFilter
from ingest.store.reader import Collection
from ingest.store.records import (FileRecord, NewChunk, SourceRecord, StoredChunk, collection_dir, list_collections,
                                  validate_name)
from ingest.store.schema import DB_NAME, LOCK_NAME, SCHEMA_VERSION
from ingest.store.vectors import VECTOR_BACKENDS, VectorBackend, VectorIndex, vector_backend
from ingest.store.writer import CollectionWriter

__all__ = ["ChunkFilter", "Collection", "FaissStore", "PostgresStore", "Store", "open_store", "CollectionLocked", "CollectionNotFound", "CollectionWriter", "DB_NAME",
           "EmbeddingMismatch", "FileRecord", "LOCK_NAME", "NO_FILTER", "NewChunk", "SCHEMA_VERSION", "SourceRecord", "StoreError",
           "StoredChunk", "VECTOR_BACKENDS", "VectorBackend", "VectorIndex", "collection_dir", "list_collections",
           "storage_faults", "validate_name", "vector_backend"]
