"""Prompt templates are data files in prompts/ (or settings answer.prompts): edit the
wording without touching code.

Placeholders are written {{name}}. Rendering is strict: a placeholder without a value, or
a value the template has no place for, is an error naming the file, so a typo in a
template cannot silently send the model a prompt with a hole in it. Values are inserted
as they are (passages may hold braces, dollars or their own {{...}}: never re-parsed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class PromptError(Exception):
    """A template is missing, unreadable, or rendered with the wrong values."""


@dataclass(frozen=True)
class Template:
    name: str
    text: str

    @property
    def fields(self) -> set[str]:
        return set(PLACEHOLDER.findall(self.text))

    def render(self, **values: object) -> str:
        missing = self.fields - set(values)
        extra = set(values) - self.fields
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"no value for {', '.join(sorted(missing))}")
            if extra:
                problems.append(f"no placeholder for {', '.join(sorted(extra))}")
            raise PromptError(f"prompt template {self.name}: {'; '.join(problems)}")
        return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.text)


class Prompts:
    """The templates of one folder, read once."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._cache: dict[str, object] = {}

    def template(self, name: str) -> Template:
        if name not in self._cache:
            path = self.folder / name
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise PromptError(f"cannot read prompt template {path}: {exc.strerror or exc}") from None
            self._cache[name] = Template(name, text.strip("\n"))
        return self._cache[name]  # type: ignore[return-value]

    def render(self, name: str, **values: object) -> str:
        return self.template(name).render(**values)

    def examples(self, name: str) -> list[dict]:
        """Few-shot examples: one JSON object per line."""
        if name not in self._cache:
            path = self.folder / name
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                lines = []
            except OSError as exc:
                raise PromptError(f"cannot read {path}: {exc.strerror or exc}") from None
            try:
                self._cache[name] = [json.loads(line) for line in lines if line.strip()]
            except ValueError as exc:
                raise PromptError(f"{path} is not JSON lines: {exc}") from None
        return self._cache[name]  # type: ignore[return-value]

    # --- the answer prompt (the Answerer builds it; the judge rebuilds it for verify) ---

    def answer_prefix(self) -> list[dict]:
        """The answer prompt's fixed start: the rules, then the worked examples as turns
        (the same for every question: llama.cpp reuses its tokens)."""
        prefix = [{"role": "system", "content": self.render("answer.system.txt")}]
        for example in self.examples("answer.examples.jsonl"):
            prefix.append({"role": "user", "content": self.answer_turn(example["question"], [
                (i + 1, p["location"], p["text"]) for i, p in enumerate(example["passages"])])})
            prefix.append({"role": "assistant", "content": example["answer"]})
        return prefix

    def answer_turn(self, question: str, blocks) -> str:
        """The user turn of a question: its numbered passages, (n, location, text) each."""
        rendered = "\n\n".join(self.render("passage.txt", n=n, location=location, text=text.strip())
                               for n, location, text in blocks)
        return self.render("answer.user.txt", passages=rendered, question=question)
