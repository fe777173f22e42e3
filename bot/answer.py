"""Question in, cited answer out (streamed), or an honest "the documents don't say".

    answerer = Answerer(settings)                 # retriever + generator + prompts
    answerer.warm_up("default")                   # models load here, not on the first question
    run = answerer.stream("How do I rotate the API keys?")
    for event in run: ...                         # Event("token"|"replace"|"status", text)
    run.answer.to_dict()                          # the `ask --json` object

Steps: check the question -> rewrite a follow-up into a standalone question -> retrieve ->
abstain early when nothing relevant was found -> number the passages that fit the
model's window -> stream the model's answer (a grammar forces the citation format when
the backend allows it) with dangling markers filtered out -> parse citations -> if the
model said it cannot answer: abstain and list the closest passages; if no sentence is
backed by its cited passage: fall back to the passages' own best sentences.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Iterator, Sequence

from bot.citations import CitationFilter, clean, cited_numbers, strip_markers
from bot.generators.base import GRAMMAR, TOKEN_PROBABILITIES, has_ability
from bot.guard.findings import Finding
from bot.guard.lexical import CONTENT_STOP, content_words, share_found, support
from bot.guard.leaks import StreamRedactor
from bot.guard.sentences import split_claims
from bot.prompts import Prompts
from bot.retrieval import Passage, RetrievalResult, Retriever
from docent.settings import Settings

STYLES = ("grammar", "plain")
FALLBACKS = ("auto", "extractive", "abstain", "none")
# How a model says it cannot answer (the prompt asks for exactly "I don't know.").
ABSTAIN_PATTERN = re.compile(
    r"^\W*(i don'?t know|i do not know|i cannot answer|i can'?t answer|the (passages|documents|context) (do not|don'?t)"
    r"|(this|that) (is not|isn'?t) (mentioned|covered|stated)|there is no (information|mention))", re.I)

# Abstentions decided before the model writes anything (no model text to replay).
BEFORE_MODEL = ("retrieval", "coverage", "judge")
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
    # passages), "judge" (the model says they do not answer it), "model" (its answer says
    # so), "unbacked" (no sentence backed by its passage), "unsupported" (the guard cut all)
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

    def finish(self) -> Answer:
        for _ in self._events:
            pass
        assert self.answer is not None
        return self.answer


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


def supported_by(sentence: str, passage: str, threshold: float = 0.6) -> bool:
    """Cheap lexical check: most of the sentence's content words are in the passage.
    (Decides the fallback; the groundedness guard in bot/guard does the real check.)"""
    return support(sentence, passage) >= threshold


# Words that frame a question rather than name its subject: a passage that lacks them
# ("What are the main differences between json and jsonb?") may still answer it.
QUESTION_STOP = CONTENT_STOP | frozenset("""i me my does did should could would many much long often which
who whom whose why get set make need want way ways there any some other default main difference differences
differ purpose terms term kind kinds type types example examples mean means meaning work works happen happens
describe explain role reason reasons benefit benefits use uses usage possible best recommended common typical
usually""".split())


def question_coverage(question: str, passages: Sequence[Passage]) -> float:
    """Share of the question's topic words (or their 5-letter stems) that the passages
    mention at all. An answer about a subject the passages never name cannot be backed."""
    present = frozenset().union(*(content_words(p.text + " " + p.heading) for p in passages))
    return share_found(content_words(question, QUESTION_STOP, 3), present)


def repoint(text: str, passages: Sequence[Passage], margin: float = 0.25) -> tuple[str, list[dict]]:
    """Point each sentence's citation at the passage that holds its words when the cited
    one clearly does not (small models often cite the wrong number). Reported as
    `wrong_citation` findings. (Giving an uncited sentence the passage that holds its
    words was measured and not kept: docs_qa abstention recall 0.80 -> 0.67.)"""
    out, findings, pos = [], [], 0
    for sentence in split_sentences(text):
        start = text.find(sentence, pos)
        if start < 0:
            return text, []
        out.append(text[pos:start])
        pos = start + len(sentence)
        numbers = [n for n in cited_numbers(sentence) if 0 < n <= len(passages)]
        if not numbers:
            out.append(sentence)
            continue
        scores = [support(sentence, p.text) for p in passages]
        best = max(range(len(passages)), key=lambda i: scores[i]) + 1
        cited_best = max(scores[n - 1] for n in numbers)
        if best not in numbers and scores[best - 1] >= cited_best + margin:
            fixed = strip_markers(sentence).rstrip()
            end = "." if fixed.endswith(".") else ""
            fixed = fixed.rstrip(".").rstrip() + f" [{best}]" + end
            findings.append({"kind": "wrong_citation", "severity": "low", "span": [start, start + len(sentence)],
                             "message": f"cited [{', '.join(map(str, numbers))}], but the words are in passage "
                                        f"[{best}]; the citation was corrected",
                             "evidence": best, "action": "flagged", "score": round(scores[best - 1] - cited_best, 3),
                             "confidence": "high"})
            out.append(fixed)
        else:
            out.append(sentence)
    out.append(text[pos:])
    return "".join(out), findings


def split_sentences(text: str, kinds: tuple[str, ...] = ("prose", "item", "heading", "code")) -> list[str]:
    """The text's sentences (and list items, headings, code blocks), as the guard splits it."""
    return [claim.text for claim in split_claims(text) if claim.kind in kinds]


class Answerer:
    def __init__(self, settings: Settings, retriever: Retriever | None = None, generator=None,
                 prompts: Prompts | None = None, home=None):
        self.settings = settings
        self.config = settings.answer
        if self.config.style not in STYLES:
            raise AnswerError(f"unknown answer.style {self.config.style!r}: use one of {', '.join(STYLES)}")
        if self.config.fallback not in FALLBACKS:
            raise AnswerError(f"unknown answer.fallback {self.config.fallback!r}: use one of {', '.join(FALLBACKS)}")
        for where, leaks in [("leaks", settings.leaks)] + [(f"collections.{name}.leaks", c)
                                                           for name, c in settings.collection_leaks.items()]:
            if leaks.restricted not in ("allow", "flag", "block"):
                raise AnswerError(f"{where}.restricted must be allow, flag or block, not {leaks.restricted!r}")
        self.retriever = retriever or Retriever(settings, home=home)
        self._generator = generator
        self.prompts = prompts or Prompts(settings.prompts_dir())
        self._guard = None
        self._leak_scanners: dict = {}

    @property
    def generator(self):
        if self._generator is None:
            from bot.generators import make_generator
            self._generator = make_generator(self.settings.generation)
        return self._generator

    def warm_up(self, collection: str | None = None, prefill: bool = False) -> None:
        """Load the models. `prefill` (a server starting): also evaluate the sentence judge's
        fixed prompt, which the first answer would otherwise wait for."""
        self.retriever.warm_up(collection)
        self.generator.warm_up()
        if self.guard is not None:
            self.guard.warm_up()         # the cross-encoder, when the model uses one
            if prefill and self.guard.judge is not None:
                self.guard.judge.prefill()
        if self.leak_scanner(collection) is not None:
            self.leak_scanner(collection).warm_up()         # presidio + spaCy
        # Read the templates now: a broken one fails at start, not on the first question.
        for name in ("answer.system.txt", "answer.user.txt", "passage.txt", "abstain.txt", "abstain.closest.txt",
                     "condense.system.txt", "condense.user.txt", "blocked.txt"):
            self.prompts.template(name)

    # --- the steps ---------------------------------------------------------------------

    def check_question(self, question: str) -> str:
        from bot.retrieval import clean_query
        question = clean_query(question)
        if not question:
            raise AnswerError("the question is empty: type what you want to know")
        limit = self.config.max_question_chars
        if len(question) > limit:
            raise AnswerError(f"the question is {len(question):,} characters long; the limit is {limit:,} "
                              f"(setting answer.max_question_chars): ask about one thing at a time")
        return question

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """A follow-up rewritten as a standalone question, using the last turns."""
        turns = list(history)[-self.config.history_turns:]
        if not turns:
            return question
        lines = []
        for asked, answered in turns:
            lines.append(f"User: {asked}")
            lines.append(f"Assistant: {_plain(answered)[:400]}")
        messages = [{"role": "system", "content": self.prompts.render("condense.system.txt")},
                    {"role": "user", "content": self.prompts.render("condense.user.txt", history="\n".join(lines),
                                                                    question=question)}]
        text = "".join(self.generator.stream(messages, max_tokens=64, stop=["\n"])).strip().strip('"').strip()
        text = re.sub(r"^(standalone question|question)\s*:\s*", "", text, flags=re.I).strip()
        if not text or len(text) > 3 * len(question) + 200 or ABSTAIN_PATTERN.match(text):
            # The model did not rewrite it: search with the last question as context.
            return f"{turns[-1][0]} {question}"
        return text

    def build_messages(self, question: str, passages: Sequence[Passage]) -> tuple[list[dict], int]:
        """The chat messages with as many passages (best first) as fit the model's window,
        leaving room for the answer. Returns (messages, passages used)."""
        budget = self.settings.generation.context_window - self.settings.generation.max_answer_tokens - 8
        prefix = self.prompts.answer_prefix()
        used = list(passages)
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
                              f"{self.settings.generation.context_window} tokens")

    def abstention(self, passages: Sequence[Passage], lead: str = "") -> str:
        """`lead` (default: the abstain wording) and the closest passages."""
        closest = self.closest(passages)
        lead = lead or self.prompts.render("abstain.txt")
        return lead + ("\n\n" + closest if closest else "")

    def abstain(self, answer: Answer, lead: str = "") -> None:
        """Make `answer` say it cannot answer (`lead`, default: the abstain wording), with
        its closest passages listed."""
        answer.lead = lead or self.prompts.render("abstain.txt")
        answer.text = self.abstention(answer.passages, answer.lead)

    def closest(self, passages: Sequence[Passage], limit: int = 3) -> str:
        lines = [f"[{i + 1}] {p.location}: {_snippet(p.text)}" for i, p in enumerate(passages[:limit])]
        return self.prompts.render("abstain.closest.txt", closest="\n".join(lines)) if lines else ""

    def extractive(self, question: str, passages: Sequence[Passage], limit: int = 2,
                   margin: float = 0.05) -> tuple[str, list[int]]:
        """The passages' own sentences that best match the question, with their citations."""
        # Prose and list items only: a heading or a code block is not an answer sentence.
        candidates = [(n + 1, s) for n, p in enumerate(passages) for s in split_sentences(p.text, ("prose", "item"))
                      if 20 <= len(s) <= 600]
        if not candidates:
            return "", []
        embedder = self.retriever.embedder
        vectors = embedder.embed([question] + [s for _, s in candidates])
        scores = vectors[1:] @ vectors[0]
        # Earlier (better-ranked) passages get a small edge on ties.
        order = sorted(range(len(candidates)), key=lambda i: -(float(scores[i]) - 0.01 * candidates[i][0]))
        # A further sentence only when it matches the question about as well as the best one:
        # on docs_qa every runner-up 0.06 or more behind was off the point ("Imitate git
        # clone but track only selected branches" under the answer about worktrees).
        chosen = sorted([i for i in order[:limit] if scores[i] >= scores[order[0]] - margin],
                        key=lambda i: (candidates[i][0], i))
        text = " ".join(f"{_strip_end(candidates[i][1])} [{candidates[i][0]}]." for i in chosen)
        return text, list(dict.fromkeys(candidates[i][0] for i in chosen))

    # --- the whole answer --------------------------------------------------------------

    def ask(self, question: str, collection: str | None = None, history: Sequence[tuple[str, str]] = ()) -> Answer:
        return self.stream(question, collection, history).finish()

    def stream(self, question: str, collection: str | None = None,
               history: Sequence[tuple[str, str]] = ()) -> AnswerRun:
        question = self.check_question(question)    # raise before anything streams
        return AnswerRun(lambda run: self._events(run, question, collection, history))

    def _events(self, run: AnswerRun, question: str, collection: str | None,
                history: Sequence[tuple[str, str]]) -> Iterator[Event]:
        from bot.retrieval import RetrievalError
        started = time.perf_counter()
        timings: dict = {}
        if history:
            yield Event("status", "Rewriting the follow-up as a standalone question…")
        standalone = self.condense(question, history) if history else question
        if history:
            timings["condense_ms"] = _ms(started)
        yield Event("status", "Searching the documents…")
        try:
            found: RetrievalResult = self.retriever.retrieve(standalone, collection)
        except RetrievalError as exc:
            raise CollectionError(str(exc)) from None
        timings["retrieve_ms"] = round(found.timings.get("retrieve_ms", 0.0), 1)
        passages = found.passages
        reason = self.nothing_relevant(standalone, passages, found.top_dense)
        if reason:
            yield from self._abstain_early(run, question, standalone, passages, reason, timings, started, collection)
            return

        messages, used = self.build_messages(standalone, passages)
        dropped, passages = len(passages) - used, passages[:used]
        judged: dict = {}           # the model's own checks, P(no) by name
        if self.config.judge_answerable and has_ability(self.generator, TOKEN_PROBABILITIES):
            yield Event("status", "Checking that the passages answer the question…")
            mark = time.perf_counter()
            judged["unanswerable"] = no = self.unanswerable(messages)
            timings["judge_ms"] = _ms(mark)
            if no >= self.config.judge_answerable:
                yield from self._abstain_early(run, question, standalone, passages, "judge", timings, started, collection)
                run.answer.judged = judged
                return
        yield Event("status", f"Reading {len(passages)} passage{'s' if len(passages) != 1 else ''}…")
        grammar = None
        if self.config.style == "grammar" and has_ability(self.generator, GRAMMAR):
            grammar = citation_grammar(len(passages))
        valid = range(1, len(passages) + 1)
        shown = CitationFilter(valid)
        # Secrets are masked before they reach the screen, not after the answer is done.
        leak_policy = self.settings.leaks_for(collection)
        masked = StreamRedactor() if leak_policy.secret in ("redact", "block") else None
        # Personal data cannot be recognised word by word, and a withheld answer must not
        # have been shown: then the answer is shown once checked instead of streamed.
        hold = leak_policy.pii in ("redact", "block") or self.may_withhold(passages, collection)
        if hold:
            yield Event("status", "Checking the answer before it is shown…")
        pieces: list[str] = []
        emitted: list[str] = []
        first = None
        for piece in self.generator.stream(messages, max_tokens=self.settings.generation.max_answer_tokens,
                                           grammar=grammar):
            if first is None:
                first = _ms(started)
            pieces.append(piece)
            visible = shown.feed(piece)
            visible = masked.feed(visible) if masked is not None else visible
            if visible and not hold:
                emitted.append(visible)
                yield Event("token", visible)
        tail = shown.finish()
        tail = masked.feed(tail) + masked.finish() if masked is not None else tail
        if tail and not hold:
            emitted.append(tail)
            yield Event("token", tail)
        timings["first_token_ms"] = first if first is not None else _ms(started)
        timings["tokens"] = len(pieces)
        timings["prompt_tokens"] = self.generator.count_tokens(messages)
        raw = "".join(pieces).strip()
        if self.config.judge_addresses and raw and not ABSTAIN_PATTERN.match(raw) \
                and has_ability(self.generator, TOKEN_PROBABILITIES):
            mark = time.perf_counter()
            judged["off_question"] = self.off_question(messages, raw, standalone)
            timings["addresses_ms"] = _ms(mark)
        answer = self.finalize(question, standalone, raw, passages, collection, judged)
        if leak_policy.restricted != "allow" and not answer.blocked:
            self.check_restricted(answer, collection)
        answer.timings, answer.dropped_passages = timings, dropped
        if self.config.judge_answerable and not has_ability(self.generator, TOKEN_PROBABILITIES):
            answer.flags.append(CHECK_SKIPPED.to_dict())     # said, not silently left out
        timings["guard_ms"] = answer.guard_ms
        shown_text = "".join(emitted).strip()
        if hold:
            yield Event("token", answer.text)
        elif answer.abstained and not answer.blocked and answer.text.startswith(shown_text):
            if answer.text[len(shown_text):]:
                yield Event("token", answer.text[len(shown_text):])
        elif " ".join(answer.text.split()) != " ".join(shown_text.split()):
            reason = "blocked" if answer.blocked else "abstain" if answer.abstained else answer.fallback or (
                "guard" if any(f["action"] == "redacted" and f["kind"] in ("unsupported", "contradicted")
                               for f in answer.flags) else "citations")
            yield Event("replace", answer.text, reason)
        timings["total_ms"] = _ms(started)
        run.answer = answer

    def _abstain_early(self, run: AnswerRun, question: str, standalone: str, passages: Sequence[Passage],
                       reason: str, timings: dict, started: float, collection: str | None) -> Iterator[Event]:
        """Abstain before the model writes anything, listing the closest passages."""
        timings.update(first_token_ms=_ms(started), total_ms=_ms(started), tokens=0)
        run.answer = Answer(question, standalone, "", True, list(passages), [], timings=timings, abstain_reason=reason)
        self.abstain(run.answer)
        if self.leak_scanner(collection) is not None:
            self.check_leaks(run.answer, collection)    # the closest passages are quoted: mask what they hold
        yield Event("token", run.answer.text)

    def unanswerable(self, messages: list[dict]) -> float:
        """The model's probability that the passages do not state the answer: the answer
        prompt with a yes/no question appended to its last turn (prompts/answerable.txt),
        so llama.cpp evaluates only the few new tokens and the answer reuses them all."""
        turn = self.prompts.render("answerable.txt", question_turn=messages[-1]["content"]).strip()
        _, no = self.generator.choice_probabilities(list(messages[:-1]) + [{"role": "user", "content": turn}],
                                                    ["yes", "no"])
        return float(no)

    def off_question(self, messages: list[dict], answer: str, question: str) -> float:
        """The model's probability that its answer does not give what the question asks
        for (asked in the same conversation, right after the answer: its tokens are cached)."""
        turn = self.prompts.render("addresses.txt", question=question)
        _, no = self.generator.choice_probabilities(
            list(messages) + [{"role": "assistant", "content": answer}, {"role": "user", "content": turn}], ["yes", "no"])
        return float(no)

    def nothing_relevant(self, question: str, passages: Sequence[Passage], top_dense: float) -> str | None:
        """Why the passages cannot answer the question, before any model reads them:
        "retrieval" (nothing similar enough) or "coverage" (the question's subject is not
        named in them); None when the model should try."""
        if not passages or top_dense < self.settings.retrieval.min_score:
            return "retrieval"
        if self.config.min_coverage and question_coverage(question, passages) < self.config.min_coverage:
            return "coverage"
        return None

    def finalize(self, question: str, standalone: str, raw: str, passages: Sequence[Passage],
                 collection: str | None = None, judged: dict | None = None) -> Answer:
        """What the model wrote -> the answer shown: markers checked, citations pointed at
        the passage that holds the sentence, abstention recognised, fallback applied.
        `judged`: the model's own checks (P(no) by name), as the answer recorded them.
        (A pure function of its inputs: the benchmark replays it on recorded outputs.)"""
        valid = range(1, len(passages) + 1)
        text, flags = clean(raw, valid)
        if self.config.repoint_citations:
            text, moved = repoint(text, passages)
            flags += moved
        answer = Answer(question, standalone, text, False, list(passages),
                        [n for n in cited_numbers(text) if n in valid], flags=flags, model_text=raw,
                        judged=dict(judged or {}))
        off = answer.judged.get("off_question")
        if not text or ABSTAIN_PATTERN.match(text):
            answer.abstained, answer.abstain_reason, answer.cited = True, "model", []
            self.abstain(answer, raw)
        elif off is not None and self.config.judge_addresses and off >= self.config.judge_addresses:
            # Backed or not, it answers another question than the one asked ("how to add"
            # for "how to remove"): say so and list the closest passages.
            answer.abstained, answer.abstain_reason, answer.cited = True, "off_question", []
            self.abstain(answer)
        elif self.config.fallback != "none" and not self._backed(text, passages):
            # Not one sentence is backed by the passage it cites. If the passages do not
            # even name everything the question asks about, the model was most likely
            # answering from elsewhere: abstain. Otherwise it misread: quote the passages.
            mode = self.config.fallback
            if mode == "auto":
                mode = "extractive" if question_coverage(standalone, passages) >= 1.0 else "abstain"
            replacement, cited = self.extractive(standalone, passages) if mode == "extractive" else ("", [])
            if replacement:
                answer.text, answer.cited, answer.fallback = replacement, cited, "extractive"
            else:
                answer.abstained, answer.abstain_reason, answer.cited, answer.fallback = True, "unbacked", [], "abstain"
                self.abstain(answer)
        if not answer.abstained and self.guard is not None:
            verdict = self.check_groundedness(answer)
            if verdict.flagged and all(s.level == "flagged" for s in verdict.sentences if s.label != "skipped") \
                    and self.config.fallback in ("auto", "extractive") and answer.fallback is None:
                # The guard is sure no sentence is backed: the passages' own sentences instead.
                replacement, cited = self.extractive(standalone, passages)
                if replacement:
                    answer.text, answer.cited, answer.fallback = replacement, cited, "extractive"
                    answer.flags = [f for f in answer.flags if f["kind"] not in ("unsupported", "contradicted")]
                    self.check_groundedness(answer)
        if self.leak_scanner(collection) is not None:
            self.check_leaks(answer, collection)
        return answer

    def leak_scanner(self, collection: str | None = None):
        """The leak scanner for a collection's policy (None when it allows every kind).
        Scanners of different policies share the one spaCy pipeline of the process."""
        config = self.settings.leaks_for(collection)
        if not any(getattr(config, kind) != "allow" for kind in ("secret", "pii", "confidential")):
            return None
        if config not in self._leak_scanners:
            from bot.guard.leaks import LeakScanner
            self._leak_scanners[config] = LeakScanner(config)
        return self._leak_scanners[config]

    def check_leaks(self, answer: Answer, collection: str | None = None) -> None:
        """Secrets and personal data in the answer, confidential passages cited: flagged,
        masked (in the answer and the passages shown) or the answer withheld, by policy."""
        from bot.guard.leaks import redact
        from bot.guard.spans import shift_span
        started = time.perf_counter()
        config = self.settings.leaks_for(collection)
        scanner = self.leak_scanner(collection)
        findings = [f for f in scanner.scan(answer.question, answer.text, [p.text for p in answer.passages])
                    if not (f.kind == "confidential" and f.evidence not in answer.cited)]
        if answer.abstained and answer.lead:
            # An abstention quotes its closest passages as they are (masked where the policy
            # masks): like the sources of an answer, they are the documents, not its words.
            findings = [f for f in findings if f.action != "flagged" or f.span == (0, 0)
                        or f.span[0] < len(answer.lead)]
        spanless = [f for f in findings if f.span == (0, 0)]     # about the question or a passage, not the text
        # What is shown of the passages never holds what the answer may not.
        answer.passages = scanner.shown(answer.passages)
        if any(f.action == "blocked" for f in findings):
            what = sorted({"a secret" if f.kind == "secret" else "personal data" if f.kind == "pii"
                           else "text marked confidential" for f in findings if f.action == "blocked"})
            self._withhold(answer, " and ".join(what), [f.to_dict() for f in findings])
        else:
            redacted_kinds = [k for k in ("secret", "pii") if getattr(config, k) == "redact"]
            leaks = scanner.find(answer.text, redacted_kinds) if redacted_kinds else []
            text, edits = redact(answer.text, leaks)
            if edits:
                answer.text = text
                if answer.lead:       # the statement is the start of the text: mask it alike
                    answer.lead = redact(answer.lead, scanner.find(answer.lead, redacted_kinds))[0]
                for flag in answer.flags:
                    flag["span"] = shift_span(flag["span"], edits)
            answer.flags += [{**f.to_dict(), "span": f.to_dict()["span"] if f in spanless else shift_span(f.span, edits)}
                             for f in findings]
        if config.secret in ("redact", "block"):
            # Other checks quote the answer's sentences in their messages: mask those too.
            for flag in answer.flags:
                hidden = scanner.find(flag["message"], ("secret",))
                if hidden:
                    flag["message"] = redact(flag["message"], hidden)[0]
        answer.guard_ms = round(answer.guard_ms + _ms(started), 1)

    def may_withhold(self, passages: Sequence[Passage], collection: str | None) -> bool:
        """Whether the policy could withhold an answer written from these passages: one
        repeats a restricted document's words, holds a secret, or is marked confidential,
        and that kind is blocked. Such an answer is held until checked: blocked text never
        reaches a client, not even for the seconds before it is withheld."""
        config = self.settings.leaks_for(collection)
        texts = [p.text for p in passages]
        if config.restricted == "block":
            restricted = self.retriever.restricted_text(collection)
            if any(restricted.shared(text)[0] for text in texts):
                return True
        kinds = [k for k in ("secret", "confidential") if getattr(config, k) == "block"]
        scanner = self.leak_scanner(collection) if kinds else None
        return scanner is not None and any(scanner.find(text, kinds) for text in texts)

    def check_restricted(self, answer: Answer, collection: str | None) -> None:
        """The answer repeats a run of words of a restricted chunk: flagged, or withheld."""
        started = time.perf_counter()
        shared, source = self.retriever.restricted_text(collection).shared(answer.text)
        if shared:
            action = "blocked" if self.settings.leaks_for(collection).restricted == "block" else "flagged"
            flag = {"kind": "restricted_overlap", "severity": "high", "span": [0, len(answer.text)],
                    "message": f"the answer repeats text of a restricted document ({source}; {shared} runs of "
                               f"8 words)", "evidence": None, "action": action, "score": 1.0, "confidence": "high"}
            if action == "blocked":
                self._withhold(answer, "text from a restricted document", [flag])
            else:
                answer.flags.append(flag)
        answer.guard_ms = round(answer.guard_ms + _ms(started), 1)

    def _withhold(self, answer: Answer, what: str, flags: list[dict]) -> None:
        """Replace the answer by the notice saying it was withheld (prompts/blocked.txt) and
        why; the flags that quoted or pointed into its text go, the new ones cover the notice."""
        answer.text = self.prompts.render("blocked.txt", what=what)
        answer.blocked, answer.cited = True, []
        answer.flags = [f for f in answer.flags if f["kind"] == "dangling_citation"]
        answer.flags += [{**f, "span": [0, len(answer.text)]} for f in flags]

    @property
    def guard(self):
        """The groundedness scanner (None when guard.groundedness is off), with the model as
        a judge when guard.judge is on and the generator gives token probabilities."""
        if self._guard is None and self.settings.guard.groundedness:
            from bot.guard.groundedness import GroundednessGuard
            config = self.settings.guard
            self._guard = GroundednessGuard(config.threshold or None, config.unsupported,
                                            judge=self.sentence_judge() if config.judge else None)
        return self._guard

    def sentence_judge(self):
        """The answering model as the guard's judge, in a llama.cpp context of its own
        (None for a generator without token probabilities)."""
        from bot.guard.judge import judge_for
        return judge_for(self.generator, self.prompts)

    def check_groundedness(self, answer: Answer):
        """Every sentence checked against the passages it cites: findings into flags,
        unsupported sentences cut when the policy says drop, the answer-level score kept.
        Returns the guard's verdict."""
        from bot.guard.groundedness import apply_policy
        from bot.guard.spans import shift_span
        started = time.perf_counter()
        texts = [f"{p.heading}\n{p.text}" if p.heading else p.text for p in answer.passages]
        verdict = self.guard.check(answer.text, texts, answer.question)
        # Wrong citations are repoint()'s to correct and report (answer.repoint_citations).
        findings = [f for f in self.guard.findings(verdict) if f.kind != "wrong_citation"]
        answer.groundedness = round(verdict.score, 3)
        answer.flags += [f.to_dict() for f in findings]
        if any(f.action == "redacted" for f in findings):
            answer.text, edits = apply_policy(answer.text, findings)
            for flag in answer.flags:
                flag["span"] = shift_span(flag["span"], edits)
            answer.cited = [n for n in cited_numbers(answer.text) if 0 < n <= len(answer.passages)]
            if not answer.text:
                answer.abstained, answer.abstain_reason, answer.cited = True, "unsupported", []
                self.abstain(answer)
        answer.guard_ms = round(answer.guard_ms + _ms(started), 1)
        return verdict

    def _backed(self, text: str, passages: Sequence[Passage]) -> bool:
        """At least one sentence cites a passage that holds most of its words."""
        for sentence in split_sentences(text):
            numbers = cited_numbers(sentence)
            if any(0 < n <= len(passages) and supported_by(sentence, passages[n - 1].text) for n in numbers):
                return True
        return False


def _plain(text: str) -> str:
    return " ".join(strip_markers(text).split())


def _snippet(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " …"


def _strip_end(sentence: str) -> str:
    return sentence.rstrip().rstrip(".").rstrip()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
