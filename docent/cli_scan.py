"""`docent scan`: the leak guard's scanners on files, without ingesting them (a pre-flight
check of a folder before pointing docent at it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from docent.terminal import printable

SCAN_EXIT_HELP = """\b
Exit status:
  0    nothing found
  1    personal data, secrets or confidential markings found (listed)
  2    bad usage
  3    some files could not be read (listed; the rest were scanned)
"""


@click.command(epilog=SCAN_EXIT_HELP)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: findings (file, line, start, end, kind, type, score, text masked), errors.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(["pii", "secret", "confidential"]),
              help="Only these kinds (repeat) [default: all].")
@click.pass_obj
def scan(obj, paths, as_json, kinds) -> None:
    """Look for personal data, secrets and confidential markings in PATHS (files or
    folders, the formats `docent ingest` reads) without ingesting anything.

    Found text is masked in the output (its first two characters at most).

    \b
      docent scan ~/company-docs
      docent scan notes.md config/ --json --kind secret
    """
    from bot.guard.leaks import KINDS, LeakScanner, mask
    from ingest import loaders
    from ingest.document import LoadError
    from ingest.manifest import discover
    settings = obj.settings
    kinds = tuple(kinds) or KINDS
    scanner = LeakScanner(settings.leaks)
    files, problems = [], []
    for path in paths:
        if not path.exists():
            problems.append({"file": str(path), "error": "no such file or folder"})
    found = discover([p for p in paths if p.exists()], settings.ingest.exclude, lambda p: loaders.format_for(p) is not None)
    files = found.files
    findings = []
    show = not as_json and sys.stderr.isatty()
    for number, found in enumerate(files, start=1):
        path = Path(found)
        if show:
            click.echo(f"\rscanning {number}/{len(files)}: {path.name[:60]:60}", nl=False, err=True)
        try:
            text = loaders.load_file(path, int(settings.ingest.max_file_mb * 1024 * 1024)).text
        except LoadError as exc:
            problems.append({"file": str(path), "error": str(exc)})
            continue
        line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
        for leak in scanner.find(text, kinds):
            line = _line_of(line_starts, leak.start)
            findings.append({"file": str(path), "line": line + 1, "start": leak.start - line_starts[line],
                             "end": leak.end - line_starts[line], "kind": leak.kind, "type": leak.type,
                             "score": round(leak.score, 3), "text": mask(text[leak.start:leak.end])})
    if show:
        click.echo("\r" + " " * 80 + "\r", nl=False, err=True)
    if as_json:
        click.echo(json.dumps({"findings": findings, "errors": problems, "files": len(files)}, indent=2,
                              ensure_ascii=False))
    else:
        for f in findings:
            click.echo(f"{printable(f['file'])}:{f['line']}:{f['start'] + 1}: {f['kind']} {f['type']} {printable(f['text'])}")
        for p in problems:
            click.echo(f"docent: {printable(p['file'])}: {printable(p['error'])}", err=True)
        click.echo(f"{len(findings)} finding(s) in {len(files)} file(s)", err=True)
    sys.exit(3 if problems else 1 if findings else 0)


def _line_of(starts: list[int], position: int) -> int:
    import bisect
    return bisect.bisect_right(starts, position) - 1
