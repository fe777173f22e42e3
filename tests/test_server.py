"""`docent serve` over real HTTP on loopback (uvicorn in a thread, a fake model): users and
tokens, rights enforced inside retrieval across every endpoint, the official `openai`
client, the line in front of the model, the audit log."""

from __future__ import annotations

import json
import threading
import time

import pytest

from conftest import SALARY, FakeGenerator, LiveServer, call, quote_passage
from conftest import on_backend

@pytest.fixture(params=["faiss", "postgres"])
def settings(settings, request):
    """Every test here runs against both stores (FAISS folders, PostgreSQL), unless marked faiss_only."""
    return on_backend(settings, request.param, request)


# What only a FAISS collection has (its SQLite file, FTS5); these tests stay with it.
faiss_only = pytest.mark.parametrize("settings", ["faiss"], indirect=True)


def test_no_token_or_a_wrong_one_is_401_and_a_rotated_token_stops_working(team):
    make, tokens, settings = team
    live = make()
    assert call(live, "GET", "/v1/models").status_code == 401
    assert call(live, "GET", "/v1/models", "dct_0_wrong").status_code == 401
    assert call(live, "GET", "/v1/models", tokens["alice"]).status_code == 200
    from bot.access.users import AccessStore
    new = AccessStore(settings.home_dir()).rotate_token("alice")
    assert call(live, "GET", "/v1/models", tokens["alice"]).status_code == 401
    assert call(live, "GET", "/v1/models", new).status_code == 200


def test_each_user_sees_only_the_collections_they_may_read(team):
    make, tokens, _ = team
    live = make()

    def models(user):
        return sorted(m["id"] for m in call(live, "GET", "/v1/models", tokens[user]).json()["data"])
    assert models("alice") == models("bob") == models("root") == ["corp", "default"]
    assert models("carol") == ["default"]            # corp has grants, none for her groups
    refused = call(live, "POST", "/v1/retrieve", tokens["carol"], json={"query": "deploys", "collection": "corp"})
    missing = call(live, "POST", "/v1/retrieve", tokens["carol"], json={"query": "deploys", "collection": "nope"})
    assert refused.status_code == missing.status_code == 403
    # The same words for a collection that exists and one that does not: no one learns a name.
    assert refused.json()["error"]["message"].replace("corp", "X") == missing.json()["error"]["message"].replace("nope", "X")


@pytest.mark.parametrize("endpoint", ["retrieve", "ask", "chat", "chat-stream", "sources"])
def test_a_document_a_user_may_not_read_never_reaches_them(team, endpoint):
    """alice (eng) asks about salaries on every endpoint: nothing of hr/salaries.md nor the
    handbook (not under eng/) comes back, in text, citations, paths or counts; bob (hr)
    gets the salary passage through the same endpoint."""
    make, tokens, _ = team
    live = make()
    question = "What is the salary band for level 3?"

    def fetch(user) -> str:
        token = tokens[user]
        if endpoint == "retrieve":
            body = call(live, "POST", "/v1/retrieve", token, json={"query": question, "collection": "corp", "k": 10})
        elif endpoint == "ask":
            body = call(live, "POST", "/v1/ask", token, json={"question": question, "collection": "corp"})
        elif endpoint == "sources":
            body = call(live, "GET", "/v1/sources?collection=corp", token)
        else:
            body = call(live, "POST", "/v1/chat/completions", token,
                        json={"model": "corp", "messages": [{"role": "user", "content": question}],
                              "stream": endpoint == "chat-stream"})
        assert body.status_code == 200, body.text
        return body.text
    seen_by_alice, seen_by_bob = fetch("alice"), fetch("bob")
    for secret in ("110,000", "salaries.md", "Bonuses", "handbook.md", "Office hours"):
        assert secret not in seen_by_alice
    assert "salaries.md" in seen_by_bob or "110,000" in seen_by_bob


def test_k_stays_exact_for_a_user_with_rights_on_part_of_a_collection(team):
    make, tokens, _ = team
    live = make()
    got = call(live, "POST", "/v1/retrieve", tokens["alice"], json={"query": "salary bonuses", "collection": "corp", "k": 2})
    paths = [p["source"] for p in got.json()["passages"]]
    assert len(paths) == 2 and all("/eng/" in p for p in paths)


def test_the_official_openai_client_streams_a_cited_answer_with_docents_object(team):
    from openai import OpenAI
    make, tokens, _ = team
    live = make()
    client = OpenAI(base_url=live.url + "/v1", api_key=tokens["bob"], max_retries=0)
    assert sorted(m.id for m in client.models.list()) == ["corp", "default"]
    chunks = list(client.chat.completions.create(
        model="corp", stream=True, messages=[{"role": "user", "content": "When do deploys go out?"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Tuesdays" in text and "[1]" in text
    extra = chunks[-1].model_extra["docent"]
    assert extra["citations"][0]["source"].endswith("deploy.md") and extra["abstained"] is False
    plain = client.chat.completions.create(model="corp", messages=[{"role": "user", "content": "When do deploys go out?"}])
    assert plain.choices[0].message.content == text
    # A follow-up: the history travels in messages.
    follow = client.chat.completions.create(model="corp", messages=[
        {"role": "user", "content": "When do deploys go out?"}, {"role": "assistant", "content": text},
        {"role": "user", "content": "And who is on call?"}])
    assert follow.model_extra["docent"]["standalone_question"]


def test_a_full_line_is_429_with_retry_after(team):
    make, tokens, _ = team
    release, started = threading.Event(), threading.Event()

    def slow(messages):
        started.set()
        release.wait(20)
        return quote_passage(messages)
    live = make(FakeGenerator(slow), max_waiting=0)
    first = threading.Thread(target=call, args=(live, "POST", "/v1/ask", tokens["bob"]),
                             kwargs={"json": {"question": "When do deploys go out?", "collection": "corp"}})
    first.start()
    assert started.wait(20)
    busy = call(live, "POST", "/v1/ask", tokens["alice"], json={"question": "Who is on call?", "collection": "corp"})
    release.set()
    first.join(30)
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "30"
    assert call(live, "POST", "/v1/ask", tokens["alice"],
                json={"question": "Who is on call?", "collection": "corp"}).status_code == 200


def test_the_line_serves_in_arrival_order():
    from docent.server_line import Line
    line, served, holding = Line(max_waiting=5), [], threading.Event()

    def ask(name, hold=False):
        with line.turn():
            served.append(name)
            if hold:
                holding.wait(10)
    first = threading.Thread(target=ask, args=("first", True))
    first.start()
    while not served:
        time.sleep(0.01)
    later = []
    for name in ("b", "c", "d"):
        thread = threading.Thread(target=ask, args=(name,))
        thread.start()
        later.append(thread)
        while line.waiting() < len(later):
            time.sleep(0.01)
    holding.set()
    for thread in [first] + later:
        thread.join(10)
    assert served == ["first", "b", "c", "d"]


def test_every_request_is_in_the_audit_log_and_the_chain_holds(team):
    from bot.access.audit import AuditLog
    make, tokens, settings = team
    live = make()
    call(live, "POST", "/v1/ask", tokens["alice"], json={"question": "When do deploys go out?", "collection": "corp"})
    call(live, "GET", "/v1/models")                     # refused: logged too
    call(live, "GET", "/v1/sources?collection=corp", tokens["carol"])     # 403: logged with who was refused
    log = AuditLog(settings.home_dir() / "audit.jsonl")
    records = list(log.records())
    assert any(r.get("status") == 403 and r.get("user") == "carol" and r["endpoint"] == "/v1/sources"
               for r in records)
    asked = next(r for r in records if r.get("endpoint") == "/v1/ask")
    assert asked["user"] == "alice" and asked["question"] == "When do deploys go out?" and asked["cited"]
    assert any(r.get("status") == 401 for r in records)
    assert log.verify().ok
    assert tokens["alice"] not in (settings.home_dir() / "audit.jsonl").read_text()


def test_without_users_the_server_is_single_user_and_serve_refuses_other_addresses(settings, fake_embedder, tmp_path):
    from click.testing import CliRunner

    from bot.builder import Components
    from docent.cli import main
    from docent.server import make_app
    from ingest.pipeline import Ingestor
    docs = tmp_path / "d"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nThe canteen opens at noon every weekday.\n", encoding="utf-8")
    settings = settings.with_values("retrieval", min_score=0.0)
    Ingestor(settings, embedder=fake_embedder).ingest([docs])
    live = LiveServer(make_app(settings, parts=Components(settings, embedder=fake_embedder,
                                                          generator=FakeGenerator(quote_passage))))
    try:
        assert [m["id"] for m in call(live, "GET", "/v1/models").json()["data"]] == ["default"]
    finally:
        live.stop()
    result = CliRunner().invoke(main, ["--home", str(settings.home_dir()), "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "no users" in result.output


def test_an_oversized_body_is_refused(team):
    make, tokens, _ = team
    live = make(max_body_kb=1)
    got = call(live, "POST", "/v1/ask", tokens["bob"], content=json.dumps({"question": "x" * 5000}),
               headers={"Content-Type": "application/json"})
    assert got.status_code == 413
