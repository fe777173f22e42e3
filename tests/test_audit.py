"""The team server's audit log (bot/access/audit.py) and `docent audit`: the hash chain
finds edits, deletions, moved and broken lines; writers in threads and processes never
break it; retention removes old questions from the file and keeps the chain checkable."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from click.testing import CliRunner

from bot.access import audit as audit_module
from bot.access.audit import AuditError, AuditLog, Verification
from docent.cli_audit import audit
from docent.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def entry(user: str = "alice", question: str = "how long are backups kept?", **more) -> dict:
    return {"user": user, "endpoint": "/v1/chat/completions", "collection": "hr", "question": question,
            "retrieved": [3, 7], "cited": [3], "flags": [], "abstained": False, "blocked": False,
            "status": 200, "latency_ms": 812, **more}


def filled(tmp_path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(1, n + 1):
        log.append(entry(question=f"question {i}"))
    return log


def lines_of(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def rewrite(log: AuditLog, lines: list[bytes]) -> None:
    log.path.write_bytes(b"".join(lines))


class Clock:
    """Stands in for the module's datetime: appends get the time we set."""

    def __init__(self, monkeypatch):
        self.now = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
        clock = self

        class Fixed(datetime):
            @classmethod
            def now(cls, tz=None):
                return clock.now
        monkeypatch.setattr(audit_module, "datetime", Fixed)
        monkeypatch.setattr(audit_module, "_last_prune", {})


# --- writing and reading --------------------------------------------------------------------

def test_append_stores_a_chained_record_and_keeps_the_callers_fields(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    first = log.append(entry(question="Où sont les sauvegardes ?"))
    second = log.append(entry(user="bob"))
    assert first["seq"] == 1 and second["seq"] == 2
    assert first["prev"] == "0" * 64 and second["prev"] == first["hash"]
    assert TIME.match(first["time"]) and first["time"] <= second["time"]
    body = {k: v for k, v in first.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first["hash"] == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert {k: first[k] for k in entry()} == entry(question="Où sont les sauvegardes ?")
    raw = log.path.read_bytes().decode("utf-8").splitlines()
    assert len(raw) == 2 and "Où sont les sauvegardes ?" in raw[0]           # UTF-8, not \u escapes
    assert json.loads(raw[1]) == second and list(json.loads(raw[1])) == sorted(second)
    # a new AuditLog on the same file (a restarted server) continues the chain
    third = AuditLog(log.path).append(entry())
    assert third["seq"] == 3 and third["prev"] == second["hash"]


@pytest.mark.parametrize("field", ["time", "seq", "prev", "hash", "cut_prev"])
def test_a_caller_may_not_set_the_logs_own_fields(tmp_path, field):
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(AuditError, match=field):
        log.append(entry(**{field: "mine"}))
    assert not log.path.exists() or log.path.read_bytes() == b""


def test_a_record_that_is_not_json_is_refused_and_nothing_is_written(tmp_path):
    log = filled(tmp_path, 2)
    before = log.path.read_bytes()
    with pytest.raises(AuditError):
        log.append(entry(latency_ms=float("nan")))
    with pytest.raises(AuditError):
        log.append(entry(retrieved={1, 2}))
    assert log.path.read_bytes() == before and log.verify().ok


def test_records_filter_by_user_and_since(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    stored = [log.append(entry(user=u, question=f"q{i}")) for i, u in enumerate(["alice", "bob", "alice", "carol"])]
    assert [r["question"] for r in log.records()] == ["q0", "q1", "q2", "q3"]
    assert [r["question"] for r in log.records(user="alice")] == ["q0", "q2"]
    assert list(log.records(user="nobody")) == []
    today = stored[0]["time"][:10]
    assert len(list(log.records(since=today))) == 4
    assert list(log.records(since="2999-01-01")) == []
    from_third = stored[2]["time"]
    assert all(r["time"] >= from_third for r in log.records(since=from_third))
    assert [r["question"] for r in log.records(user="carol", since=from_third)] == ["q3"]
    with pytest.raises(AuditError, match="not a date"):
        list(log.records(since="last tuesday"))


def test_since_compares_on_utc(tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    log = AuditLog(tmp_path / "audit.jsonl")
    clock.now = datetime(2025, 3, 1, 23, 30, tzinfo=timezone.utc)
    log.append(entry(question="late on the 1st (UTC)"))
    clock.now = datetime(2025, 3, 2, 0, 30, tzinfo=timezone.utc)
    log.append(entry(question="early on the 2nd (UTC)"))
    assert [r["question"] for r in log.records(since="2025-03-02")] == ["early on the 2nd (UTC)"]
    # 01:00 in Paris on the 2nd is 00:00 UTC
    assert [r["question"] for r in log.records(since="2025-03-02T01:00:00+01:00")] == ["early on the 2nd (UTC)"]
    assert len(list(log.records(since="2025-03-01T23:30:00Z"))) == 2


# --- verify ------------------------------------------------------------------------------

def test_verify_an_intact_log_and_an_empty_one(tmp_path):
    assert filled(tmp_path, 5).verify() == Verification(True, 5, None, "")
    assert AuditLog(tmp_path / "none.jsonl").verify().ok


def test_verify_finds_an_edited_field(tmp_path):
    log = filled(tmp_path)
    lines = lines_of(log)
    record = json.loads(lines[2])
    record["question"] = "something harmless"
    lines[2] = (json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    rewrite(log, lines)
    result = log.verify()
    assert not result.ok and result.first_bad == 3 and result.reason == "line 3 was edited (its hash does not match its content)"


def test_verify_finds_a_spacing_change_and_a_forged_hash(tmp_path):
    log = filled(tmp_path)
    lines = lines_of(log)
    rewrite(log, lines[:1] + [lines[1].replace(b'"user":', b'"user": ')] + lines[2:])
    assert log.verify().first_bad == 2
    # a record replaced by one whose own hash is right still breaks the link of the next one
    forged = json.loads(lines[1])
    forged["question"] = "nothing to see"
    forged["hash"] = audit_module.record_hash(forged)
    rewrite(log, lines[:1] + [(audit_module.canonical(forged) + "\n").encode()] + lines[2:])
    result = log.verify()
    assert result.first_bad == 3 and "line 3 does not link to line 2" in result.reason


def test_verify_finds_a_deleted_middle_line(tmp_path):
    log = filled(tmp_path)
    lines = lines_of(log)
    rewrite(log, lines[:3] + lines[4:])
    result = log.verify()
    assert (result.ok, result.first_bad) == (False, 4)
    assert result.reason == "line 4 is missing (sequence 3 then 5)"


def test_verify_finds_a_deleted_first_line(tmp_path):
    log = filled(tmp_path)
    rewrite(log, lines_of(log)[1:])
    result = log.verify()
    assert result.first_bad == 1 and result.reason.startswith("the first record does not start the chain")


def test_verify_finds_swapped_lines(tmp_path):
    log = filled(tmp_path)
    lines = lines_of(log)
    lines[1], lines[2] = lines[2], lines[1]
    rewrite(log, lines)
    result = log.verify()
    assert result.first_bad == 2 and "line 2 is out of order" in result.reason


def test_verify_finds_a_garbage_line(tmp_path):
    log = filled(tmp_path)
    lines = lines_of(log)
    lines[3] = b"this is not json\n"
    rewrite(log, lines)
    result = log.verify()
    assert result == Verification(False, 4, 4, "line 4 is not a JSON record")
    with pytest.raises(AuditError, match="line 4 is not a JSON record"):
        list(log.records())


def test_a_half_written_last_line_is_found_and_moved_aside_by_the_next_append(tmp_path, caplog):
    log = filled(tmp_path, 3)
    whole = log.path.read_bytes()
    fragment = b'{"abstained":false,"blocked":false,"collection":"hr","question":"half a qu'
    log.path.write_bytes(whole + fragment)
    result = log.verify()
    assert (result.ok, result.first_bad) == (False, 4) and "line 4 is incomplete" in result.reason
    assert [r["seq"] for r in log.records()] == [1, 2, 3]
    with caplog.at_level(logging.WARNING, logger="bot.access.audit"):
        fourth = log.append(entry(question="after the crash"))
    assert fourth["seq"] == 4 and fourth["prev"] == json.loads(whole.splitlines()[-1])["hash"]
    assert log.verify() == Verification(True, 4, None, "")
    aside = list(tmp_path.glob("audit.jsonl.broken-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == fragment
    assert stat.S_IMODE(aside[0].stat().st_mode) == 0o600
    assert [r.getMessage() for r in caplog.records if "cut off" in r.getMessage()]
    assert log.path.read_bytes().startswith(whole) and fragment not in log.path.read_bytes()


def test_a_log_whose_only_line_is_half_written_starts_again(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.path.write_bytes(b'{"user":"ali')
    assert log.verify().first_bad == 1
    assert log.append(entry())["seq"] == 1 and log.verify().ok


def test_append_refuses_to_continue_after_a_garbage_last_line(tmp_path):
    log = filled(tmp_path, 2)
    log.path.write_bytes(log.path.read_bytes() + b"garbage\n")
    with pytest.raises(AuditError, match="last line is not a record"):
        log.append(entry())


# --- many writers ---------------------------------------------------------------------------

def test_four_threads_append_without_breaking_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    shared = AuditLog(path)
    logs = [shared, shared, AuditLog(path), AuditLog(path)]      # one object, and several on one file
    errors = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                logs[n].append(entry(user=f"thread{n}", question=f"{n}-{i}"))
        except Exception as exc:          # noqa: BLE001  (reported below)
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert shared.verify() == Verification(True, 100, None, "")
    records = list(shared.records())
    assert sorted(r["seq"] for r in records) == list(range(1, 101))
    assert sorted(r["question"] for r in records) == sorted(f"{n}-{i}" for n in range(4) for i in range(25))


def test_two_processes_append_without_breaking_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    go = tmp_path / "go"
    script = ("import sys, time, pathlib; from bot.access.audit import AuditLog\n"
              "log = AuditLog(sys.argv[1]); go = pathlib.Path(sys.argv[3])\n"
              "pathlib.Path(sys.argv[3] + '.' + sys.argv[2]).touch()\n"
              "while not go.exists(): time.sleep(0.001)\n"          # both start appending at once
              "for i in range(25): log.append({'user': sys.argv[2], 'question': f'{sys.argv[2]}-{i}'})\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), f"p{n}", str(go)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in range(2)]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.p{n}").exists() for n in range(2)) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    log = AuditLog(path)
    assert log.verify() == Verification(True, 50, None, "")
    records = list(log.records())
    assert [r["seq"] for r in records] == list(range(1, 51))
    assert {r["user"] for r in records} == {"p0", "p1"}
    assert len(list(log.records(user="p0"))) == 25


# --- files and errors -----------------------------------------------------------------------

def test_the_log_is_readable_by_its_owner_only(tmp_path):
    log = filled(tmp_path, 1)
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "audit.jsonl.lock").stat().st_mode) == 0o600


def test_an_unwritable_or_unreadable_log_is_one_line_naming_it(tmp_path):
    path = tmp_path / "no-such-folder" / "audit.jsonl"
    with pytest.raises(AuditError) as caught:
        AuditLog(path).append(entry())
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    folder = tmp_path / "a-folder.jsonl"
    folder.mkdir()
    with pytest.raises(AuditError, match="cannot read"):
        AuditLog(folder).verify()


# --- retention ------------------------------------------------------------------------------

def test_prune_removes_old_questions_and_keeps_a_verifiable_chain(tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    log = AuditLog(tmp_path / "audit.jsonl")              # keeps forever: appends prune nothing
    for i in range(3):
        log.append(entry(question=f"old private question {i}"))
    clock.now = datetime(2025, 3, 1, tzinfo=timezone.utc)
    kept = [log.append(entry(question=f"recent question {i}")) for i in range(2)]
    assert log.prune() == 0                               # retention 0: keep everything
    aging = AuditLog(log.path, retention_days=30)
    removed = aging.prune(now=datetime(2025, 3, 2, tzinfo=timezone.utc))
    assert removed == 3
    raw = log.path.read_bytes()
    assert b"old private question" not in raw and b"recent question" in raw
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    first = json.loads(raw.splitlines()[0])
    assert first["event"] == "pruned" and first["removed"] == 3 and first["before"].startswith("2025-01-31")
    assert first["cut_prev"] == kept[0]["prev"]
    assert log.verify() == Verification(True, 3, None, "")
    assert [r["seq"] for r in log.records()][1:] == [4, 5]
    # nothing more to remove: the file is not touched
    inode, mtime = log.path.stat().st_ino, log.path.stat().st_mtime_ns
    assert aging.prune(now=datetime(2025, 3, 2, tzinfo=timezone.utc)) == 0
    assert log.path.read_bytes() == raw and (log.path.stat().st_ino, log.path.stat().st_mtime_ns) == (inode, mtime)
    # the chain goes on after the prune record, and a later prune replaces it
    clock.now = datetime(2025, 4, 10, tzinfo=timezone.utc)
    log.append(entry(question="after the prune"))
    assert log.verify().ok
    assert aging.prune(now=datetime(2025, 4, 15, tzinfo=timezone.utc)) == 2
    raw = log.path.read_bytes()
    assert b"recent question" not in raw and b"after the prune" in raw and raw.count(b'"event":"pruned"') == 1
    assert log.verify() == Verification(True, 2, None, "")


def test_prune_of_everything_leaves_a_log_that_goes_on(tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    log = filled(tmp_path, 3)
    assert AuditLog(log.path, retention_days=1).prune(now=datetime(2025, 2, 1, tzinfo=timezone.utc)) == 3
    assert log.verify() == Verification(True, 1, None, "")
    clock.now = datetime(2025, 2, 1, tzinfo=timezone.utc)
    assert log.append(entry())["seq"] == 4
    assert log.verify() == Verification(True, 2, None, "")
    # an edit of the kept record after a prune is still found
    lines = lines_of(log)
    rewrite(log, [lines[0], lines[1].replace(b"how long", b"how LONG")])
    assert log.verify().first_bad == 2


def test_append_prunes_at_most_once_a_day(tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    log = AuditLog(tmp_path / "audit.jsonl", retention_days=30)
    log.append(entry(question="january question"))       # the first append of the process prunes (nothing yet)
    clock.now = datetime(2025, 6, 1, tzinfo=timezone.utc)
    log.append(entry(question="june question"))           # same process, same day: no prune
    assert b"january question" in log.path.read_bytes()
    audit_module._last_prune.clear()                      # a day later (or a new process)
    log.append(entry(question="another june question"))
    raw = log.path.read_bytes()
    assert b"january question" not in raw and b"june question" in raw
    assert log.verify() == Verification(True, 3, None, "")


# --- docent audit ---------------------------------------------------------------------------

def cli(tmp_path: Path):
    settings = load_settings(profile="test", env={})

    @click.group()
    @click.pass_context
    def group(ctx):
        ctx.obj = SimpleNamespace(settings=settings, home=str(tmp_path))
    group.add_command(audit)
    return lambda *args: CliRunner().invoke(group, ["audit", *args])


def test_cli_without_a_log(tmp_path):
    result = cli(tmp_path)()
    assert result.exit_code == 0 and "no audit log yet" in result.output
    assert cli(tmp_path)("--verify").exit_code == 0


def test_cli_lists_filters_and_prints_json(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(entry(user="alice", question="what is the leave policy? " + "x" * 200, flags=["pii", "secret"]))
    log.append(entry(user="bob", question="evil\x1b]0;owned\x07 title"))
    log.append(entry(user="alice", question="second question", status=403))
    run = cli(tmp_path)
    listed = run()
    assert listed.exit_code == 0
    rows = listed.stdout.splitlines()
    assert len(rows) == 3
    assert "alice" in rows[0] and "/v1/chat/completions" in rows[0] and "hr" in rows[0] and "pii,secret" in rows[0]
    assert "what is the leave policy?" in rows[0] and "x" * 100 not in rows[0]
    assert "\x1b" not in listed.stdout and "\\x1b" in rows[1]
    assert "403" in rows[2]
    alice = run("--user", "alice")
    assert alice.exit_code == 0 and len(alice.stdout.splitlines()) == 2 and "bob" not in alice.stdout
    as_json = run("--json", "--user", "bob")
    parsed = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert as_json.exit_code == 0 and len(parsed) == 1 and parsed[0]["question"] == "evil\x1b]0;owned\x07 title"
    assert parsed[0]["seq"] == 2 and parsed[0]["hash"]
    assert run("--since", "2999-01-01").stdout == ""
    bad = run("--since", "yesterday")
    assert bad.exit_code == 2 and "not a date" in bad.output


def test_cli_verify(tmp_path):
    log = filled(tmp_path, 3)
    run = cli(tmp_path)
    good = run("--verify")
    assert good.exit_code == 0 and good.stdout.strip() == "audit log intact: 3 records"
    lines = lines_of(log)
    rewrite(log, [lines[0], lines[1].replace(b"question 2", b"question 9"), lines[2]])
    broken = run("--verify")
    assert broken.exit_code == 1 and "line 2 was edited" in broken.stderr and broken.stdout == ""
    report = run("--verify", "--json")
    assert report.exit_code == 1 and json.loads(report.stdout)["first_bad"] == 2
    assert run("--verify", "--user", "alice").exit_code == 2


def test_cli_an_unreadable_log_exits_5(tmp_path):
    log = filled(tmp_path, 2)
    log.path.write_bytes(log.path.read_bytes() + b"{not json\n")
    result = cli(tmp_path)()
    assert result.exit_code == 5 and "line 3 is not a JSON record" in result.stderr


def test_cli_help_explains_the_log(tmp_path):
    text = cli(tmp_path)("--help").output
    assert "hash chain" in text and "audit_retention_days" in text and "question" in text
