"""`docent serve`: docent for a team over HTTP, with an OpenAI-compatible API.

    app = make_app(settings, home)        # a FastAPI app; `docent serve` runs it with uvicorn

Every request names its user with `Authorization: Bearer TOKEN` (bot/access/users.py;
401 without a valid one). What the user may read (bot/access/rights.py) rides into
retrieval as part of the one ChunkFilter every search honours: a passage the user may not
read is never retrieved, so it cannot reach the model, the answer, a citation, a count or
the closest passages an abstention quotes; a collection the user cannot read answers 403
whether it exists or not. With no users defined, docent is the single-user tool it always
was (no token asked for), and `docent serve` then refuses any address but loopback.

The local model answers one question at a time: requests queue in arrival order, at most
settings server.max_waiting of them (then 429 with Retry-After). A chat completion's
content is the checked answer: it streams once the guards are done, so an answer they
rewrite or withhold is never half-shown. Each request is appended to the hash-chained
audit log (bot/access/audit.py; `docent audit --verify`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from typing import Iterator

from docent.server_models import (AskRequest, ChatRequest, ModelCard, ModelList, RetrieveRequest, error_body,
                                  history_of)


class Refused(Exception):
    """An HTTP error with OpenAI's error body."""

    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}


class Line:
    """Requests waiting for the model, served in arrival order; at most `max_waiting`
    wait while one is answered (then Refused 429)."""

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self._changed = threading.Condition()
        self._queue: deque = deque()
        self._busy = False

    def check(self) -> None:
        """Refused(429) now if a request would not find room in line."""
        with self._changed:
            self._refuse_if_full()

    def _refuse_if_full(self) -> None:
        if self._busy and len(self._queue) >= self.max_waiting:
            raise Refused(429, f"{len(self._queue)} questions are waiting for the model; try again shortly",
                          "rate_limit_exceeded", {"Retry-After": "30"})

    @contextmanager
    def turn(self) -> Iterator[None]:
        me = object()
        with self._changed:
            self._refuse_if_full()
            self._queue.append(me)
            while self._busy or self._queue[0] is not me:
                self._changed.wait()
            self._queue.popleft()
            self._busy = True
        try:
            yield
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()

    def waiting(self) -> int:
        with self._changed:
            return len(self._queue)


class Server:
    def __init__(self, settings, home=None, parts=None):
        from bot.access.audit import AuditLog
        from bot.access.users import AccessStore
        from bot.builder import Components
        self.settings = settings
        self.parts = parts or Components(settings, home)
        self.home = self.parts.home
        self.access = AccessStore(self.home)
        self.audit = AuditLog(self.home / "audit.jsonl", settings.server.audit_retention_days)
        self.line = Line(settings.server.max_waiting)

    # --- who asks, and what they may read --------------------------------------------------

    def rights(self, authorization: str | None):
        """The caller's Rights; None in single-user mode (no users defined)."""
        from bot.access.rights import Rights
        if not self.access.has_users():
            return None
        scheme, _, token = (authorization or "").partition(" ")
        user = self.access.authenticate(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if user is None:
            raise Refused(401, "a valid API token is needed: Authorization: Bearer TOKEN", "invalid_api_key",
                          {"WWW-Authenticate": "Bearer"})
        return Rights.of(user, self.access.grants())

    def readable(self, rights) -> list[str]:
        names = self.parts.ingestor.collections()
        return [n for n in names if rights is None or rights.can_read_collection(n)]

    def collection(self, rights, name: str | None) -> str:
        name = name or self.settings.ingest.collection
        if name not in self.readable(rights):
            # The same answer for a collection that does not exist: no one learns its name.
            raise Refused(403, f"collection '{name}' is not one you can read", "permission_denied")
        return name

    # --- the work ------------------------------------------------------------------------

    def answer(self, rights, question: str, collection: str, history, events=None):
        """The checked answer, in the caller's turn; `events(event)` sees each status."""
        answerer = self.parts.answerer
        question = answerer.check_question(question)
        with self.line.turn():
            run = answerer.stream(question, collection, history, rights=rights)
            for event in run:
                if events is not None and event.kind == "status":
                    events(event)
            return run.answer

    def retrieve(self, rights, query: str, collection: str, k: int) -> list[dict]:
        from bot.retrieval import clean_query
        query = clean_query(query)
        if not query:
            raise Refused(400, "the query is empty", "invalid_request_error")
        result = self.parts.retriever.retrieve(query, collection, k=k, rights=rights)
        passages = self.parts.leak_scanner(collection).shown(result.passages)
        return [p.to_dict(n) for n, p in enumerate(passages, start=1)]

    def sources(self, rights, collection: str) -> list[dict]:
        labels = self.parts.ingestor.label_counts(collection)
        return [{"path": f.path, "format": f.format, "status": f.status, "chunks": f.n_chunks, "pages": f.pages,
                 "title": f.title, "labels": labels.get(f.path, {})}
                for f in self.parts.ingestor.sources(collection)
                if rights is None or rights.can_read(collection, f.path)]

    def record(self, rights, endpoint: str, collection: str | None, status: int, started: float,
               question: str = "", answer=None) -> None:
        entry = {"user": rights.user if rights is not None else "", "endpoint": endpoint, "collection": collection,
                 "question": question, "status": status, "latency_ms": round((time.perf_counter() - started) * 1000)}
        if answer is not None:
            entry.update(retrieved=[i for p in answer.passages for i in p.chunk_ids],
                         cited=[i for n in answer.cited for i in answer.passages[n - 1].chunk_ids],
                         flags=sorted({f["kind"] for f in answer.flags}), abstained=answer.abstained,
                         blocked=answer.blocked)
        self.audit.append(entry)


def completion_chunks(answer, model: str, words_per_chunk: int = 4) -> Iterator[dict]:
    """A finished answer as OpenAI chat.completion.chunk objects: its text in pieces, then
    the last chunk with finish_reason and docent's own object."""
    ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    def chunk(delta: dict, finish=None, **extra) -> dict:
        return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    yield chunk({"role": "assistant", "content": ""})
    words = answer.text.split(" ")
    for start in range(0, len(words), words_per_chunk):
        piece = " ".join(words[start:start + words_per_chunk])
        yield chunk({"content": piece if start == 0 else " " + piece})
    yield chunk({}, "stop", docent=docent_part(answer))


def completion(answer, model: str) -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": answer.timings.get("prompt_tokens", 0),
                      "completion_tokens": answer.timings.get("tokens", 0),
                      "total_tokens": answer.timings.get("prompt_tokens", 0) + answer.timings.get("tokens", 0)},
            "docent": docent_part(answer)}


def docent_part(answer) -> dict:
    """What OpenAI's shape has no place for: citations, flags, abstained, blocked..."""
    out = answer.to_dict()
    out.pop("answer")
    return out


def make_app(settings, home=None, parts=None):
    """The FastAPI app of `docent serve` (parts: injected components, for tests)."""
    from fastapi import FastAPI, Header, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    server = Server(settings, home, parts)
    app = FastAPI(title="docent", version=_version(), description=__doc__.split("\n\n")[2])
    app.state.server = server
    limit = settings.server.max_body_kb * 1024

    @app.exception_handler(Refused)
    def refused(request: Request, exc: Refused):
        server.audit.append({"user": "", "endpoint": request.url.path, "status": exc.status, "refused": exc.message})
        return JSONResponse(error_body(exc.message, exc.kind), exc.status, headers=exc.headers)

    @app.middleware("http")
    async def bounded(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > limit):
            return JSONResponse(error_body(f"the request body is over {settings.server.max_body_kb} KB "
                                           f"(setting server.max_body_kb)", "invalid_request_error"), 413)
        return await call_next(request)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "waiting": server.line.waiting()}

    @app.get("/v1/models", response_model=ModelList)
    def models(authorization: str | None = Header(default=None)) -> ModelList:
        rights = server.rights(authorization)
        return ModelList(data=[ModelCard(id=name) for name in server.readable(rights)])

    @app.post("/v1/chat/completions")
    def chat(body: ChatRequest, authorization: str | None = Header(default=None)):
        started = time.perf_counter()
        rights = server.rights(authorization)
        collection = server.collection(rights, body.model)
        try:
            question, history = history_of(body.messages)
        except ValueError as exc:
            raise Refused(400, str(exc), "invalid_request_error") from None
        if not body.stream:
            answer = _answered(server, rights, question, collection, history)
            server.record(rights, "/v1/chat/completions", collection, 200, started, question, answer)
            return completion(answer, collection)
        server.line.check()             # a full line is a 429 before the stream starts

        def events() -> Iterator[str]:
            statuses: list[str] = []
            try:
                answer = _answered(server, rights, question, collection, history,
                                   lambda event: statuses.append(event.text))
            except Refused as exc:      # the stream has started: an error event (the openai client raises it)
                server.record(rights, "/v1/chat/completions", collection, exc.status, started, question)
                yield f"data: {json.dumps(error_body(exc.message, exc.kind))}\n\n"
                return
            for status in statuses:         # what was done, as SSE comments (clients skip them)
                yield f": {status}\n\n"
            for piece in completion_chunks(answer, collection):
                yield f"data: {json.dumps(piece, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"
            server.record(rights, "/v1/chat/completions", collection, 200, started, question, answer)
        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/ask")
    def ask(body: AskRequest, authorization: str | None = Header(default=None)) -> dict:
        started = time.perf_counter()
        rights = server.rights(authorization)
        collection = server.collection(rights, body.collection)
        answer = _answered(server, rights, body.question, collection, body.history)
        server.record(rights, "/v1/ask", collection, 200, started, body.question, answer)
        return answer.to_dict()

    @app.post("/v1/retrieve")
    def retrieve(body: RetrieveRequest, authorization: str | None = Header(default=None)) -> dict:
        started = time.perf_counter()
        rights = server.rights(authorization)
        collection = server.collection(rights, body.collection)
        with http_errors():
            passages = server.retrieve(rights, body.query, collection, body.k)
        server.record(rights, "/v1/retrieve", collection, 200, started, body.query)
        return {"passages": passages}

    @app.get("/v1/sources")
    def sources(collection: str | None = None, authorization: str | None = Header(default=None)) -> dict:
        started = time.perf_counter()
        rights = server.rights(authorization)
        name = server.collection(rights, collection)
        with http_errors():
            files = server.sources(rights, name)
        server.record(rights, "/v1/sources", name, 200, started)
        return {"collection": name, "files": files}

    return app


def _answered(server: Server, rights, question: str, collection: str, history, events=None):
    with http_errors():
        return server.answer(rights, question, collection, history, events)


@contextmanager
def http_errors() -> Iterator[None]:
    """docent's own errors (docent/exits.py's table) as one-line HTTP errors: a bad
    question 400, a collection that cannot be read 503, a model that fails 502."""
    from docent.exits import EXIT_LOCKED, EXIT_MODEL_MISMATCH, EXIT_STORE, EXIT_USAGE, answer_errors, store_errors
    table = answer_errors() + store_errors()
    try:
        yield
    except tuple(kind for kind, _ in table) as exc:
        code = next(code for kind, code in table if isinstance(exc, kind))
        status, kind = ((400, "invalid_request_error") if code == EXIT_USAGE else
                        (503, "service_unavailable") if code in (EXIT_STORE, EXIT_LOCKED, EXIT_MODEL_MISMATCH)
                        else (502, "model_error"))
        raise Refused(status, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, kind) from None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Ask glibc for at most `arenas` malloc arenas (as MALLOC_ARENA_MAX does), before the
    server's threads start: with one arena per busy thread, memory grew by ~80 MB every
    200 requests at 16 clients and did not come back; with 2 it stays flat
    (benchmarks/serve.py). A no-op where the C library is not glibc or the variable is set."""
    import ctypes
    import os
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-8, arenas))      # -8: M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def _version() -> str:
    from docent import __version__
    return __version__
