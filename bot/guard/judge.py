"""The answering model as a judge of each sentence: "is the statement backed by the
passage?" answered yes or no, read as P(yes) from its logits (nothing is generated).

A small model judges well only what it can see at once, so it is shown the few passage
sentences that the claim shares most words with (and their heading), not whole
passages, after a fixed prefix of rules and worked examples (prompts/judge.*). Measured
on claims written the way models write answers (benchmarks/guard.py --part realistic),
this separates reworded correct claims from wrong ones far better than word overlap.

It runs in a context of its own (LlamaCppGenerator.side_context: the same weights, a
small window), so its fixed prefix stays in llama.cpp's cache between answers, and so
does the answer prompt's: a sentence costs only its excerpt and its own tokens. Across
processes llama.cpp's state after that prefix is kept in docent's cache (keep_prefix), so
a new `docent ask` does not read the ~850 tokens again.

    judge = judge_for(generator, prompts)   # None for a generator without token probabilities
    judge.backed("Backups are kept for two weeks.", [passage text, ...])   # -> P(yes)
"""

from __future__ import annotations

import threading
from typing import Sequence

from bot.citations import strip_markers
from bot.generators.base import SIDE_CONTEXT, TOKEN_PROBABILITIES, has_ability
from bot.generators.llama import keep_prefix
from bot.guard.sentences import passage_sentences
from bot.guard.lexical import content_words, share_found

# Passage sentences shown per claim (the ones it shares most words with), and at most this
# much of them: every token costs (~30 a second on 2 cores). Two judged as well as three
# on the realistic train claims (AUROC 0.987 vs 0.989 on a sample of 43) at 80% of the tokens.
EXCERPT_SENTENCES = 2
EXCERPT_CHARS = 600


def excerpt(claim: str, passages: Sequence[str], sentences: int = EXCERPT_SENTENCES) -> str:
    """The passage sentences the claim shares most content words with, in passage order,
    each passage's heading line (its first line) first."""
    words = content_words(strip_markers(claim))
    scored = []
    for p, passage in enumerate(passages):
        head, _, body = passage.partition("\n")
        for s, sentence in enumerate(passage_sentences(body or head)):
            scored.append((share_found(words, content_words(sentence)), p, s, sentence.strip()))
    chosen = sorted(sorted(scored, key=lambda row: -row[0])[:sentences], key=lambda row: (row[1], row[2]))
    out, shown = [], set()
    for _, p, _, sentence in chosen:
        head = passages[p].partition("\n")[0].strip()
        if p not in shown and head and "\n" in passages[p]:
            out.append(head + ":")
            shown.add(p)
        out.append(sentence)
    text = "\n".join(out)
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …"


class ModelJudge:
    """P(yes) from a generator that gives token probabilities (the bundled llama.cpp one);
    `available` is False for one that does not (an HTTP server)."""

    def __init__(self, generator, prompts):
        self.generator = generator
        self.prompts = prompts
        self._prefix: list[dict] | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return has_ability(self.generator, TOKEN_PROBABILITIES)

    def warm_up(self) -> None:
        with self._lock:        # a claim judged meanwhile (warm-up in a thread) waits for the prefix
            self.generator.warm_up()
            keep_prefix(self.generator, self.prefix(), "judge")      # restored when saved before

    def prefix(self) -> list[dict]:
        """The rules and the worked examples (the same for every claim: cached by llama.cpp)."""
        if self._prefix is None:
            prefix = [{"role": "system", "content": self.prompts.render("judge.system.txt")}]
            for example in self.prompts.examples("judge.examples.jsonl"):
                prefix.append({"role": "user", "content": self.prompts.render(
                    "judge.user.txt", passage=example["passage"], claim=example["claim"])})
                prefix.append({"role": "assistant", "content": example["answer"]})
            self._prefix = prefix
        return self._prefix

    def prefill(self) -> None:
        """Evaluate the fixed prefix now (~850 tokens: 20-30 s on 2 cores), so that the
        first answer does not wait for it; a server calls this while it starts."""
        turn = self.prompts.render("judge.user.txt", passage="", claim="")
        with self._lock:
            self.generator.choice_probabilities(self.prefix() + [{"role": "user", "content": turn}], ["yes", "no"])

    def backed(self, claim: str, passages: Sequence[str]) -> float:
        """The model's probability that the passages back the claim."""
        # Both parts bounded, so that the prompt always fits the side context's window
        # (the worked examples take ~850 tokens of it).
        turn = self.prompts.render("judge.user.txt", passage=excerpt(claim, passages),
                                   claim=strip_markers(claim).strip()[:EXCERPT_CHARS])
        with self._lock:
            yes, _ = self.generator.choice_probabilities(self.prefix() + [{"role": "user", "content": turn}],
                                                         ["yes", "no"])
        return float(yes)


def judge_for(generator, prompts) -> ModelJudge | None:
    """The answering model as the sentence judge, in a llama.cpp context of its own where
    the generator can open one; None for a generator without token probabilities (a model
    server). The one way the answer pipeline, `docent verify` and training build it."""
    if not has_ability(generator, TOKEN_PROBABILITIES):
        return None
    side = generator.side_context() if has_ability(generator, SIDE_CONTEXT) else generator
    return ModelJudge(side, prompts)
