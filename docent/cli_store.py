"""`docent store`: the stores collections are kept in (settings store.backend), and
copying collections between them."""

from __future__ import annotations

import sys

import click

from docent.exits import EXIT_USAGE, guarded, store_errors
from docent.terminal import fail, printable

MIGRATE_HELP = """\b
Exit status:
  0    every collection was copied
  2    bad usage (the same store on both sides, an unknown collection name)
  5    a store cannot be opened or written (the one line says which and why)
  130  interrupted (what was committed stays; run again with --replace)
"""


@click.group()
def store() -> None:
    """Where collections are kept: settings store.backend ("faiss": folders under the
    home; "postgres": a PostgreSQL database, store.url)."""


@store.command(epilog=MIGRATE_HELP)
@click.option("--from", "source", type=click.Choice(["faiss", "postgres"]), required=True,
              help="The store to copy from; the configured store.backend is copied to.")
@click.option("-c", "--collection", "names", multiple=True, metavar="NAME",
              help="A collection to copy (repeatable) [default: every collection in the source].")
@click.option("--replace", is_flag=True, help="Overwrite a collection that already exists in the target.")
@click.pass_obj
def migrate(obj, source: str, names: tuple[str, ...], replace: bool) -> None:
    """Copy collections from another store into the configured one (e.g. `--from faiss`
    with store.backend = "postgres"), vectors kept: nothing is embedded again. The
    original is left as it was."""
    from ingest.store.backends import open_store
    from ingest.store.copy import copy_collection

    settings = obj.settings
    if source == settings.store.backend:
        fail(f"--from {source} is the configured store.backend too: set store.backend (or DOCENT_STORE__BACKEND) "
             f"to the store to copy into", EXIT_USAGE)
    home = settings.home_dir(obj.home)
    origin = open_store(settings.store, home, backend=source)
    target = open_store(settings.store, home)
    available = guarded(origin.names, store_errors())
    chosen = list(names) or available
    unknown = [n for n in chosen if n not in available]
    if unknown:
        fail(f"no collection {', '.join(map(repr, unknown))} in {origin.describe()} "
             f"(there: {', '.join(available) or 'none'})", EXIT_USAGE)
    if not chosen:
        click.echo(f"no collections in {printable(origin.describe())}: nothing to copy")
        return
    click.echo(f"copying {len(chosen)} collection(s) from {printable(origin.describe())} "
               f"to {printable(target.describe())}", err=True)
    for name in chosen:
        with click.progressbar(length=1, label=name, file=sys.stderr) as bar:
            def progress(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)
            report = guarded(lambda: copy_collection(origin, target, name, replace=replace, progress=progress),
                             store_errors())
        click.echo(printable(report.summary()))
