"""docent's PostgreSQL store (store.backend = "postgres") beside its FAISS store, in one
run, through the stores' own writers and readers (not raw SQL):

    .venv/bin/python benchmarks/postgres.py                       # 10k and 100k chunks, real sets
    .venv/bin/python benchmarks/postgres.py --sizes 1000000 --no-real

Vectors: benchmarks/scale.py's (real sentence embeddings of the shared docs, each chunk
a sentence mixed with a neighbour plus noise; 200 real questions as queries), so the
figures sit beside scale.py's. Per size and store:

- vector writes per second: files of 64 chunks through `put_file`, a commit every 10k
  chunks (the model excluded); for PostgreSQL also two writer processes at once, each
  with half the files, in a collection of their own (total chunks per second);
- search p50/p95 ms (one question at a time, k=10, `dense_search`) and recall@10 against
  exact float32 search: FAISS as the store chooses for the size; PostgreSQL exact (a
  scan, up to store.pg_index_above) and with each approximate index (store.pg_index):
  IVFFlat (~4 sqrt(n) lists) reading 64, 128, 192 (store.pg_probes' default), 256 and
  512 of its lists, HNSW (m 32, ef_construction 128) at hnsw.ef_search 400 (the default) and 800;
- disk: the collection's folder (FAISS) or its tables and indexes (PostgreSQL);
- memory of the PostgreSQL server (the proportional set size of all its processes,
  shared buffers split among them): after the writes, and after each index's searches.

--real (default on): docs_qa and SQuAD through docent's Retriever, the FAISS collections
benchmarks/answer.py builds, copied into PostgreSQL with `docent store migrate`'s copy
(vectors kept): recall@5 in dense, keyword and hybrid mode for each store, and with
PostgreSQL's own full-text search (ts_rank_cd) as the keyword side instead of BM25.
Figures go to benchmarks/results/postgres.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(Path(__file__).resolve().parent))
RESULTS = ROOT / "benchmarks" / "results" / "postgres.json"
PER_FILE = 64
COMMIT_EVERY = 10_000
K = 10


def put_files(writer, vectors: np.ndarray, first_file: int = 0, prefix: str = "f") -> None:
    from ingest.store import FileRecord, NewChunk
    for f, start in enumerate(range(0, len(vectors), PER_FILE), start=first_file):
        part = vectors[start:start + PER_FILE]
        chunks = [NewChunk(f"chunk {f}.{i} of the benchmark", (f"file {f}",), None, None, 0, 1, f"{prefix}{f}.{i}", 8)
                  for i in range(len(part))]
        writer.put_file(FileRecord(f"/bench/{prefix}{f}.txt", "text", f"c{prefix}{f}", 1, 0, "ok", None, None,
                                   len(part), None, None, time.time()), chunks, part)
        if (start + len(part)) % COMMIT_EVERY < PER_FILE:
            writer.commit()
    writer.commit()


def searches(reader, queries: np.ndarray, truth: np.ndarray) -> dict:
    from scale import recall, timed_searches
    p50, p95, found = timed_searches(lambda q: np.array([i for i, _ in reader.dense_search(q[None, :], K)[0]]),
                                     queries)
    return {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2), f"recall@{K}": round(recall(found, truth), 4)}


def server_pss_mb(datadir: Path) -> float:
    """Memory the PostgreSQL server holds: the proportional set size (shared pages split
    among the processes sharing them, so nothing counts twice) of its postmaster and every
    process it started (backends, io workers, checkpointer). Linux only."""
    root = int((datadir / "postmaster.pid").read_text().split()[0])
    pids = {root}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:          # the parent pid
            pids.add(int(stat.parent.name))
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))
    return round(total / 1024, 1)


def folder_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 1)


def measure_faiss(n: int, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, work: Path) -> dict:
    from ingest.store.backends import FaissStore
    from ingest.store.vectors import FaissBackend
    home = work / f"faiss-{n}"
    shutil.rmtree(home, ignore_errors=True)
    store = FaissStore(home, FaissBackend())
    started = time.perf_counter()
    with store.writer("bench", "bench", vectors.shape[1]) as writer:
        put_files(writer, vectors)
    written = time.perf_counter() - started
    with store.reader("bench") as reader:
        reader.vector_index()
        row = {"writes_per_s": round(n / written), "search": reader.info().get("vector_search", "exact"),
               **searches(reader, queries, truth), "disk_mb": folder_mb(home / "bench")}
    shutil.rmtree(home, ignore_errors=True)
    return row


TWO_WRITERS = textwrap.dedent("""
    import sys, time
    import numpy as np
    sys.path.insert(0, {root!r}); sys.path.append({bench!r})
    from postgres import put_files
    from ingest.store.backends import PostgresStore
    vectors = np.load({vectors!r})
    store = PostgresStore({url!r}, {home!r}, index_above=0)
    with store.writer("two", "bench", vectors.shape[1]) as writer:
        put_files(writer, vectors, first_file={first}, prefix="w{first}-")
""")


def two_writers(url: str, home: Path, vectors: np.ndarray, work: Path) -> float:
    """Chunks per second written by two writer processes at once, each half the files."""
    halves = np.array_split(vectors, 2)
    paths = []
    for i, half in enumerate(halves):
        paths.append(work / f"half-{i}.npy")
        np.save(paths[-1], half, allow_pickle=False)
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", TWO_WRITERS.format(
        root=str(ROOT), bench=str(ROOT / "benchmarks"), vectors=str(path), url=url, home=str(home), first=i * 10**6)])
        for i, path in enumerate(paths)]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit("a writer process failed")
    return len(vectors) / (time.perf_counter() - started)


def measure_postgres(n: int, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, work: Path,
                     methods: tuple[str, ...] = ("ivfflat", "hnsw")) -> dict:
    import pgserver

    from ingest.store.backends import PostgresStore
    from ingest.store.postgres import schema
    from ingest.store.postgres.connection import connect
    server = pgserver.get_server(work / f"pg-{n}", cleanup_mode="delete")
    url = server.get_uri()
    try:
        conn = connect(url, work)
        for name in ("bench", "two"):       # left by a run that was stopped: ids must start at 1
            schema.drop(conn, name)
        conn.close()
        store = PostgresStore(url, work, index_above=0)          # exact while writing
        started = time.perf_counter()
        with store.writer("bench", "bench", vectors.shape[1]) as writer:
            put_files(writer, vectors)
        written = time.perf_counter() - started
        row: dict = {"writes_per_s": round(n / written), "server_pss_mb_after_writes": server_pss_mb(work / f"pg-{n}")}
        if n <= 100_000:
            row["two_writers_writes_per_s"] = round(two_writers(url, work, vectors, work))
        if n <= 200_000:            # a scan at 1M takes ~1 s a question: 200 of them say nothing new
            with store.reader("bench") as reader:
                row["exact"] = searches(reader, queries, truth)
        for method in methods:
            approximate = PostgresStore(url, work, index_above=n - 1, index=method)
            started = time.perf_counter()
            with approximate.writer("bench", "bench", vectors.shape[1]) as writer:
                put_files(writer, -vectors[:1], prefix="gone")      # a change (undone) for the commit that builds it
                writer.remove_file("/bench/gone0.txt")
                writer.commit()
            row[f"{method}_build_s"] = round(time.perf_counter() - started, 1)
            with approximate.reader("bench") as reader:
                info = reader.info()
                assert info["vector_search"].startswith("approximate"), info
                row[f"{method}_search"] = info["vector_search"]
                if method == "hnsw":
                    knobs = [f"SET hnsw.ef_search = {ef}" for ef in (400, 800)]
                else:
                    lists = int(info["vector_index"].split(":")[1])
                    knobs = [f"SET ivfflat.probes = {probes}" for probes in (64, 128, 192, 256, 512) if probes <= lists]
                for knob in knobs:
                    reader.conn.configure(knob)
                    label = f"{method}_" + knob.split()[1].split(".")[1] + knob.split()[-1]
                    row[label] = searches(reader, queries, truth)
                    print(f"  postgres {label} {row[label]}", flush=True)
                row[f"{method}_server_pss_mb"] = server_pss_mb(work / f"pg-{n}")
            conn = connect(url, work)
            name = schema.find(conn, "bench")
            size = conn.execute(f"SELECT pg_relation_size('{schema.quoted(name)}.chunks_embedding_approximate')"
                                ).fetchone()[0]
            conn.close()
            row[f"{method}_index_mb"] = round(int(size) / 1e6, 1)
        conn = connect(url, work)
        name = schema.find(conn, "bench")
        sizes = conn.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace s ON "
                             "s.oid = c.relnamespace WHERE s.nspname = ? AND c.relkind IN ('r', 't', 'm')",
                             (name,)).fetchone()[0]
        conn.close()
        row["disk_mb_with_index"] = round(int(sizes) / 1e6, 1)
        return row
    finally:
        server.cleanup()


class PgFullTextStore:
    """The postgres store with PostgreSQL's own full-text search as the keyword side
    (to_tsvector('english'), ts_rank_cd), to compare with the BM25 docent keeps."""

    def __init__(self, store):
        self.store, self.kind = store, "postgres"

    def names(self):
        return self.store.names()

    def describe(self):
        return self.store.describe()

    def writer(self, *args, **kwargs):
        return self.store.writer(*args, **kwargs)

    def reader(self, name):
        import re
        import types
        coll = self.store.reader(name)

        def keyword_search(self, query, k=10, max_df=1.0, rule=None):
            words = re.findall(r"[a-z0-9]+", query.lower())
            if not words:
                return []
            document = "to_tsvector('english', text || ' ' || heading)"
            asked = " | ".join(words)
            rows = self.conn.execute(f"SELECT id, ts_rank_cd({document}, to_tsquery('english', ?)) AS score "
                                     f"FROM chunks WHERE {document} @@ to_tsquery('english', ?) "
                                     f"ORDER BY score DESC LIMIT {int(k)}", (asked, asked)).fetchall()
            return [(int(r[0]), float(r[1])) for r in rows]
        coll.keyword_search = types.MethodType(keyword_search, coll)
        return coll


def real_sets(work: Path) -> dict:
    """docs_qa and SQuAD recall@5 through the Retriever: the FAISS collections and their
    copies in PostgreSQL."""
    import pgserver
    from answer import as_dicts, docent_home, docs_hit, docs_qa, rank_figures, squad_hit, squad_questions
    from scale import EVAL

    from bot.retrieval import Retriever
    from docent.settings import load_settings
    from ingest.embedder import make_embedder
    from ingest.store.backends import FaissStore, PostgresStore
    from ingest.store.copy import copy_collection

    settings = load_settings()
    embedder = make_embedder(settings.embedding)
    home = docent_home(work, settings)
    server = pgserver.get_server(work / "pg-real", cleanup_mode="delete")
    out: dict = {}
    try:
        stores = {"faiss": FaissStore(home), "postgres": PostgresStore(server.get_uri(), home)}
        stores["postgres-fulltext"] = PgFullTextStore(stores["postgres"])
        sets = {"docs_qa": ([q for q in docs_qa() if q["answerable"]], "docs", EVAL / "docs", docs_hit),
                "squad2": ([q for q in squad_questions(400) if not q["is_impossible"]], "squad",
                           EVAL / "squad2" / "docs", squad_hit)}
        for name, (qs, collection, folder, hit) in sets.items():
            started = time.perf_counter()
            copied = copy_collection(stores["faiss"], stores["postgres"], collection, replace=True)
            print(f"  {copied.summary()} in {time.perf_counter() - started:.1f} s", flush=True)
            out[name] = {}
            for label, store in stores.items():
                retriever = Retriever(settings, embedder, home=home, store=store)
                for mode in (("keyword", "hybrid") if label == "postgres-fulltext" else ("dense", "keyword", "hybrid")):
                    times, ranked = [], []
                    for q in qs:
                        began = time.perf_counter()
                        passages = retriever.retrieve(q["question"], collection=collection, k=5, mode=mode).passages
                        times.append((time.perf_counter() - began) * 1000)
                        ranked.append(as_dicts(passages, folder))
                    figures = rank_figures(ranked, qs, hit)
                    out[name][f"{label}-{mode}"] = {"questions": figures["questions"],
                                                    "recall@5": round(figures["recall@5"], 4),
                                                    "p95_ms": round(float(np.percentile(times, 95)), 1)}
                    print(f"  {name:8} {label:8} {mode:7} {out[name][f'{label}-{mode}']}", flush=True)
                retriever.close()
    finally:
        server.cleanup()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--no-real", action="store_true", help="skip docs_qa and SQuAD through the Retriever")
    parser.add_argument("--index", nargs="+", default=["ivfflat", "hnsw"], choices=["ivfflat", "hnsw"],
                        help="the approximate indexes to build and measure (store.pg_index), in turn")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import warnings
    warnings.filterwarnings("ignore", "XDG_RUNTIME_DIR")       # pgserver, on a machine without one
    from scale import QUERIES, corpus, questions, sentences

    from docent.settings import load_settings
    from ingest.embedder import make_embedder
    embedder = make_embedder(load_settings().embedding)
    texts = sentences(20_000)
    cache = args.work / f"scale-sentences-{embedder.name}-{len(texts)}.npy"
    base = np.load(cache, allow_pickle=False) if cache.is_file() else np.asarray(embedder.embed(texts), np.float32)
    asked = questions()
    if len(asked) < QUERIES:
        raise SystemExit(f"only {len(asked)} questions: the shared sets (../shared/eval) are missing")
    pick = np.random.default_rng(3).choice(len(asked), size=min(QUERIES, len(asked)), replace=False)
    queries = np.ascontiguousarray(embedder.embed([asked[i] for i in pick]), dtype=np.float32)
    results: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "vectors": "benchmarks/scale.py's: real sentence embeddings mixed with a neighbour plus noise; "
                                f"{len(queries)} real questions", "sizes": {}}
    work = args.work / "postgres-bench"
    work.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        vectors = corpus(base, n, seed=5)
        scores = queries @ vectors.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        truth = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1), axis=1) + 1
        del scores                                          # chunk ids start at 1 in both stores
        print(f"{n:,} chunks", flush=True)
        rows = {"faiss": measure_faiss(n, vectors, queries, truth, work)}
        print(f"  faiss    {rows['faiss']}", flush=True)
        rows["postgres"] = measure_postgres(n, vectors, queries, truth, work, tuple(args.index))
        print(f"  postgres {rows['postgres']}", flush=True)
        results["sizes"][str(n)] = rows
    if not args.no_real:
        results["real_sets"] = real_sets(args.work)
    if RESULTS.is_file():       # parts not run this time keep their last figures
        old = json.loads(RESULTS.read_text())
        results = {**old, **results, "sizes": {**old.get("sizes", {}), **results["sizes"]}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    from report import refresh      # all benchmarks' figures on one page
    refresh()
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
