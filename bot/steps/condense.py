"""Step 1: a follow-up question rewritten as a standalone one, from the last turns."""

from __future__ import annotations

import re
from typing import Sequence

from bot.citations import strip_markers
from bot.prompts import Prompts
from bot.steps.result import ABSTAIN_PATTERN


class Condenser:
    def __init__(self, prompts: Prompts, generator, turns: int):
        self.prompts, self.generator, self.turns = prompts, generator, turns

    def run(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        turns = list(history)[-self.turns:] if self.turns else []
        if not turns:
            return question
        lines = []
        for asked, answered in turns:
            lines.append(f"User: {asked}")
            lines.append(f"Assistant: {' '.join(strip_markers(answered).split())[:400]}")
        messages = [{"role": "system", "content": self.prompts.render("condense.system.txt")},
                    {"role": "user", "content": self.prompts.render("condense.user.txt", history="\n".join(lines),
                                                                    question=question)}]
        text = "".join(self.generator.stream(messages, max_tokens=64, stop=["\n"])).strip().strip('"').strip()
        text = re.sub(r"^(standalone question|question)\s*:\s*", "", text, flags=re.I).strip()
        if not text or len(text) > 3 * len(question) + 200 or ABSTAIN_PATTERN.match(text):
            # The model did not rewrite it: search with the last question as context.
            return f"{turns[-1][0]} {question}"
        return text
