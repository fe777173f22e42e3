"""Work over a listing on one helper thread, a few items ahead of its consumer."""

from __future__ import annotations

from typing import Iterable, Iterator


def prefetch(fn, items: Iterable, ahead: int = 4) -> Iterator:
    """fn over items on one helper thread, a few items ahead, results in order. Parsing
    (pure Python) then overlaps embedding (native code that releases the GIL); a lazy
    listing (a site being crawled) is walked there too. The helper is a daemon: on Ctrl-C
    the main thread stops waiting at once, and a big file still being read or scanned
    neither delays the commit of what is done nor holds the process."""
    import queue
    import threading

    results: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()
    end = object()

    def put(outcome) -> None:
        while not stop.is_set():
            try:
                results.put(outcome, timeout=0.2)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put((True, fn(item)))
        except BaseException as exc:          # handed to the main thread, raised there
            put((False, exc))
            return
        put((True, end))

    threading.Thread(target=work, name="docent-load", daemon=True).start()
    try:
        while True:
            ok, value = results.get()
            if not ok:
                raise value
            if value is end:
                return
            yield value
    finally:
        stop.set()
