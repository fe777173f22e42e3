"""`docent ask / retrieve / chat` as a user runs them (real int8 embedder; the tiny
llama.cpp model end to end once, a scripted generator elsewhere)."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from bot import generators
from docent.cli import main

from conftest import FakeGenerator

ENV = {"DOCENT_PROFILE": "test", "DOCENT_SETTINGS": None}


@pytest.fixture
def run(tmp_path, docs):
    home = tmp_path / "home"

    def invoke(*args, env=None, input=None):
        return CliRunner().invoke(main, ["--home", str(home), *map(str, args)], env={**ENV, **(env or {})},
                                  input=input, catch_exceptions=False)
    assert invoke("ingest", docs, "-q").exit_code == 0
    return invoke


@pytest.fixture
def scripted(monkeypatch):
    """Make every command use a scripted generator."""
    def use(respond):
        fake = FakeGenerator(respond)
        monkeypatch.setattr(generators, "make_generator", lambda settings: fake)
        return fake
    return use


def test_ask_json_has_the_documented_fields(run, scripted):
    scripted(lambda m: "Open the admin console and press Rotate [1]. Old keys stop working after 24 hours [1].")
    result = run("ask", "How do I rotate API keys?", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"answer", "abstained", "citations", "flags", "timings"} <= set(data)
    assert data["abstained"] is False and data["flags"] == []
    assert "[1]" in data["answer"]
    citation = data["citations"][0]
    assert set(citation) == {"n", "source", "page", "heading", "text", "score"}
    assert citation["n"] == 1 and citation["source"].endswith("faq.txt") and "Rotate" in citation["text"]
    assert {"retrieve_ms", "first_token_ms", "total_ms", "tokens"} <= set(data["timings"])


def test_ask_shows_a_warning_a_quiet_note_and_nothing(run, scripted):
    # The three levels: sure (a warning), not confirmed (quiet), supported (nothing). A
    # high "not confirmed" cut makes the restated first sentence merely not confirmed.
    answer = "Open the admin console and press Rotate [1]. Old keys stop working after 48 hours [1]."
    scripted(lambda m: answer)
    env = {"DOCENT_GUARD__THRESHOLD": "0.99", "DOCENT_ANSWER__FALLBACK": "none"}
    data = json.loads(run("ask", "How do I rotate API keys?", "--json", env=env).output)
    levels = [(f["kind"], f["confidence"], data["answer"][f["span"][0]:f["span"][1]][:10]) for f in data["flags"]]
    assert levels == [("unsupported", "low", "Open the a"), ("contradicted", "high", "Old keys s")]
    shown = run("ask", "How do I rotate API keys?", env=env).output
    assert "! contradicted" in shown and "? not confirmed by the passages" in shown
    # At the fitted cuts the restated sentence is simply supported.
    plain = json.loads(run("ask", "How do I rotate API keys?", "--json", env={"DOCENT_ANSWER__FALLBACK": "none"}).output)
    assert [(f["kind"], f["confidence"]) for f in plain["flags"]] == [("contradicted", "high")]


def test_ask_streams_text_then_sources(run, scripted):
    scripted(lambda m: "Backups run nightly at 02:00 [1].")
    result = run("ask", "When do backups run?")
    assert result.exit_code == 0
    assert result.output.startswith("Backups run nightly at 02:00 [1].")
    assert "Sources:" in result.output and "guide.rst" in result.output


def test_ask_abstains_plainly(run, scripted):
    scripted(lambda m: "I don't know.")
    data = json.loads(run("ask", "What is the office VPN password?", "--json").output)
    assert data["abstained"] is True and data["citations"] == []
    assert "closest passages" in data["answer"]


@pytest.mark.parametrize("question, message", [("  ", "is empty"),
                                               ("\x00\u200b\u200d\ufeff ", "is empty"),
                                               ("x" * 20_000, "20,000 characters")])
@pytest.mark.parametrize("command", ["ask", "retrieve"])
def test_bad_questions_exit_2_with_one_line(run, scripted, question, message, command):
    # Only invisible characters (NUL, zero-width) is empty; retrieve has ask's length limit.
    fake = scripted(lambda m: "unused [1].")
    result = run(command, question)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output and len(result.output.splitlines()) == 1
    assert fake.calls == []


def test_missing_collection_exits_5(run, scripted):
    scripted(lambda m: "unused [1].")
    result = run("ask", "hello?", "-c", "nope")
    assert result.exit_code == 5 and "no collection 'nope'" in result.output


def test_model_server_down_exits_6(run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("ask", "How do I rotate API keys?",
                 env={"DOCENT_GENERATION__BACKEND": "openai", "DOCENT_GENERATION__BASE_URL": f"http://127.0.0.1:{port}/v1",
                      "DOCENT_GENERATION__TIMEOUT_SECONDS": "2"})
    assert result.exit_code == 6
    assert "cannot reach the model server" in result.output and "Traceback" not in result.output


def test_retrieve_json_lists_passages(run):
    result = run("retrieve", "rotate API keys", "-k", "2", "--json")
    assert result.exit_code == 0
    passages = json.loads(result.output)
    assert 1 <= len(passages) <= 2
    assert passages[0]["source"].endswith("faq.txt") and passages[0]["n"] == 1
    assert set(passages[0]) == {"n", "source", "page", "heading", "text", "score"}
    text = run("retrieve", "rotate API keys").output
    assert "[1]" in text and "faq.txt" in text


def test_chat_follows_up(run, scripted):
    def respond(messages):
        last = messages[-1]["content"]
        if "Follow-up question" in last:
            return "How long are backups kept?"
        return "Backups are kept for 30 days [1]." if "kept" in last.split("Question:")[-1] else "Backups run nightly at 02:00 [1]."
    fake = scripted(respond)
    result = run("chat", input="When do backups run?\nand how long are they kept?\n/quit\n")
    assert result.exit_code == 0, result.output
    assert "02:00" in result.output and "30 days" in result.output
    assert any("Follow-up question: and how long are they kept?" in call[-1]["content"] for call in fake.calls)


def test_ask_with_the_tiny_model_end_to_end(run):
    """The real path: int8 embedder, hybrid retrieval, llama.cpp with the tiny model."""
    result = run("ask", "How do I rotate API keys?", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert isinstance(data["answer"], str) and data["answer"].strip()
    assert data["timings"]["tokens"] > 0 or data["abstained"]
    for citation in data["citations"]:
        assert 1 <= citation["n"] <= 4 and citation["source"]


def test_withdrawn_answer_is_labelled(run, scripted):
    scripted(lambda m: "The message brokers need a 6 GB heap [1].")
    result = run("ask", "What heap size do the message brokers need for rotating API keys?")
    assert result.exit_code == 0
    assert "withdrawn" in result.output and "documents don't say" in result.output


def test_a_question_about_what_no_document_names_says_which_name(run, scripted):
    scripted(lambda m: "Run choco install docent [1].")
    data = json.loads(run("ask", "How do I rotate API keys with Chocolatey?", "--json").output)
    assert data["abstained"] and data["abstain_reason"] == "unnamed"
    assert data["answer"].startswith("The documents never mention “Chocolatey”") and "choco install" not in data["answer"]
