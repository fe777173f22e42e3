"""The one place that makes docent's components from Settings.

    parts = Components(settings, home=None)            # nothing heavy yet
    parts.answerer.stream(question, collection)        # retriever + generator + guards
    parts.ingestor.ingest([folder])                    # the same embedder as the retriever

The CLI, the window's Service, `docent eval` and a server get their components here, so
each is made once per process and shared: one embedder for questions and ingest, one
generator for answers and the judge. Any part can be injected instead (tests pass fakes;
a second vector backend is one argument). Weights load in each part's `warm_up()`, not
here; `check()` looks up every registry-keyed setting at start, before any model loads.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from docent.settings import Settings


class Components:
    def __init__(self, settings: Settings, home: str | Path | None = None, *, embedder=None, generator=None,
                 vectors=None, retriever=None, labeller=None):
        self.settings = settings
        self.home = settings.home_dir(home)
        self._vectors = vectors                # an ingest.store.VectorBackend; None: settings store.vectors
        self._made: dict[str, Any] = {"embedder": embedder, "generator": generator, "retriever": retriever,
                                      "labeller": labeller}
        self._lock = threading.RLock()

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            if self._made.get(name) is None:
                self._made[name] = make()
            return self._made[name]

    def check(self, generator: bool = True) -> None:
        """Registry-keyed settings that pydantic cannot check (plugins may add values):
        an unknown backend stops the command at start (SettingsError, exit 2), naming
        the known ones, before any model loads."""
        from docent.settings import SettingsError
        from ingest.store import StoreError
        try:
            self.vectors
        except StoreError as exc:
            raise SettingsError(str(exc)) from None
        from bot.guard.scanners import ScannerError
        try:
            self.scanners
        except ScannerError as exc:
            raise SettingsError(str(exc)) from None
        if generator:
            from bot.generators import GeneratorError, backend_class
            try:
                backend_class(self.settings.generation.backend)
            except GeneratorError as exc:
                raise SettingsError(str(exc)) from None

    @property
    def vectors(self):
        """Where vectors live: the injected backend, else the one settings store.vectors names."""
        from ingest.store import vector_backend
        return self._once("vectors", lambda: self._vectors or vector_backend(self.settings.store.vectors, self.settings.store))

    @property
    def store(self):
        """Where collections are kept: settings store.backend (FAISS folders or PostgreSQL)."""
        from ingest.store.backends import open_store
        return self._once("store", lambda: open_store(self.settings.store, self.home, self.vectors))

    @property
    def embedder(self):
        """Cheap to make: the weights load on first use or in warm_up()."""
        from ingest.embedder import make_embedder
        return self._once("embedder", lambda: make_embedder(self.settings.embedding))

    @property
    def generator(self):
        from bot.generators import make_generator
        return self._once("generator", lambda: make_generator(self.settings.generation))

    @property
    def labeller(self):
        from bot.guard.labels import ChunkLabeller
        return self._once("labeller", lambda: ChunkLabeller.from_settings(self.settings))

    @property
    def retriever(self):
        from bot.retrieval import Retriever
        return self._once("retriever", lambda: Retriever(self.settings, self.embedder, home=self.home,
                                                         store=self.store))

    @property
    def ingestor(self):
        from ingest.pipeline import Ingestor
        return self._once("ingestor", lambda: Ingestor(self.settings, embedder=self.embedder, home=self.home,
                                                       labeller=self.labeller, vectors=self.vectors,
                                                       store=self.store))

    def ingestor_for(self, settings: Settings):
        """An Ingestor with other settings (e.g. `--exclude` from the command line), the
        same embedder."""
        from bot.guard.labels import ChunkLabeller
        from ingest.pipeline import Ingestor
        return Ingestor(settings, embedder=self.embedder, home=self.home,
                        labeller=ChunkLabeller.from_settings(settings), vectors=self.vectors,
                        store=self.store)

    @property
    def answerer(self):
        from bot.answer import Answerer
        # make_generator is cheap (weights load in warm_up): built here, a wrong
        # generation setting is reported before the first question.
        return self._once("answerer", lambda: Answerer(self.settings, retriever=self.retriever,
                                                       generator=self.generator, home=self.home,
                                                       scanners=self.scanners))

    @property
    def scanners(self) -> list:
        """The guard checks settings guard.scanners adds (installed packages' scanners)."""
        from bot.guard.scanners import make_scanners
        return self._once("scanners", lambda: make_scanners(self.settings.guard.scanners, self.settings))

    def leak_scanner(self, collection: str | None = None):
        """The leak policy of one collection (its own [collections.NAME.leaks], else [leaks])."""
        from bot.guard.leaks import LeakScanner
        return LeakScanner(self.settings.leaks_for(collection))

    def close(self) -> None:
        retriever = self._made.get("retriever")
        if retriever is not None:
            retriever.close()

