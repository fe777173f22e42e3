"""Rights with the bundled model: users x documents x endpoints of `docent serve`, real
embedder, real model, real HTTP on loopback, the official `openai` client for chat.

    .venv/bin/python benchmarks/serve_matrix.py

A 'corp' collection of four short documents written for this benchmark (not the suite's),
each holding one fact found nowhere else; eng may read eng/**, hr all of corp; alice is
in eng, bob in hr, carol in no group. Every user asks about every document on /v1/ask,
/v1/chat/completions (streamed, through the openai client) and /v1/retrieve, and lists
/v1/sources. Counted: leaks (a fact, file name or chunk count of a document the user may
not read in anything they got back; target 0), and, as the control that rights do not
hide too much, how many readable facts the model's answers gave. Written to
benchmarks/results/serve_matrix.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "serve_matrix.json"

# path: (text, the fact's telltale strings, a question about it)
CORP = {
    "eng/incident-runbook.md": (
        "# Incident runbook\n\n## Paging\n\nDuring an outage, page the duty lead through the Ozone pager. "
        "The escalation code for a full outage is ORCA-77, and the duty lead opens the incident channel.\n",
        ["ORCA-77", "Ozone pager"], "What is the escalation code for a full outage?"),
    "eng/releases.md": (
        "# Releases\n\n## Schedule\n\nReleases are cut every second Thursday at 14:00 UTC by the release captain, "
        "who freezes the main branch one hour before.\n",
        ["second Thursday", "14:00"], "When are releases cut?"),
    "hr/compensation.md": (
        "# Compensation\n\n## Salary bands\n\nThe level 4 salary band runs from 98,500 to 121,000 euros a year, "
        "reviewed each April.\n",
        ["98,500", "121,000"], "What is the salary band for level 4?"),
    "hr/leave.md": (
        "# Leave\n\n## Parental leave\n\nParental leave is 26 weeks at full pay, to be taken within two years "
        "of the birth or adoption.\n",
        ["26 weeks"], "How long is parental leave?"),
}
USERS = {"alice": ["eng"], "bob": ["hr"], "carol": []}


def may_read(user: str, path: str) -> bool:
    return "hr" in USERS[user] or ("eng" in USERS[user] and path.startswith("eng/"))


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import httpx
    from openai import OpenAI

    from bot.access.users import AccessStore
    from bot.builder import Components
    from docent.server import make_app
    from docent.settings import load_settings
    from serve import serve

    home = Path(tempfile.mkdtemp(prefix="docent-matrix-"))
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M"),
                     "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "rows": []}
    try:
        corp = home / "corp-docs"
        for path, (text, _, _) in CORP.items():
            (corp / path).parent.mkdir(parents=True, exist_ok=True)
            (corp / path).write_text(text, encoding="utf-8")
        settings = load_settings(env={})
        parts = Components(settings, home)
        parts.ingestor.ingest([corp], collection="corp")
        store = AccessStore(parts.home)
        tokens = {name: store.add_user(name, groups) for name, groups in USERS.items()}
        store.grant("eng", "corp", "eng/**")
        store.grant("hr", "corp")
        print("loading the bundled model...", flush=True)
        parts.answerer.warm_up("corp", prefill=True)
        server, thread, url = serve(make_app(settings, parts=parts))
        leaks, answered, readable_asked = [], 0, 0
        for user, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"}
            client = OpenAI(base_url=url + "/v1", api_key=token, max_retries=0, timeout=600)
            hidden = [p for p in CORP if not may_read(user, p)]
            sources = httpx.get(url + "/v1/sources", params={"collection": "corp"}, headers=headers, timeout=60)
            got = {"sources": sources.text}
            for path, (_, facts, question) in CORP.items():
                started = time.perf_counter()
                ask = httpx.post(url + "/v1/ask", json={"question": question, "collection": "corp"},
                                 headers=headers, timeout=600)
                retrieve = httpx.post(url + "/v1/retrieve", json={"query": question, "collection": "corp", "k": 10},
                                      headers=headers, timeout=60)
                try:
                    chunks = list(client.chat.completions.create(
                        model="corp", stream=True, messages=[{"role": "user", "content": question}]))
                    chat = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) + json.dumps(
                        chunks[-1].model_extra.get("docent", {}))
                except Exception as exc:  # noqa: BLE001 - carol's 403 arrives as the client's error
                    chat = f"{type(exc).__name__}: {exc}"
                got.update({f"ask {question}": ask.text, f"retrieve {question}": retrieve.text,
                            f"chat {question}": chat})
                row = {"user": user, "document": path, "may_read": may_read(user, path),
                       "statuses": [ask.status_code, retrieve.status_code], "seconds": round(time.perf_counter() - started, 1)}
                if ask.status_code == 200:
                    reply = ask.json()
                    row.update(answer=reply["answer"], abstained=reply["abstained"],
                               fact_given=any(f in reply["answer"] for f in facts))
                    if may_read(user, path):
                        readable_asked += 1
                        answered += row["fact_given"]
                results["rows"].append(row)
                print(f"{user:6} {path:26} {row['statuses']} {row.get('fact_given', '-')!s:5} "
                      f"{row['seconds']} s", flush=True)
            for other in hidden:
                telltales = CORP[other][1] + [Path(other).name]
                for what, text in got.items():
                    leaks += [{"user": user, "document": other, "in": what, "found": t} for t in telltales if t in text]
            if hidden and sources.status_code == 200:       # counts: the listed chunks are the readable ones only
                listed = sum(f["chunks"] for f in sources.json()["files"])
                results.setdefault("listed_chunks", {})[user] = listed
        server.should_exit = True
        thread.join(10)
        results.update(leaks=leaks, leak_count=len(leaks), readable_questions=readable_asked,
                       readable_facts_given=answered)
        print(f"leaks: {len(leaks)}; readable facts given in answers: {answered}/{readable_asked}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
