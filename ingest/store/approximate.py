"""Approximate search for large collections: an inverted-file (IVF) index over the same
float16 codes as the exact one.

A flat index reads every vector on every question: 1M chunks cost ~0.2 s a search on 2
cores. Above `store.approximate_above` chunks the writer switches the collection to IVF:
the vectors are clustered into `nlist` lists (k-means on a sample) and a search reads the
`nprobe` lists nearest the question. IVF rather than HNSW because a collection changes
file by file: IVF adds and removes single vectors in place, while FAISS's HNSW cannot
remove one, so every edited file would mean a rebuild (benchmarks/scale.py measures both).
The lists were chosen by the vectors of the moment; when the collection has grown (or
shrunk) well past what they were trained for, the writer trains them again.
"""

from __future__ import annotations

import math

import numpy as np

TRAIN_PER_LIST = 64          # k-means sample: FAISS wants 30-256 points per list
MAX_TRAIN = 200_000          # enough for 4096 lists at 50 points each; more only costs time


def nlist_for(n: int) -> int:
    """Lists for n vectors: about 4 sqrt(n) (FAISS's guideline is 4-16 sqrt(n)), a power of
    two, at least 64; but never more than n / 8 (k-means needs more points than lists:
    a threshold set very low must not fail)."""
    want = max(6, min(16, round(math.log2(4 * math.sqrt(max(n, 1))))))
    return 1 << min(want, int(math.log2(max(n // 8, 1))))


def is_ivf(index) -> bool:
    import faiss
    return isinstance(faiss.downcast_index(index), faiss.IndexIVF)


def build(dim: int, ids: np.ndarray, vectors: np.ndarray, nprobe: int, seed: int = 1234):
    """An IVF index over fp16 codes holding `vectors` under `ids`, ready to search with
    `nprobe` lists (kept in the file, so a reader searches as the writer chose)."""
    import faiss

    n = len(ids)
    nlist = nlist_for(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = min(n, max(nlist * TRAIN_PER_LIST, 1), MAX_TRAIN)
    chosen = np.sort(rng.choice(n, size=sample, replace=False)) if sample < n else np.arange(n)
    index.cp.seed = seed
    index.train(np.ascontiguousarray(vectors[chosen], dtype=np.float32))
    index.set_direct_map_type(faiss.DirectMap.Hashtable)   # remove and reconstruct by chunk id
    index.nprobe = min(nprobe, nlist)
    if n:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def ids_of(index) -> np.ndarray:
    """Every id an IVF index holds (from its inverted lists)."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
             for i in range(ivf.nlist) if lists.list_size(i)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def needs_training(index, n: int) -> bool:
    """The lists no longer fit the collection's size: four times fewer or more than it wants."""
    import faiss

    nlist = faiss.extract_index_ivf(index).nlist
    return not (nlist_for(n) / 4 <= nlist <= nlist_for(n) * 4)
