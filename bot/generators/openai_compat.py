"""Any OpenAI-compatible chat server (Ollama, vLLM, llama.cpp's server) by base URL,
model name and the environment variable holding the API key (`generation.backend =
"openai"`), through the official `openai` client: it retries refused connections and
5xx answers, and times out connects and reads.

Faults are told apart, each its own error class (and `docent ask` exit status):
- ModelUnreachable: nothing listens, or the server answers with an HTTP error;
- ModelStalled: it accepted, then sent nothing for generation.timeout_seconds;
- ModelReplyBroken: the stream ended before the answer was complete, the connection
  broke mid-reply, the server reported an error inside the stream, or sent no answer.

The client's own Stream cannot tell a clean end ([DONE]) from a closed connection, lets
an `event: error` without an "error" key through as a chunk and yields nothing for a
server that answers one JSON object; so the events of the client's response are read
here, with httpx2's EventSource (the client's HTTP library).
"""

from __future__ import annotations

import json
import os
from typing import Iterator, Sequence

from bot.generators.base import CONCURRENT, Generator, GeneratorError, Messages, ModelReplyBroken, ModelStalled, ModelUnreachable
from docent.settings import GenerationSettings

CONNECT_SECONDS = 10.0      # connecting never waits longer than this, whatever the read timeout
RETRIES = 2
PLACEHOLDER_KEY = "none"    # the client wants a key; servers without auth ignore it
DETAIL_CHARS = 200


class OpenAIGenerator(Generator):
    """Chat completions over HTTP with streaming. Token counts are estimated (the server's
    tokenizer is not at hand): 1 token per 3 characters, which over-counts for English so
    the window is not overflowed. No token probabilities, grammar or side context; calls
    from several threads run at once (the server behind it queues or batches them)."""

    abilities = frozenset({CONCURRENT})

    def __init__(self, settings: GenerationSettings):
        if not settings.base_url:
            raise GeneratorError("generation.backend = \"openai\" needs generation.base_url "
                                 "(e.g. http://127.0.0.1:11434/v1 for Ollama)")
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.name = settings.server_model or settings.model
        self.context_window = settings.context_window
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import openai     # ~2 s to import: only when this backend is used
            key = os.environ.get(self.settings.api_key_env, "") if self.settings.api_key_env else ""
            wait = self.settings.timeout_seconds
            self._client = openai.OpenAI(base_url=self.base_url, api_key=key or PLACEHOLDER_KEY,
                                         timeout=openai.Timeout(wait, connect=min(CONNECT_SECONDS, wait)),
                                         max_retries=RETRIES)
        return self._client

    def warm_up(self) -> None:
        """Check the server answers (a clear error at start, not on the first question)."""
        import openai
        wait = min(CONNECT_SECONDS, self.settings.timeout_seconds)
        try:
            self.client.with_options(timeout=openai.Timeout(wait)).models.list()
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):        # every question would be refused the same way
                raise self._fault(exc) from None
            # Otherwise it answered: some servers have no /models.
        except openai.APIConnectionError as exc:
            raise self._fault(exc, wait) from None
        except (openai.OpenAIError, ValueError):
            pass            # it answered, with a list docent does not need to read

    def count_tokens(self, messages: Messages) -> int:
        return sum(len(m["content"]) // 3 + 4 for m in messages) + 3

    def stream(self, messages: Messages, *, max_tokens: int, temperature: float | None = None,
               stop: Sequence[str] = (), grammar: str | None = None) -> Iterator[str]:
        import httpx2
        import openai
        request = {"model": self.name, "messages": list(messages), "stream": True, "max_tokens": max_tokens,
                   "temperature": self.settings.temperature if temperature is None else temperature,
                   "seed": self.settings.seed}
        if stop:
            request["stop"] = list(stop)
        try:
            reply = self.client.chat.completions.create(**request)
        except openai.OpenAIError as exc:
            raise self._fault(exc) from None
        with reply:       # the response is closed however the reading ends
            media = _media_type(reply.response)
            try:
                if media == "application/json":
                    yield from self._whole_reply(reply.response)
                elif media == "text/event-stream":
                    yield from self._events(reply.response)
                else:
                    raise ModelReplyBroken(f"the model server at {self.base_url} answered with content type "
                                           f"{media or 'none'!r}, not a stream of chat completion events")
            # Errors while reading the body are the HTTP library's own, not the client's.
            except (httpx2.HTTPError, openai.OpenAIError) as exc:
                raise self._fault(exc) from None

    def _events(self, response) -> Iterator[str]:
        import httpx2
        done = finished = False
        for event in httpx2.EventSource(response):
            if event.data.strip() == "[DONE]":
                done = True
                break
            try:
                data = json.loads(event.data)
            except ValueError:
                data = event.data
            if event.event == "error" or (isinstance(data, dict) and data.get("error")):    # "error": null is none
                raise ModelReplyBroken(f"the model server at {self.base_url} reported an error in the stream: "
                                       f"{_error_text(data)}")
            choices = data.get("choices") if isinstance(data, dict) else None
            if not choices or not isinstance(choices[0], dict):
                continue        # a usage chunk, a keep-alive
            choice = choices[0]
            piece = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
            if piece:
                yield piece
            finished = finished or bool(choice.get("finish_reason"))
        if not (done or finished):
            raise ModelReplyBroken(f"the model server at {self.base_url} closed the stream before the answer "
                                   "was complete (no finish_reason, no [DONE])")

    def _whole_reply(self, response) -> Iterator[str]:
        """A server that ignores `stream: true` and sends one chat.completion object."""
        try:
            data = json.loads(response.read())
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("error"):
            raise ModelReplyBroken(f"the model server at {self.base_url} reported an error: {_error_text(data)}")
        try:
            choice = data["choices"][0]
            text = (choice.get("message") or {}).get("content") or choice.get("text") or ""
        except (TypeError, KeyError, IndexError, AttributeError):
            raise ModelReplyBroken(f"the model server at {self.base_url} answered with JSON that is not a chat "
                                   "completion") from None
        if not isinstance(text, str):
            raise ModelReplyBroken(f"the model server at {self.base_url} answered with a message docent cannot read")
        if text:
            yield text

    def _fault(self, exc: Exception, wait: float | None = None) -> GeneratorError:
        """The one-line error for what the client or the HTTP library raised."""
        import httpx2
        import openai
        url = self.base_url
        wait = self.settings.timeout_seconds if wait is None else wait
        if isinstance(exc, openai.APIStatusError):
            return ModelUnreachable(f"the model server at {url} answered HTTP {exc.status_code}: {_status_detail(exc)}")
        if isinstance(exc, httpx2.SSEError):     # an event over httpx2's size limit
            return ModelReplyBroken(f"the model server at {url} sent an unreadable stream: {exc}")
        cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) and exc.__cause__ else exc
        if isinstance(cause, (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.UnsupportedProtocol)):
            reason = str(cause) or type(cause).__name__
            return ModelUnreachable(f"cannot reach the model server at {url} ({reason}): is it running? "
                                    "(settings generation.base_url)")
        if isinstance(cause, httpx2.TimeoutException) or isinstance(exc, openai.APITimeoutError):
            return ModelStalled(f"the model server at {url} stopped answering (no data for {wait:g} s; "
                                "settings generation.timeout_seconds)")
        if isinstance(cause, (httpx2.HTTPError, OSError)) or isinstance(exc, openai.APIConnectionError):
            reason = str(cause) or type(cause).__name__
            return ModelReplyBroken(f"the connection to the model server at {url} broke before the answer was "
                                    f"complete ({reason})")
        if isinstance(exc, openai.APIError):     # an error the client found in the reply
            return ModelReplyBroken(f"the model server at {url} reported an error: {exc.message}")
        return ModelReplyBroken(f"the model server at {url} gave an unusable reply: {exc}")


def _media_type(response) -> str:
    return response.headers.get("content-type", "").partition(";")[0].strip().lower()


def _error_text(data) -> str:
    """The server's message from an error object ({"error": {"message": ...}}, {"error": "..."},
    {"message": ...}) or raw text, on one line."""
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or json.dumps(error)
    return _one_line(str(error)) or "no message"


def _status_detail(exc) -> str:
    body = exc.body
    if body is None or body == "":
        try:
            body = exc.response.text
        except Exception:       # the body could not be read: the status says enough
            body = ""
    return _error_text(body) if body else exc.response.reason_phrase or "no detail"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS].rsplit(" ", 1)[0] + " …"
