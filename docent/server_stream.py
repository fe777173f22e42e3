"""Work for the model in a thread of its own, watched from the server's event loop.

    async for text in relay(request, lambda emit, cancel: ...):   # a streamed response
    result = await offload(request, lambda cancel: ...)           # a plain one

A question may wait minutes for the model. The waiting and the answering run in the
server's own pool of threads (as many as the line holds: server.max_waiting + slots), not
in the framework's shared one, so a long line cannot starve the quick endpoints; threads
are reused, so what a thread keeps (its SQLite connection) is kept once. Meanwhile the
loop asks every POLL_SECONDS whether the client is still there; when it is gone, the
`cancel` event is set, and the line and the answer loop stop for it (docent/server_line.py):
no model time is spent on an answer no one will read.

Also here: the shapes of a streamed answer (OpenAI's chat.completion.chunk objects, and
server-sent events).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from concurrent.futures import Executor
from typing import AsyncIterator, Callable, Iterator

POLL_SECONDS = 0.5
_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


async def relay(request, work: Callable[[Callable[[str], None], threading.Event], None],
                workers: Executor) -> AsyncIterator[str]:
    """Yields what `work(emit, cancel)` emits, as it emits it, run by one of `workers`; an
    exception it raises is raised here. Sets `cancel` when the client disconnects or the
    response is closed."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()

    def emit(item) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def body() -> None:
        try:
            work(emit, cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, raised there
            emit(_Failed(exc))
        finally:
            emit(_DONE)

    workers.submit(body)
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), POLL_SECONDS)
            except TimeoutError:
                if await request.is_disconnected():
                    cancel.set()
                continue
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        cancel.set()        # the response was closed early: stop the work


async def offload(request, work: Callable[[threading.Event], object], workers: Executor):
    """`work(cancel)`'s result, computed by one of `workers` while the client is watched."""
    results = []
    async for _ in relay(request, lambda emit, cancel: results.append(work(cancel)), workers):
        pass
    return results[0] if results else None


def sse(data, event: str | None = None) -> str:
    """One server-sent event; `data` as JSON."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


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
