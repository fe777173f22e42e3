"""Test sets for `docent eval`: one JSON object per line, the format of
../shared/eval/docs_qa.jsonl, so a user can write or edit one and run it with --dataset.

    {"id": "syn-007", "question": "...", "answer": "..." | null, "answerable": true,
     "type": "synthetic" | "unanswerable" | ..., "source_paths": ["ops/keys.md"],
     "quotes": ["the sentence that holds the answer"], "expected_behavior": "answer" | "abstain",
     "chunk_id": 42, "paraphrases": ["...", "..."]}

`chunk_id` and `paraphrases` are docent's additions (both optional). `source_paths` may
be the paths as ingested or relative to the ingested folder: a source matches by its tail.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from bot.citations import MARKER
from docent.metrics import token_f1


class DatasetError(ValueError):
    """A test set that cannot be read: the message names the file and line."""


@dataclass
class EvalItem:
    id: str
    question: str
    answer: str | None = None
    answerable: bool = True
    type: str = "factual"
    source_paths: list[str] = field(default_factory=list)
    quotes: list[str] = field(default_factory=list)
    expected_behavior: str = "answer"
    chunk_id: int | None = None
    paraphrases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        for optional in ("chunk_id", "paraphrases"):
            if not data[optional]:
                data.pop(optional)
        return data


def read_dataset(path: str | os.PathLike) -> list[EvalItem]:
    """The items of a JSONL test set; a bad line is an error naming it."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the test set ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text (a test set is JSON lines)") from None
    items, seen = [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        item = _item(data, f"{path}:{number}")
        if item.id in seen:
            raise DatasetError(f"{path}:{number}: id {item.id!r} appears twice")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise DatasetError(f"{path}: the test set holds no questions")
    return items


def _item(data: object, where: str) -> EvalItem:
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: each line must be a JSON object")
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f"{where}: no question")
    known = {f for f in EvalItem.__dataclass_fields__}
    values = {k: v for k, v in data.items() if k in known}
    values.setdefault("id", where.rsplit(":", 1)[-1])
    values["id"] = str(values["id"])
    answerable = values.get("answerable", values.get("expected_behavior", "answer") != "abstain")
    values["answerable"] = bool(answerable)
    values.setdefault("expected_behavior", "answer" if values["answerable"] else "abstain")
    for listed in ("source_paths", "quotes", "paraphrases"):
        value = values.get(listed) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DatasetError(f"{where}: {listed} must be a list of strings")
        values[listed] = value
    return EvalItem(**values)


def write_dataset(items: Iterable[EvalItem], path: str | os.PathLike) -> None:
    """Write the whole set at once (a temporary file renamed over the old one)."""
    from docent.atomic import write_atomically
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, "".join(json.dumps(item.to_dict(), ensure_ascii=False) + "\n" for item in items))


# --- matching and scoring ---------------------------------------------------------------

def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def same_source(ingested: str, source_paths: Iterable[str]) -> bool:
    """The ingested path is one of the item's sources, written whole or as its tail."""
    ingested = ingested.replace("\\", "/")
    return any(ingested == s or ingested.endswith("/" + s.lstrip("./")) for s in source_paths if s)


def holds_answer(passage_source: str, passage_text: str, chunk_ids: Iterable[int], item: EvalItem) -> bool:
    """Does this retrieved passage hold the item's answer? Its source chunk, when known;
    else a source file of the item holding one of its quotes (any passage of the file
    when it gives no quotes)."""
    if item.chunk_id is not None:
        return item.chunk_id in set(chunk_ids)
    if not same_source(passage_source, item.source_paths):
        return False
    if not item.quotes:
        return True
    text = normalise(passage_text)
    return any(normalise(quote)[:120] in text for quote in item.quotes if quote.strip())


def _tokens(text: str) -> list[str]:
    return normalise(MARKER.sub(" ", text)).split()


def answer_f1(prediction: str, reference: str) -> float:
    """Token F1 of an answer against the reference (SQuAD's measure; citations ignored)."""
    return token_f1(Counter(_tokens(prediction)), Counter(_tokens(reference)))


def contains_reference(prediction: str, references: Iterable[str]) -> bool:
    """The answer holds one of the references word for word (case and punctuation aside)."""
    text = " " + " ".join(_tokens(prediction)) + " "
    return any(" " + " ".join(_tokens(ref)) + " " in text for ref in references if _tokens(ref))
