"""The OpenAI-compatible backend against small local servers that misbehave the ways real
ones do, driven by the real openai client: each fault gets its own one-line error, and
`docent ask` its own exit status (run as a user runs it, in a subprocess)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from bot.generators import (GeneratorError, ModelReplyBroken, ModelStalled, ModelUnreachable, OpenAIGenerator,
                            make_generator)
from docent.settings import GenerationSettings

MESSAGES = [{"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "Name a colour."}]
WAIT = 1.0          # generation.timeout_seconds in these tests


# --- a model server that can misbehave -----------------------------------------------------

class FakeServer:
    """A model server on 127.0.0.1 that writes raw HTTP, so that faults a real server library
    would tidy up (a chunk cut short, a stream left hanging) can be staged. `reply(server,
    conn, method, path, body)` answers one request; every connection carries one request."""

    def __init__(self, reply, max_requests: int = 20):
        self.reply = reply
        self.requests: list[tuple[str, str, dict, dict | None]] = []     # method, path, headers, JSON body
        self.stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"
        self._max = max_requests
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self.stop.is_set() and len(self._threads) < self._max:
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    block = conn.recv(65536)
                    if not block:
                        return
                    data += block
                head, _, body = data.partition(b"\r\n\r\n")
                method, path, _ = head.decode("latin-1").split("\r\n")[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in head.decode("latin-1").split("\r\n")[1:])}
                while len(body) < int(headers.get("content-length", 0)):
                    body += conn.recv(65536)
                self.requests.append((method, path, headers, json.loads(body) if body else None))
                self.reply(self, conn, method, path, body)
            except OSError:
                pass        # the client hung up first: nothing to answer

    def posts(self) -> list:
        return [r for r in self.requests if r[0] == "POST"]

    def close(self) -> None:
        self.stop.set()
        self._sock.close()
        self._accepting.join(2)
        for thread in self._threads:
            thread.join(2)


@pytest.fixture
def serve():
    """serve(reply) -> a running FakeServer, stopped when the test ends."""
    started = []

    def start(reply, **kwargs):
        started.append(FakeServer(reply, **kwargs))
        return started[-1]
    yield start
    for server in started:
        server.close()


def send(conn, status: int = 200, body: bytes = b"", content_type: str = "application/json") -> None:
    conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)


def start_stream(conn) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                 b"Connection: close\r\n\r\n")


def chunk(conn, text: str) -> None:
    data = text.encode()
    conn.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def event(content: str | None = None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    return "data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "model": "qwen",
                                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"


PIECES = ["Keys ", "rotate ", "daily ", "[1]."]


def streaming(pieces=PIECES, finish: str | None = "stop", done: bool = True, models: int = 200):
    """A well-behaved server, or one whose stream lacks its finish_reason or [DONE]."""
    def reply(server, conn, method, path, body):
        if method == "GET":
            return send(conn, models, b'{"object": "list", "data": []}' if models == 200 else b'{"error": "no"}')
        start_stream(conn)
        for piece in pieces:
            chunk(conn, event(piece))
        if finish:
            chunk(conn, event(finish=finish))
        if done:
            chunk(conn, "data: [DONE]\n\n")
        conn.sendall(b"0\r\n\r\n")
    return reply


def generator(url: str, **values) -> OpenAIGenerator:
    values = {"backend": "openai", "base_url": url, "server_model": "qwen", "api_key_env": "DOCENT_TEST_KEY",
              "timeout_seconds": WAIT, **values}
    return make_generator(GenerationSettings(**values))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]          # closed again when the block ends: nothing listens


# --- answers ---------------------------------------------------------------------------------

def test_streams_in_order_with_the_key_and_the_settings(serve, monkeypatch):
    monkeypatch.setenv("DOCENT_TEST_KEY", "sk-test")
    server = serve(streaming())
    gen = generator(server.url)
    gen.warm_up()
    assert list(gen.stream(MESSAGES, max_tokens=20, stop=["\n\n"])) == PIECES
    method, path, headers, body = server.posts()[-1]
    assert path == "/v1/chat/completions" and headers["authorization"] == "Bearer sk-test"
    assert body["model"] == "qwen" and body["stream"] is True and body["temperature"] == 0.0
    assert body["messages"] == MESSAGES and body["max_tokens"] == 20 and body["stop"] == ["\n\n"]
    assert [r[1] for r in server.requests] == ["/v1/models", "/v1/chat/completions"]


def test_a_stream_is_complete_with_either_a_finish_reason_or_done(serve, monkeypatch):
    monkeypatch.delenv("DOCENT_TEST_KEY", raising=False)
    no_done = serve(streaming(done=False))
    assert "".join(generator(no_done.url).stream(MESSAGES, max_tokens=20)) == "Keys rotate daily [1]."
    assert no_done.posts()[0][2]["authorization"] == "Bearer none"       # the placeholder: no key set
    no_finish = serve(streaming(finish=None))
    assert "".join(generator(no_finish.url).stream(MESSAGES, max_tokens=20)) == "Keys rotate daily [1]."


def test_a_server_without_models_still_counts_as_up(serve):
    server = serve(streaming(models=404))
    gen = generator(server.url)
    gen.warm_up()
    assert list(gen.stream(MESSAGES, max_tokens=5)) == PIECES


def test_a_json_reply_to_a_streamed_request_is_used(serve):
    # Some servers ignore "stream": true and send one chat.completion.
    def reply(server, conn, method, path, body):
        send(conn, body=json.dumps({"id": "c1", "object": "chat.completion", "model": "qwen", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Keys rotate daily [1]."},
             "finish_reason": "stop"}]}).encode())
    server = serve(reply)
    assert list(generator(server.url).stream(MESSAGES, max_tokens=20)) == ["Keys rotate daily [1]."]


# --- faults ----------------------------------------------------------------------------------

def test_a_stream_closed_before_the_answer_was_complete(serve):
    # The chunked body ends cleanly, but with neither a finish_reason nor [DONE].
    server = serve(streaming(finish=None, done=False))
    pieces = []
    with pytest.raises(ModelReplyBroken, match="closed the stream before the answer was complete"):
        for piece in generator(server.url).stream(MESSAGES, max_tokens=20):
            pieces.append(piece)
    assert pieces == PIECES            # what came is shown; the error says it is not all

    def unframed(server, conn, method, path, body):        # no length, no chunks: the close ends it
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                     + event("Keys ").encode())
    with pytest.raises(ModelReplyBroken, match="closed the stream before the answer was complete"):
        list(generator(serve(unframed).url).stream(MESSAGES, max_tokens=20))


@pytest.mark.parametrize("raw, message", [
    ('event: error\ndata: {"message": "model crashed: CUDA out of memory"}\n\n', "model crashed: CUDA out of memory"),
    ('data: {"error": {"message": "context length exceeded", "type": "invalid_request"}}\n\n',
     "context length exceeded"),
    ("event: error\ndata: overloaded\n\n", "overloaded"),
])
def test_an_error_inside_the_stream_is_quoted(serve, raw, message):
    def reply(server, conn, method, path, body):
        start_stream(conn)
        chunk(conn, event("Keys "))
        chunk(conn, raw)
        conn.sendall(b"0\r\n\r\n")
    server = serve(reply)
    with pytest.raises(ModelReplyBroken, match=f"reported an error in the stream: {message}$"):
        list(generator(server.url).stream(MESSAGES, max_tokens=20))


def test_a_chunk_cut_short_is_a_broken_connection(serve):
    def reply(server, conn, method, path, body):
        start_stream(conn)
        chunk(conn, event("Keys "))
        conn.sendall(b"100\r\n" + event("rot").encode()[:30])        # 256 bytes announced, 30 sent
    server = serve(reply)
    with pytest.raises(ModelReplyBroken, match=r"the connection to the model server at .* broke"):
        list(generator(server.url).stream(MESSAGES, max_tokens=20))


def test_a_server_that_stops_mid_stream_has_stalled(serve):
    def reply(server, conn, method, path, body):
        start_stream(conn)
        chunk(conn, event("Keys "))
        server.stop.wait(5)
    server = serve(reply)
    started = time.monotonic()
    with pytest.raises(ModelStalled, match=r"stopped answering \(no data for 1 s"):
        list(generator(server.url).stream(MESSAGES, max_tokens=20))
    assert time.monotonic() - started < 4


def test_a_server_that_accepts_and_says_nothing_has_stalled_after_retries(serve):
    server = serve(lambda server, conn, method, path, body: server.stop.wait(10))
    with pytest.raises(ModelStalled, match=r"stopped answering \(no data for 1 s") as caught:
        list(generator(server.url).stream(MESSAGES, max_tokens=20))
    assert "cannot reach" not in str(caught.value)
    assert len(server.posts()) == 3             # the client asked again twice before giving up


def test_nothing_listening_is_cannot_reach(serve):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    gen = generator(url, timeout_seconds=2)
    with pytest.raises(ModelUnreachable, match=f"cannot reach the model server at {url} .*is it running"):
        gen.warm_up()
    with pytest.raises(ModelUnreachable, match="is it running"):
        list(gen.stream(MESSAGES, max_tokens=5))


@pytest.mark.parametrize("status, body, detail", [
    (401, b'{"error": {"message": "Invalid API key", "type": "auth"}}', "HTTP 401: Invalid API key"),
    (404, b'{"error": {"message": "model \'qwen\' not found, try pulling it first"}}',
     "HTTP 404: model 'qwen' not found, try pulling it first"),
    (500, b"model not loaded", "HTTP 500: model not loaded"),
])
def test_http_errors_give_the_status_and_the_servers_detail(serve, status, body, detail):
    def reply(server, conn, method, path, request):
        if method == "GET":
            return send(conn, body=b'{"object": "list", "data": []}')
        send(conn, status, body, "application/json" if body.startswith(b"{") else "text/plain")
    server = serve(reply)
    with pytest.raises(ModelUnreachable, match=f"answered {detail}$"):
        list(generator(server.url).stream(MESSAGES, max_tokens=5))
    assert len(server.posts()) == (3 if status >= 500 else 1)         # only server errors are retried


def test_a_wrong_key_is_caught_at_start(serve):
    server = serve(lambda server, conn, method, path, body: send(conn, 401, b'{"error": {"message": "bad key"}}'))
    with pytest.raises(ModelUnreachable, match="HTTP 401: bad key"):
        generator(server.url).warm_up()


def test_a_reply_that_is_no_stream_of_events(serve):
    server = serve(lambda server, conn, method, path, body: send(conn, 200, b"<html>proxy login</html>", "text/html"))
    with pytest.raises(ModelReplyBroken, match="content type 'text/html', not a stream"):
        list(generator(server.url).stream(MESSAGES, max_tokens=5))


def test_the_backend_needs_a_url():
    with pytest.raises(GeneratorError, match="base_url"):
        make_generator(GenerationSettings(backend="openai"))


# --- docent ask, as a user runs it -------------------------------------------------------------

@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A collection ingested once (real embedder) for the `docent ask` runs below."""
    from click.testing import CliRunner
    from docent.cli import main
    root = tmp_path_factory.mktemp("ask")
    (root / "docs").mkdir()
    (root / "docs" / "faq.txt").write_text("How do I rotate API keys?\n\nOpen the admin console and press Rotate. "
                                           "Old keys stop working after 24 hours.\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--home", str(root / "home"), "ingest", str(root / "docs"), "-q"],
                                env={"DOCENT_PROFILE": "test", "DOCENT_SETTINGS": None}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root / "home"


def ask(home, url: str, *args, **settings) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")}
    env.update(DOCENT_PROFILE="test", DOCENT_GENERATION__BACKEND="openai", DOCENT_GENERATION__BASE_URL=url,
               DOCENT_GENERATION__TIMEOUT_SECONDS=str(WAIT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **settings)
    return subprocess.run([sys.executable, "-c", "from docent.cli import main; main()", "--home", str(home),
                           "ask", "How do I rotate API keys?", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("docent:")]
    return line


def test_ask_answers_through_the_server_and_says_the_check_was_skipped(home, serve):
    server = serve(streaming(["Open the admin console and press Rotate [1]."]))
    done = ask(home, server.url, DOCENT_ANSWER__JUDGE_ANSWERABLE="0.62")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Open the admin console and press Rotate [1].")
    assert "? the answerability check was skipped: the model server gives no token probabilities" in done.stderr


def test_ask_exits_6_when_the_server_is_down(home):
    done = ask(home, f"http://127.0.0.1:{closed_port()}/v1")
    assert done.returncode == 6
    assert "cannot reach the model server" in one_error_line(done) and "is it running?" in done.stderr


def test_ask_exits_7_when_the_server_stalls(home, serve):
    def reply(server, conn, method, path, body):
        if method == "GET":
            return send(conn, body=b'{"object": "list", "data": []}')
        start_stream(conn)
        chunk(conn, event("Open "))
        server.stop.wait(5)
    done = ask(home, serve(reply).url)
    assert done.returncode == 7
    assert "stopped answering (no data for 1 s" in one_error_line(done)


def test_ask_exits_8_when_the_stream_ends_early(home, serve):
    done = ask(home, serve(streaming(finish=None, done=False)).url, "--json")
    assert done.returncode == 8 and done.stdout == ""
    assert "closed the stream before the answer was complete" in one_error_line(done)
