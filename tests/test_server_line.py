"""The line in front of the model (docent/server_line.py), with real threads: users take
turns, a waiter whose client left goes without being answered, places are reported, and
a backend that serves several at once gets several slots."""

from __future__ import annotations

import threading
import time

import pytest

from docent.server_line import Cancelled, Line


def wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Holder:
    """Holds the line's one slot until released."""

    def __init__(self, line: Line, user: str = "holder"):
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(line, user))
        self.thread.start()
        wait_until(lambda: line.running() == 1)

    def let_go(self, threads: list[threading.Thread]) -> None:
        """Release the slot and wait for the questions in line to be served."""
        self.release.set()
        for thread in threads:
            thread.join(10)

    def _hold(self, line, user):
        with line.turn(user):
            self.release.wait(10)


def queue_up(line: Line, asks: list[tuple[str, str]], served: list[str], **turn) -> list[threading.Thread]:
    threads, before = [], line.waiting()

    def ask(user, name):
        try:
            with line.turn(user, **turn):
                served.append(name)
        except Cancelled:
            served.append(f"cancelled {name}")
    for user, name in asks:
        thread = threading.Thread(target=ask, args=(user, name))
        thread.start()
        threads.append(thread)
        wait_until(lambda: line.waiting() == before + len(threads))      # arrival order is this order
    return threads


def test_one_users_many_questions_do_not_put_another_user_behind_them():
    line, served = Line(max_waiting=10), []
    holder = Holder(line)
    threads = queue_up(line, [("alice", "a1"), ("alice", "a2"), ("alice", "a3"), ("bob", "b1")], served)
    holder.let_go(threads)
    # bob came last but had no turn yet: he goes right after alice's first; hers keep their order.
    assert served == ["a1", "b1", "a2", "a3"]


def test_a_single_user_is_served_in_arrival_order():
    line, served = Line(max_waiting=10), []
    holder = Holder(line)
    threads = queue_up(line, [("alice", "1"), ("alice", "2"), ("alice", "3")], served)
    holder.let_go(threads)
    assert served == ["1", "2", "3"]


def test_a_waiter_whose_client_left_leaves_the_line_unanswered():
    line, served = Line(max_waiting=10), []
    holder = Holder(line)
    gone = threading.Event()
    answered_later: list[str] = []
    leaving = queue_up(line, [("alice", "left")], served, cancel=gone)
    staying = queue_up(line, [("bob", "stayed")], answered_later)
    gone.set()
    wait_until(lambda: served == ["cancelled left"])
    assert line.waiting() == 1
    holder.release.set()
    for thread in leaving + staying:
        thread.join(10)
    assert served == ["cancelled left"] and answered_later == ["stayed"]


def test_each_waiter_hears_its_place_as_it_moves_up():
    line = Line(max_waiting=10)
    holder = Holder(line)
    places: dict[str, list[int]] = {"a": [], "b": []}
    served: list[str] = []
    threads = []
    for user in ("a", "b"):
        def ask(user=user):
            with line.turn(user, cancel=threading.Event(), moved=places[user].append):
                served.append(user)
                if user == "a":           # hold the turn until b has heard that it is next
                    wait_until(lambda: len(places["b"]) == 2)
        thread = threading.Thread(target=ask)
        thread.start()
        threads.append(thread)
        wait_until(lambda: line.waiting() == len(threads))
    wait_until(lambda: places["b"] == [2])
    holder.let_go(threads)
    assert places["a"] == [1] and places["b"] == [2, 1] and served == ["a", "b"]


def test_a_full_line_refuses_with_429_and_a_free_slot_never_queues():
    from docent.server_models import Refused
    line = Line(max_waiting=1)
    holder = Holder(line)
    served: list[str] = []
    threads = queue_up(line, [("a", "a")], served)
    with pytest.raises(Refused) as refused:
        line.check()
    assert refused.value.status == 429 and refused.value.headers["Retry-After"]
    holder.let_go(threads)
    line.check()          # nobody waits, nobody answers: room


def test_a_backend_with_several_slots_answers_that_many_at_once():
    line = Line(max_waiting=10, slots=3)
    inside, most, lock, release = [0], [0], threading.Lock(), threading.Event()

    def ask():
        with line.turn("u"):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            release.wait(10)
            with lock:
                inside[0] -= 1
    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    wait_until(lambda: line.running() == 3 and line.waiting() == 2)
    release.set()
    for thread in threads:
        thread.join(10)
    assert most[0] == 3 and line.running() == 0 and line.waiting() == 0


def test_questions_of_different_users_keep_their_arrival_order():
    """Turns do not reorder single questions: y asked before x, so y goes first, even
    though x's last turn is longer ago (idle time earns no credit)."""
    line, served = Line(max_waiting=10), []
    for user in ("x", "y"):
        with line.turn(user):
            pass
    holder = Holder(line)
    threads = queue_up(line, [("y", "y1"), ("x", "x1"), ("z", "z1")], served)
    holder.let_go(threads)
    assert served == ["y1", "x1", "z1"]
