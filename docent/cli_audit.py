"""`docent audit`: read and check the team server's audit log (`<home>/audit.jsonl`,
written by bot/access/audit.py)."""

from __future__ import annotations

import json

import click

from docent.exits import EXIT_SOME_FAILED, EXIT_STORE
from docent.terminal import fail, printable

AUDIT_EXIT_HELP = """\b
Exit status:
  0    the records were listed, or the log is intact (or there is no log yet)
  1    --verify: the log was changed or damaged (the first bad line is named)
  2    bad usage
  5    the log cannot be read
"""

QUESTION_WIDTH = 80


def _since(ctx, param, value):
    if value is None:
        return None
    from bot.access.audit_format import parse_since
    try:
        parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command(epilog=AUDIT_EXIT_HELP)
@click.option("--user", metavar="NAME", help="Only this user's records.")
@click.option("--since", metavar="YYYY-MM-DD", callback=_since,
              help="Only records from this day on (UTC), or from a full ISO time (2025-03-01T09:30:00Z).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line, every field as stored (with --verify: the verification).")
@click.option("--verify", is_flag=True,
              help="Check the hash chain of the whole log instead of listing it.")
@click.pass_obj
def audit(obj, user, since, as_json, verify) -> None:
    """List or check the audit log of the team server (`docent serve`).

    Every request to the server adds one record to <home>/audit.jsonl: the time (UTC),
    the user, the endpoint, the collection, the question, the chunks retrieved and cited,
    the guard's flags, whether the answer abstained or was blocked, the HTTP status and
    the latency. Refused requests are logged too.

    The records form a hash chain: each holds a sequence number, the sha256 of its own
    content and the hash of the record before it. --verify recomputes the chain and names
    the first line that was edited, deleted, moved, cut off by a crash or is not a record.

    Questions are personal data: with the setting server.audit_retention_days the server
    removes records older than that many days (at most once a day). The log then begins
    with a "pruned" record that says how many were removed before which time and carries
    the hash the kept records chain to, so the rest still verifies.

    \b
      docent audit --since 2025-03-01
      docent audit --user alice --json
      docent audit --verify
    """
    from bot.access.audit import AuditError, AuditLog
    if verify and (user is not None or since is not None):
        raise click.UsageError("--verify checks the whole log; --user and --since do not apply to it")
    path = obj.settings.home_dir(obj.home) / "audit.jsonl"
    if not path.exists():
        click.echo(f"no audit log yet at {printable(str(path))} (the team server writes it)")
        return
    log = AuditLog(path)
    try:
        if verify:
            result = log.verify()
        else:
            for record in log.records(user=user, since=since):
                click.echo(json.dumps(record, sort_keys=True, ensure_ascii=False) if as_json else _line(record))
            return
    except AuditError as exc:
        fail(str(exc), EXIT_STORE)
    if as_json:
        click.echo(json.dumps({"ok": result.ok, "checked": result.checked, "first_bad": result.first_bad,
                               "reason": result.reason}))
    elif result.ok:
        click.echo(f"audit log intact: {result.checked} records")
    else:
        click.echo(f"docent: {printable(str(path))}: {result.reason}", err=True)
    if not result.ok:
        raise SystemExit(EXIT_SOME_FAILED)


def _line(record: dict) -> str:
    """One record for a person: time, user, endpoint, collection, status, flags, question."""
    def field(value) -> str:
        if value is None or value == "" or value == []:
            return "-"
        if isinstance(value, list):
            return ",".join(printable(str(v)) for v in value)
        return printable(str(value))

    if record.get("event") == "pruned":
        return (f"{field(record.get('time'))}  pruned {field(record.get('removed'))} record(s) "
                f"from before {field(record.get('before'))}")
    question = record.get("question") or ""
    if not question and record.get("refused"):
        question = f"refused: {record['refused']}"
    question = " ".join(str(question).split())
    if len(question) > QUESTION_WIDTH:
        question = question[:QUESTION_WIDTH - 1] + "…"
    return "  ".join([field(record.get("time")), field(record.get("user")), field(record.get("endpoint")),
                      field(record.get("collection")), field(record.get("status")), field(record.get("flags")),
                      field(question)])
