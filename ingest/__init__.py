"""Ingestion: files -> chunks -> embeddings -> a collection (FAISS + SQLite).

Nothing in this package imports `bot`; the index format lives in `ingest.store` and is
read by `bot` through it. The public entry points are in `ingest.api`.
"""
