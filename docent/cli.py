"""The `docent` command line: a thin layer over ingest.pipeline and bot/."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING

import click

from docent import __version__
from docent.exits import EXIT_SOME_FAILED, EXIT_USAGE, guarded, store_errors
from docent.terminal import fail, printable

if TYPE_CHECKING:
    from docent.settings import Settings

EXIT_CODES_HELP = """\b
Exit status:
  0    every file was ingested (or was unchanged)
  1    some files failed, or a source could not be read (each is listed with its
       reason; the rest were ingested and that source's files left as they were)
  2    bad usage or settings
  3    another docent process is writing this collection
  4    the collection was built with another embedding model (use --reembed)
  5    the collection cannot be opened or written
  130  interrupted (finished files were saved; run again to continue)
"""


class Context:
    """What every command gets: the settings, and the components built from them (the one
    builder, bot/builder.py, imported only when a command needs a component)."""

    def __init__(self, settings: Settings, home: str | None):
        self.settings = settings
        self.home = home
        self._parts = None

    @property
    def parts(self):
        if self._parts is None:
            from bot.builder import Components
            self._parts = Components(self.settings, self.home)
        return self._parts

    def _checked(self, generator: bool):
        """The components, once the registry-keyed settings (backends) are known to exist:
        a wrong one stops here with exit 2, before any model loads."""
        from docent.settings import SettingsError
        try:
            self.parts.check(generator=generator)
        except SettingsError as exc:
            fail(str(exc), EXIT_USAGE)
        return self.parts

    def answerer(self):
        return self._checked(generator=True).answerer

    def retriever(self):
        return self._checked(generator=False).retriever

    def ingestor(self, settings: Settings | None = None):
        parts = self._checked(generator=False)
        return parts.ingestor if settings is None or settings == self.settings else parts.ingestor_for(settings)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="docent")
@click.option("--home", metavar="DIR", envvar="DOCENT_HOME",
              help="Folder holding the collections [env DOCENT_HOME; default: the project's indexes/].")
@click.option("--settings", "settings_file", metavar="FILE", envvar="DOCENT_SETTINGS",
              help="A TOML file overriding the default settings [env DOCENT_SETTINGS].")
@click.pass_context
def main(ctx: click.Context, home: str | None, settings_file: str | None) -> None:
    """docent answers questions about your own documents, on your own machine.

    \b
    Start here:
      docent ingest ~/company-docs        index a folder (again: only what changed)
      docent sources                      what the index holds
      docent remove ~/company-docs/x.pdf  drop a file from the index
      docent ask "How do I rotate the API keys?"   a cited answer (streamed)
      docent chat                         a conversation with follow-ups
      docent retrieve "api keys" -k 5     just the best passages
      docent verify --context a.md --answer "..."   is an answer backed by its passages?
      docent scan ~/company-docs          personal data, secrets, confidential text?
      docent eval                         how well does it answer? questions, report
      docent serve                        a team server: OpenAI-compatible API, users, rights

    Indexes are kept per collection (default: "default") under --home.
    Settings: docent/settings.toml, overridden by --settings FILE and by env
    DOCENT_<SECTION>__<KEY> (e.g. DOCENT_EMBEDDING__BACKEND=torch).
    """
    # Imported here: pydantic takes a few tenths of a second, which `--help` need not wait for.
    from docent.settings import SettingsError, load_settings
    try:
        settings = load_settings(settings_file)
    except SettingsError as exc:
        fail(str(exc), EXIT_USAGE)
    ctx.obj = Context(settings, home)


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, metavar="SOURCE...")
@click.option("-c", "--collection", metavar="NAME", help="Collection to write [default: settings ingest.collection, 'default'].")
@click.option("--reembed", is_flag=True, help="Re-embed every stored chunk with the configured model (after changing embedding.model).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Also skip paths matching GLOB (repeatable).")
@click.option("--watch", is_flag=True, help="Stay running and ingest changes to the folders as they happen (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def ingest(obj: Context, paths, collection, reembed, exclude, watch, as_json, quiet) -> None:
    """Load, chunk, embed and index each SOURCE: a file or folder, a git branch
    (git+file:///srv/git/handbook.git@main, or any URL git can clone after 'git+'), or a
    documentation site (https://wiki.example/docs/: pages under that address, robots.txt
    honoured, sources.site_max_pages per run).

    Re-running only does what changed: new and edited files are embedded, files deleted
    from a source leave the index, renamed files reuse their vectors. The collection
    remembers its sources: `docent sync` reads them all again. Markdown, text, reST, HTML,
    PDF (scanned pages through OCR), images (OCR), Word, PowerPoint, Excel, CSV, e-mail,
    EPUB and notebooks are read; other files are listed as skipped. A file that cannot be
    read gets one line with the reason and the rest goes on. Ctrl-C keeps every finished
    file; the index is never half-written.
    """
    from ingest.sources import kind_of

    if not paths and not reembed:
        raise click.UsageError("give at least one file, folder, git+URL or site address to ingest (or --reembed)")
    missing = [p for p in paths if kind_of(p) == "folder" and not os.path.lexists(os.path.expanduser(p))]
    if missing:
        fail(f"{printable(missing[0])}: no such file or folder", EXIT_USAGE)
    if watch and (not paths or any(kind_of(p) != "folder" for p in paths)):
        fail("--watch watches files and folders on this machine; use `docent sync` on a timer for git and sites",
             EXIT_USAGE)
    settings = obj.settings
    if exclude:
        settings = settings.with_values("ingest", exclude=settings.ingest.exclude + tuple(exclude))
    ingestor = obj.ingestor(settings)
    if watch:
        _watch(ingestor, list(paths), collection, as_json)
        return
    bar = _ProgressBar(disabled=quiet or as_json)
    # Ctrl-C during the run is the ingestor's to handle (finished files are kept); here
    # it can only come while the collection is opened: nothing was written.
    report = guarded(lambda: ingestor.ingest(paths, collection=collection, reembed=reembed, progress=bar.update),
                     store_errors(), "interrupted; the index is unchanged", cleanup=bar.close)
    bar.close()
    _show(report, as_json)
    sys.exit(report.exit_code)


@main.command(epilog=EXIT_CODES_HELP)
@click.option("-c", "--collection", metavar="NAME", help="Collection to bring up to date [default: 'default'].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def sync(obj: Context, collection, as_json, quiet) -> None:
    """Read every source the collection was built from again (folders, git branches,
    sites: see `docent sources --by-source`) and apply what changed: new and edited files
    embedded, deleted or moved files, pages that now 404 and files removed from a branch
    taken out. A source that cannot be read (a folder not mounted, a server down) is named
    with the reason and its files stay as they were. Run it from cron or a systemd timer
    to keep a collection current."""
    ingestor = obj.ingestor()
    bar = _ProgressBar(disabled=quiet or as_json)
    report = guarded(lambda: ingestor.sync(collection, progress=bar.update), store_errors(),
                     "interrupted; the index is unchanged", cleanup=bar.close)
    bar.close()
    _show(report, as_json)
    sys.exit(report.exit_code)


def _show(report, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for spec, reason in report.source_errors:
        click.echo(f"source not read: {printable(reason if spec in reason else f'{spec}: {reason}')}", err=True)
    for note in report.notes:
        click.echo(f"note: {printable(note)}", err=True)
    for r in report.failed:
        click.echo(f"failed: {printable(r.path)}: {printable(r.reason or '')}", err=True)
    if report.skipped:
        shown = ", ".join(printable(r.path) for r in report.skipped[:5])
        more = f" and {len(report.skipped) - 5} more" if len(report.skipped) > 5 else ""
        click.echo(f"skipped (unsupported format): {shown}{more}", err=True)
    click.echo(report.summary())


def _watch(ingestor, paths: list[str], collection: str | None, as_json: bool) -> None:
    """docent ingest --watch: a report for each batch that changed something; Ctrl-C exits 130."""
    from ingest.sources.watch import keep_in_sync

    def on_report(report) -> None:
        if report.source_errors or any(r.action != "unchanged" for r in report.results):
            _show(report, False) if not as_json else click.echo(json.dumps(report.to_dict()))
            sys.stdout.flush()

    def on_note(message: str) -> None:
        click.echo(f"watch: {printable(message)}", err=True)

    click.echo(f"watching {', '.join(printable(p) for p in paths)} (Ctrl-C to stop)", err=True)
    guarded(lambda: keep_in_sync(ingestor, paths, collection, on_report, on_note), store_errors(),
            "stopped watching; every change seen was saved")


class _ProgressBar:
    """tqdm on stderr, shown only on a terminal; failures are printed as they happen."""

    def __init__(self, disabled: bool):
        self.disabled = disabled
        self.bar = None
        self.noted = False            # a long load's note is shown beside the count

    def update(self, event) -> None:
        if self.disabled:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=event.total, unit="file", desc="ingest", file=sys.stderr,
                            disable=None, dynamic_ncols=True, leave=False)
        if event.action.startswith("OCR"):        # a scan being read, page by page
            self.bar.set_postfix_str(f"{printable(event.path.rsplit('/', 1)[-1])}: {event.action}")
            self.noted = True
            return
        if self.noted:
            self.bar.set_postfix_str("")
            self.noted = False
        self.bar.update(event.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@main.command()
@click.option("-c", "--collection", metavar="NAME", help="Collection to list [default: 'default'].")
@click.option("--by-source", is_flag=True, help="List the sources the collection syncs (folders, git branches, sites) instead of files.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
def sources(obj: Context, collection, by_source, as_json) -> None:
    """What the index holds: file, chunks, status, last ingested, and how many chunks
    carry each leak label (secret, pii, confidential, restricted, injection); pages read
    by OCR with low confidence are named. --by-source: each source with its files,
    chunks, last sync and version (a git commit), and whether a watcher follows it."""
    ingestor = obj.ingestor()
    if by_source:
        _by_source(ingestor, collection, as_json)
        return
    records, labels = guarded(lambda: (ingestor.sources(collection), ingestor.label_counts(collection)),
                              store_errors())
    from bot.guard.labels import ChunkLabeller
    rules = ChunkLabeller(obj.settings.leaks_for(collection))
    if as_json:
        click.echo(json.dumps([{**r.__dict__, "labels": labels.get(r.path, {}),
                                "restricted_by": rules.restricting_rule(r.path)} for r in records], indent=2))
        return
    if not records:
        click.echo("the collection is empty")
        return
    shown = {r.path: printable(r.path) for r in records}
    width = min(70, max(len(p) for p in shown.values()))
    click.echo(f"{'file':<{width}}  {'chunks':>6}  {'status':<6}  {'last ingested':<16}  labels (chunks)")
    for r in records:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.ingested_at))
        path = shown[r.path] if len(shown[r.path]) <= width else "…" + shown[r.path][-(width - 1):]
        line = f"{path:<{width}}  {r.n_chunks:>6}  {r.status:<6}  {when:<16}  {_labels(labels.get(r.path, {}))}"
        rule = rules.restricting_rule(r.path)
        if rule:
            line += f"  (restricted by the path rule {printable(rule)})"
        if r.status != "ok" and r.error:
            line += f"  ({printable(r.error)})"
        low = r.origin_info().get("ocr_low_pages")
        if low:
            line += f"  (OCR low confidence on page(s) {printable(str(low))}: check the scan)"
        click.echo(line.rstrip())
    ok = [r for r in records if r.status == "ok"]
    totals: dict[str, int] = {}
    for counts in labels.values():
        for label, n in counts.items():
            totals[label] = totals.get(label, 0) + n
    click.echo(f"{len(records)} files ({len(ok)} ok, {len(records) - len(ok)} failed), "
               f"{sum(r.n_chunks for r in records)} chunks" + (f"; labelled chunks: {_labels(totals)}" if totals else ""))
    excluded = [label for label in obj.settings.leaks_for(collection).exclude if totals.get(label)]
    if excluded:
        click.echo(f"never retrieved (settings leaks.exclude): chunks labelled {', '.join(excluded)}")


def _by_source(ingestor, collection: str | None, as_json: bool) -> None:
    from ingest.sources.watch import watching
    from ingest.store import collection_dir

    records, files = guarded(lambda: (ingestor.remembered(collection), ingestor.sources(collection)), store_errors())
    name = collection or ingestor.settings.ingest.collection
    watch = watching(collection_dir(ingestor.home, name)) or {}
    rows = []
    for rec in records:
        mine = [f for f in files if f.source_spec == rec.spec]
        rows.append({"source": rec.spec, "kind": rec.kind, "files": len(mine),
                     "failed": sum(1 for f in mine if f.status != "ok"), "chunks": sum(f.n_chunks for f in mine),
                     "synced_at": rec.synced_at, "version": rec.state.get("commit"), "error": rec.error,
                     "watched": rec.spec in watch.get("paths", ())})
    others = [f for f in files if f.source_spec not in {r.spec for r in records}]
    if as_json:
        click.echo(json.dumps({"sources": rows, "other_files": len(others), "watch": watch or None}, indent=2))
        return
    if not rows:
        click.echo("no sources remembered (collections from before docent remembered them: ingest their folders again)")
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["synced_at"])) if row["synced_at"] else "never"
        line = (f"{printable(row['source'])}  [{row['kind']}]  {row['files']} files ({row['failed']} failed), "
                f"{row['chunks']} chunks, synced {when}")
        if row["version"]:
            line += f", commit {row['version'][:12]}"
        if row["watched"]:
            line += ", watched"
        if row["error"]:
            line += f"  (last sync failed: {printable(row['error'])})"
        click.echo(line)
    if others:
        click.echo(f"{len(others)} other files (uploads, or single files inside a synced folder)")
    if watch.get("last_change"):
        click.echo(f"watched by process {watch['pid']}; last change "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(watch['last_change']))}")


def _labels(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("-c", "--collection", metavar="NAME", help="Collection to change [default: 'default'].")
@click.pass_obj
def remove(obj: Context, paths, collection) -> None:
    """Drop files (or everything under folders) from the index. The files themselves are not touched."""
    removed = guarded(lambda: obj.ingestor().remove(paths, collection), store_errors())
    if not removed:
        fail("none of these paths is in the index (see `docent sources`)", EXIT_SOME_FAILED)
    for path in removed:
        click.echo(f"removed: {printable(path)}")


@main.command()
@click.pass_obj
def collections(obj: Context) -> None:
    """List the collections in the store (the home folder, or store.url's database):
    files, chunks, embedding model, how a search goes (exact, or approximate past
    store.approximate_above chunks) and when each last changed. One that cannot be
    opened is named with the reason."""
    from ingest.store import StoreError
    ingestor = obj.ingestor()
    names = guarded(ingestor.collections, store_errors())
    shown = ingestor.store.describe()
    click.echo(f"home: {ingestor.home}" if ingestor.store.kind == "faiss" else f"database: {printable(shown)}")
    for name in names:
        try:
            o = ingestor.overview(name)
        except StoreError as exc:
            click.echo(f"{name}  (cannot be read: {printable(str(exc))})")
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(o["updated_at"])) if o["updated_at"] else "never"
        click.echo(f"{name}  {o['files']} files, {o['chunks']} chunks, {o['model']}, search {o['search']}, "
                   f"updated {when}")
    if not names:
        click.echo("(no collections yet: run `docent ingest PATH`)")


from docent.cli_answer import ask, chat, retrieve  # noqa: E402  (commands kept in their own module)

main.add_command(ask)
main.add_command(chat)
main.add_command(retrieve)
from docent.cli_verify import verify  # noqa: E402
from docent.cli_scan import scan  # noqa: E402
from docent.cli_eval import eval_command  # noqa: E402
main.add_command(verify)
main.add_command(scan)
main.add_command(eval_command, name="eval")
from docent.cli_serve import serve  # noqa: E402
from docent.cli_access import access, users  # noqa: E402
from docent.cli_audit import audit  # noqa: E402
main.add_command(serve)
main.add_command(users)
main.add_command(access)
main.add_command(audit)
from docent.cli_store import store  # noqa: E402
main.add_command(store)

if __name__ == "__main__":
    main()
