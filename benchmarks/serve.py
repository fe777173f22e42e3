"""`docent serve` under load, on loopback: N = 1, 4, 16 concurrent clients, each request a
real HTTP call with a user's token (rights filtering every search), against a stand-in
model that takes a fixed time per answer; then the server's overhead against the same
answer asked in-process, with the bundled model.

    .venv/bin/python benchmarks/serve.py [--requests 200] [--model-seconds 0.2] [--no-model | --only-model]

Corpus: docs/guide (the bundled user guide), ingested into a fresh home with the real
embedder; users u00..u15 in group staff, which may read everything but 07-*.md (a grant by
path), so every search carries a rights filter. Figures: p50/p95 of the time a request
waited in line (its latency less the answer's own total_ms), answers per minute, errors
other than 429, the server process's RSS before and after the requests. Then: turns (one
user floods the line, another asks: the second's wait against arrival order), hang-ups
(clients that leave the line: answers the model still gave for them, target 0), and a
backend that answers several at once (server.parallel 1 against 4). Written to
benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "serve.json"
QUESTIONS = ["How do I add documents?", "What does the guard check?", "How do I remove a file from the index?",
             "Which settings change retrieval?", "What does docent eval measure?", "How are secrets handled?"]


class StandInModel:
    """Answers with the first sentence of passage [1] after `seconds` (a model's time)."""
    abilities = frozenset()
    name = "stand-in"
    context_window = 8192

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.gate = threading.Event()           # cleared: answers wait (to fill the line on purpose)
        self.gate.set()

    def warm_up(self):
        pass

    def count_tokens(self, messages):
        return sum(len(m["content"].split()) for m in messages)

    def stream(self, messages, *, max_tokens, temperature=None, stop=(), grammar=None):
        self.gate.wait()
        time.sleep(self.seconds)
        block = re.search(r"^\[1\] \(.*?\)\n(.+)", messages[-1]["content"], re.M)
        sentence = re.split(r"(?<=[.!?])\s", block.group(1))[0] if block else "I don't know."
        for word in f"{sentence.rstrip('.')} [1].".split(" "):
            yield word + " "


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(app):
    import socket

    import uvicorn
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def load(url: str, tokens: list[str], clients: int, requests: int) -> dict:
    import httpx
    waits, totals, errors, refused = [], [], [], 0
    lock = threading.Lock()

    def one(i: int):
        nonlocal refused
        token = tokens[i % len(tokens)]
        started = time.perf_counter()
        reply = httpx.post(url + "/v1/ask", json={"question": QUESTIONS[i % len(QUESTIONS)], "collection": "guide"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=600)
        wall = (time.perf_counter() - started) * 1000
        with lock:
            if reply.status_code == 429:
                refused += 1
            elif reply.status_code != 200:
                errors.append(f"{reply.status_code}: {reply.text[:120]}")
            else:
                totals.append(wall)
                waits.append(max(0.0, wall - reply.json()["timings"]["total_ms"]))
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(requests)))
    minutes = (time.perf_counter() - started) / 60
    q = statistics.quantiles(waits, n=20) if len(waits) >= 2 else [0.0] * 19
    return {"clients": clients, "requests": requests, "answers": len(totals), "errors": len(errors),
            "error_examples": errors[:3], "refused_429": refused,
            "answers_per_minute": round(len(totals) / minutes, 1),
            "queue_wait_ms": {"p50": round(statistics.median(waits), 1) if waits else None, "p95": round(q[18], 1)},
            "latency_ms": {"p50": round(statistics.median(totals), 1) if totals else None}}


def turns(url: str, tokens: list[str], model: StandInModel, flood: int = 8) -> dict:
    """While the model is held, one user sends `flood` questions and then a second user
    asks one; then the model goes on. In arrival order the second would be answered after
    all of the first's; with turns, right after the one in progress."""
    import httpx
    done: dict = {}

    def ask(token, key):
        reply = httpx.post(url + "/v1/ask", json={"question": QUESTIONS[0], "collection": "guide"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=600)
        done[key] = time.perf_counter(), reply.status_code

    def started(thread, waiting):
        thread.start()
        while httpx.get(url + "/healthz").json()["waiting"] < waiting:
            time.sleep(0.005)
    model.gate.clear()
    threads = [threading.Thread(target=ask, args=(tokens[0], f"a{i}")) for i in range(flood)]
    for n, thread in enumerate(threads):
        started(thread, n)                     # the first is answered (held), the rest wait
    second = threading.Thread(target=ask, args=(tokens[1], "b"))
    started(second, flood)
    released = time.perf_counter()
    model.gate.set()
    for thread in threads + [second]:
        thread.join()
    flood_done = sorted(t for key, (t, _) in done.items() if key != "b")
    return {"flood": flood, "second_user_ms": round((done["b"][0] - released) * 1000),
            "flood_last_ms": round((flood_done[-1] - released) * 1000),
            "answered_before_the_second": sum(t < done["b"][0] for t in flood_done),
            "in_arrival_order_would_be": flood,
            "statuses": sorted({status for _, status in done.values()})}


def hangups(url: str, tokens: list[str], model: StandInModel, leaving: int = 8) -> dict:
    """While the model is held on one question, `leaving` clients get in line and hang up
    after a second; then the model goes on. How soon the line let them go, and how many
    answers the model still gave for them (target 0)."""
    import httpx
    before = metrics(url, tokens[-1])
    model.gate.clear()
    holder = threading.Thread(target=lambda: httpx.post(url + "/v1/ask", json={"question": QUESTIONS[1],
                              "collection": "guide"}, headers={"Authorization": f"Bearer {tokens[0]}"}, timeout=600))
    holder.start()
    while httpx.get(url + "/healthz").json()["running"] < 1:
        time.sleep(0.005)

    def leave(i):
        try:
            httpx.post(url + "/v1/ask", json={"question": QUESTIONS[i % len(QUESTIONS)], "collection": "guide"},
                       headers={"Authorization": f"Bearer {tokens[1 + i % 8]}"}, timeout=1.0)
        except httpx.TimeoutException:
            pass
    with ThreadPoolExecutor(leaving) as pool:
        list(pool.map(leave, range(leaving)))
    gone = time.perf_counter()
    while httpx.get(url + "/healthz").json()["waiting"]:
        time.sleep(0.01)
    emptied_ms = (time.perf_counter() - gone) * 1000
    model.gate.set()
    holder.join()
    time.sleep(model.seconds * 2)
    after = metrics(url, tokens[-1])
    return {"leaving": leaving, "line_emptied_ms_after_hangups": round(emptied_ms),
            "answered_for_them": after["answered"] - before["answered"] - 1,
            "cancelled": after["cancelled"] - before["cancelled"]}


def metrics(url: str, admin_token: str) -> dict:
    import httpx
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {admin_token}"}).text
    found = dict(re.findall(r'^docent_answers_total\{outcome="(\w+)"\} (\d+)', text, re.M))
    return {"answered": sum(int(found.get(k, 0)) for k in ("answered", "abstained", "flagged", "blocked")),
            "cancelled": int(found.get("cancelled", 0))}


def parallel(settings, home: Path, tokens: list[str], model_seconds: float, requests: int) -> dict:
    """A backend that serves several at once (the concurrent ability, as the OpenAI-
    compatible one declares) taking `model_seconds` an answer: answers per minute at 16
    clients with server.parallel 1 and 4."""
    from bot.builder import Components
    from bot.generators import CONCURRENT
    from docent.server import make_app
    out: dict = {"model_seconds": model_seconds, "requests": requests}
    for slots in (1, 4):
        model = StandInModel(model_seconds)
        model.abilities = frozenset({CONCURRENT})
        s = settings.with_values("server", parallel=slots)
        server, thread, url = serve(make_app(s, parts=Components(s, home, generator=model)))
        run = load(url, tokens, 16, requests)
        out[f"parallel_{slots}"] = {"answers_per_minute": run["answers_per_minute"], "errors": run["errors"],
                                    "queue_wait_ms": run["queue_wait_ms"]}
        print(f"  concurrent backend, parallel {slots}: {run['answers_per_minute']}/min, "
              f"{run['errors']} errors", flush=True)
        server.should_exit = True
        thread.join(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests per client count")
    parser.add_argument("--model-seconds", type=float, default=0.2, help="the stand-in model's time per answer")
    parser.add_argument("--no-model", action="store_true", help="skip the bundled-model overhead part")
    parser.add_argument("--rounds", type=int, default=2, help="rounds at 16 clients (is memory flat?)")
    parser.add_argument("--only-model", action="store_true",
                        help="only the bundled-model overhead part (the other figures kept from the last run)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bot.access.users import AccessStore
    from bot.builder import Components
    from docent.server import make_app
    from docent.server_limits import limit_malloc_arenas
    from docent.settings import load_settings
    results_arenas = limit_malloc_arenas()         # as `docent serve` does
    home = Path(tempfile.mkdtemp(prefix="docent-serve-bench-"))
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": {"cpus": os.cpu_count(),
                     "platform": platform.platform()}, "model_seconds": args.model_seconds,
                     "malloc_arenas_limited": results_arenas}
    try:
        settings = load_settings(env={}).with_values("server", max_waiting=64)
        model = StandInModel(args.model_seconds)
        parts = Components(settings, home, generator=model)
        print("ingesting docs/guide...", flush=True)
        parts.ingestor.ingest([ROOT / "docs" / "guide"], collection="guide")
        store = AccessStore(parts.home)
        tokens = [store.add_user(f"u{i:02d}", ["staff"]) for i in range(16)]
        tokens.append(store.add_user("ops", ["admin"]))          # reads /metrics; not a client
        guide_files = sorted(p.name for p in (ROOT / "docs" / "guide").glob("*.md"))
        for name in guide_files:
            if not name.startswith("07-"):
                store.grant("staff", "guide", name)
        if args.only_model:
            results = {**json.loads(RESULTS.read_text()), "overhead": overhead(settings, home, reps=5),
                       "overhead_date": time.strftime("%Y-%m-%d %H:%M")}
        else:
            server, thread, url = serve(make_app(settings, parts=parts))
            load(url, tokens[:16], 1, 5)              # warm: the embedder, the scanner
            results["rss_mb_before"] = round(rss_mb(), 1)
            results["runs"] = []
            for clients in (1, 4) + (16,) * args.rounds:     # 16 again: does memory keep growing?
                run = load(url, tokens[:16], clients, args.requests)
                run["rss_mb_after"] = round(rss_mb(), 1)
                results["runs"].append(run)
                print(f"{clients:3} clients: {run['answers']} answers, {run['errors']} errors, {run['refused_429']} 429, "
                      f"{run['answers_per_minute']}/min, queue wait p50 {run['queue_wait_ms']['p50']} ms "
                      f"p95 {run['queue_wait_ms']['p95']} ms, RSS {rss_mb():.0f} MB", flush=True)
            results["rss_mb_after"] = round(rss_mb(), 1)
            results["turns"] = turns(url, tokens, model)
            print(f"turns: {results['turns']}", flush=True)
            results["hangups"] = hangups(url, tokens, model)
            print(f"hang-ups: {results['hangups']}", flush=True)
            server.should_exit = True
            thread.join(10)
            # A remote model's time per answer, so that the local pipeline's CPU (2 cores) is not all that counts.
            results["parallel"] = parallel(settings, home, tokens[:16], 1.0, 48)
            if not args.no_model:
                results["overhead"] = overhead(settings, home)
            elif RESULTS.is_file():             # keep the last run's model figures
                results["overhead"] = json.loads(RESULTS.read_text()).get("overhead")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written to {RESULTS}")


def overhead(settings, home: Path, reps: int = 3) -> dict:
    """The same question through the server and in-process, with the bundled model, warm,
    alternating: the server's share of an answer's time."""
    import httpx

    from bot.builder import Components
    from docent.server import make_app
    parts = Components(settings, home)
    answerer = parts.answerer
    print("loading the bundled model...", flush=True)
    answerer.warm_up("guide", prefill=True)
    server, thread, url = serve(make_app(settings, parts=parts))
    token = None
    from bot.access.users import AccessStore
    store = AccessStore(parts.home)
    token = store.rotate_token("u00")
    question = "How do I remove a file from the index?"
    answerer.ask(question, "guide")               # the prompt cache in its steady state
    direct, served = [], []
    from bot.access.rights import Rights
    rights = Rights.of_name(store, "u00")
    for _ in range(reps):
        started = time.perf_counter()
        answerer.ask(question, "guide", rights=rights)
        direct.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        reply = httpx.post(url + "/v1/ask", json={"question": question, "collection": "guide"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=600)
        served.append((time.perf_counter() - started) * 1000)
        assert reply.status_code == 200, reply.text
        print(f"  in-process {direct[-1] / 1000:.1f} s, through the server {served[-1] / 1000:.1f} s", flush=True)
    server.should_exit = True
    thread.join(10)
    d, s = statistics.median(direct), statistics.median(served)
    return {"question": question, "reps": reps, "in_process_ms": [round(x) for x in direct],
            "served_ms": [round(x) for x in served], "median_overhead": round(s / d - 1, 4)}


if __name__ == "__main__":
    main()
