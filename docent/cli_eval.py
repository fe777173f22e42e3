"""`docent eval`: how well docent answers a collection, measured on questions made from
the collection itself (or on a test set of the user's), as one report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from docent.exits import EXIT_STORE, EXIT_USAGE, answer_errors, guarded
from docent.terminal import fail

EVAL_EXIT_HELP = """\b
Exit status:
  0    report written
  2    bad input (unreadable or invalid test set, no questions could be made)
  5    the collection is missing, empty or cannot be read
  6    the language model cannot be loaded or reached
  7    the model server stopped answering
  8    the model server's reply broke off or carried an error
  130  stopped (Ctrl-C): run the same command again to resume
"""


@click.command(epilog=EVAL_EXIT_HELP)
@click.option("-c", "--collection", metavar="NAME", help="Collection to test [default: settings ingest.collection].")
@click.option("--dataset", metavar="FILE.jsonl", type=click.Path(dir_okay=False),
              help="Your own questions (the format `eval` writes: one JSON object per line). "
                   "Without it, questions are made from the collection.")
@click.option("--questions", "n_questions", default=30, show_default=True, metavar="N",
              help="How many questions to make from the collection.")
@click.option("--unanswerable", default=0.2, show_default=True, metavar="SHARE",
              help="Share of the made questions that the documents cannot answer (tests \"I don't know\").")
@click.option("--paraphrased", default=5, show_default=True, metavar="N",
              help="Questions also asked in two other wordings (do the answers agree?).")
@click.option("--out", "out_dir", metavar="DIR", type=click.Path(file_okay=False),
              help="Where the test set, the rows and the report go [default: ./docent-eval/NAME].")
@click.option("-k", "k", default=10, show_default=True, help="Passages retrieved per question for hit@k.")
@click.option("--user", metavar="NAME",
              help="Measure what this user gets (docent users): questions are made only from the "
                   "documents they may read, and answered with their rights.")
@click.pass_obj
def eval_command(obj, collection, dataset, n_questions, unanswerable, paraphrased, out_dir, k, user) -> None:
    """Measure how well docent answers COLLECTION and write a report (HTML, plots, JSON).

    \b
    docent eval --collection handbook                 # ~30 questions made from it
    docent eval --dataset my_questions.jsonl          # your own questions
    docent eval --collection handbook --out report/   # report/report.html

    Without --dataset, the local model writes questions from sampled passages (each
    checked: the answer must be in its passage), some that the documents cannot answer,
    and rewordings of a few; they are saved as OUT/dataset.jsonl, which you can edit and
    run again with --dataset. Then every question is asked as a user would ask it:
    retrieval hit@k, answer correctness, groundedness, abstention, leak flags, latency
    and agreement between rewordings go into OUT/report.html and OUT/report.json.
    Stopped runs resume where they stopped (same command). With --user, the test set and
    every answer are what that user may see: a document their groups were not granted is
    neither asked about nor retrieved."""
    settings = obj.settings
    name = collection or settings.ingest.collection
    out = Path(out_dir or Path("docent-eval") / name)
    if not 0 <= unanswerable <= 1:
        raise click.BadParameter("must be between 0 and 1", param_hint="--unanswerable")
    rights = _rights_of(obj.parts.home, user, name) if user else None
    guarded(lambda: _evaluate(obj.answerer(), name, dataset, n_questions, unanswerable, paraphrased, out, k, rights),
            answer_errors(), f"stopped; run the same command again to resume (what was done is kept in {out})")


def _rights_of(home: Path, user: str, collection: str):
    """The user's Rights (exit 2 for an unknown user, or a collection they cannot read)."""
    from bot.access.rights import Rights
    from bot.access.users import AccessError, AccessStore
    try:
        rights = Rights.of_name(AccessStore(home), user)
    except AccessError as exc:
        fail(str(exc), EXIT_USAGE)
    if rights is None:
        fail(f"no user '{user}' (docent users list)", EXIT_USAGE)
    if not rights.can_read_collection(collection):
        fail(f"collection '{collection}' is not one {user} can read", EXIT_USAGE)
    return rights


def _evaluate(answerer, name, dataset, n_questions, unanswerable, paraphrased, out: Path, k: int,
              rights=None) -> None:
    from tqdm import tqdm
    from evaluation.dataset import DatasetError, read_dataset
    from evaluation.metrics import summarize
    from evaluation.report import write_report
    from evaluation.run import Evaluation
    started = time.time()
    store = answerer.retriever.collection(name)           # a missing or empty collection fails here
    if not store.chunk_count():
        fail(f"collection '{name}' is empty: run `docent ingest PATH --collection {name}` first", EXIT_STORE)
    if dataset:
        try:
            items = read_dataset(dataset)
        except DatasetError as exc:
            fail(str(exc), EXIT_USAGE)
        source = str(dataset)
    else:
        from evaluation.synth import QuestionWriter, build_test_set
        click.echo(f"making about {n_questions} test questions from '{name}' with the local model "
                   f"(saved to {out / 'dataset.jsonl'})", err=True)
        writer = QuestionWriter(answerer.generator, answerer.prompts)
        with tqdm(total=n_questions, unit="question", file=sys.stderr, dynamic_ncols=True) as bar:
            def made(count, total, text):
                bar.n = min(count, total)
                bar.set_postfix_str(text[:50])
                bar.refresh()
            def search(question):
                # The passages the model would read for it (retrieval.k): none may name all it asks about.
                return [p.text for p in answerer.retriever.retrieve(question, name, rights=rights).passages]
            items, dropped = build_test_set(writer, store, search, out / "dataset.jsonl", n_questions, unanswerable,
                                            paraphrased, skip=answerer.retriever.hidden(store, rights), progress=made)
        if dropped:
            click.echo("drafts dropped: " + ", ".join(f"{n} {why}" for why, n in sorted(dropped.items())), err=True)
        if not items:
            fail("no test question could be made from the collection (see the drafts dropped above)", EXIT_USAGE)
        source = "made from the collection"
    answerer.warm_up(name)
    total = sum(1 + len(i.paraphrases) for i in items)
    with tqdm(total=total, unit="question", file=sys.stderr, dynamic_ncols=True, desc="asking") as bar:
        def asked(count, _total, text):
            bar.n = count
            bar.set_postfix_str(text[:50])
            bar.refresh()
        rows = Evaluation(answerer, name, out, k=k, rights=rights).run(items, progress=asked)
    summary = summarize(rows, k_max=k)
    settings = answerer.settings
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "collection": name, "questions_from": source,
            **({"user": rights.user} if rights is not None else {}),
            "model": settings.generation.model if settings.generation.backend != "openai" else settings.generation.server_model,
            "embedder": settings.embedding.model, "retrieval": settings.retrieval.mode,
            "seconds": round(time.time() - started, 1)}
    paths = write_report(summary, rows, out, title=f"docent eval: {name}", meta=meta)
    _print_headline(summary)
    click.echo(f"report: {next(p for p in paths if p.name == 'report.html')}")


def _print_headline(summary: dict) -> None:
    r, a, ab = summary["retrieval"], summary["answers"], summary["abstention"]

    def fmt(value):
        return "-" if value is None else f"{value:.2f}"
    click.echo(f"{summary['questions']} questions ({summary['answerable']} answerable, "
               f"{summary['unanswerable']} not), {summary['errors']} errors")
    click.echo(f"retrieval  hit@1 {fmt(r['hit_at_k'].get('1'))}  hit@5 {fmt(r['hit_at_k'].get('5'))}  MRR {fmt(r['mrr'])}")
    click.echo(f"answers    F1 {fmt(a['f1'])}  contains reference {fmt(a['contains'])}  "
               f"correct with citation {fmt(a['correct_with_citation'])}")
    click.echo(f"abstention precision {fmt(ab['precision'])}  recall {fmt(ab['recall'])}")

