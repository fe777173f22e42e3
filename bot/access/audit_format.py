"""The audit log's record format (bot/access/audit.py): the canonical JSON a record's hash
is taken over, the hash, the stored time, and what links one record to the next."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

ZERO_HASH = "0" * 64
RESERVED = ("time", "seq", "prev", "hash", "cut_prev")   # set by the log, never by a caller
PRUNED = "pruned"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def canonical(record: dict) -> str:
    """The one serialisation: sorted keys, no spaces, UTF-8 characters as they are, no NaN."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(record: dict) -> str:
    """sha256 (hex) of the record's canonical JSON without its `hash` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def utc_stamp(moment: datetime) -> str:
    """"2025-03-01T09:30:00.123Z": the stored time (strings in this form sort as times)."""
    moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_since(text: str) -> str:
    """"YYYY-MM-DD" (midnight UTC) or a full ISO time (no offset: UTC) as a stored time;
    ValueError with one line otherwise."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO time (2025-03-01T09:30:00Z)") from None
    return utc_stamp(moment)


def is_marker(record: dict) -> bool:
    return record.get("event") == PRUNED and "cut_prev" in record


def link(record: dict) -> str:
    """What the next record's `prev` must be: the record's hash; for a prune marker, the
    hash of the last removed record (the kept records were chained to it)."""
    return record["cut_prev"] if is_marker(record) else record["hash"]


def parse_line(raw: bytes) -> dict:
    """A stored line as a record; ValueError when it is not a JSON object."""
    record = json.loads(raw, parse_constant=_reject_constant)
    if not isinstance(record, dict):
        raise ValueError("not an object")
    return record
