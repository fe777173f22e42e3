"""Exit statuses of every command, and the one way docent's errors become them.

Each command family has a table of (exception class, exit status), first match wins
(subclasses before their parent), and `guarded(work, table)` runs the work and turns a
listed error into one line on stderr and its status: never a traceback.
"""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

EXIT_OK = 0
EXIT_SOME_FAILED = 1            # ingest: some files could not be read; remove: nothing to remove
EXIT_USAGE = 2                  # bad input or settings
EXIT_LOCKED = 3                 # another docent process is writing the collection
EXIT_MODEL_MISMATCH = 4         # the collection was embedded with another model
EXIT_STORE = 5                  # the collection is missing, empty or cannot be read or written
EXIT_MODEL = 6                  # the language model cannot be loaded or reached
EXIT_MODEL_STALLED = 7          # the model server stopped answering
EXIT_MODEL_REPLY = 8            # the model server's reply broke off or carried an error
EXIT_INTERRUPTED = 130

T = TypeVar("T")
Table = tuple[tuple[type, int], ...]


def answer_errors() -> Table:
    """ask, chat, retrieve, eval (imported lazily: `--help` stays fast)."""
    from bot.answer import AnswerError, CollectionError
    from bot.generators import GeneratorError, ModelReplyBroken, ModelStalled
    from bot.prompts import PromptError
    from bot.retrieval import RetrievalError
    from docent.settings import SettingsError
    from ingest.embedder import EmbedderError
    return ((SettingsError, EXIT_USAGE), (RetrievalError, EXIT_STORE), (CollectionError, EXIT_STORE), (ModelStalled, EXIT_MODEL_STALLED),
            (ModelReplyBroken, EXIT_MODEL_REPLY), (GeneratorError, EXIT_MODEL),
            (EmbedderError, EXIT_MODEL), (PromptError, EXIT_USAGE), (AnswerError, EXIT_USAGE))


def store_errors() -> Table:
    """ingest, sources, remove: a writer's errors (the embedder counts as the store's)."""
    from docent.settings import SettingsError
    from ingest.embedder import EmbedderError
    from ingest.store import CollectionLocked, EmbeddingMismatch, StoreError
    return ((SettingsError, EXIT_USAGE), (CollectionLocked, EXIT_LOCKED), (EmbeddingMismatch, EXIT_MODEL_MISMATCH), (StoreError, EXIT_STORE),
            (EmbedderError, EXIT_STORE))


def guarded(work: Callable[[], T], table: Table, interrupted: str = "interrupted",
            cleanup: Callable[[], None] | None = None) -> T:
    """Run `work`; a listed error ends the command with one clear line and its status."""
    from docent.terminal import fail
    try:
        return work()
    except KeyboardInterrupt:
        if cleanup is not None:
            cleanup()
        print(file=sys.stderr)          # end a line the answer or a progress bar left open
        fail(interrupted, EXIT_INTERRUPTED)
    except tuple(cls for cls, _ in table) as exc:
        if cleanup is not None:
            cleanup()
        fail(str(exc), next(code for cls, code in table if isinstance(exc, cls)))
