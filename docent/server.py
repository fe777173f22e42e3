"""`docent serve`: docent for a team over HTTP, with an OpenAI-compatible API.

    app = make_app(settings, home)        # a FastAPI app; `docent serve` runs it with uvicorn

Every request names its user with `Authorization: Bearer TOKEN` (bot/access/users.py;
401 without a valid one). What the user may read (bot/access/rights.py) rides into
retrieval as part of the one ChunkFilter every search honours: a passage the user may not
read is never retrieved, so it cannot reach the model, the answer, a citation, a count or
the closest passages an abstention quotes; a collection the user cannot read answers 403
whether it exists or not. With no users defined, docent is the single-user tool it always
was (no token asked for), and `docent serve` then refuses any address but loopback.

The local model answers one question at a time: requests wait in line, users taking turns,
at most settings server.max_waiting of them (then 429 with Retry-After), and one whose
client hangs up leaves it unanswered (docent/server_line.py, server_stream.py). A chat completion's
content is the checked answer: it streams once the guards are done, so an answer they
rewrite or withhold is never half-shown. Each request is appended to the hash-chained
audit log (bot/access/audit.py; `docent audit --verify`).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fastapi import Depends, File, Form, Header, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi_offline import FastAPIOffline

from docent.server_limits import BodyLimit
from docent.server_line import Cancelled, Line
from docent.server_metrics import Metrics
from docent.server_models import (AskRequest, ChatRequest, ModelCard, ModelList, Refused, RetrieveRequest,
                                  UploadResponse, error_body, history_of)
from docent.server_stream import completion, completion_chunks, offload, relay, sse

CLIENT_GONE = 499        # nginx's status for "the client closed the request", in the audit log


class Server:
    def __init__(self, settings, home=None, parts=None):
        from bot.access.audit import AuditLog
        from bot.access.users import AccessStore
        from bot.builder import Components
        from bot.generators import CONCURRENT
        self.settings = settings
        self.parts = parts or Components(settings, home)
        self.home = self.parts.home
        self.access = AccessStore(self.home)
        self.audit = AuditLog(self.home / "audit.jsonl", settings.server.audit_retention_days)
        # The local model answers one at a time; a backend that serves several at once
        # (an OpenAI-compatible server) gets up to server.parallel.
        concurrent = CONCURRENT in getattr(self.parts.generator, "abilities", ())
        self.line = Line(settings.server.max_waiting, settings.server.parallel if concurrent else 1)
        # Questions wait and are answered here (docent/server_stream.py): one thread per
        # place in line, reused from request to request.
        self.workers = ThreadPoolExecutor(max_workers=self.line.max_waiting + self.line.slots + 2,
                                          thread_name_prefix="docent-answer")
        self.metrics = Metrics()
        self._ingesting = threading.Lock()

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

    def answer(self, rights, question: str, collection: str, history, events=None,
               cancel: threading.Event | None = None, moved=None):
        """The checked answer, in the caller's turn; `events(event)` sees each event as the
        window would, `moved(position)` each change of place in line. Cancelled when
        `cancel` is set while it waits or is answered."""
        answerer = self.parts.answerer
        with http_errors():
            question = answerer.check_question(question)
        entered = time.perf_counter()
        try:
            with self.line.turn(rights.user if rights is not None else "", cancel, moved):
                self.metrics.waited(time.perf_counter() - entered)
                with http_errors():
                    run = answerer.stream(question, collection, history, rights=rights)
                    try:
                        for event in run:
                            if cancel is not None and cancel.is_set():
                                raise Cancelled()
                            if events is not None:
                                events(event)
                    finally:
                        run.close()         # stops the model when the client went away
        except Cancelled:
            self.metrics.answered(None)
            raise
        self.metrics.answered(run.answer)
        return run.answer

    def answered(self, rights, endpoint: str, collection: str, question: str, history, started: float,
                 events=None, cancel: threading.Event | None = None, moved=None):
        """answer(), with the request's audit record: 200 with the answer, the client's
        499 when it went away, or the refusal's status (the exception goes on)."""
        try:
            answer = self.answer(rights, question, collection, history, events, cancel, moved)
        except Cancelled:
            self.record(rights, endpoint, collection, CLIENT_GONE, started, question)
            raise
        except Refused as exc:
            self.record(rights, endpoint, collection, exc.status, started, question)
            raise
        self.record(rights, endpoint, collection, 200, started, question, answer)
        return answer

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

    def upload(self, rights, collection: str, files: list[Path], folder: str) -> list[dict]:
        """Files (zips unpacked) into the collection's uploads folder, under `folder`, and
        ingested; for a user with write rights there (403 the same whether the collection
        exists or not, when they cannot read it either)."""
        from ingest.upload import UploadError, add_uploads, shown_name, upload_folder, uploads_dir
        try:
            folder = upload_folder(folder)
        except UploadError as exc:
            raise Refused(400, str(exc), "invalid_request_error") from None
        target = "/".join(filter(None, [folder, "x"]))     # a file in that folder, for the globs
        if rights is not None and not rights.can_write(collection, target):
            self.collection(rights, collection)            # who cannot read it: the 403 of an unknown collection
            raise Refused(403, f"you may not add files to collection '{collection}'"
                               f"{' in ' + repr(folder) if folder else ''} (docent access grant GROUP "
                               f"--collection {collection} --write)", "permission_denied")
        config = self.settings.ui
        with self._ingesting:
            refused, report = add_uploads(self.parts.ingestor, self.home, collection, files,
                                          int(config.max_upload_mb * 2**20), config.max_upload_files, folder)
        root = uploads_dir(self.home, collection)
        return [{"name": r.name, "action": "failed", "reason": r.reason} for r in refused] + [
            {"name": shown_name(r.path, root), "action": r.action, "chunks": r.chunks, "reason": r.reason or ""}
            for r in (report.results if report is not None else [])]

    def record(self, rights, endpoint: str, collection: str | None, status: int, started: float,
               question: str = "", answer=None) -> None:
        seconds = time.perf_counter() - started
        self.metrics.request(endpoint, status, seconds)
        entry = {"user": rights.user if rights is not None else "", "endpoint": endpoint, "collection": collection,
                 "question": question, "status": status, "latency_ms": round(seconds * 1000)}
        if answer is not None:
            entry.update(retrieved=[i for p in answer.passages for i in p.chunk_ids],
                         cited=[i for n in answer.cited for i in answer.passages[n - 1].chunk_ids],
                         flags=sorted({f["kind"] for f in answer.flags}), abstained=answer.abstained,
                         blocked=answer.blocked)
        self.audit.append(entry)


def make_app(settings, home=None, parts=None):
    """The FastAPI app of `docent serve` (parts: injected components, for tests)."""
    server = Server(settings, home, parts)
    # The API page's scripts come from the fastapi-offline package, not a CDN.
    app = FastAPIOffline(title="docent", version=_version(), description=__doc__.split("\n\n")[2])
    app.state.server = server
    app.add_middleware(BodyLimit, limit=settings.server.max_body_kb * 1024,
                       upload_limit=int(settings.ui.max_upload_mb * 2**20) + 2**20)
    if settings.server.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.server.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])

    def caller(request: Request, authorization: str | None = Header(default=None)):
        """The request's Rights (a dependency: FastAPI runs it in a worker thread, so the
        token's scrypt check does not hold the event loop). The user's name is kept for the
        audit record of a request refused later (403)."""
        rights = server.rights(authorization)
        request.state.user = rights.user if rights is not None else ""
        return rights

    @app.exception_handler(Refused)
    def refused(request: Request, exc: Refused):
        route = request.scope.get("route")
        server.metrics.request(getattr(route, "path", "other"), exc.status, 0.0)
        server.audit.append({"user": getattr(request.state, "user", ""), "endpoint": request.url.path,
                             "status": exc.status, "refused": exc.message})
        return JSONResponse(error_body(exc.message, exc.kind), exc.status, headers=exc.headers)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "waiting": server.line.waiting(), "running": server.line.running()}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics(rights=Depends(caller)) -> PlainTextResponse:
        """Prometheus' text format; with users defined, for the admin group only."""
        if rights is not None and not rights.admin:
            raise Refused(403, "the metrics are for the admin group", "permission_denied")
        return PlainTextResponse(server.metrics.render(server.line.waiting(), server.line.running()),
                                 media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", response_model=ModelList)
    def models(rights=Depends(caller)) -> ModelList:
        return ModelList(data=[ModelCard(id=name) for name in server.readable(rights)])

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request, rights=Depends(caller)):
        started = time.perf_counter()
        endpoint = "/v1/chat/completions"
        collection = await run_in_threadpool(server.collection, rights, body.model)
        try:
            question, history = history_of(body.messages)
        except ValueError as exc:
            raise Refused(400, str(exc), "invalid_request_error") from None
        if not body.stream:
            answer = await _answered(server, request, rights, endpoint, collection, question, history, started)
            return completion(answer, collection)
        server.line.check()             # a full line is a 429 before the stream starts

        def work(emit, cancel) -> None:
            # The content is the checked answer, sent once the guards are done (OpenAI's
            # clients cannot take back text); meanwhile SSE comments, which they skip, say
            # where the question is. An error after the start is an error event (the
            # openai client raises it).
            def moved(position):
                emit(f": waiting for the model, {position} in line\n\n")
            try:
                answer = server.answered(rights, endpoint, collection, question, history, started,
                                         lambda event: event.kind == "status" and emit(f": {event.text}\n\n"),
                                         cancel, moved)
            except Cancelled:
                return
            except Refused as exc:
                emit(f"data: {json.dumps(error_body(exc.message, exc.kind))}\n\n")
                return
            for piece in completion_chunks(answer, collection):
                emit(f"data: {json.dumps(piece, ensure_ascii=False)}\n\n")
            emit("data: [DONE]\n\n")
        return _event_stream(request, work, server)

    @app.post("/v1/ask")
    async def ask(body: AskRequest, request: Request, rights=Depends(caller)):
        """docent ask --json's object; with `Accept: text/event-stream`, the events the
        window gets: queued {position}, status {text}, token {text}, replace {text,
        reason}, then answer (the object) or error."""
        started = time.perf_counter()
        endpoint = "/v1/ask"
        collection = await run_in_threadpool(server.collection, rights, body.collection)
        if "text/event-stream" not in request.headers.get("accept", ""):
            answer = await _answered(server, request, rights, endpoint, collection, body.question, body.history,
                                     started)
            return answer.to_dict()
        server.line.check()

        def work(emit, cancel) -> None:
            def seen(event):
                emit(sse({"text": event.text, **({"reason": event.reason} if event.reason else {})}, event.kind))
            try:
                answer = server.answered(rights, endpoint, collection, body.question, body.history, started, seen,
                                         cancel, lambda position: emit(sse({"position": position}, "queued")))
            except Cancelled:
                return
            except Refused as exc:
                emit(sse(error_body(exc.message, exc.kind), "error"))
                return
            emit(sse(answer.to_dict(), "answer"))
        return _event_stream(request, work, server)

    @app.post("/v1/retrieve")
    def retrieve(body: RetrieveRequest, rights=Depends(caller)) -> dict:
        started = time.perf_counter()
        collection = server.collection(rights, body.collection)
        with http_errors():
            passages = server.retrieve(rights, body.query, collection, body.k)
        server.record(rights, "/v1/retrieve", collection, 200, started, body.query)
        return {"passages": passages}

    @app.get("/v1/sources")
    def sources(collection: str | None = None, rights=Depends(caller)) -> dict:
        started = time.perf_counter()
        name = server.collection(rights, collection)
        with http_errors():
            files = server.sources(rights, name)
        server.record(rights, "/v1/sources", name, 200, started)
        return {"collection": name, "files": files}

    @app.post("/v1/collections/{name}/files", response_model=UploadResponse)
    def upload(name: str, files: list[UploadFile] = File(description="The files (zips are unpacked)."),
               folder: str = Form("", description="A folder under the collection's uploads, e.g. eng/notes: "
                                                  "grants by path cover what lands there."),
               rights=Depends(caller)) -> UploadResponse:
        """Add files to a collection (and ingest them), for the admin group and groups
        granted write rights (docent access grant GROUP --collection NAME --write)."""
        import tempfile
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="docent-upload-") as scratch:
            given = []
            for n, part in enumerate(files):
                # Each in a folder of its own: two files of one name stay two files.
                path = Path(scratch, str(n), Path((part.filename or "upload").replace("\\", "/")).name or "upload")
                path.parent.mkdir()
                with path.open("wb") as out:
                    while block := part.file.read(1 << 20):
                        out.write(block)
                given.append(path)
            with http_errors():
                results = server.upload(rights, name, given, folder)
        server.record(rights, "/v1/collections/{name}/files", name, 200, started)
        return UploadResponse(collection=name, files=results)

    return app


async def _answered(server: Server, request, rights, endpoint: str, collection: str, question: str, history,
                    started: float):
    """A whole answer, worked out by the server's workers while the client is watched."""
    try:
        return await offload(request, lambda cancel: server.answered(rights, endpoint, collection, question,
                                                                     history, started, cancel=cancel), server.workers)
    except Cancelled:
        raise Refused(CLIENT_GONE, "the client went away", "cancelled") from None


def _event_stream(request, work, server: Server):
    """`work(emit, cancel)` run by the server's workers, what it emits sent as server-sent events."""
    return StreamingResponse(relay(request, work, server.workers), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


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


def _version() -> str:
    from docent import __version__
    return __version__
