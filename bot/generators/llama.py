"""A GGUF model run in-process by llama-cpp-python (`generation.backend = "llama-cpp"`).

The prompt is rendered with the model's own chat template; llama.cpp keeps the evaluated
prompt and reuses its longest common prefix, so the fixed system prompt and examples cost
nothing after the first question. Across processes, `keep_prefix` keeps llama.cpp's state
after that fixed start in docent's cache (KeptPrefix), so a new `docent ask` does not
read it again either."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Iterator, Sequence

from bot.generators.base import (GRAMMAR, SIDE_CONTEXT, TOKEN_PROBABILITIES, Generator, GeneratorError,
                                 Messages)
from bot.generators.bundled import resolve_model
from docent.settings import GenerationSettings

log = logging.getLogger(__name__)
N_BATCH = 512


class LlamaCppGenerator(Generator):
    abilities = frozenset({TOKEN_PROBABILITIES, GRAMMAR, SIDE_CONTEXT})

    def __init__(self, settings: GenerationSettings):
        self.settings = settings
        self.name = settings.model
        self.context_window = settings.context_window
        self._llm = None
        self._template = None
        self._lock = threading.Lock()
        self.load_seconds = 0.0
        self._path = None
        self._kept = None             # KeptPrefix: the fixed prompt start, when one is kept

    def warm_up(self) -> None:
        if self._llm is not None:
            return
        with self._lock:
            if self._llm is None:
                started = time.perf_counter()
                path = resolve_model(self.settings.model)
                try:
                    import llama_cpp  # noqa: F401 - said plainly when missing
                except ImportError as exc:
                    raise GeneratorError(f"llama-cpp-python is not installed ({exc}): pip install llama-cpp-python==0.3.36") from None
                from bot.generators.llama_quiet import load_llama
                threads = self.settings.threads or os.cpu_count() or 1
                try:
                    llm = load_llama(model_path=str(path), n_ctx=self.context_window, n_threads=threads,
                                     n_threads_batch=threads, seed=self.settings.seed, n_batch=N_BATCH)
                except (ValueError, RuntimeError) as exc:
                    raise GeneratorError(f"cannot load the model {path}: {exc}") from None
                self._template = _chat_template(llm)
                self._path = path
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

    def keep_prefix(self, messages: Messages, label: str, build: bool = False) -> str:
        """Keep llama.cpp's state after `messages` (this context's fixed prompt start: the
        system prompt and worked examples) across processes: restored now from docent's
        cache when a file saved for the same model file, context settings, llama-cpp
        version and prefix tokens is there; otherwise saved by the first prompt that starts
        with it (at once with `build`). Returns the state: loaded, pending, saved, unsaved, none."""
        self.warm_up()
        # The tokens before the next user turn's text, whatever that text is.
        tokens = _common_prefix(*(self.tokenize(self.render(list(messages) + [{"role": "user", "content": text}]))
                                  for text in ("A", "1")))
        if not tokens or len(tokens) > self.context_window // 2:
            return "none"                     # nothing fixed, or no room left for what follows it
        with self._lock:
            if self._kept is not None and self._kept.tokens == tokens and self._kept.status != "pending":
                return self._kept.status          # kept already (a second warm-up): nothing to read again
            self._kept = KeptPrefix(label, tokens, self._state_key(tokens), self.settings.seed)
            self._kept.restore(self._llm)
            if build:
                self._kept.prime(self._llm, tokens)
        return self._kept.status

    @property
    def prefix_report(self) -> dict:
        """What the kept prefix did in this process: {label, status, tokens, ms} ({}: none kept)."""
        return self._kept.report() if self._kept is not None else {}

    def _state_key(self, tokens: Sequence[int]) -> dict:
        """What a saved state must have been made with to be valid here."""
        import hashlib

        import llama_cpp
        stat = self._path.stat()
        return {"model": str(self._path), "model_bytes": stat.st_size, "model_mtime_ns": stat.st_mtime_ns,
                "llama_cpp": llama_cpp.__version__, "n_ctx": self.context_window, "n_batch": N_BATCH,
                "prefix_sha256": hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest()}

    def _prime(self, tokens: Sequence[int]) -> None:
        """(Lock held.) The first prompt that starts with the kept prefix evaluates it alone
        and saves its state; a restored state is reused by llama.cpp's prefix match."""
        if self._kept is not None:
            self._kept.prime(self._llm, tokens)

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
            self._prime(tokens)
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
            self._prime(tokens)
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


def keep_prefix(generator, messages: Messages, label: str, build: bool = False) -> str | None:
    """LlamaCppGenerator.keep_prefix for a generator that keeps llama.cpp's state; None
    (nothing kept) for any other (a model server, a test's fake)."""
    if isinstance(generator, LlamaCppGenerator):
        return generator.keep_prefix(messages, label, build)
    return None


class KeptPrefix:
    """A fixed prompt start whose llama.cpp state is kept in docent's cache, one file per
    model file, window and label (docent.cache.prompt_state_path): an .npz of plain arrays
    (the key as JSON, the tokens, llama.cpp's state bytes) read with allow_pickle=False.
    A file made with another model, settings, llama-cpp version or prefix, or one that
    cannot be read, is ignored with one quiet line and replaced by the next save."""

    def __init__(self, label: str, tokens: list[int], key: dict, seed: int):
        from docent.cache import prompt_state_path
        self.label, self.tokens, self.key, self.seed = label, tokens, {"format": 1, **key}, seed
        self.path = prompt_state_path(label, key["model"], key["n_ctx"])
        # loaded | pending (saved by the first prompt that starts with it) | saved | unsaved
        self.status = "pending"
        self.ms = 0.0

    def report(self) -> dict:
        return {"label": self.label, "status": self.status, "tokens": len(self.tokens), "ms": round(self.ms, 1)}

    def restore(self, llm) -> None:
        started = time.perf_counter()
        try:
            self._load(llm)
            self.status = "loaded"
        except FileNotFoundError:
            pass                    # never saved: the first prompt saves it
        except Exception as exc:    # noqa: BLE001 - a bad cache file must never stop an answer
            llm.reset()
            log.warning("docent: saved prompt state %s ignored (%s); it is rebuilt", self.path.name,
                        str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
        self.ms += (time.perf_counter() - started) * 1000

    def _load(self, llm) -> None:
        import json

        import numpy as np
        from llama_cpp import LlamaState
        with np.load(self.path, allow_pickle=False) as data:
            if json.loads(data["key"].tobytes().decode("utf-8")) != self.key:
                raise ValueError("made with another model, settings or prompt")
            if data["tokens"].tolist() != self.tokens:
                raise ValueError("its tokens differ")
            blob = data["state"].tobytes()
        ids = np.zeros(llm.n_ctx(), dtype=np.intc)
        ids[:len(self.tokens)] = self.tokens
        # Logits are kept only with logits_all (off here): none are saved, and n_tokens is set
        # after load_state so that it does not fill the score rows with zeros.
        llm.load_state(LlamaState(input_ids=ids, scores=np.zeros((0, llm.n_vocab()), dtype=np.single), n_tokens=0,
                                  llama_state=blob, llama_state_size=len(blob), seed=self.seed))
        llm.n_tokens = len(self.tokens)

    def prime(self, llm, prompt: Sequence[int]) -> None:
        """Before `prompt` is evaluated: if it starts with the prefix and no state was
        restored or saved yet, evaluate the prefix alone and save the state."""
        n = len(self.tokens)
        if self.status != "pending" or not n or list(prompt[:n]) != self.tokens:
            return
        started = time.perf_counter()
        same = _common_prefix(llm.input_ids[:llm.n_tokens].tolist(), self.tokens)
        llm.n_tokens = len(same)
        if len(same) < n:
            llm.eval(self.tokens[len(same):])          # drops the cells past n_tokens first
        else:
            llm._ctx.kv_cache_seq_rm(-1, n, -1)       # the state saved holds the prefix alone
        try:
            self._save(llm)
            self.status = "saved"
        except OSError as exc:
            self.status = "unsaved"
            log.warning("docent: prompt state not saved to %s (%s)", self.path.parent, exc.strerror or exc)
        self.ms += (time.perf_counter() - started) * 1000

    def _save(self, llm) -> None:
        import json

        import numpy as np
        from docent.atomic import replacing
        state = _state_bytes(llm)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(self.path) as scratch, open(scratch, "wb") as out:
            np.savez(out, key=np.frombuffer(json.dumps(self.key).encode("utf-8"), dtype=np.uint8),
                     tokens=np.array(self.tokens, dtype=np.int32), state=np.frombuffer(state, dtype=np.uint8))


def _state_bytes(llm) -> bytes:
    """llama.cpp's state (the cache cells in use, the last logits): what Llama.save_state()
    keeps as `llama_state`, without its copy of the score rows (~300 MB for the answer
    prefix, unused without logits_all)."""
    import ctypes

    import llama_cpp
    size = llama_cpp.llama_state_get_size(llm.ctx)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_get_data(llm.ctx, buffer, size)
    if not 0 < written <= size:
        raise OSError(f"llama.cpp gave {written} bytes of state")
    return memoryview(buffer)[:written].tobytes()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> list[int]:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return list(a[:n])


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
