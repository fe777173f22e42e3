"""How docent says the documents don't answer: the statement, then the closest passages."""

from __future__ import annotations

from typing import Sequence

from bot.prompts import Prompts
from bot.retrieval import Passage
from bot.steps.result import Answer


class Abstainer:
    def __init__(self, prompts: Prompts):
        self.prompts = prompts

    def text(self, passages: Sequence[Passage], lead: str = "") -> str:
        """`lead` (default: the abstain wording) and the closest passages."""
        closest = self.closest(passages)
        lead = lead or self.prompts.render("abstain.txt")
        return lead + ("\n\n" + closest if closest else "")

    def apply(self, answer: Answer, lead: str = "") -> None:
        """Make `answer` say it cannot answer (`lead`, default: the abstain wording), with
        its closest passages listed."""
        answer.lead = lead or self.prompts.render("abstain.txt")
        answer.text = self.text(answer.passages, answer.lead)

    def closest(self, passages: Sequence[Passage], limit: int = 3) -> str:
        lines = [f"[{i + 1}] {p.location}: {_snippet(p.text)}" for i, p in enumerate(passages[:limit])]
        return self.prompts.render("abstain.closest.txt", closest="\n".join(lines)) if lines else ""


def _snippet(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " …"
