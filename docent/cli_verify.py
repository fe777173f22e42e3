"""`docent verify`: the groundedness check on any answer, from any model, against given
passages (the same check `ask` runs on its own answers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

VERIFY_EXIT_HELP = """\b
Exit status:
  0    checked (whatever the verdict)
  1    checked, and --strict was given and a sentence is not supported
  2    bad input (no answer, unreadable file, a batch line that is not a JSON object)
"""


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror if isinstance(exc, OSError) else 'not UTF-8 text'}")


def _batch(path: str):
    """(line number, context, answer, question) for each line of a JSONL file."""
    for number, line in enumerate(_read(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            context, answer, question = row["context"], row["answer"], row.get("question", "")
            if isinstance(context, str):
                context = [context]
            if not isinstance(answer, str) or not isinstance(question, str) \
                    or not all(isinstance(c, str) for c in context):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise click.UsageError(f'{path}:{number}: expected {{"context": [passage, ...], "answer": "..."}}')
        yield number, context, answer, question


def _show(verdict) -> None:
    colours = {"supported": "green", "unsupported": "yellow", "contradicted": "red", "wrong_citation": "cyan"}
    for s in verdict.sentences:
        if s.label == "skipped":
            continue
        where = f" (best passage [{s.best_passage}])" if s.best_passage else ""
        # A label the guard is not sure of is shown as "uncertain", without the warning colour.
        shown = ("uncertain", None) if s.level == "uncertain" else (s.label, colours[s.label])
        click.echo(click.style(f"{shown[0]:14}", fg=shown[1]) + f" {s.score:.2f}  {s.text}{where}")
        if s.reason:
            click.echo(f"{'':20}{s.reason}")
    click.echo(f"groundedness {verdict.score:.2f}")


def _judge(settings):
    """The bundled model as the sentence judge (None for a model server: no token
    probabilities); loading it takes a few seconds."""
    from bot.generators import GeneratorError, make_generator
    from bot.guard.judge import judge_for
    from bot.prompts import Prompts
    judge = judge_for(make_generator(settings.generation), Prompts(settings.prompts_dir()))
    if judge is None:
        return None
    try:
        judge.warm_up()
    except GeneratorError as exc:
        raise click.ClickException(f"cannot load the model that judges sentences: {exc} "
                                   f"(DOCENT_GUARD__JUDGE=false checks without it)")
    return judge


@click.command(epilog=VERIFY_EXIT_HELP)
@click.option("--context", "contexts", multiple=True, metavar="FILE",
              help="A passage the answer may cite (repeat; the first is [1]).")
@click.option("--answer", metavar="TEXT|FILE", help="The answer to check: a file's path, or the text itself.")
@click.option("--question", default="", metavar="TEXT",
              help='The question the answer answers (a bare "Yes." is then checked as the question).')
@click.option("--batch", metavar="FILE.jsonl",
              help='Check many: each line {"context": [passage, ...], "answer": "...", "question": "..." '
                   '(optional)}; one result line each.')
@click.option("--json", "as_json", is_flag=True, help="Print JSON: sentences (text, label, score, best_passage).")
@click.option("--strict", is_flag=True, help="Exit 1 when a sentence is unsupported, contradicted or wrongly cited.")
@click.pass_obj
def verify(obj, contexts, answer, question, batch, as_json, strict) -> None:
    """Check that each sentence of an answer is backed by the passages it cites.

    Sentences cite passages as [1], [2] (numbered in the order of --context); a
    sentence without a marker is checked against all of them. Each sentence is
    labelled supported, unsupported, contradicted (the passage says otherwise: another
    number, a negation, an opposite word) or wrong_citation (another passage backs it),
    with a level: flagged (the guard is sure), uncertain (not confirmed by the passages)
    or supported. With guard.judge on (the default) the bundled model also judges each
    sentence (a few seconds to load, then 2-4 s a sentence on 2 cores).

    \b
      docent verify --context install.md --answer "Run make install [1]."
      docent verify --batch answers.jsonl --json
    """
    from bot.guard.groundedness import GroundednessGuard
    if batch and (contexts or answer):
        raise click.UsageError("give either --batch or --context/--answer, not both")
    if not batch and not answer:
        raise click.UsageError("nothing to check: give --answer TEXT|FILE (with --context FILE...) or --batch FILE")
    config = obj.settings.guard
    # Loaded once for the whole batch; the model as a judge when guard.judge is on.
    guard = GroundednessGuard(config.threshold or None, judge=_judge(obj.settings) if config.judge else None)
    problems = False
    if batch:
        for _, context, text, asked in _batch(batch):
            verdict = guard.check(text, context, asked)
            problems |= not verdict.all_supported
            if as_json:
                click.echo(json.dumps(verdict.to_dict(), ensure_ascii=False))
            else:
                _show(verdict)
                click.echo()
    else:
        text = _read(answer) if Path(answer).is_file() else answer
        if not text.strip():
            raise click.UsageError("the answer is empty")
        verdict = guard.check(text, [_read(path) for path in contexts], question)
        problems = not verdict.all_supported
        if as_json:
            click.echo(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=False))
        else:
            _show(verdict)
    sys.exit(1 if strict and problems else 0)
