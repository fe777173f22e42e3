"""Finding the passages that answer a question: dense + keyword search, fused, cleaned up.

    retriever = Retriever(settings, embedder)        # embedder: ingest.embedder (lazy weights)
    result = retriever.retrieve("rotate API keys", collection="default")
    result.passages[0].source, .page, .heading, .text, .score

Stages (each measured in benchmarks/answer.py; the settings say which run):
1. dense: FAISS cosine over the chunk vectors, `candidates` best;
2. keyword: BM25 over chunk text + headings (in memory, ingest/bm25.py; FTS5 for a
   collection from before stored chunk terms), `candidates` best;
3. reciprocal-rank fusion of the two lists (mode = hybrid);
4. optional second-stage rerank by a larger embedder (rerank = a model name);
5. near-duplicate passages dropped (the same text ingested twice, e.g. a PDF and its
   HTML copy), then chunks that sit next to each other in one file merged into one
   passage, so the model reads a section whole instead of two halves.

`top_dense` (the best cosine of any candidate) is what abstention compares with
retrieval.min_score: a fused rank says nothing about whether anything matched at all.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from docent.settings import RetrievalSettings, Settings
from docent.timing import elapsed_ms as _ms
from docent.words import KEYWORD_STOP

if TYPE_CHECKING:
    from ingest.store import ChunkFilter, Collection, StoredChunk

MODES = ("hybrid", "dense", "keyword")


class RetrievalError(Exception):
    """The question cannot be searched (no collection, empty collection, wrong model)."""


@dataclass(frozen=True)
class Passage:
    """One retrieved passage: a chunk, or neighbouring chunks of one file merged."""
    chunk_ids: tuple[int, ...]
    source: str                      # the file's path as it was ingested
    page: int | None
    page_end: int | None
    heading_path: tuple[str, ...]
    text: str
    score: float                     # the ranking score of the last stage that ran
    dense: float | None = None       # cosine with the question, when known
    keyword: float | None = None     # BM25, when the keyword search found it
    link: str | None = None          # the web address that opens it (a crawled page, at its heading)
    revision: str | None = None      # the git commit it was read at

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)

    @property
    def location(self) -> str:
        """"guide/install.md, p. 3, Install > Linux" — how a citation names its place."""
        parts = [self.source]
        if self.page is not None:
            pages = f"{self.page}-{self.page_end}" if self.page_end and self.page_end != self.page else str(self.page)
            parts.append(f"p. {pages}")
        if self.revision:
            parts.append(f"commit {self.revision}")
        if self.heading_path:
            parts.append(self.heading)
        return ", ".join(parts)

    def to_dict(self, n: int | None = None) -> dict:
        """The stable JSON shape shared by `retrieve --json` and the citations of `ask --json`."""
        out = {"n": n, "source": self.source, "page": self.page, "heading": self.heading,
               "text": self.text, "score": round(self.score, 4)}
        if self.link:
            out["link"] = self.link
        if self.revision:
            out["commit"] = self.revision
        return out


@dataclass
class RetrievalResult:
    question: str
    passages: list[Passage]
    top_dense: float                 # best cosine among the dense candidates (0 when none)
    timings: dict[str, float] = field(default_factory=dict)   # ms per stage




# NUL, other control characters (tab and newline aside) and zero-width or direction marks:
# invisible, so a question made only of them is empty.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


def with_origins(passages: list[Passage], store) -> list[Passage]:
    """The passages with where their files came from: the link that opens a crawled page at
    the passage's heading, the commit a git file was read at."""
    from ingest.sources.origin import link, revision

    origins = store.origins([p.source for p in passages])
    if not origins:
        return passages
    return [replace(p, link=link(origins[p.source], p.heading_path), revision=revision(origins[p.source]))
            if p.source in origins else p for p in passages]


def holds_word(text: str, word: str) -> bool:
    """The text holds the word in any case, as a word or the start of one ("Postgres"
    in "PostgreSQL"); a word of several parts ("file_sd") when it holds every part."""
    parts = re.findall(r"[^\W_]+", word)
    return all(re.search(r"(?<![^\W_])" + re.escape(p), text, re.IGNORECASE) for p in parts)


def clean_query(text: str | None) -> str:
    """A question or query as typed, without invisible characters, trimmed."""
    return _INVISIBLE.sub("", text or "").strip()


def keyword_query(question: str) -> str:
    words = re.findall(r"\w+", question.lower())
    # Words that carry no topic go, so BM25 ranks on the rest (FTS5's porter tokenizer
    # has no stop list of its own).
    kept = [w for w in words if w not in KEYWORD_STOP]
    return " ".join(kept or words)


def rrf(rankings: Sequence[Sequence[int]], k: int, weights: Sequence[float] | None = None) -> dict[int, float]:
    """Reciprocal-rank fusion: sum of weight / (k + rank) over the lists an id appears in."""
    scores: dict[int, float] = {}
    for index, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[index]
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return scores


def _shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def near_duplicate(a: str, b: str, threshold: float) -> bool:
    """True when one text's word 3-grams are mostly (>= threshold) inside the other's."""
    sa, sb = _shingles(a), _shingles(b)
    if not sa or not sb:
        return a.strip() == b.strip()
    return len(sa & sb) / min(len(sa), len(sb)) >= threshold


class Retriever:
    """Hybrid retrieval over one collection at a time. Collections are opened once and
    kept (their vector index is reloaded only when a writer has published a new one).
    Safe to call from several threads at once (a server's, LangChain's batch())."""

    def __init__(self, settings: Settings, embedder=None, home: str | Path | None = None, reranker=None,
                 vectors=None, store=None):
        """`vectors`: an ingest.store.VectorBackend (None: FAISS), as the Ingestor writes them;
        `store`: where collections are kept (None: the one settings store.backend names)."""
        from ingest.store.backends import open_store
        self.settings = settings
        self.config: RetrievalSettings = settings.retrieval
        self.home = settings.home_dir(home)
        self._embedder = embedder
        self._reranker = reranker
        self.store = store if store is not None else open_store(settings.store, self.home, vectors)
        self._collections: dict[str, "Collection"] = {}
        # Per collection: (generation and rules it was made for, value).
        self._restricted_cache: dict[str, tuple] = {}
        self._pool = None
        self._lock = threading.RLock()         # guards the lazy parts above

    @property
    def embedder(self):
        with self._lock:
            if self._embedder is None:
                from ingest.embedder import make_embedder
                self._embedder = make_embedder(self.settings.embedding)
            return self._embedder

    @property
    def reranker(self):
        with self._lock:
            if self._reranker is None and self.config.rerank not in ("", "none"):
                from ingest.embedder import make_embedder
                self._reranker = make_embedder(replace(self.settings.embedding, model=self.config.rerank,
                                                       backend="torch"))
            return self._reranker

    def warm_up(self, collection: str | None = None) -> None:
        """Load the models (and the collection's vectors) before the first question."""
        self.embedder.warm_up()
        if self.reranker is not None:
            self.reranker.warm_up()
        if collection:
            with self._store_errors(collection):
                store = self.collection(collection)
                store.vector_index()
                store.keyword_index()

    @contextmanager
    def _store_errors(self, name: str):
        """A collection that cannot be opened, or a storage fault while reading it (a
        damaged database file, a failing disk): a RetrievalError naming the collection."""
        from ingest.errors import StoreError, storage_faults
        try:
            with storage_faults(name, Path(self.home) / name):
                yield
        except StoreError as exc:
            raise RetrievalError(str(exc)) from None

    def collection(self, name: str | None = None) -> "Collection":
        name = name or self.settings.ingest.collection
        with self._lock:
            if name not in self._collections:
                with self._store_errors(name):
                    opened = self.store.reader(name)
                    opened.check_model(self.embedder.name, self.embedder.dim)
                self._collections[name] = opened
            return self._collections[name]

    def _worker(self):
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="docent-keyword")
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            for opened in self._collections.values():
                opened.close()
            self._collections.clear()

    def retrieve(self, question: str, collection: str | None = None, k: int | None = None,
                 mode: str | None = None, rerank: bool | None = None, fill: bool = False,
                 rights=None) -> RetrievalResult:
        """The k best passages for the question (fewer when the collection is small).
        Neighbouring chunks of one file become one passage, so k chunks can make fewer
        passages; `fill` takes further chunks until there are k passages (LangChain's
        contract: k documents). `rights` (bot/access/rights.py): what the asking user may
        read; None: everything (a single-user docent)."""
        name = collection or self.settings.ingest.collection
        with self._store_errors(name):
            return self._retrieve(question, name, k, mode, rerank, fill, rights)

    def _retrieve(self, question: str, collection: str, k: int | None, mode: str | None,
                  rerank: bool | None, fill: bool = False, rights=None) -> RetrievalResult:
        k = k or self.config.k
        mode = mode or self.config.mode
        if mode not in MODES:
            raise RetrievalError(f"unknown retrieval mode {mode!r}: use one of {', '.join(MODES)}")
        store = self.collection(collection)
        if store.chunk_count() == 0:
            raise RetrievalError(f"collection '{store.name}' holds no passages yet: ingest some documents first")
        timings: dict[str, float] = {}
        started = time.perf_counter()
        want = max(self.config.candidates, k)

        # The keyword search runs in a worker thread (with its own SQLite connection) while
        # the question is embedded and the vectors searched: SQLite, ONNX Runtime and FAISS
        # all release the GIL, so on a large collection retrieval costs the slower of the
        # two instead of their sum. Both searches honour one filter: chunks labelled with
        # anything in leaks.exclude (and files under a restricted path) are never retrieved.
        rule = self.chunk_filter(store.name, rights)
        pending = None
        if mode in ("hybrid", "keyword"):
            pending = self._worker().submit(_timed, store.keyword_search, keyword_query(question), want,
                                            self.config.keyword_max_df, rule)
        try:
            # The dense search runs in every mode: abstention needs its cosine scores.
            vector = self.embedder.embed([question])
            timings["embed_ms"] = _ms(started)
            dense = store.dense_search(vector, want, rule)[0]
            timings["dense_ms"] = _ms(started) - timings["embed_ms"]
        finally:
            keyword, keyword_ms = pending.result() if pending is not None else ([], None)
        if keyword_ms is not None:
            timings["keyword_ms"] = keyword_ms
        cosine = dict(dense)
        bm25 = dict(keyword)

        if mode == "dense":
            ranked = [(i, s) for i, s in dense]
        elif mode == "keyword":
            ranked = [(i, s) for i, s in keyword]
        else:
            fused = rrf([[i for i, _ in dense], [i for i, _ in keyword]], self.config.rrf_k,
                        [1.0, self.config.keyword_weight])
            ranked = sorted(fused.items(), key=lambda item: -item[1])

        mark = time.perf_counter()
        use_rerank = self.reranker is not None if rerank is None else (rerank and self.reranker is not None)
        pool = max(k, self.config.rerank_candidates) if use_rerank else max(k * 3, k + 8)
        chunks = {c.id: c for c in store.chunks([i for i, _ in ranked[:pool]])}
        ranked = [(i, s) for i, s in ranked[:pool] if i in chunks]
        if use_rerank:
            ranked = self._rerank(question, [(chunks[i], s) for i, s in ranked])
            timings["rerank_ms"] = _ms(mark)
            mark = time.perf_counter()

        from bot.merge import merge_neighbours, widen_short

        def single(chunks_scored: list[tuple["StoredChunk", float]]) -> list[Passage]:
            return [Passage((c.id,), c.path, c.page, c.page_end, c.heading_path, c.text, score,
                            cosine.get(c.id), bm25.get(c.id)) for c, score in chunks_scored]

        def passages_of(kept: list[tuple["StoredChunk", float]]) -> list[Passage]:
            out = single(kept)
            return merge_neighbours(out, {c.id: c for c, _ in kept}) if self.config.merge_neighbours else out

        kept: list[tuple["StoredChunk", float]] = []
        neighbours: list[tuple["StoredChunk", float]] = []
        for chunk_id, score in ranked:
            chunk = chunks[chunk_id]
            if any(near_duplicate(chunk.text, other.text, self.config.dedupe_overlap) for other, _ in kept):
                continue
            # Filling up to k passages: a further chunk next to a kept one would only merge.
            if len(kept) >= k and any(o.path == chunk.path and abs(o.ord - chunk.ord) == 1 for o, _ in kept):
                neighbours.append((chunk, score))
                continue
            kept.append((chunk, score))
            if len(kept) >= k and (not fill or len(passages_of(kept)) >= k):
                break
        merged = passages_of(kept)
        if fill and len(merged) < k:
            # Every further candidate would only merge (one long page): the best of them,
            # each its own passage, keep LangChain's contract of k documents.
            merged += single(neighbours[:k - len(merged)])
        if self.config.widen_chars:
            merged = widen_short(merged, chunks, store, self.config.widen_chars, store.excluded_ids(rule))
        passages = with_origins(merged, store)
        timings["select_ms"] = _ms(mark)
        timings["retrieve_ms"] = _ms(started)
        top = max(cosine.values(), default=0.0)
        return RetrievalResult(question, passages, top, timings)

    def mentions(self, word: str, collection: str | None = None, rights=None, look: int = 50) -> bool:
        """Whether a chunk the asker may read holds the word (`holds_word`). The keyword
        index finds the chunks by the word's stem, and they are read for the word itself:
        a stem can stand for another word ("LFS" and "LF" are both "lf"). A stem in `look`
        chunks or more counts as mentioned unread: common words are not names to miss."""
        name = collection or self.settings.ingest.collection
        parts = re.findall(r"[^\W_]+", word)
        if not parts:
            return True
        with self._store_errors(name):
            store = self.collection(name)
            hits = store.keyword_search(" ".join(parts), look, 1.0, self.chunk_filter(store.name, rights))
            return len(hits) >= look or any(holds_word("\n".join((c.text, *c.heading_path)), word)
                                            for c in store.chunks([i for i, _ in hits]))

    def chunk_filter(self, collection: str, rights=None) -> "ChunkFilter":
        """What searches of this collection leave out: chunks labelled at ingest with
        anything in leaks.exclude, and, when "restricted" is excluded, every chunk of a file
        the current leaks.restricted_paths match (in force before the next ingest
        relabels); with `rights`, every chunk of a file the user may not read. The
        collection's own leak policy applies."""
        from ingest.store import ChunkFilter
        leaks = self.settings.leaks_for(collection)
        labels = tuple(leaks.exclude)
        restricted = self._path_rule(collection) if "restricted" in labels and leaks.restricted_paths else None
        unreadable = rights.hidden_rule(collection) if rights is not None else None
        if restricted is None and unreadable is None:
            return ChunkFilter(labels)
        rules = [rule for rule in (restricted, unreadable) if rule is not None]
        key = (_path_key(leaks) if restricted is not None else None,
               rights.key(collection) if unreadable is not None else None)
        return ChunkFilter(labels, rules[0] if len(rules) == 1 else (lambda path: any(r(path) for r in rules)), key)

    def hidden(self, store, rights=None) -> frozenset[int]:
        """Ids of the chunks that must not be retrieved (chunk_filter's, for `rights`),
        cached per index generation."""
        return store.excluded_ids(self.chunk_filter(store.name, rights))

    def restricted_text(self, collection: str | None = None):
        """A bot.guard.overlap.RestrictedIndex of the collection's restricted chunks
        (labelled restricted, or under a current path rule); cached per collection and generation."""
        from bot.guard.overlap import RestrictedIndex
        from ingest.store import ChunkFilter
        store = self.collection(collection)
        leaks = self.settings.leaks_for(store.name)
        restricted = ChunkFilter(("restricted",), self._path_rule(store.name) if leaks.restricted_paths else None,
                                 _path_key(leaks))
        key = (store.generation, _path_key(leaks))
        with self._lock:
            cached = self._restricted_cache.get(store.name)
            if cached is None or cached[0] != key:
                ids = store.excluded_ids(restricted)
                index = RestrictedIndex.build((c.path, c.text) for c in store.chunks(sorted(ids)))
                cached = self._restricted_cache[store.name] = (key, index)
            return cached[1]

    def _path_rule(self, collection: str):
        """The current leaks.restricted_paths of a collection as a predicate on file paths."""
        from bot.guard.labels import ChunkLabeller
        return ChunkLabeller(self.settings.leaks_for(collection)).restricted_path

    def _rerank(self, question: str, candidates: list[tuple["StoredChunk", float]]) -> list[tuple[int, float]]:
        from ingest.chunking import embed_text
        vectors = self.reranker.embed([question] + [embed_text(c.heading_path, c.text) for c, _ in candidates])
        scores = vectors[1:] @ vectors[0]
        order = sorted(range(len(candidates)), key=lambda i: -float(scores[i]))
        return [(candidates[i][0].id, float(scores[i])) for i in order]


def _path_key(leaks) -> tuple:
    return (tuple(leaks.restricted_paths), leaks.paths_case_sensitive)


def _timed(function, *args):
    started = time.perf_counter()
    return function(*args), _ms(started)
