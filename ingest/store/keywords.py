"""The keyword side of the catalog: each chunk's FTS5 tokens stored as term ids and counts
(the input of the in-memory BM25 in ingest/bm25.py), and FTS5 itself, which ranks the same
way, for collections whose terms are incomplete."""

from __future__ import annotations

import re
import sqlite3
import threading
from typing import Sequence

import numpy as np

from ingest.store.schema import FTS_TOKENIZER


def tokens(conn: sqlite3.Connection, texts: Sequence[str]) -> list[dict[str, int]]:
    """Each text's FTS5 tokens (the collection's own tokenizer: stems, no diacritics) with
    their counts, read back through a scratch FTS5 table in the connection's temp schema."""
    # One statement at a time: executescript() would commit the writer's open transaction.
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.docent_tokens USING fts5(text, tokenize={FTS_TOKENIZER!r})")
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.docent_token_rows USING fts5vocab(temp, docent_tokens, 'instance')")
    conn.execute("DELETE FROM temp.docent_tokens")
    conn.executemany("INSERT INTO temp.docent_tokens(rowid, text) VALUES (?, ?)", list(enumerate(texts, start=1)))
    out: list[dict[str, int]] = [{} for _ in texts]
    for doc, term, count in conn.execute("SELECT doc, term, count(*) FROM temp.docent_token_rows GROUP BY doc, term"):
        out[doc - 1][term] = count
    conn.execute("DELETE FROM temp.docent_tokens")
    return out


_local = threading.local()


def tokens_of(texts: Sequence[str]) -> list[dict[str, int]]:
    """`tokens()` through this thread's own in-memory SQLite: the same tokenizer for a
    store whose catalog is not SQLite (ingest/store/postgres)."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = sqlite3.connect(":memory:", isolation_level=None)
    return tokens(conn, texts)


def term_ids(conn: sqlite3.Connection, words: Sequence[str]) -> dict[str, int]:
    """The ids of these terms in `terms`, adding the new ones."""
    ids: dict[str, int] = {}
    for i in range(0, len(words), 500):
        part = list(words[i:i + 500])
        conn.executemany("INSERT OR IGNORE INTO terms(term) VALUES (?)", [(w,) for w in part])
        ids.update(conn.execute(f"SELECT term, id FROM terms WHERE term IN ({','.join('?' * len(part))})", part))
    return ids


def put_terms(conn: sqlite3.Connection, ids: Sequence[int], texts: Sequence[str]) -> None:
    """Each chunk's term counts as stored in chunk_terms; the terms are looked up (or
    added) once for all the chunks."""
    counted = tokens(conn, texts)
    term_id = term_ids(conn, list(dict.fromkeys(t for counts in counted for t in counts)))
    conn.executemany("INSERT OR REPLACE INTO chunk_terms VALUES (?, ?)", [
        (chunk_id, np.array([[term_id[t] for t in counts], list(counts.values())], dtype="<i4").tobytes())
        for chunk_id, counts in zip(ids, counted)])


def fill_missing_terms(conn: sqlite3.Connection, batch: int = 500) -> None:
    """Store the terms of chunks that have none (inside the caller's transaction)."""
    missing = [r[0] for r in conn.execute(
        "SELECT id FROM chunks WHERE id NOT IN (SELECT chunk_id FROM chunk_terms) ORDER BY id")]
    for i in range(0, len(missing), batch):
        part = missing[i:i + batch]
        rows = conn.execute(f"SELECT id, text, heading FROM chunks WHERE id IN ({','.join('?' * len(part))})",
                            part).fetchall()
        put_terms(conn, [r[0] for r in rows], [f"{r[1]}\n{r[2]}" for r in rows])


def load_keyword_index(conn: sqlite3.Connection):
    """The in-memory BM25 index of the chunks, or None when some chunk has no stored terms
    (then FTS5 answers: the same ranking, slower)."""
    from ingest.bm25 import KeywordIndex
    stored = conn.execute("SELECT count(*) FROM chunk_terms").fetchone()[0]
    if stored != conn.execute("SELECT count(*) FROM chunks").fetchone()[0]:
        return None
    ids, terms, counts = [], [], []
    for chunk_id, blob in conn.execute("SELECT chunk_id, terms FROM chunk_terms ORDER BY chunk_id"):
        pair = np.frombuffer(blob, dtype="<i4").reshape(2, -1)
        ids.append(chunk_id)
        terms.append(pair[0])
        counts.append(pair[1])
    return KeywordIndex.build(ids, terms, counts)


def bm25_search(conn: sqlite3.Connection, keywords, query: str, k: int, max_df: float) -> list[tuple[int, float]]:
    """BM25 by the in-memory index. Terms found in more than `max_df` of all chunks (and in
    over 1,000) are left out of the query, unless nothing else is left."""
    stems = tokens_of([query])[0]
    found = dict(conn.execute(
        f"SELECT term, id FROM terms WHERE term IN ({','.join('?' * len(stems))})", list(stems))) if stems else {}
    ids = [found[t] for t in stems if t in found]
    if max_df < 1.0 and len(ids) > 1:
        limit = max(max_df * len(keywords), 1000)
        rare = [i for i in ids if keywords.frequency(i) <= limit]
        ids = rare or sorted(ids, key=keywords.frequency)[:2]
    return keywords.search(ids, k)


def fts_search(conn: sqlite3.Connection, query: str, k: int = 10, max_df: float = 1.0) -> list[tuple[int, float]]:
    """BM25 by SQLite FTS5 alone (the same ranking, ~50x slower on 100k chunks)."""
    terms = list(dict.fromkeys(re.findall(r"\w+", query.lower())))
    if not terms:
        return []
    if max_df < 1.0 and len(terms) > 1:
        frequency = document_frequency(conn, terms)
        terms = [t for t in terms if frequency[t] > 0]          # the rest match nothing
        # A term in fewer than 1,000 chunks is cheap to score whatever its share.
        chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        limit = max(max_df * chunks, 1000)
        rare = [t for t in terms if frequency[t] <= limit]
        terms = rare or sorted(terms, key=frequency.__getitem__)[:2]
        if not terms:
            return []
    match = " OR ".join(f'"{t}"' for t in terms)
    rows = conn.execute(
        "SELECT rowid, bm25(chunks_fts) AS score FROM chunks_fts WHERE chunks_fts MATCH ? "
        "ORDER BY score LIMIT ?", (match, k))
    return [(r["rowid"], -r["score"]) for r in rows]


def document_frequency(conn: sqlite3.Connection, words: list[str]) -> dict[str, int]:
    """Chunks holding each word, read from the FTS index's vocabulary. The words go
    through the index's own tokenizer (nothing written to the collection) so stems match."""
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.docent_vocab USING fts5vocab(main, chunks_fts, 'row')")
    frequency = dict.fromkeys(words, 0)
    for word, stems in zip(words, tokens(conn, words)):
        for stem in stems:
            found = conn.execute("SELECT doc FROM temp.docent_vocab WHERE term = ?", (stem,)).fetchone()
            # A word the tokenizer splits (pg_hba) counts as rare if any of its parts is.
            count = found[0] if found else 0
            frequency[word] = count if frequency[word] == 0 else min(frequency[word], count)
    return frequency
