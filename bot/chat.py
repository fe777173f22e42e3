"""A conversation: questions with the turns before them, so a follow-up ("and for
staging?") is rewritten into a standalone question before retrieval."""

from __future__ import annotations

from bot.answer import Answerer, AnswerRun


class ChatSession:
    def __init__(self, answerer: Answerer, collection: str | None = None, rights=None):
        self.answerer = answerer
        self.collection = collection
        self.rights = rights          # bot/access/rights.py: what the asking user may read (None: all)
        self.history: list[tuple[str, str]] = []    # (question, answer text)

    def clear(self) -> None:
        self.history.clear()

    def stream(self, question: str) -> AnswerRun:
        return self.answerer.stream(question, self.collection, tuple(self.history),
                                    rights=self.rights).then(self._record)

    def _record(self, answer) -> None:
        self.history[:] = remember(self.history, answer)

    def ask(self, question: str):
        return self.stream(question).finish()


def remember(history, answer) -> list[tuple[str, str]]:
    """The conversation after `answer`. An abstention (or a withheld answer) is kept out:
    it has no subject to carry forward."""
    history = list(history)
    if answer is not None and not answer.abstained and not getattr(answer, "blocked", False):
        history.append((answer.standalone_question, answer.text))
    return history
