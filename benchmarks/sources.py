"""Sources that stay in sync: watch latency, idle cost, git re-sync, site crawl, OCR.

    .venv/bin/python benchmarks/sources.py [--edits 50] [--tree 10000] [--idle 30] [--skip-ocr]

Corpus: ../shared/eval/docs (the shared documentation set: Markdown, reST, text and the
git manual's HTML pages), with the real embedder (int8 MiniLM) unless said otherwise.

1. watch latency: `keep_in_sync` on a folder of the shared Markdown files; a one-page
   file is rewritten `--edits` times with a new sentence; latency = from the write to the
   sentence being in a committed chunk (a fresh reader sees it). Target p95 < 5 s.
2. idle watching: a tree of `--tree` small files (100 folders) watched for `--idle`
   seconds with nothing changing; CPU of the process over that time (target < 1%),
   against the baseline a watcher replaces: `docent sync` once a minute on the same tree
   (its CPU seconds per run / 60). A hashing stand-in embedder fills this tree (the
   model is not what is measured).
3. git re-sync: the shared docs committed to a repository, ingested, then 10 files
   edited and committed; the sync's files read, chunks embedded and seconds against the
   first ingest.
4. site crawl: the git manual's HTML pages and an index page served by http.server on
   127.0.0.1; first crawl (pages/s), then a re-crawl with nothing changed (target: ≤ 2%
   of the first crawl's time).
5. OCR: benchmarks/ocr_pages.py (pages drawn at 150 and 300 dpi, clean and noisy).
Written to benchmarks/results/sources.json.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "eval" / "docs"
RESULTS = ROOT / "benchmarks" / "results" / "sources.json"


def settings_for(home: Path, **sources):
    from docent.settings import load_settings
    s = load_settings(env={}).with_values("paths", home=str(home))
    return s.with_values("sources", **sources) if sources else s


class HashEmbedder:
    """Deterministic vectors from the text's hash: the tree benchmark measures watching, not the model."""
    name, dim, max_tokens, seconds = "hash-384", 384, 256, 0.0

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts] if isinstance(texts, list) else len(texts.split())

    def warm_up(self) -> None:
        pass

    def embed(self, texts):
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            v = np.random.default_rng(abs(hash(t)) % (2 ** 32)).standard_normal(self.dim).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


def pct(values, q):
    return float(np.percentile(values, q)) if values else None


def shared_text_files() -> list[Path]:
    return sorted(p for p in SHARED.rglob("*") if p.suffix in (".md", ".rst", ".txt") and p.is_file())


def watching(ingestor, folder: Path, collection: str) -> tuple[threading.Event, threading.Thread]:
    """keep_in_sync on a thread, returned once its first full read is committed."""
    from ingest.sources.watch import keep_in_sync

    stop, reports = threading.Event(), []
    thread = threading.Thread(target=keep_in_sync, args=(ingestor, [str(folder)], collection, reports.append,
                                                         lambda n: None, stop), daemon=True)
    thread.start()
    while not reports:
        time.sleep(0.05)
    return stop, thread


# ---------------------------------------------------------------------------------------- 1
def watch_latency(work: Path, embedder, edits: int) -> dict:
    from ingest.pipeline import Ingestor
    from ingest.store import Collection

    folder = work / "watched"
    folder.mkdir()
    for p in shared_text_files()[:20]:
        shutil.copy(p, folder / p.name)
    settings = settings_for(work / "home-watch")
    ingestor = Ingestor(settings, embedder)
    stop, thread = watching(ingestor, folder, "w")
    page = folder / "notice.md"
    latencies = []
    for n in range(edits):
        token = f"zebra{n:03d}quartz"
        page.write_text(f"# Notice {n}\n\nThe maintenance window this week is Thursday, code {token}. "
                        "Services restart in order: database, queue, web.\n")
        written = time.perf_counter()
        while True:
            with Collection(settings.home_dir(), "w") as coll:
                if any(token in c.text for c in coll.chunks_of(str(page))):
                    break
            if time.perf_counter() - written > 30:
                raise SystemExit(f"edit {n} not retrievable after 30 s")
            time.sleep(0.02)
        latencies.append(time.perf_counter() - written)
        time.sleep(0.3)
    stop.set()
    thread.join(10)
    return {"edits": edits, "p50_s": pct(latencies, 50), "p95_s": pct(latencies, 95), "max_s": max(latencies),
            "debounce_ms": settings.sources.watch_debounce_ms, "settle_ms": settings.sources.watch_settle_ms}


# ---------------------------------------------------------------------------------------- 2
def idle_cost(work: Path, files: int, idle: float) -> dict:
    from ingest.pipeline import Ingestor

    tree = work / "tree"
    for i in range(files):
        d = tree / f"team-{i % 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"note-{i:05d}.md").write_text(f"# Note {i}\n\nItem {i} is owned by team {i % 100}.\n")
    settings = settings_for(work / "home-tree")
    ingestor = Ingestor(settings, HashEmbedder())
    started = time.perf_counter()
    stop, thread = watching(ingestor, tree, "t")
    first = time.perf_counter() - started
    time.sleep(2)                                  # let the first commit's aftermath settle
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(idle)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    stop.set()
    thread.join(10)
    cpu_sync0, wall_sync0 = time.process_time(), time.perf_counter()
    report = ingestor.sync("t")
    sync_cpu = time.process_time() - cpu_sync0
    assert report.count("unchanged") == files, report.summary()
    return {"files": files, "first_ingest_s": first, "idle_seconds": wall, "idle_cpu_percent": 100 * cpu / wall,
            "baseline_sync_cpu_s": sync_cpu, "baseline_sync_wall_s": time.perf_counter() - wall_sync0,
            "baseline_sync_every_minute_cpu_percent": 100 * sync_cpu / 60}


# ---------------------------------------------------------------------------------------- 3
def git_resync(work: Path, embedder) -> dict:
    from ingest.pipeline import Ingestor

    repo = work / "repo"
    files = shared_text_files() + sorted((SHARED / "git").glob("*.html"))
    for p in files:
        dest = repo / p.relative_to(SHARED)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)

    def git(*args):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    git("-c", "user.email=b@example.com", "-c", "user.name=bench", "add", "-A")
    git("-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-qm", "docs")
    ingestor = Ingestor(settings_for(work / "home-git"), embedder)
    t0 = time.perf_counter()
    first = ingestor.ingest([f"git+file://{repo}@main"], "g")
    first_s = time.perf_counter() - t0
    changed = [p for p in sorted(repo.rglob("*.md"))][:10]
    for n, p in enumerate(changed):
        with open(p, "a") as fh:
            fh.write(f"\n\nRevision note {n}: this section was reviewed in December.\n")
    git("-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-qam", "ten edits")
    t0 = time.perf_counter()
    again = ingestor.sync("g")
    again_s = time.perf_counter() - t0
    return {"files": len(files), "first_ingest_s": first_s, "first_chunks_embedded": first.chunks_embedded,
            "changed_files": len(changed), "sync_s": again_s, "sync_files_updated": again.count("updated"),
            "sync_files_unchanged": again.count("unchanged"), "sync_chunks_embedded": again.chunks_embedded,
            "sync_share_of_first": again_s / first_s}


# ---------------------------------------------------------------------------------------- 4
def crawl(work: Path, embedder) -> dict:
    from ingest.pipeline import Ingestor

    site = work / "site"
    shutil.copytree(SHARED / "git", site / "docs", ignore=shutil.ignore_patterns("*.txt", "*.md"))
    pages = sorted(p.name for p in (site / "docs").glob("*.html"))
    (site / "docs" / "index.html").write_text("<html><body><h1>Manual</h1><ul>" + "".join(
        f'<li><a href="{name}">{name}</a></li>' for name in pages) + "</ul></body></html>")
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/docs/index.html"
    ingestor = Ingestor(settings_for(work / "home-site", site_delay_seconds=0, site_max_pages=1000), embedder)
    try:
        t0 = time.perf_counter()
        first = ingestor.ingest([url], "s")
        first_s = time.perf_counter() - t0
        QuietHandler.requests = 0
        t0 = time.perf_counter()
        again = ingestor.sync("s")
        again_s = time.perf_counter() - t0
    finally:
        server.shutdown()
        server.server_close()
    n = first.count("added")
    return {"pages": n, "first_crawl_s": first_s, "pages_per_s": n / first_s, "recrawl_s": again_s,
            "recrawl_requests": QuietHandler.requests, "recrawl_unchanged": again.count("unchanged"),
            "recrawl_chunks_embedded": again.chunks_embedded, "recrawl_share_of_first": again_s / first_s}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A static server that answers If-Modified-Since with 304 (SimpleHTTPRequestHandler does)."""
    requests = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests += 1
        super().do_GET()


# ---------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edits", type=int, default=50)
    ap.add_argument("--tree", type=int, default=10_000)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--skip-ocr", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not SHARED.is_dir():
        raise SystemExit(f"needs the shared documents at {SHARED}")
    from docent.settings import load_settings
    from ingest.embedder import make_embedder

    embedder = make_embedder(load_settings(env={}).embedding)
    embedder.embed(["warm up"])
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, run in (("watch", lambda: watch_latency(work, embedder, args.edits)),
                          ("idle", lambda: idle_cost(work, args.tree, args.idle)),
                          ("git", lambda: git_resync(work, embedder)),
                          ("crawl", lambda: crawl(work, embedder))):
            print(f"{name}...", file=sys.stderr, flush=True)
            out[name] = run()
            print(json.dumps(out[name], indent=1), file=sys.stderr, flush=True)
    if not args.skip_ocr:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from ocr_pages import measure
        print("ocr...", file=sys.stderr, flush=True)
        out["ocr"] = measure()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    w, i, g, c = out["watch"], out["idle"], out["git"], out["crawl"]
    print(f"watch: p50 {w['p50_s']:.2f} s, p95 {w['p95_s']:.2f} s over {w['edits']} edits (target p95 < 5 s)")
    print(f"idle watching {i['files']} files: {i['idle_cpu_percent']:.2f}% CPU (target < 1%); baseline sync "
          f"every minute: {i['baseline_sync_every_minute_cpu_percent']:.2f}% ({i['baseline_sync_cpu_s']:.1f} s CPU per sync)")
    print(f"git: {g['files']} files first in {g['first_ingest_s']:.1f} s ({g['first_chunks_embedded']} chunks); after "
          f"{g['changed_files']} edits: {g['sync_files_updated']} updated, {g['sync_chunks_embedded']} chunks embedded "
          f"in {g['sync_s']:.2f} s ({100 * g['sync_share_of_first']:.1f}% of the first)")
    print(f"crawl: {c['pages']} pages in {c['first_crawl_s']:.1f} s ({c['pages_per_s']:.1f} pages/s); re-crawl "
          f"unchanged {c['recrawl_s']:.2f} s ({100 * c['recrawl_share_of_first']:.1f}% of the first, "
          f"{c['recrawl_chunks_embedded']} chunks embedded)")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
