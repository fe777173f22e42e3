"""The line in front of the model: who is answered next when several ask at once.

    line = Line(max_waiting=16, slots=1)
    with line.turn("alice", cancel=event, moved=lambda position: ...):
        ...                                  # the model is yours

`slots` requests are answered at once (1 for the local model, which answers one question
at a time; more for an OpenAI-compatible backend, settings server.parallel). The rest
wait, at most `max_waiting` of them (then Refused 429 with Retry-After). Among those
waiting, users take turns (start-time fair queuing): a question's place is one past the
later of "now" (the place last served) and its user's previous question, so one user's ten
questions interleave with everyone else's instead of standing before them, questions of
different users keep their arrival order, and time spent idle earns no credit. A waiter
whose client went away (`cancel` set) leaves the line without being answered, and
`moved(position)` hears each change of its place (1 = next).
"""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from docent.server_models import Refused

POLL_SECONDS = 0.25          # how often a waiter looks at its cancel flag


class Cancelled(Exception):
    """The client went away while its request waited or was answered."""


@dataclass(eq=False)
class _Ticket:
    user: str
    seq: int            # arrival order: breaks ties
    tag: int            # its place among the turns (smaller: sooner)

    def key(self) -> tuple[int, int]:
        return self.tag, self.seq


class Line:
    def __init__(self, max_waiting: int, slots: int = 1, retry_after: int = 30):
        self.max_waiting, self.slots, self.retry_after = max_waiting, max(1, slots), retry_after
        self._changed = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._running = 0
        self._last_tag: dict[str, int] = {}      # user -> the tag of their latest question
        self._now = 0                            # the tag last served
        self._numbers = itertools.count()        # tickets, in arrival order

    def check(self) -> None:
        """Refused(429) now if a request would not find room in line."""
        with self._changed:
            self._refuse_if_full()

    def _refuse_if_full(self) -> None:
        if self._running >= self.slots and len(self._waiting) >= self.max_waiting:
            raise Refused(429, f"{len(self._waiting)} questions are waiting for the model; try again shortly",
                          "rate_limit_exceeded", {"Retry-After": str(self.retry_after)})

    def _next(self) -> _Ticket | None:
        return min(self._waiting, key=_Ticket.key, default=None)

    @contextmanager
    def turn(self, user: str = "", cancel: threading.Event | None = None,
             moved: Callable[[int], None] | None = None) -> Iterator[None]:
        """Wait for a turn (Cancelled if `cancel` is set first), then hold it."""
        with self._changed:
            self._refuse_if_full()
            me = _Ticket(user, next(self._numbers), max(self._now, self._last_tag.get(user, 0)) + 1)
            self._last_tag[user] = me.tag
            self._waiting.append(me)
            reported = None
            try:
                while not (self._running < self.slots and self._next() is me):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled()
                    if moved is not None:
                        position = 1 + sum(t.key() < me.key() for t in self._waiting)   # served before me
                        if position != reported:
                            moved(position)
                            reported = position
                    self._changed.wait(POLL_SECONDS if cancel is not None else None)
            except BaseException:
                self._waiting.remove(me)
                self._changed.notify_all()
                raise
            self._waiting.remove(me)
            self._running += 1
            self._now = max(self._now, me.tag)
            self._changed.notify_all()         # the others' places moved
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def waiting(self) -> int:
        with self._changed:
            return len(self._waiting)

    def running(self) -> int:
        with self._changed:
            return self._running
