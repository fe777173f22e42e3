"""Question in, cited answer out (streamed), or an honest "the documents don't say".

    answerer = Answerer(settings)                 # or Components(settings).answerer (bot/builder.py)
    answerer.warm_up("default")                   # models load here, not on the first question
    run = answerer.stream("How do I rotate the API keys?")
    for event in run: ...                         # Event("token"|"replace"|"status", text)
    run.answer.to_dict()                          # the `ask --json` object

The Answerer runs the steps of bot/steps/ in order: check the question -> condense a
follow-up -> retrieve -> gate (abstain early when nothing relevant was found) -> prompt
(the passages that fit the model's window) -> optionally the model's own answerability
check -> generate (streamed, dangling markers filtered, secrets masked) -> finish
(citations, abstention, extractive fallback) -> guard (groundedness) -> policy (leaks,
restricted text). Each step is a small unit in its own module; this one wires them.
"""

from __future__ import annotations

import time
from typing import Iterator, Sequence

from bot.generators.base import GRAMMAR, TOKEN_PROBABILITIES, has_ability
from bot.guard.scanners import may_block
from bot.prompts import Prompts
from bot.retrieval import Passage, RetrievalResult, Retriever
from bot.steps.abstain import Abstainer
from bot.steps.condense import Condenser
from bot.steps.finish import Extractor, Finisher
from bot.steps.gate import Gate
from bot.steps.generate import generate
from bot.steps.guard import GroundednessStep
from bot.steps.policy import PolicyStep
from bot.steps.prompt import PromptBuilder, citation_grammar  # noqa: F401
from bot.steps.result import (ABSTAIN_PATTERN, BEFORE_MODEL, CHECK_SKIPPED, Answer, AnswerError,  # noqa: F401
                              AnswerRun, CollectionError, Event)
from docent.settings import Settings
from docent.timing import elapsed_ms


def _ms(since: float) -> float:
    return elapsed_ms(since, 1)


class Answerer:
    def __init__(self, settings: Settings, retriever: Retriever | None = None, generator=None,
                 prompts: Prompts | None = None, home=None, scanners: Sequence | None = None, guard=None):
        """`scanners`: the checks settings guard.scanners adds (made from the settings when
        not given; bot/guard/scanners.py). `guard`: the groundedness guard (made from the
        settings when not given)."""
        self.settings = settings
        self.config = settings.answer
        self.retriever = retriever or Retriever(settings, home=home)
        self._generator = generator
        self.prompts = prompts or Prompts(settings.prompts_dir())
        self.abstainer = Abstainer(self.prompts)
        self._guard = guard
        self._leak_scanners: dict = {}
        self._scanners = None if scanners is None else list(scanners)

    @property
    def generator(self):
        if self._generator is None:
            from bot.generators import make_generator
            self._generator = make_generator(self.settings.generation)
        return self._generator

    def warm_up(self, collection: str | None = None, prefill: bool = False) -> None:
        """Load the models side by side (llama.cpp and ONNX Runtime leave the GIL free while
        they load): the embedder and the collection here, the answering model in a thread.
        The fixed starts of the answer prompt and of the sentence judge's are restored from
        docent's cache (LlamaCppGenerator.keep_prefix), else saved by the first prompt that
        reads them. The judge's context and the personal-data scanner are needed only once
        an answer is written: a command that answers at once (`prefill` False) starts the
        answer while they load; a server (`prefill` True) waits for them and also evaluates
        the fixed prompts that no saved state covers."""
        import threading

        from bot.generators.llama import keep_prefix
        # Each stage timed (ms): `ask --json` and benchmarks/cold.py report where a cold start goes.
        self.warm_up_ms: dict[str, float] = {}
        errors: dict[threading.Thread, BaseException] = {}
        started = time.perf_counter()

        def timed(name: str, work) -> None:
            mark = time.perf_counter()
            work()
            self.warm_up_ms[name + "_ms"] = _ms(mark)

        def start(*stages, daemon: bool = False) -> threading.Thread:
            """A thread running the (name, work) stages in order; an error is kept for wait()
            (a stage not waited for fails again when it is used)."""
            def run():
                try:
                    for name, work in stages:
                        timed(name, work)
                except BaseException as exc:
                    errors[threading.current_thread()] = exc
            worker = threading.Thread(target=run, name="docent-warm-up", daemon=daemon)
            worker.start()
            return worker

        def wait(*workers: threading.Thread) -> None:
            for worker in workers:
                worker.join()
                if worker in errors:
                    raise errors[worker]

        generator, guard, scanner = self.generator, self.guard, self.leak_scanner(collection)   # made here, once
        # llama.cpp's loads are not daemons: its C code must be done before the process ends.
        model = start(("model", generator.warm_up),
                      ("answer_prefix", lambda: keep_prefix(generator, self.prompts.answer_prefix(), "answer",
                                                            build=prefill)))
        # The scanner (presidio and spaCy, ~4 s of Python imports) and the judge's context
        # start once the model is in: llama-cpp-python's load crosses between Python and C
        # thousands of times, and beside a thread busy in Python each crossing waits for the
        # GIL (1.5 s alone, 12.7 s beside a Python loop; benchmarks/README.md, cold start),
        # while llama.cpp's prompt reading, which follows, runs in C without it. The scanner
        # runs in a daemon: its Python imports need not hold up a Ctrl-C.
        timed("embedder", self.retriever.embedder.warm_up)
        timed("collection", lambda: self.retriever.warm_up(collection))
        wait(model)
        pii = [start(("pii", scanner.warm_up), daemon=True)] if scanner is not None else []
        judge = []
        if guard is not None:        # the judge's own context and prefix; the cross-encoder when used
            stages = [("guard", guard.warm_up)]
            if prefill and guard.judge is not None:
                stages.append(("judge_prefill", guard.judge.prefill))
            judge.append(start(*stages))
        if prefill:                  # a server: ready means all of it
            wait(*judge, *pii)
        self.warm_up_ms["ready_ms"] = _ms(started)
        # Read the templates now: a broken one fails at start, not on the first question.
        for name in ("answer.system.txt", "answer.user.txt", "passage.txt", "abstain.txt", "abstain.closest.txt",
                     *(("abstain.unnamed.txt",) if self.config.unnamed else ()),
                     "condense.system.txt", "condense.user.txt", "blocked.txt"):
            self.prompts.template(name)

    # --- the steps, one call each (bot/steps/) -------------------------------------------

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
        return Condenser(self.prompts, self.generator, self.config.history_turns).run(question, history)

    def nothing_relevant(self, question: str, passages: Sequence[Passage], top_dense: float,
                         collection: str | None = None, rights=None) -> tuple[str | None, str]:
        """Why the passages cannot answer the question before any model reads them (or
        None), and the abstention's statement when it is not the usual one."""
        mentions = (lambda word: self.retriever.mentions(word, collection, rights)) if self.config.unnamed else None
        gate = Gate(self.settings.retrieval.min_score, self.config.min_coverage, mentions)
        reason = gate.run(question, passages, top_dense)
        if reason == "unnamed":
            return reason, self.prompts.render("abstain.unnamed.txt", names=_listed(gate.unnamed))
        return reason, ""

    def build_messages(self, question: str, passages: Sequence[Passage],
                       collection: str | None = None) -> tuple[list[dict], int]:
        """The chat messages with as many passages as fit; (messages, passages used)."""
        withhold = self.settings.leaks_for(collection).injection == "withhold"
        return PromptBuilder(self.settings.generation, self.prompts, self.generator, withhold).run(question, passages)

    def abstention(self, passages: Sequence[Passage], lead: str = "") -> str:
        return self.abstainer.text(passages, lead)

    def abstain(self, answer: Answer, lead: str = "") -> None:
        self.abstainer.apply(answer, lead)

    def closest(self, passages: Sequence[Passage], limit: int = 3) -> str:
        return self.abstainer.closest(passages, limit)

    def extractive(self, question: str, passages: Sequence[Passage], limit: int = 2,
                   margin: float = 0.05) -> tuple[str, list[int]]:
        """The passages' own sentences that best match the question, with their citations."""
        return Extractor(self.retriever.embedder).run(question, passages, limit, margin)

    def finalize(self, question: str, standalone: str, raw: str, passages: Sequence[Passage],
                 collection: str | None = None, judged: dict | None = None) -> Answer:
        """What the model wrote -> the answer shown: finish, guard and leak policy.
        `judged`: the model's own checks (P(no) by name), as the answer recorded them.
        (A pure function of its inputs: the benchmark replays it on recorded outputs.)"""
        extractor = Extractor(self.retriever.embedder)
        grounded = GroundednessStep(self.guard, self.config, self.abstainer, extractor) if self.guard is not None else None
        backs = (lambda text, used: grounded.backs(text, used, question)) if grounded is not None and self.config.judge_backs else None
        answer = Finisher(self.config, self.abstainer, extractor, backs).run(question, standalone, raw, passages, judged)
        if grounded is not None:
            grounded.run(answer, standalone)
        if self.leak_scanner(collection) is not None:
            self.check_leaks(answer, collection)
        if self.scanners:
            self.policy(collection).run_scanners(answer, self.scanners)
        return answer

    # --- the whole answer --------------------------------------------------------------

    def ask(self, question: str, collection: str | None = None, history: Sequence[tuple[str, str]] = (),
            rights=None) -> Answer:
        return self.stream(question, collection, history, rights).finish()

    def stream(self, question: str, collection: str | None = None,
               history: Sequence[tuple[str, str]] = (), rights=None) -> AnswerRun:
        """`rights` (bot/access/rights.py): what the asking user may read, enforced in
        retrieval; None: everything (a single-user docent)."""
        question = self.check_question(question)    # raise before anything streams
        return AnswerRun(lambda run: self._events(run, question, collection, history, rights))

    def _events(self, run: AnswerRun, question: str, collection: str | None,
                history: Sequence[tuple[str, str]], rights=None) -> Iterator[Event]:
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
            found: RetrievalResult = self.retriever.retrieve(standalone, collection, rights=rights)
        except RetrievalError as exc:
            raise CollectionError(str(exc)) from None
        timings["retrieve_ms"] = round(found.timings.get("retrieve_ms", 0.0), 1)
        passages = found.passages
        try:
            reason, lead = self.nothing_relevant(standalone, passages, found.top_dense, collection, rights)
        except RetrievalError as exc:
            raise CollectionError(str(exc)) from None
        if reason:
            yield from self._abstain_early(run, question, standalone, passages, reason, timings, started, collection,
                                           lead)
            return

        messages, used = self.build_messages(standalone, passages, collection)
        dropped, passages = len(passages) - used, passages[:used]
        judged: dict = {}           # the model's own checks, P(no) by name
        can_judge = has_ability(self.generator, TOKEN_PROBABILITIES)
        if self.config.judge_answerable and can_judge:
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
        leak_policy = self.settings.leaks_for(collection)
        # Personal data cannot be recognised word by word, and a withheld answer must not
        # have been shown: then the answer is shown once checked instead of streamed.
        hold = (leak_policy.pii in ("redact", "block") or self.may_withhold(passages, collection)
                or may_block(self.scanners))
        if hold:
            yield Event("status", "Checking the answer before it is shown…")
        # Secrets are masked before they reach the screen, not after the answer is done.
        generated = yield from generate(self.generator, messages, max_tokens=self.settings.generation.max_answer_tokens,
                                        grammar=grammar, passages=len(passages), hold=hold, started=started,
                                        mask_secrets=leak_policy.secret in ("redact", "block"))
        timings["first_token_ms"] = generated.first_ms
        timings["tokens"] = generated.tokens
        timings["prompt_tokens"] = self.generator.count_tokens(messages)
        raw = generated.raw
        if self.config.judge_addresses and raw and not ABSTAIN_PATTERN.match(raw) and can_judge:
            mark = time.perf_counter()
            judged["off_question"] = self.off_question(messages, raw, standalone)
            timings["addresses_ms"] = _ms(mark)
        answer = self.finalize(question, standalone, raw, passages, collection, judged)
        if leak_policy.restricted != "allow" and not answer.blocked:
            self.check_restricted(answer, collection)
        answer.timings, answer.dropped_passages = timings, dropped
        if self.config.judge_answerable and not can_judge:
            answer.flags.append(CHECK_SKIPPED.to_dict())     # said, not silently left out
        timings["guard_ms"] = answer.guard_ms
        shown_text = generated.shown
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
                       reason: str, timings: dict, started: float, collection: str | None,
                       lead: str = "") -> Iterator[Event]:
        """Abstain before the model writes anything (`lead`: the statement, default the
        usual one), listing the closest passages."""
        timings.update(first_token_ms=_ms(started), total_ms=_ms(started), tokens=0)
        run.answer = Answer(question, standalone, "", True, list(passages), [], timings=timings, abstain_reason=reason)
        self.abstain(run.answer, lead)
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

    # --- guards and policy ---------------------------------------------------------------

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

    @property
    def scanners(self) -> list:
        """The checks settings guard.scanners adds after docent's own, in order."""
        if self._scanners is None:
            from bot.guard.scanners import make_scanners
            self._scanners = make_scanners(self.settings.guard.scanners, self.settings)
        return self._scanners

    def policy(self, collection: str | None = None) -> PolicyStep:
        return PolicyStep(self.settings.leaks_for(collection), self.leak_scanner(collection), self.prompts,
                          lambda: self.retriever.restricted_text(collection))

    def check_leaks(self, answer: Answer, collection: str | None = None) -> None:
        self.policy(collection).check_leaks(answer)

    def may_withhold(self, passages: Sequence[Passage], collection: str | None) -> bool:
        return self.policy(collection).may_withhold(passages)

    def check_restricted(self, answer: Answer, collection: str | None) -> None:
        self.policy(collection).check_restricted(answer)

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
        return GroundednessStep(self.guard, self.config, self.abstainer, Extractor(self.retriever.embedder)).check(answer)


def _listed(words: Sequence[str]) -> str:
    """“LFS”, “Kafka” or “Oracle”."""
    quoted = [f"“{w}”" for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
