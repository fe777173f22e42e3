"""Everything the chat window does, without the window: answer in a conversation, add
uploaded files, list and remove sources, record feedback. app.py only draws it.

    service = Service(settings)              # components built from settings (or injected)
    service.warm_up("default")               # models load here, before the first question
    for event in service.stream(question, history, "default"): ...
    service.add_files(paths, "default", progress)  -> list of UploadResult

With docent's users (bot/access/users.py) the window logs each person in, and every
method that reads or changes a collection takes that user's `rights` (`rights_for`):
what they may not read is never listed, counted, answered from or removed, and only a
write grant lets them add or remove files. Without users `rights` is None everywhere
and nothing is filtered.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from bot.answer import AnswerRun
from bot.chat import ChatSession, remember
from docent.settings import Settings


@dataclass
class UploadResult:
    name: str           # what the user uploaded, or the path inside their zip
    action: str         # added / updated / unchanged / removed / skipped / failed
    chunks: int = 0
    reason: str = ""


class Service:
    def __init__(self, settings: Settings, home=None, embedder=None, generator=None, parts=None):
        from bot.builder import Components
        self.settings = settings
        # The components come from the one builder: one embedder for questions and uploads
        # (the model is loaded once per process), one generator.
        self.parts = parts or Components(settings, home, embedder=embedder, generator=generator)
        self.parts.check()            # an unknown backend: SettingsError at start, not a traceback later
        self.home = self.parts.home
        self.retriever = self.parts.retriever
        self.answerer = self.parts.answerer
        # One model answers one question at a time (llama.cpp is not re-entrant; 2 cores
        # gain nothing from two at once); a second browser tab waits its turn.
        self._answering = threading.Lock()
        self._ingesting = threading.Lock()
        self.ready = threading.Event()
        self.warm_up_error: str | None = None
        self.stage = "Loading the models"         # what warm_up is doing, for the status line
        from bot.access.users import AccessStore
        self.access = AccessStore(self.home)
        # The window's mode, decided once: a window started without users has no per-user
        # login, so it cannot tell people apart later (rights_for refuses it then).
        self.with_users = self.access.has_users()

    @property
    def ingestor(self):
        return self.parts.ingestor

    @property
    def default_collection(self) -> str:
        return self.settings.ingest.collection

    def starter_docs(self) -> Path | None:
        """The documents a first start indexes (settings ui.starter_docs), if they exist."""
        from docent.settings import PROJECT_ROOT
        configured = self.settings.ui.starter_docs
        path = (PROJECT_ROOT / Path(configured).expanduser()) if configured else None
        return path if path is not None and path.exists() else None

    def warm_up(self, collection: str | None = None) -> None:
        """Load the models (and the collection's vectors); on a first start, index the
        starter documents into a collection that does not exist yet. `ready` is set
        either way and `warm_up_error` says what failed."""
        from bot.retrieval import RetrievalError
        try:
            name = collection or self.default_collection
            starter = self.starter_docs()
            if starter is not None and name not in self.collections():
                self.stage = f"First start: indexing {starter.name} into collection '{name}'"
                self.add_paths([starter], name)
            self.stage = "Loading the models"
            with self._answering:
                try:
                    self.answerer.warm_up(collection if collection in self.collections() else None, prefill=True)
                except RetrievalError:
                    self.answerer.warm_up(None, prefill=True)      # a broken collection must not stop the window
        except Exception as exc:                     # shown in the window; the app keeps running
            self.warm_up_error = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
        finally:
            self.ready.set()

    # --- answering ----------------------------------------------------------------------

    def check_question(self, question: str) -> str:
        return self.answerer.check_question(question)

    def stream(self, question: str, history: Sequence[tuple[str, str]], collection: str | None,
               rights=None) -> AnswerRun:
        """An answer to `question` after the conversation `history` ((question, answer)
        pairs; `remember` gives the next one), holding the model while it streams; from
        the documents `rights` may read (None: all)."""
        from bot.answer import CollectionError
        question = self.check_question(question)     # raise before anything streams
        name = collection or self.default_collection
        if rights is not None and not (name in self.collections() and rights.can_read_collection(name)):
            # The same words whether it does not exist or is not theirs.
            raise CollectionError(f"collection '{name}' holds no documents you may read")
        if name not in self.collections():
            raise CollectionError(f"collection '{name}' holds no documents yet: add files to it first")
        session = ChatSession(self.answerer, name, rights=rights)
        session.history = list(history)

        def produce(outer: AnswerRun):
            # Taken when the stream starts and released when it ends, also when the
            # reader stops early (the window's Stop button closes this generator).
            with self._answering:
                inner = session.stream(question)
                yield from inner
                outer.answer = inner.answer
        return AnswerRun(produce)

    # --- who is asking ------------------------------------------------------------------

    def rights_for(self, username: str | None):
        """What the window's logged-in `username` may read and change (bot.access.rights.
        Rights), read afresh on every call so that a grant revoked or a user removed counts
        at the next click; None when the window runs without users. An AccessError for a
        name that is no user (any more), or when users were added after the window started."""
        from bot.access.rights import Rights
        from bot.access.users import AccessError
        if not self.with_users:
            if self.access.has_users():
                raise AccessError("docent has users now: restart the window, so that it asks them to log in")
            return None
        rights = Rights.of_name(self.access, username) if username else None
        if rights is None:
            raise AccessError("log in as one of docent's users (this name is not one, or no longer)")
        return rights

    def rights_of(self, request):
        """rights_for the user a window request (gr.Request) was logged in as."""
        return self.rights_for(getattr(request, "username", None))

    def write_refusal(self, collection: str | None, rights) -> str | None:
        """Why `rights` may not add or remove files in the collection (one line), or None."""
        name = collection or self.default_collection
        if rights is None or rights.can_write(name):
            return None
        return (f"You may not add or remove files in collection '{name}': that needs a write grant "
                f"(an admin: docent access grant GROUP --collection {name} --write).")

    @staticmethod
    def remember(history: Sequence[tuple[str, str]], answer) -> list[tuple[str, str]]:
        return remember(history, answer)

    # --- the collection -----------------------------------------------------------------

    def collections(self) -> list[str]:
        return self.parts.store.names()

    def watched_since(self, collection: str | None) -> tuple[bool, float | None]:
        """(a `docent ingest --watch` process follows the collection, time of its last change)."""
        from ingest.sources.watch import watching
        from ingest.store import StoreError, collection_dir
        try:
            status = watching(collection_dir(self.home, collection or self.default_collection))
        except StoreError:
            return False, None
        return status is not None, (status or {}).get("last_change")

    def problem(self, collection: str | None) -> str | None:
        """Why a collection cannot be read (a damaged database, a disk that fails), or None.
        The window marks such a collection and goes on with the others."""
        from ingest.errors import storage_faults
        from ingest.store import CollectionNotFound, StoreError
        name = collection or self.default_collection
        try:
            with self.parts.store.reader(name) as opened, storage_faults(name, opened.directory):
                opened.files()
        except CollectionNotFound:
            return None
        except StoreError as exc:
            return str(exc)
        return None

    def sources(self, collection: str | None, rights=None) -> list:
        """The collection's file records; only those `rights` may read."""
        from ingest.store import CollectionNotFound
        name = collection or self.default_collection
        if rights is not None and not rights.can_read_collection(name):
            return []
        try:
            records = self.ingestor.sources(name)
        except CollectionNotFound:
            return []
        return records if rights is None else [r for r in records if rights.can_read(name, r.path)]

    def label_counts(self, collection: str | None) -> dict[str, dict[str, int]]:
        from ingest.store import CollectionNotFound
        try:
            return self.ingestor.label_counts(collection or self.default_collection)
        except CollectionNotFound:
            return {}

    def display_name(self, path: str, collection: str | None) -> str:
        """An uploaded file by the name the user gave it; other files by their path."""
        from ingest.upload import shown_name, uploads_dir
        return shown_name(path, uploads_dir(self.home, collection or self.default_collection))

    def offered_collections(self, rights=None) -> list[str]:
        """The collections the window offers: those under the home folder, and the default
        one (first) even before it holds anything; of those, the ones `rights` may read."""
        names = self.collections()
        names = names if self.default_collection in names else [self.default_collection] + names
        return names if rights is None else [n for n in names if rights.can_read_collection(n)]

    def offered(self, collection: str | None, rights=None) -> str:
        """`collection` (the default when empty) if the window offers it; a CollectionError
        otherwise. The API reads only what the window's dropdown lists, never a folder
        name a caller makes up."""
        from bot.answer import CollectionError
        from ingest.store import StoreError, validate_name
        name = str(collection or "").strip() or self.default_collection
        try:
            validate_name(name)
        except StoreError as exc:
            raise CollectionError(str(exc)) from None
        offered = self.offered_collections(rights)
        if name not in offered:
            raise CollectionError(f"no collection '{name}' in this window (it offers: {', '.join(offered)})")
        return name

    def file_list(self, collection: str | None, rights=None) -> list[dict]:
        """The collection's files as `docent sources --json` lists them, plus `name`: what
        the window shows (an upload by the name it was given)."""
        from bot.guard.labels import ChunkLabeller
        name = collection or self.default_collection
        labels = self.label_counts(name)
        rules = ChunkLabeller(self.settings.leaks_for(name))
        return [{**r.__dict__, "name": self.display_name(r.path, name), "labels": labels.get(r.path, {}),
                 "restricted_by": rules.restricting_rule(r.path)} for r in self.sources(name, rights)]

    def stored_path(self, path: str, collection: str | None, rights=None) -> str | None:
        """The stored path of the collection's file given by its stored path or by the name
        the window shows, or None. Only this collection is looked at, and only the files
        `rights` may read: nothing about another collection's files, or a hidden one, can
        come back."""
        name = collection or self.default_collection
        for record in self.sources(name, rights):
            if path in (record.path, self.display_name(record.path, name)):
                return record.path
        return None

    def remove(self, path: str, collection: str | None, rights=None) -> bool:
        """Drop one file of the collection (by stored path or shown name) from the index; an
        uploaded copy is deleted too. False when the collection holds no such file (or none
        `rights` may read): never a folder's worth, never an error that names the home
        folder or other files. An AccessError when `rights` may not change that file."""
        from bot.access.users import AccessError
        from ingest.upload import uploads_dir
        name = collection or self.default_collection
        with self._ingesting:
            path = self.stored_path(path, name, rights)
            if path and rights is not None and not rights.can_write(name, path):
                raise AccessError(self.write_refusal(name, rights) or
                                  f"You may not remove {self.display_name(path, name)}: your write grant "
                                  f"on collection '{name}' does not cover it.")
            removed = self.ingestor.remove([path], name) if path else []
        uploads = uploads_dir(self.home, name)
        if removed and Path(path).is_relative_to(uploads) and Path(path).is_file():
            Path(path).unlink()
        return bool(removed)

    def add_files(self, files: Sequence[str | Path], collection: str | None,
                  progress: Callable[[int, int, str], None] | None = None, rights=None) -> list[UploadResult]:
        """Uploaded files (zips unpacked) into the collection; a result per file. With
        `rights`, an AccessError (nothing copied) unless a write grant covers where each
        file goes (the collection's uploads folder)."""
        from bot.access.users import AccessError
        from ingest.upload import add_uploads, uploads_dir
        name = collection or self.default_collection
        config = self.settings.ui
        if rights is not None:
            refusal = self.write_refusal(name, rights)
            outside = [Path(f).name for f in files if not rights.can_write(name, str(uploads_dir(self.home, name) /
                                                                                     Path(f).name))]
            if refusal or outside:
                raise AccessError(refusal or f"You may not add {', '.join(outside)} to collection '{name}': "
                                             "your write grant does not cover its uploads folder.")
        with self._ingesting:
            refused, report = add_uploads(
                self.ingestor, self.home, name, files, int(config.max_upload_mb * 2**20), config.max_upload_files,
                progress=(lambda e: progress(e.done, e.total, self.display_name(e.path, name))) if progress else None)
        results = [UploadResult(r.name, "failed", reason=r.reason) for r in refused]
        if report is not None:
            results += [UploadResult(self.display_name(r.path, name), r.action, r.chunks, r.reason or "")
                        for r in report.results]
        return results

    def add_paths(self, paths: Sequence[str | Path], collection: str | None):
        """Files or folders already on this machine (not copied), as `docent ingest` does."""
        with self._ingesting:
            return self.ingestor.ingest(paths, collection or self.default_collection)

    # --- feedback -----------------------------------------------------------------------

    def feedback_path(self) -> Path:
        configured = self.settings.ui.feedback_file
        return Path(configured).expanduser() if configured else self.home / "feedback.jsonl"

    def record_feedback(self, rating: str, question: str, answer: dict, collection: str | None,
                        user: str | None = None) -> Path:
        """One JSON line per thumbs up/down, with what was asked and answered (the shape
        of an evaluation record: question, answer, citations, flags), and by whom when the
        window has users."""
        path = self.feedback_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rating": rating,
                "collection": collection or self.default_collection, **answer, "question": question}
        if user is not None:
            line["user"] = user
        scanner = self.answerer.leak_scanner(collection)
        if scanner is not None:                       # the answer comes masked already; what was typed not
            for key in ("question", "standalone_question"):
                if isinstance(line.get(key), str):
                    line[key] = scanner.masked(line[key])
        # Questions and answers may hold personal data: readable by the owner only.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.chmod(path, 0o600)                        # a file made before this rule too
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        return path

