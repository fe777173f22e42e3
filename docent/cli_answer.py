"""`docent ask`, `docent chat`, `docent retrieve`: the command-line face of bot/.

Only presentation lives here; every decision is made in bot.answer / bot.retrieval."""

from __future__ import annotations

import json
import sys
import time

import click

from docent.exits import EXIT_USAGE, answer_errors, guarded
from docent.terminal import fail, printable

ANSWER_EXIT_HELP = """\b
Exit status:
  0    answered (an answer that says the documents don't cover it counts)
  2    bad question or settings (empty, too long)
  5    the collection is missing, empty or cannot be read
  6    the language model cannot be loaded or reached (a model server refused
       the connection or answered with an HTTP error)
  7    the model server stopped answering (no data for generation.timeout_seconds)
  8    the model server's reply broke off or carried an error (stream ended early,
       connection broke, an error event, a reply that is no answer)
  130  interrupted
"""
def _run_guarded(work):
    """Run `work`, turning docent's errors into one clear line and an exit status."""
    return guarded(work, answer_errors())


def _print_passages(passages) -> None:
    for n, p in enumerate(passages, start=1):
        click.echo(click.style(f"[{n}] {printable(p.location)}", bold=True) + f"  (score {p.score:.3f})")
        if p.link:
            click.echo(f"    {printable(p.link)}")
        click.echo("    " + printable(" ".join(p.text.split())[:400]))


def _print_sources(answer) -> None:
    if answer.citations:
        click.echo("\nSources:")
        for c in answer.citations:
            place = c["source"] + (f", p. {c['page']}" if c["page"] is not None else "") + (
                f", commit {c['commit']}" if c.get("commit") else "") + (f", {c['heading']}" if c["heading"] else "")
            click.echo(f"  [{c['n']}] {printable(place)}" + (f"  {printable(c['link'])}" if c.get("link") else ""))
    for flag in answer.flags:
        if flag.get("confidence", "high") == "low":      # not confirmed: said quietly, not as a warning
            click.echo(click.style(f"  ? {printable(flag['message'])}", dim=True), err=True)
        else:
            click.echo(click.style(f"  ! {printable(flag['message'])}", fg="yellow"), err=True)


REPLACED = {
    "extractive": "The answer above was not backed by the passages it cited; their own words instead:",
    "abstain": "The answer above was not backed by the passages, so it is withdrawn:",
    "citations": "Citations corrected to the passages that hold the words:",
    "guard": "Sentences the passages do not back were removed:",
    "blocked": "The answer above is withdrawn by the leak policy:",
}


def _show_replacement(event) -> None:
    click.echo("\n\n" + click.style(REPLACED.get(event.reason, REPLACED["citations"]), fg="yellow"))
    click.echo(printable(event.text, lines=True), nl=False)


def _print_run(run):
    """Stream an answer to the terminal, then its sources and flags."""
    for event in run:
        if event.kind == "token":
            click.echo(printable(event.text, lines=True), nl=False)
        elif event.kind == "replace":
            _show_replacement(event)
    click.echo()
    _print_sources(run.answer)
    return run.answer


def _stream_answer(answerer, question, collection, history, as_json: bool):
    run = answerer.stream(question, collection, history)
    return run.finish() if as_json else _print_run(run)


@click.command(epilog=ANSWER_EXIT_HELP)
@click.argument("question")
@click.option("-c", "--collection", metavar="NAME", help="Collection to ask [default: settings ingest.collection].")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: answer, abstained, citations, flags, timings.")
@click.pass_obj
def ask(obj, question, collection, as_json) -> None:
    """Answer QUESTION from the documents, citing passages as [1], [2] (streamed)."""
    started = {"process_ms": _process_age_ms()}

    def work():
        mark = time.perf_counter()
        answerer = obj.answerer()
        answerer.check_question(question)
        started["imports_ms"] = round((time.perf_counter() - mark) * 1000, 1)
        answerer.warm_up(collection)
        return _stream_answer(answerer, question, collection, (), as_json)
    answer = _run_guarded(work)
    if as_json:
        # Where a cold start goes: the process before this command (interpreter, the CLI's
        # imports, settings), making the answerer (its imports), then each warm-up stage
        # (benchmarks/cold.py reads them).
        answer.timings.update(started, warm_up=getattr(obj.answerer(), "warm_up_ms", {}))
        click.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    _leave_now()


def _leave_now() -> None:
    """End the process without the interpreter's teardown, which frees every object of
    spaCy, presidio, torch and two llama.cpp contexts one by one (~2.5 s of a cold `ask`,
    benchmarks/README.md), as mypy does. Only when this process was started to run docent
    (not a test runner or a program calling main()), once the answer is written."""
    import logging
    import os
    from pathlib import Path
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if getattr(spec, "name", None) != "docent.cli" and Path(getattr(main, "__file__", None) or "").name != "docent":
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):      # a closed pipe (`| head`): nothing more can be written anyway
            pass
    os._exit(0)


def _process_age_ms() -> float | None:
    """Milliseconds since this process started (Linux's /proc; None elsewhere)."""
    import os
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])     # field 22: starttime
        return round((time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")) * 1000, 1)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


@click.command()
@click.option("-c", "--collection", metavar="NAME", help="Collection to ask [default: settings ingest.collection].")
@click.pass_obj
def chat(obj, collection) -> None:
    """A conversation in the terminal: follow-up questions use the earlier turns.

    Type a question and press Enter; /clear forgets the conversation; /quit or Ctrl-D ends."""
    from bot.chat import ChatSession
    answerer = obj.answerer()
    click.echo("loading the models...", err=True)
    _run_guarded(lambda: answerer.warm_up(collection))
    session = ChatSession(answerer, collection)
    pairs = answer_errors()
    while True:
        try:
            question = input("\nyou> ")
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if question.strip() in ("/quit", "/exit"):
            return
        if question.strip() == "/clear":
            session.clear()
            click.echo("(conversation cleared)")
            continue
        if not question.strip():
            continue
        click.echo("docent> ", nl=False)
        try:
            _print_run(session.stream(question))
        except KeyboardInterrupt:
            click.echo("\n(stopped)")
        except tuple(cls for cls, _ in pairs) as exc:
            click.echo(f"\ndocent: {exc}", err=True)


@click.command()
@click.argument("query")
@click.option("-c", "--collection", metavar="NAME", help="Collection to search [default: settings ingest.collection].")
@click.option("-k", "k", type=click.IntRange(1, 100), default=5, show_default=True, help="How many passages.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "keyword"]), default=None,
              help="Search mode [default: settings retrieval.mode, hybrid].")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of passages.")
@click.pass_obj
def retrieve(obj, query, collection, k, mode, as_json) -> None:
    """Just the passages that best match QUERY, with their scores (no language model)."""
    from bot.retrieval import clean_query
    query = clean_query(query)
    if not query:
        fail("the query is empty", EXIT_USAGE)
    limit = obj.settings.answer.max_question_chars
    if len(query) > limit:
        fail(f"the query is {len(query):,} characters long; the limit is {limit:,} (setting "
              f"answer.max_question_chars)", EXIT_USAGE)
    result = _run_guarded(lambda: obj.retriever().retrieve(query, collection, k=k, mode=mode))
    # Masked by the collection's leak policy, as ask's sources are.
    passages = obj.parts.leak_scanner(collection).shown(result.passages)
    if as_json:
        click.echo(json.dumps([p.to_dict(n) for n, p in enumerate(passages, start=1)], indent=2, ensure_ascii=False))
        return
    if not passages:
        click.echo("no passages found")
        return
    _print_passages(passages)
