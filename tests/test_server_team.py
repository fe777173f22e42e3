"""`docent serve` for a team, over real HTTP (uvicorn on 127.0.0.1, a fake model): uploads
with write grants, the streamed /v1/ask, /metrics, a client that leaves the line, and
parallel answers for a backend that serves several at once."""

from __future__ import annotations

import json
import threading
import time

import httpx

from conftest import FakeGenerator, call, quote_passage

NOTE = "# Release notes\n\nThe zeppelin build pipeline retries flaky jobs twice before it fails.\n"


def events_of(response) -> list[tuple[str, dict]]:
    """(event, data) pairs of a server-sent event stream."""
    out, event = [], "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            out.append((event, json.loads(line[6:])))
            event = "message"
    return out


def upload(live, token, collection, name, text, folder=""):
    return call(live, "POST", f"/v1/collections/{collection}/files", token,
                files=[("files", (name, text.encode(), "text/markdown"))], data={"folder": folder})


def test_uploads_need_write_rights_covering_the_folder(team):
    from bot.access.users import AccessStore
    make, tokens, settings = team
    AccessStore(settings.home_dir()).grant("eng", "corp", "eng/**", write=True)
    live = make()
    added = upload(live, tokens["alice"], "corp", "release.md", NOTE, folder="eng")
    assert added.status_code == 200, added.text
    assert added.json()["files"] == [{"name": "eng/release.md", "action": "added", "chunks": 1, "reason": ""}]
    found = call(live, "POST", "/v1/retrieve", tokens["alice"], json={"query": "zeppelin pipeline", "collection": "corp"})
    assert "zeppelin" in found.json()["passages"][0]["text"]

    outside = upload(live, tokens["alice"], "corp", "pay.md", NOTE, folder="hr")      # her grant covers eng/ only
    reader = upload(live, tokens["bob"], "corp", "x.md", NOTE)                      # hr reads corp, may not write
    stranger = upload(live, tokens["carol"], "corp", "x.md", NOTE)                  # cannot even read corp
    assert outside.status_code == reader.status_code == stranger.status_code == 403
    assert "may not add files" in outside.json()["error"]["message"]
    assert "may not add files" in reader.json()["error"]["message"]
    assert "not one you can read" in stranger.json()["error"]["message"]
    climbing = upload(live, tokens["root"], "corp", "x.md", NOTE, folder="../../etc")
    assert climbing.status_code == 400
    # The admin group writes anywhere, a new collection too.
    assert upload(live, tokens["root"], "fresh", "release.md", NOTE).status_code == 200
    assert "fresh" in [m["id"] for m in call(live, "GET", "/v1/models", tokens["root"]).json()["data"]]


def test_a_body_without_content_length_is_still_bounded(team):
    make, tokens, _ = team
    live = make(max_body_kb=1)

    def chunks():
        for _ in range(64):
            yield b" " * 1024
    response = httpx.post(live.url + "/v1/ask", headers={"Authorization": f"Bearer {tokens['alice']}",
                                                         "Content-Type": "application/json"},
                          content=chunks(), timeout=30)
    assert response.status_code == 413 and "server.max_body_kb" in response.json()["error"]["message"]


def test_ask_streams_the_windows_events_and_ends_with_the_answer(team):
    make, tokens, _ = team
    live = make()
    body = {"question": "When do deploys go out?", "collection": "corp"}
    with httpx.stream("POST", live.url + "/v1/ask", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {tokens['alice']}", "Accept": "text/event-stream"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = events_of(r)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "answer" and "token" in kinds and "status" in kinds
    streamed = "".join(data["text"] for kind, data in events if kind == "token")
    final = events[-1][1]
    assert "Tuesdays" in final["answer"] and final["citations"][0]["source"].endswith("deploy.md")
    assert streamed.strip() == final["answer"].strip()
    plain = call(live, "POST", "/v1/ask", tokens["alice"], json=body).json()
    assert plain["answer"] == final["answer"]


def test_metrics_count_requests_and_outcomes_for_admins_only(team):
    make, tokens, _ = team
    live = make()
    call(live, "POST", "/v1/ask", tokens["alice"], json={"question": "When do deploys go out?", "collection": "corp"})
    call(live, "GET", "/v1/models")                      # 401
    assert call(live, "GET", "/metrics", tokens["alice"]).status_code == 403
    page = call(live, "GET", "/metrics", tokens["root"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    text = page.text
    assert 'docent_requests_total{endpoint="/v1/ask",status="200"} 1' in text
    assert 'docent_requests_total{endpoint="/v1/models",status="401"} 1' in text
    assert 'docent_answers_total{outcome="answered"} 1' in text
    assert 'docent_request_seconds_count{endpoint="/v1/ask"} 1' in text
    assert "docent_queue_waiting 0" in text and "docent_queue_wait_seconds_count 1" in text
    # Routes only: no user, collection or question on the page.
    assert "alice" not in text and "corp" not in text and "deploys" not in text


def test_a_client_that_leaves_the_line_is_never_answered(team):
    from bot.access.audit import AuditLog
    make, tokens, settings = team
    release, asked = threading.Event(), []

    def slow(messages):
        asked.append(messages[-1]["content"])
        release.wait(20)
        return quote_passage(messages)
    live = make(FakeGenerator(slow))
    first = threading.Thread(target=call, args=(live, "POST", "/v1/ask", tokens["bob"]),
                             kwargs={"json": {"question": "When do deploys go out?", "collection": "corp"}})
    first.start()
    deadline = time.monotonic() + 20
    while not asked:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # alice streams, hears she is first in line, and hangs up.
    with httpx.stream("POST", live.url + "/v1/ask", json={"question": "Who is on call on Mondays?", "collection": "corp"},
                      headers={"Authorization": f"Bearer {tokens['alice']}", "Accept": "text/event-stream"},
                      timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:]) == {"position": 1}
                break
    # carol waits for a whole answer and gives up after a second.
    try:
        call(live, "POST", "/v1/ask", tokens["carol"], json={"question": "When does the canteen open?"}, timeout=1)
    except httpx.TimeoutException:
        pass
    while call(live, "GET", "/healthz").json()["waiting"]:
        assert time.monotonic() < deadline, "the requests whose clients left still wait"
        time.sleep(0.05)
    release.set()
    first.join(30)
    time.sleep(0.3)
    assert len(asked) == 1                          # only bob's question reached the model
    statuses = [(r.get("user"), r.get("status")) for r in AuditLog(settings.home_dir() / "audit.jsonl").records()]
    assert ("alice", 499) in statuses and ("carol", 499) in statuses and ("bob", 200) in statuses


def test_a_concurrent_backend_answers_up_to_server_parallel_at_once(team):
    from bot.generators import CONCURRENT
    make, tokens, _ = team
    inside, most, lock, go, patience = [0], [0], threading.Lock(), threading.Event(), [5.0]

    def counting(messages):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            if inside[0] == 3:
                go.set()
        go.wait(patience[0])        # three at once meet here; one at a time never do
        with lock:
            inside[0] -= 1
        return quote_passage(messages)

    def run(generator, **server):
        live = make(generator, **server)
        inside[0] = most[0] = 0
        go.clear()
        threads = [threading.Thread(target=call, args=(live, "POST", "/v1/ask", tokens["bob"]),
                                    kwargs={"json": {"question": q, "collection": "corp"}})
                   for q in ("When do deploys go out?", "Who is on call?", "When are bonuses paid?")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return most[0]
    concurrent = FakeGenerator(counting)
    concurrent.abilities = frozenset({CONCURRENT})
    assert run(concurrent, parallel=3) == 3
    patience[0] = 0.3
    assert run(FakeGenerator(counting), parallel=3) == 1       # a local model: one at a time


def test_the_api_page_documents_every_endpoint_without_a_cdn(team):
    import re
    make, _, _ = team
    live = make()
    schema = call(live, "GET", "/openapi.json").json()
    assert {"/v1/models", "/v1/chat/completions", "/v1/ask", "/v1/retrieve", "/v1/sources",
            "/v1/collections/{name}/files", "/metrics", "/healthz"} <= set(schema["paths"])
    page = call(live, "GET", "/docs")
    assert page.status_code == 200
    scripts = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.text)
    assert scripts and all(s.startswith("/") for s in scripts)          # served here: no CDN
    assert all(call(live, "GET", s).status_code == 200 for s in scripts)


def test_cors_is_off_unless_an_origin_is_configured(team):
    make, tokens, _ = team
    preflight = {"Origin": "https://chat.example.com", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    closed = call(make(), "OPTIONS", "/v1/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    opened = call(make(cors_origins=("https://chat.example.com",)), "OPTIONS", "/v1/chat/completions",
                  headers=preflight)
    assert opened.headers["access-control-allow-origin"] == "https://chat.example.com"
    other = call(make(cors_origins=("https://chat.example.com",)), "OPTIONS", "/v1/chat/completions",
                 headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
