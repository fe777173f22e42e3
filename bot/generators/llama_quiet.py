"""Loading a llama.cpp model without silencing the rest of the process.

llama-cpp-python quiets a load (`verbose=False`) by pointing file descriptors 1 and 2 at
/dev/null for the whole process while it runs. docent loads in threads (the judge's
context while an answer streams, the model beside the embedder), so another thread's
output meanwhile would be lost: an answer printed while the judge's context loads never
reaches the terminal, and two loads at once can leave stdout on /dev/null for good.

Here a model loads with `verbose=True` (no descriptor is touched) and is kept quiet
another way: llama.cpp's own log lines go to Python logging (errors only), and what
llama-cpp-python prints to sys.stderr is dropped for the loading thread alone; every
other thread's output passes through.
"""

from __future__ import annotations

import logging
import sys
import threading

log = logging.getLogger("docent.llama")
_lock = threading.Lock()
_loading: set[int] = set()          # thread ids loading now
_callback = None                    # the ctypes callback, kept alive for llama.cpp


class _OtherThreads:
    """sys.stderr while a load runs: writes from a loading thread are dropped, others pass."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        if threading.get_ident() in _loading:
            return len(text)
        return self.stream.write(text)

    def flush(self):
        if threading.get_ident() not in _loading:
            self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _route_logs() -> None:
    """llama.cpp's log lines to logging: errors as errors, the rest dropped."""
    global _callback
    if _callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def forward(level, text, user_data):
        if level == 3:            # GGML_LOG_LEVEL_ERROR
            log.error("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

    _callback = forward
    llama_cpp.llama_log_set(_callback, None)


def load_llama(**kwargs):
    """llama_cpp.Llama(**kwargs) loaded quietly, leaving stdout and stderr alone for
    other threads; the object prints nothing afterwards either (its verbose is off)."""
    from llama_cpp import Llama
    with _lock:
        _route_logs()
        if not _loading:
            sys.stderr = _OtherThreads(sys.stderr)
        _loading.add(threading.get_ident())
    try:
        llm = Llama(**kwargs, verbose=True)
    finally:
        with _lock:
            _loading.discard(threading.get_ident())
            if not _loading and isinstance(sys.stderr, _OtherThreads):
                sys.stderr = sys.stderr.stream
    llm.verbose = False           # no timing lines after each completion
    return llm
