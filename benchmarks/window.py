"""The chat window with the real models, measured from the browser: `python app.py` on
an empty home (so its first start indexes the bundled user guide, docs/guide) with the
bundled LLM, driven through Chromium.

Prints and writes benchmarks/results/window.json: seconds until the page is served and
until the status line says the models are ready; per question, seconds until the first
answer text shows in the page and until the finished answer (with its sources and flags)
is drawn, next to the model's own first-token time from `docent ask --json` on the same
question (what the window adds on top of the answer itself). Screenshots of each answer
go to benchmarks/results/window/.

    .venv/bin/python benchmarks/window.py [--questions 3]      # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
# (question, follow-up?): a follow-up is asked in the same conversation as the question
# before it (and first rewritten by the model); every other question starts a new one.
QUESTIONS = [
    ("How do I remove a file from the index?", False),
    ("and does that delete the file itself?", True),
    ("What does docent do when a PDF is encrypted?", False),
    ("Which setting decides what happens to secrets in an answer?", False),
    ("What is the capital of Australia?", False),            # not in the guide: should abstain
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read(100)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the window did not come up at {url} within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    home = Path(tempfile.mkdtemp(prefix="docent-window-"))
    python = str(ROOT / ".venv" / "bin" / "python")
    # An empty home: the window's first start indexes the bundled guide itself.
    shots = OUT / "window"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    server = subprocess.Popen([python, "app.py", "--port", str(port), "--home", str(home)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores", "questions": []}
    try:
        _wait_http(url, 120)
        results["page_served_s"] = round(time.monotonic() - started, 1)
        from playwright.sync_api import sync_playwright
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=os.environ.get("DOCENT_CHROMIUM", "/usr/bin/chromium"),
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                               "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(300_000)
            page.goto(url, wait_until="load")
            page.get_by_text("Ready.").wait_for()
            results["ready_s"] = round(time.monotonic() - started, 1)
            print(f"page served after {results['page_served_s']} s, models ready after {results['ready_s']} s")
            for i, (question, follow_up) in enumerate(QUESTIONS[:args.questions], start=1):
                if not follow_up:
                    page.locator("#docent-clear").click()
                    page.wait_for_function("document.querySelectorAll('#docent-chat .message.bot').length == 0")
                bubbles = page.locator("#docent-chat .message.bot")
                before = bubbles.count()
                page.locator("#docent-question textarea").fill(question)
                asked = time.monotonic()
                page.locator("#docent-ask").click()
                # First answer text: the bubble holds more than the "…" placeholder.
                # First answer text: the bubble's answer part exists (before it: "Searching…" notes).
                page.wait_for_function(
                    f"(() => {{ const b = document.querySelectorAll('#docent-chat .message.bot')[{before}];"
                    f" const a = b && b.querySelector('.docent-answer');"
                    f" return a && a.innerText.trim().length > 0; }})()", polling=50)
                first = time.monotonic() - asked
                bubble = bubbles.nth(before)
                seen = bubble.inner_text()
                bubble.locator(".docent-sources, .docent-abstained, .docent-error, .docent-blocked").first.wait_for()
                total = time.monotonic() - asked
                page.screenshot(path=str(shots / f"{i:02d}.png"), full_page=True)
                text = bubble.locator(".docent-answer").inner_text()
                row = {"question": question, "follow_up": follow_up, "first_text_s": round(first, 2), "answer_drawn_s": round(total, 2),
                       "flags": bubble.locator(".docent-flagged").count(),
                       "sources": bubble.locator("details.docent-source").count(),
                       "abstained": bubble.locator(".docent-abstained").count() > 0, "answer": text, "first_seen": seen[:80]}
                results["questions"].append(row)
                print(f"[{i}]{' (follow-up)' if follow_up else ''} first text {first:5.1f} s, drawn {total:5.1f} s, {row['sources']} sources, "
                      f"{row['flags']} flagged{' (abstained)' if row['abstained'] else ''}: {question}\n    {text[:160]}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The same questions from the command line: the model's own first-token time.
    for row in results["questions"]:
        if row["follow_up"]:
            continue
        done = subprocess.run([python, "-m", "docent.cli", "--home", str(home), "ask", "--json", row["question"]],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode == 0:
            timings = json.loads(done.stdout)["timings"]
            row["cli_first_token_s"] = round(timings["first_token_ms"] / 1000, 2)
            row["cli_total_s"] = round(timings["total_ms"] / 1000, 2)
    rows = [r for r in results["questions"] if "cli_first_token_s" in r]
    if rows:
        results["median_first_text_s"] = statistics.median(r["first_text_s"] for r in rows)
        results["median_cli_first_token_s"] = statistics.median(r["cli_first_token_s"] for r in rows)
        results["median_drawn_minus_cli_total_s"] = round(statistics.median(
            r["answer_drawn_s"] - r["cli_total_s"] for r in rows), 2)
        print(f"median first text in the window {results['median_first_text_s']} s vs the model's first token "
              f"{results['median_cli_first_token_s']} s (CLI); the finished answer is drawn "
              f"{results['median_drawn_minus_cli_total_s']:+} s after the CLI's total")
    (OUT / "window.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    from report import refresh      # all benchmarks' figures on one page
    refresh()
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
