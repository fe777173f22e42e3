"""A GGUF model run in-process by llama-cpp-python (`generation.backend = "llama-cpp"`).

The prompt is rendered with the model's own chat template; llama.cpp keeps the evaluated
prompt and reuses its longest common prefix, so the fixed system prompt and examples cost
nothing after the first question."""

from __future__ import annotations

import os
import threading
import time
from typing import Iterator, Sequence

from bot.generators.base import (GRAMMAR, SIDE_CONTEXT, TOKEN_PROBABILITIES, Generator, GeneratorError,
                                 Messages)
from bot.generators.bundled import resolve_model
from docent.settings import GenerationSettings


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
