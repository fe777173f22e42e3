"""Ingestion: files -> chunks -> embeddings -> a collection (vectors + SQLite catalog).

Nothing in this package imports `bot`; the index format lives in `ingest.store` and is
read by `bot` through it. The entry point is `ingest.pipeline.Ingestor` (built by
bot/builder.py for the CLI, the window and eval).
"""
