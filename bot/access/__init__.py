"""Users, groups, document-level access rights and the audit log of the team server
(`docent serve`): who may read which documents of which collection, enforced inside
retrieval (bot/access/rights.py -> ingest.store.ChunkFilter)."""
