"""Step 4: the chat messages the model reads, with as many passages as fit its window, and
(style = grammar) the grammar that forces the citation format."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from bot.prompts import Prompts
from bot.retrieval import Passage
from bot.steps.result import AnswerError
from docent.settings import GenerationSettings


def citation_grammar(k: int) -> str:
    """GBNF: either exactly "I don't know." or one to four sentences, each closed by a
    citation of a passage that exists."""
    numbers = " | ".join(f'"{n}"' for n in range(1, k + 1))
    return (
        'root ::= idk | answer\n'
        'idk ::= "I don\'t know."\n'
        'answer ::= sentence (" " sentence)? (" " sentence)? (" " sentence)?\n'
        # Inside a sentence a full stop may only be followed by a letter, digit or slash
        # ("v1.2", "pg_hba.conf", "e.g"): the next sentence can only start after a citation.
        'sentence ::= [A-Za-z0-9"\'`(*$-] body " [" num "]" "."?\n'
        'body ::= ([^\\[\\]\\n.] | "." [A-Za-z0-9/])*\n'
        f'num ::= {numbers}\n')


class PromptBuilder:
    def __init__(self, generation: GenerationSettings, prompts: Prompts, generator, withhold_instructions: bool = False):
        """`withhold_instructions`: a passage's instructions to the assistant are left out of
        what the model reads (bot/guard/injection.py)."""
        self.generation, self.prompts, self.generator = generation, prompts, generator
        self.withhold_instructions = withhold_instructions

    def _text(self, passage: Passage) -> str:
        if not self.withhold_instructions:
            return passage.text
        from bot.guard.injection import leave_out_instructions
        return leave_out_instructions(passage.text)

    def run(self, question: str, passages: Sequence[Passage]) -> tuple[list[dict], int]:
        """The chat messages with as many passages (best first) as fit the model's window,
        leaving room for the answer. Returns (messages, passages used)."""
        budget = self.generation.context_window - self.generation.max_answer_tokens - 8
        prefix = self.prompts.answer_prefix()
        used = [replace(p, text=self._text(p)) for p in passages]
        while True:
            blocks = [(i + 1, p.location, p.text) for i, p in enumerate(used)]
            messages = prefix + [{"role": "user", "content": self.prompts.answer_turn(question, blocks)}]
            if self.generator.count_tokens(messages) <= budget:
                return messages, len(used)
            if len(used) > 1:
                used = used[:-1]
                continue
            if len(prefix) > 1:
                prefix = prefix[:1]      # no room for the examples: keep the rules and the passage
                continue
            if used and len(used[0].text) > 200:
                used = [replace(used[0], text=used[0].text[: int(len(used[0].text) * 0.7)])]
                continue
            raise AnswerError(f"the question does not fit the model's window of "
                              f"{self.generation.context_window} tokens")
