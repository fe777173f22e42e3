"""Users x documents x every endpoint of `docent serve`: a document a user may not read
never shows in what they get back (its words, its file name, a count that includes it),
and one they may read does (so the test would notice rights that hide too much).

The team fixture (tests/conftest.py): corp holds eng/deploy.md, eng/oncall.md,
hr/salaries.md and handbook.md; eng reads corp's eng/**, hr all of corp; alice is in eng,
bob in hr and eng, carol in no group, root in admin."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import call

# Each document: a phrase only it holds, its file name, and a question that finds it.
DOCUMENTS = {
    "eng/deploy.md": ("Tuesdays from the release branch", "deploy.md", "When do deploys go out from the release branch?"),
    "eng/oncall.md": ("rotates every Monday", "oncall.md", "When does the on-call engineer rotate?"),
    "hr/salaries.md": ("110,000", "salaries.md", "What is the salary band for level 3 and when are bonuses paid?"),
    "handbook.md": ("nine to five", "handbook.md", "What are the office hours in the handbook?"),
}
MAY_READ = {
    "alice": {"eng/deploy.md", "eng/oncall.md"},
    "bob": set(DOCUMENTS),
    "carol": set(),
    "root": set(DOCUMENTS),
}
ENDPOINTS = ("retrieve", "ask", "ask-stream", "chat", "chat-stream")


def fetch(live, token, endpoint: str, question: str) -> httpx.Response:
    if endpoint == "retrieve":
        return call(live, "POST", "/v1/retrieve", token, json={"query": question, "collection": "corp", "k": 10})
    if endpoint.startswith("ask"):
        headers = {"Accept": "text/event-stream"} if endpoint == "ask-stream" else {}
        return call(live, "POST", "/v1/ask", token, headers=headers, json={"question": question, "collection": "corp"})
    return call(live, "POST", "/v1/chat/completions", token,
                json={"model": "corp", "messages": [{"role": "user", "content": question}],
                      "stream": endpoint == "chat-stream"})


@pytest.fixture
def live(team):
    make, tokens, _ = team
    return make(), tokens


@pytest.mark.parametrize("user", sorted(MAY_READ))
def test_no_endpoint_shows_a_user_what_they_may_not_read(live, user):
    server, tokens = live
    token = tokens[user]
    readable = MAY_READ[user]
    for path, (phrase, file_name, question) in DOCUMENTS.items():
        for endpoint in ENDPOINTS:
            response = fetch(server, token, endpoint, question)
            if not readable:
                assert response.status_code == 403, (user, endpoint)
                assert "corp" in response.text and phrase not in response.text
                continue
            assert response.status_code == 200, (user, endpoint, response.text)
            for other, (other_phrase, other_file, _) in DOCUMENTS.items():
                if other not in readable:
                    assert other_phrase not in response.text, (user, endpoint, question, other)
                    assert other_file not in response.text, (user, endpoint, question, other)
            if path in readable and endpoint == "retrieve":
                assert phrase in response.text, (user, question)       # rights do not hide too much


@pytest.mark.parametrize("user", sorted(MAY_READ))
def test_lists_and_counts_hold_only_what_a_user_may_read(live, user):
    server, tokens = live
    token = tokens[user]
    readable = MAY_READ[user]
    sources = call(server, "GET", "/v1/sources?collection=corp", token)
    models = [m["id"] for m in call(server, "GET", "/v1/models", token).json()["data"]]
    if not readable:
        assert sources.status_code == 403 and "corp" not in models
        return
    listed = sorted(f["path"].split("/corp/", 1)[1] for f in sources.json()["files"])
    assert listed == sorted(readable) and "corp" in models
    # k stays exact and counts only readable chunks: ask for more than there are.
    passages = call(server, "POST", "/v1/retrieve", token,
                    json={"query": "the", "collection": "corp", "k": 50}).json()["passages"]
    chunks = sum(f["chunks"] for f in sources.json()["files"])
    assert len(passages) == chunks
    # The audit log keeps what happened; the answers' metadata never names a hidden file.
    answer = call(server, "POST", "/v1/ask", token, json={"question": "salary", "collection": "corp"}).json()
    shown = json.dumps(answer)
    for other, (_, other_file, _) in DOCUMENTS.items():
        if other not in readable:
            assert other_file not in shown
