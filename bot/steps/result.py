"""What an answer run produces: events while it streams, the Answer at the end, and the
errors a question can meet. Shared by every step (bot/steps/)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

from bot.guard.findings import Finding
from bot.retrieval import Passage

# How a model says it cannot answer (the prompt asks for exactly "I don't know.").
ABSTAIN_PATTERN = re.compile(
    r"^\W*(i don'?t know|i do not know|i cannot answer|i can'?t answer|the (passages|documents|context) (do not|don'?t)"
    r"|(this|that) (is not|isn'?t) (mentioned|covered|stated)|there is no (information|mention))", re.I)

# Abstentions decided before the model writes anything (no model text to replay).
BEFORE_MODEL = ("retrieval", "coverage", "unnamed", "judge")
# Told once per answer when answer.judge_answerable is set but the model cannot be asked.
CHECK_SKIPPED = Finding("check_skipped", "low", (0, 0), "the answerability check was skipped: the model server gives "
                        "no token probabilities", None, "flagged", 0.0, confidence="low")


class AnswerError(Exception):
    """The question cannot be answered as asked (empty, too long, no collection...)."""


class CollectionError(AnswerError):
    """The collection to search is missing, empty or unreadable."""


@dataclass
class Event:
    kind: str        # "token": text to append; "replace": the answer was rewritten, show `text` instead;
                     # "status": what is being done before the first token (not part of the answer)
    text: str
    reason: str = ""  # for "replace": "extractive" (the passages' own sentences), "abstain"
                      # (withdrawn: not backed by the passages), "citations" (re-pointed)


@dataclass
class Answer:
    question: str
    standalone_question: str
    text: str
    abstained: bool
    passages: list[Passage]
    cited: list[int]
    flags: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    fallback: str | None = None          # "extractive" when the passages' sentences replaced the model's
    # "retrieval" (nothing relevant), "coverage" (the question's subject is not in the
    # passages), "unnamed" (it names something no document mentions), "judge" (the model
    # says they do not answer it), "model" (its answer says so), "unbacked" (no sentence
    # backed by its passage), "off_question" (it answers another question, or only
    # restates this one), "unsupported" (the guard cut all)
    abstain_reason: str | None = None
    dropped_passages: int = 0            # retrieved passages that did not fit the model's window
    model_text: str = ""                 # what the model wrote, before any fallback or abstention text
    groundedness: float | None = None    # share of sentences the guard found backed (None: not checked)
    guard_ms: float = 0.0
    blocked: bool = False                # withheld by the leak policy (the text says why)
    lead: str = ""                       # an abstention's statement, without its list of closest passages
    # The model's own checks, P(no) each: "unanswerable" (do the passages state the
    # answer?), "off_question" (does the answer give what was asked?); absent when not asked.
    judged: dict = field(default_factory=dict)

    @property
    def citations(self) -> list[dict]:
        return [self.passages[n - 1].to_dict(n) for n in self.cited if 0 < n <= len(self.passages)]

    def to_dict(self) -> dict:
        return {"answer": self.text, "abstained": self.abstained, "citations": self.citations,
                "flags": self.flags, "timings": self.timings, "question": self.question,
                "standalone_question": self.standalone_question, "fallback": self.fallback,
                "abstain_reason": self.abstain_reason, "groundedness": self.groundedness, "blocked": self.blocked,
                "judged": {k: round(v, 3) for k, v in self.judged.items()}}


class AnswerRun:
    """Iterate for events; `answer` is set once the iteration has finished, and then the
    callbacks given to `then()` run with it (a chat session records the turn that way)."""

    def __init__(self, produce):
        """`produce(run)` yields the events and sets `run.answer`."""
        self.answer: Answer | None = None
        self._callbacks: list = []
        self._events = self._run(produce)

    def _run(self, produce) -> Iterator[Event]:
        yield from produce(self)
        for callback in self._callbacks:
            callback(self.answer)

    def then(self, callback) -> "AnswerRun":
        self._callbacks.append(callback)
        return self

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def close(self) -> None:
        """Stop early (the reader went away): the model stops and what it held is let go."""
        self._events.close()

    def finish(self) -> Answer:
        for _ in self._events:
            pass
        assert self.answer is not None
        return self.answer
