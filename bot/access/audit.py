"""The audit log of the team server: who asked what, what was retrieved and cited, what
the guard flagged, and how it ended. One JSON object per line in `<home>/audit.jsonl`.

Each record carries `time` (UTC, milliseconds, "Z"), `seq` (1, 2, 3, ...), `prev` (the
previous record's hash; 64 zeros for the first) and `hash` (sha256 of the record's
canonical JSON without `hash`): a hash chain. `verify()` recomputes it and names the first
line that was edited, deleted, moved, cut off or is not a record. (Whoever can write the
file can recompute a whole chain; the chain finds careless and partial changes, and an
edit after a copy of the log was kept elsewhere.)

Writers in several threads and processes share it: a `threading.Lock` and an exclusive
`flock` on `audit.jsonl.lock` are held while the last record is read (from the end of the
file) and the new line is written with one `write` on an `O_APPEND` file, then synced.
A line cut off by a crash is moved aside to `audit.jsonl.broken-<time>` by the next append,
which then continues the chain from the last complete record.

Questions are personal data: with `retention_days` the records older than that are removed
(`prune`, at most once a day per process from `append`). The file is rewritten through
docent.atomic, beginning with a record `{"event": "pruned", "removed": N, "before": <cut>,
"cut_prev": <hash of the last removed record>, ...}`; the first kept record's `prev` must
equal `cut_prev`, so the chain stays verifiable without the removed records.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from bot.access.audit_format import (PRUNED, RESERVED, ZERO_HASH, canonical, is_marker, link, parse_line,
                                    parse_since, record_hash, utc_stamp)
from docent.atomic import replacing

log = logging.getLogger(__name__)

_BLOCK = 64 * 1024
_PRUNE_EVERY_S = 24 * 3600


class AuditError(ValueError):
    """One line: the log cannot be read or written."""


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int             # records checked (the failing one included)
    first_bad: int | None    # 1-based line number of the first record that fails, None when ok
    reason: str              # "" when ok; else one line naming the line


# --- locks shared by every AuditLog of one file in this process ---------------------------

_registry = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}
_last_prune: dict[str, float] = {}     # path -> time.monotonic() of this process's last prune


def _reset_after_fork() -> None:
    """A child forked while another thread held a lock would wait on it forever."""
    global _registry, _thread_locks
    _registry = threading.Lock()
    _thread_locks = {}


os.register_at_fork(after_in_child=_reset_after_fork)


# --- the log ------------------------------------------------------------------------------

class AuditLog:
    """The append-only, hash-chained audit log at `path` (see the module's text)."""

    def __init__(self, path: Path, retention_days: int = 0):   # 0: keep forever
        self.path = Path(path)
        self.retention_days = int(retention_days)
        if self.retention_days < 0:
            raise AuditError(f"audit log {self.path}: retention_days must be 0 (keep) or more, not {retention_days}")
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._key = str(self.path.absolute())

    # --- writing ----------------------------------------------------------------------------

    def append(self, record: dict) -> dict:
        """Add `record` (the caller's fields, kept as given) with time, seq, prev and hash;
        returns the stored record."""
        if not isinstance(record, dict):
            raise AuditError(f"audit log {self.path}: a record is a dict, not {type(record).__name__}")
        clash = sorted(k for k in record if k in RESERVED)
        if clash:
            raise AuditError(f"audit log {self.path}: the field(s) {', '.join(clash)} are set by the log, "
                             f"not by the caller")
        if self.retention_days > 0 and self._prune_due():
            self.prune()
        try:
            with self._locked():
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    last = self._last_record(fd)
                    stored = dict(record)
                    stored.update(time=utc_stamp(datetime.now(timezone.utc)),
                                  seq=last["seq"] + 1 if last else 1,
                                  prev=link(last) if last else ZERO_HASH)
                    stored["hash"] = record_hash(stored)
                    line = (canonical(stored) + "\n").encode("utf-8")
                    written = os.write(fd, line)
                    if written != len(line):
                        raise OSError(f"only {written} of {len(line)} bytes were written")
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, AuditError):
                raise
            raise AuditError(f"audit log {self.path}: the record cannot be stored as JSON ({_one_line(exc)})") from None
        except OSError as exc:
            raise AuditError(f"audit log {self.path}: cannot write ({_reason(exc)})") from None
        return stored

    def _last_record(self, fd: int) -> dict | None:
        """The last complete record, read from the end of the file (a cut-off last line is
        first moved aside). Called with the lock held."""
        size = os.fstat(fd).st_size
        if size == 0:
            return None
        pos, buf = size, b""
        while pos > 0 and buf.count(b"\n") < 2:
            step = min(_BLOCK, pos)
            pos -= step
            buf = os.pread(fd, step, pos) + buf
        if not buf.endswith(b"\n"):
            cut = buf.rfind(b"\n") + 1
            self._move_aside(fd, buf[cut:], pos + cut)
            buf = buf[:cut]
            if not buf:
                return None
        last = buf[buf.rfind(b"\n", 0, len(buf) - 1) + 1:-1]
        try:
            record = parse_line(last)
            if not isinstance(record.get("seq"), int) or not isinstance(link(record), str):
                raise ValueError("no seq or hash")
        except (ValueError, KeyError):
            raise AuditError(f"audit log {self.path}: its last line is not a record, so the chain cannot go on "
                             f"(`docent audit --verify` names the damage)") from None
        return record

    def _move_aside(self, fd: int, fragment: bytes, start: int) -> None:
        """A crash cut the last line off: keep it in a file beside the log, then cut the log
        back to its last complete record."""
        stamp = utc_stamp(datetime.now(timezone.utc)).replace(":", "").replace("-", "")
        aside = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        _write_private(aside, fragment)
        os.ftruncate(fd, start)
        os.fsync(fd)
        log.warning("audit log %s: its last line was cut off (a write broke off); moved it to %s and continued "
                    "the chain from the last complete record", self.path, aside)

    # --- reading ----------------------------------------------------------------------------

    def records(self, user: str | None = None, since: str | None = None) -> Iterator[dict]:
        """The records in order, those of `user` only, those at or after `since` only
        ("YYYY-MM-DD" or a full ISO time; compared with the stored UTC time). A cut-off last
        line is left out (verify reports it); a line that is not a record is an AuditError."""
        try:
            floor = parse_since(since) if since else None
        except ValueError as exc:
            raise AuditError(f"audit log {self.path}: since: {exc}") from None
        for number, raw, complete in self._lines():
            if not complete:
                return
            try:
                record = parse_line(raw)
            except ValueError:
                raise AuditError(f"audit log {self.path}: line {number} is not a JSON record "
                                 f"(`docent audit --verify` checks the whole log)") from None
            if user is not None and record.get("user") != user:
                continue
            if floor is not None and not (isinstance(record.get("time"), str) and record["time"] >= floor):
                continue
            yield record

    def verify(self) -> Verification:
        """Recompute every hash and check that seq goes up by one and every prev links to
        the record before: the first line that fails is named."""
        checked = 0
        expected_seq, expected_prev = None, ZERO_HASH
        lines = self._lines()
        for number, raw, complete in lines:
            checked += 1

            def bad(reason: str) -> Verification:
                return Verification(False, checked, number, reason)

            if not complete:
                return bad(f"line {number} is incomplete (a write broke off; the next record moves it aside)")
            try:
                record = parse_line(raw)
            except ValueError:
                return bad(f"line {number} is not a JSON record")
            seq, prev, stored_hash = record.get("seq"), record.get("prev"), record.get("hash")
            if not isinstance(stored_hash, str):
                return bad(f"line {number} has no hash")
            try:
                edited = record_hash(record) != stored_hash or canonical(record).encode("utf-8") != raw
            except (TypeError, ValueError):
                edited = True
            if edited:
                return bad(f"line {number} was edited (its hash does not match its content)")
            if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev, str):
                return bad(f"line {number} has no sequence number or no prev")
            if number == 1:
                if is_marker(record):
                    if not isinstance(record["cut_prev"], str):
                        return bad("line 1 (the prune record) has no cut_prev")
                elif prev != ZERO_HASH:
                    return bad(f"the first record does not start the chain (line 1 has sequence {seq} "
                               f"and links to a record that is not there)")
                expected_seq, expected_prev = seq + 1, link(record)
                continue
            if seq > expected_seq:
                if any(s == expected_seq for s in _seqs(lines)):
                    return bad(f"line {number} is out of order (sequence {expected_seq - 1} then {seq}; "
                               f"{expected_seq} comes later)")
                missing = (f"line {number} is missing" if seq == expected_seq + 1
                           else f"lines {number} to {number + seq - expected_seq - 1} are missing")
                return bad(f"{missing} (sequence {expected_seq - 1} then {seq})")
            if seq < expected_seq:
                return bad(f"line {number} is out of order (sequence {expected_seq - 1} then {seq})")
            if prev != expected_prev:
                return bad(f"line {number} does not link to line {number - 1} (its prev is not that record's hash: "
                           f"line {number - 1} was replaced, or line {number} was)")
            expected_seq, expected_prev = seq + 1, link(record)
        return Verification(True, checked, None, "")

    def _lines(self) -> Iterator[tuple[int, bytes, bool]]:
        """(line number, bytes without the newline, ended by a newline) for the file as it
        was when reading began (writes after that are not seen; a prune's rename neither)."""
        try:
            with self._shared():
                try:
                    handle = open(self.path, "rb")
                except FileNotFoundError:
                    return
                size = os.fstat(handle.fileno()).st_size
        except OSError as exc:
            raise AuditError(f"audit log {self.path}: cannot read ({_reason(exc)})") from None
        with handle:
            offset, number = 0, 0
            while offset < size:
                try:
                    raw = handle.readline(size - offset)
                except OSError as exc:
                    raise AuditError(f"audit log {self.path}: cannot read ({_reason(exc)})") from None
                if not raw:
                    return
                offset += len(raw)
                number += 1
                if raw.endswith(b"\n"):
                    yield number, raw[:-1], True
                else:
                    yield number, raw, False

    # --- retention --------------------------------------------------------------------------

    def prune(self, now: datetime | None = None) -> int:
        """Remove the records older than retention_days (the leading ones: the log is in time
        order) and begin the file with a prune record; returns how many were removed. 0 days,
        or nothing old enough, leaves the file untouched."""
        if self.retention_days <= 0:
            return 0
        now = now or datetime.now(timezone.utc)
        cut = utc_stamp(now - timedelta(days=self.retention_days))
        try:
            with self._locked():
                removed = self._prune_locked(cut)
        except OSError as exc:
            raise AuditError(f"audit log {self.path}: cannot prune ({_reason(exc)})") from None
        with _registry:
            _last_prune[self._key] = time.monotonic()
        return removed

    def _prune_locked(self, cut: str) -> int:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return 0
        with handle:
            removed, last_removed, kept_from = 0, None, 0
            number = 0
            while True:
                raw = handle.readline()
                number += 1
                if not raw.endswith(b"\n"):
                    break                       # the end, or a cut-off line: kept as it is
                try:
                    record = parse_line(raw[:-1])
                except ValueError:
                    break                       # kept: verify names it
                if number == 1 and is_marker(record):
                    kept_from = handle.tell()   # the old prune record is replaced by the new one
                    continue
                stamp = record.get("time")
                if not isinstance(stamp, str) or stamp >= cut or not isinstance(record.get("hash"), str):
                    break
                removed, last_removed, kept_from = removed + 1, record, handle.tell()
            if not removed:
                return 0
            marker = {"event": PRUNED, "removed": removed, "before": cut, "cut_prev": last_removed["hash"],
                      "time": utc_stamp(datetime.now(timezone.utc)), "seq": last_removed.get("seq"),
                      "prev": ZERO_HASH}
            marker["hash"] = record_hash(marker)
            handle.seek(kept_from)
            with replacing(self.path) as scratch:
                out = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                with open(out, "wb") as target:
                    target.write((canonical(marker) + "\n").encode("utf-8"))
                    while block := handle.read(_BLOCK):
                        target.write(block)
        log.info("audit log %s: removed %d record(s) older than %s", self.path, removed, cut)
        return removed

    def _prune_due(self) -> bool:
        with _registry:
            last = _last_prune.get(self._key)
        return last is None or time.monotonic() - last >= _PRUNE_EVERY_S

    # --- locks ------------------------------------------------------------------------------

    def _thread_lock(self) -> threading.Lock:
        with _registry:
            return _thread_locks.setdefault(self._key, threading.Lock())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads, then other processes: the writers' exclusive lock."""
        with self._thread_lock():
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)            # releases the flock

    @contextmanager
    def _shared(self) -> Iterator[None]:
        """A reader's lock, held only while it notes where the file ends (so no half-written
        line is in what it reads). Readers create nothing: no lock file, no lock."""
        try:
            fd = os.open(self._lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)


def _seqs(lines: Iterator[tuple[int, bytes, bool]]) -> Iterator[object]:
    """The seq of each remaining readable line (to tell a moved line from a deleted one)."""
    for _, raw, complete in lines:
        if complete:
            try:
                yield parse_line(raw).get("seq")
            except ValueError:
                continue


def _write_private(path: Path, data: bytes) -> None:
    """docent.atomic's replace, with a file only its owner can read (questions are personal)."""
    with replacing(path) as scratch:
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as handle:
            handle.write(data)


def _reason(exc: OSError) -> str:
    return _one_line(exc.strerror or exc)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
