"""Cold start: a new `docent ask --json` process per question against the same answer
given warm (one process: warm_up once, then each question, as the window does).

    .venv/bin/python benchmarks/answer.py --part cold [--questions 5] [--verbose]

Needs the benchmark collection (benchmarks/.work/docent-home, collection "docs", built by
`--part retrieval`). Questions: the answerable docs_qa questions about the documentation
sets the groundedness guard was not fitted on (its held-out part: prometheus, sqlite,
developers-reference), every len/N-th. The cold processes run one at a time before and
after the warm ones in this process (never two models loaded at once); a question's cold
time is the mean of its two. Written to benchmarks/results/cold.json; start the run on a
quiet machine (each row says how much CPU other jobs used meanwhile).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "cold.json"
HELD_OUT_SETS = ("prometheus/", "sqlite/", "developers-reference/")     # benchmarks/guard_realistic.py's test part
PRIMING_QUESTION = "What is a gauge?"           # not in the set: puts the warm process in its steady state


def held_out_questions(n: int) -> list[dict]:
    from answer import _sample, docs_qa
    held = [q for q in docs_qa() if q["answerable"] and q["source_paths"]
            and all(p.startswith(HELD_OUT_SETS) for p in q["source_paths"])]
    return _sample(held, n)


def _docent_command() -> list[str]:
    script = Path(sys.executable).with_name("docent")      # the console script a user runs
    return [str(script)] if script.is_file() else [sys.executable, "-m", "docent.cli"]


class OtherLoad:
    """CPU seconds the rest of the machine used while a measurement ran (all CPU time from
    /proc/stat less this process's and its finished children's): the check that the
    machine was quiet. Linux only; 0.0 elsewhere."""

    def __init__(self):
        self.start = self._now()

    @staticmethod
    def _now() -> tuple[float, float]:
        import resource
        try:
            fields = [int(v) for v in open("/proc/stat").readline().split()[1:8]]
        except (OSError, ValueError):
            return 0.0, 0.0
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")     # all but idle and iowait
        mine = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                   for f in ("ru_utime", "ru_stime"))
        return busy, mine

    def seconds(self) -> float:
        (busy0, mine0), (busy1, mine1) = self.start, self._now()
        return round(max(0.0, (busy1 - busy0) - (mine1 - mine0)), 1)


def _prompt_states(model: str) -> dict[Path, int]:
    """The model's saved llama.cpp prompt states (docent's cache, docent.cache.prompt_state_path), path -> mtime."""
    from docent.cache import cache_dir
    return {p: p.stat().st_mtime_ns for p in (cache_dir() / "prompt-states").glob(f"*-{model}-*.npz")}


def cold_ask(home: Path, question: str, model: str) -> dict:
    """One `docent ask --json` in a new process: wall time, what the answer reports, and
    which prompt states it loaded (unchanged files) or saved (new or rewritten ones)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("DOCENT_PROFILE", None)
    before = _prompt_states(model)
    others = OtherLoad()
    started = time.perf_counter()
    done = subprocess.run(_docent_command() + ["--home", str(home), "ask", "-c", "docs", "--json", question],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    wall = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"docent ask failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    answer = json.loads(done.stdout)
    states = {path.name.split("-", 1)[0]: "saved" if before.get(path) != mtime else "loaded"
              for path, mtime in _prompt_states(model).items()}
    return {"wall_ms": round(wall, 1), "answer": answer["answer"], "abstained": answer["abstained"],
            "timings": answer["timings"], "prompt_states": states, "others_cpu_s": others.seconds(),
            "stderr": [line for line in done.stderr.splitlines() if line.strip()]}


def warm_answers(settings, home: Path, questions: list[str]) -> tuple[dict, list[dict]]:
    """warm_up once (as the window's Service does), one priming question, then each question."""
    from bot.builder import Components
    answerer = Components(settings, home).answerer
    started = time.perf_counter()
    answerer.warm_up("docs", prefill=True)
    warm_up = {"wall_ms": round((time.perf_counter() - started) * 1000, 1), **getattr(answerer, "warm_up_ms", {})}
    answerer.ask(PRIMING_QUESTION, "docs")
    rows = []
    for question in questions:
        others = OtherLoad()
        started = time.perf_counter()
        answer = answerer.ask(question, "docs")
        rows.append({"wall_ms": round((time.perf_counter() - started) * 1000, 1), "answer": answer.text,
                     "abstained": answer.abstained, "timings": answer.timings, "others_cpu_s": others.seconds()})
    return warm_up, rows


def _where(timings: dict) -> dict:
    """A cold answer's time by stage (ms): before `ask`, each warm-up stage, the answer's own."""
    stages = {"process_start": timings.get("process_ms") or 0.0, "answerer_imports": timings.get("imports_ms") or 0.0}
    stages.update({k.removesuffix("_ms"): v for k, v in (timings.get("warm_up") or {}).items()})
    for key in ("retrieve_ms", "judge_ms", "first_token_ms", "guard_ms", "total_ms"):
        if key in timings:
            stages["answer:" + key.removesuffix("_ms")] = timings[key]
    return stages


def part_cold(work: Path, settings, n: int, verbose: bool = False, fresh_state: bool = False) -> dict:
    """`fresh_state`: delete the saved prompt states first, so the first cold answer pays
    for saving them (once per model, prompt and llama-cpp version)."""
    from bot.generators.bundled import resolve_model
    home = work / "docent-home"
    if not (home / ".docs.done").is_file():
        raise SystemExit(f"no benchmark collection in {home}: run benchmarks/answer.py --part retrieval first")
    model = resolve_model(settings.generation.model).stem
    if fresh_state:
        for path in _prompt_states(model):
            path.unlink()
    questions = held_out_questions(n or 5)

    def cold_round(which: str) -> list[dict]:
        print(f"each question as a new `docent ask --json` ({which} the warm ones)...", flush=True)
        out = []
        for q in questions:
            row = cold_ask(home, q["question"], model)
            out.append(row)
            print(f"  cold {row['wall_ms'] / 1000:6.1f} s  {q['question'][:70]}  prompt states: "
                  f"{', '.join(f'{k} {v}' for k, v in row['prompt_states'].items()) or 'none'}", flush=True)
            if verbose:
                print("       " + ", ".join(f"{k} {v / 1000:.1f} s" for k, v in _where(row["timings"]).items()
                                            if isinstance(v, (int, float))), flush=True)
                for line in row["stderr"]:
                    print(f"       stderr: {line}")
        return out

    print(f"cold start: {len(questions)} held-out docs_qa questions", flush=True)
    # Cold runs before and after the warm ones: the machine's speed drifts, and the mean of
    # the two cancels a steady drift out of the ratio.
    first = cold_round("before")
    print("the same questions warm (one process)...", flush=True)
    warm_up, warm = warm_answers(settings, home, [q["question"] for q in questions])
    second = cold_round("after")
    rows = []
    for q, c, c2, w in zip(questions, first, second, warm):
        cold_ms = round((c["wall_ms"] + c2["wall_ms"]) / 2, 1)
        rows.append({"id": q["id"], "question": q["question"], "cold_ms": cold_ms, "warm_ms": w["wall_ms"],
                     "cold_runs_ms": [c["wall_ms"], c2["wall_ms"]], "ratio": round(cold_ms / w["wall_ms"], 3),
                     "same_answer": c["answer"] == w["answer"] == c2["answer"],
                     "cold_answer": c["answer"], "warm_answer": w["answer"],
                     "abstained": [c["abstained"], w["abstained"]],
                     "others_cpu_s": [max(c["others_cpu_s"], c2["others_cpu_s"]), w["others_cpu_s"]],
                     "cold_stages": _where(c["timings"]), "cold_stages_after": _where(c2["timings"]),
                     "cold_prompt_states": c["prompt_states"], "warm_timings": w["timings"],
                     "cold_stderr": c["stderr"] + c2["stderr"]})
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "questions": len(rows),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_at_start": os.getloadavg()},
           "median_cold_ms": statistics.median(r["cold_ms"] for r in rows),
           "median_warm_ms": statistics.median(r["warm_ms"] for r in rows),
           "median_ratio": statistics.median(r["ratio"] for r in rows), "max_ratio": max(r["ratio"] for r in rows),
           "same_answers": sum(r["same_answer"] for r in rows),
           "median_cold_stages": {k: statistics.median(r["cold_stages"].get(k, 0.0) for r in rows)
                                  for k in rows[0]["cold_stages"]},
           "warm_up": warm_up, "rows": rows}
    print(f"\n  {'question':44} {'cold (before, after)':>22} {'warm':>7} {'ratio':>6}  same answer  other jobs' CPU s")
    for r in rows:
        runs = "/".join(f"{v / 1000:.1f}" for v in r["cold_runs_ms"])
        print(f"  {r['question'][:44]:44} {r['cold_ms'] / 1000:6.1f}s ({runs:>11}) {r['warm_ms'] / 1000:6.1f}s "
              f"{r['ratio']:6.2f}  {'yes' if r['same_answer'] else 'NO ':11}  "
              f"{r['others_cpu_s'][0]}, {r['others_cpu_s'][1]}")
    if any(max(r["others_cpu_s"]) > 2 for r in rows):
        print("  the machine was not quiet (other jobs used CPU during a measurement): run again")
    print(f"  median: cold {out['median_cold_ms'] / 1000:.1f} s, warm {out['median_warm_ms'] / 1000:.1f} s, "
          f"ratio {out['median_ratio']:.2f} (max {out['max_ratio']:.2f}); "
          f"same answer {out['same_answers']}/{len(rows)}")
    print("  median cold stages: " + ", ".join(f"{k} {v / 1000:.1f} s" for k, v in out["median_cold_stages"].items()))
    for r in rows:
        if not r["same_answer"]:
            print(f"  differs: {r['question']}\n    cold: {r['cold_answer']!r}\n    warm: {r['warm_answer']!r}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return out
