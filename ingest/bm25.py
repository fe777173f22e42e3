"""BM25 in memory: the keyword search of a collection, over numpy arrays.

FTS5 scores every chunk that holds any query term inside SQLite's virtual machine: on a
100k-chunk collection one common word costs ~200 ms. Here each term's postings (the
chunks that hold it, with a precomputed BM25 weight) are slices of two arrays built once
per index generation, and a query costs one vectorised add per term.

The formula is FTS5's bm25() (k1 = 1.2, b = 0.75, an idf that is never below 1e-6, a
chunk's length = all its tokens), and the terms are FTS5's own tokens, written per chunk
at ingest by ingest/store/keywords.py, so the ranking is the one FTS5 gives.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

K1, B = 1.2, 0.75


class KeywordIndex:
    """Postings of every term: rows[offsets[t]:offsets[t + 1]] are the chunks holding
    term id t and weights[...] their BM25 term-frequency parts."""

    def __init__(self, chunk_ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray, weights: np.ndarray):
        self.chunk_ids = chunk_ids
        self.offsets = offsets
        self.rows = rows
        self.weights = weights

    @classmethod
    def build(cls, chunk_ids: Sequence[int], terms: Sequence[np.ndarray], counts: Sequence[np.ndarray]
              ) -> "KeywordIndex":
        """`terms[i]`, `counts[i]`: the term ids of chunk `chunk_ids[i]` and how often each occurs."""
        n = len(chunk_ids)
        sizes = np.fromiter((len(t) for t in terms), dtype=np.int64, count=n)
        term = np.concatenate(terms).astype(np.int32, copy=False) if n else np.zeros(0, np.int32)
        tf = np.concatenate(counts).astype(np.float32) if n else np.zeros(0, np.float32)
        row = np.repeat(np.arange(n, dtype=np.int32), sizes)
        length = np.bincount(row, weights=tf, minlength=n)
        average = float(length.mean()) if n and length.sum() else 1.0
        weight = tf * (K1 + 1) / (tf + K1 * (1 - B + B * length[row] / average))
        del tf, length
        order = np.argsort(term, kind="stable")
        df = np.bincount(term, minlength=int(term.max()) + 1 if len(term) else 0)
        offsets = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
        del term
        return cls(np.asarray(chunk_ids, dtype=np.int64), offsets, row[order], weight[order].astype(np.float32))

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def frequency(self, term_id: int | None) -> int:
        """Chunks holding the term (0 for an unknown one)."""
        if term_id is None or term_id + 1 >= len(self.offsets):
            return 0
        return int(self.offsets[term_id + 1] - self.offsets[term_id])

    def search(self, term_ids: Sequence[int], k: int) -> list[tuple[int, float]]:
        """(chunk id, BM25) of the k best chunks holding any of the terms, best first."""
        n = len(self.chunk_ids)
        if k <= 0 or not n:
            return []
        scores = np.zeros(n, dtype=np.float32)
        for term_id in dict.fromkeys(term_ids):
            df = self.frequency(term_id)
            if not df:
                continue
            idf = max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6)
            start, end = self.offsets[term_id], self.offsets[term_id + 1]
            scores[self.rows[start:end]] += np.float32(idf) * self.weights[start:end]
        hit = np.flatnonzero(scores)
        if len(hit) > k:
            hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
        best = hit[np.argsort(-scores[hit], kind="stable")]
        return [(int(self.chunk_ids[r]), float(scores[r])) for r in best]
