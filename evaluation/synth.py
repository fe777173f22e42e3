"""A test set made from the collection itself: the model writes a question, its answer
and the supporting sentence for sampled chunks; drafts that fail a check are dropped
(the answer is not in the chunk, the question gives the answer away, a near duplicate).
Questions about things the passages closest to them never mention test abstention; paraphrases test
whether slightly different wording gets the same answer.

    writer = QuestionWriter(generator, prompts)
    chunks = sample_chunks(collection, 60, skip=retriever.hidden(collection))
    item, why_not = writer.answerable(chunk, "syn-001")
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from docent.words import QUESTION_STOP, TOPIC_STOP
from evaluation.dataset import EvalItem, normalise

# Words too common to say what a question is about.
_STOP = TOPIC_STOP
# A question that points at where it came from makes no sense to someone asking docent.
_REFERS = re.compile(r"(?i)\b(?:the|this|that|above|following|given|provided) (?:passage|document|text|section|guide|page|article|"
                     r"chapter|manual|excerpt|paragraph)\b")


def content_words(text: str) -> set[str]:
    # Numbers count whatever their length: "at 03:00" is not "at 02:00".
    return {w for w in normalise(text).split() if (len(w) > 2 and w not in _STOP) or any(c.isdigit() for c in w)}


def sample_chunks(collection, n: int, seed: int = 0, skip: Sequence[int] = (), min_words: int = 25) -> list:
    """Up to n chunks spread over the files (one file after another, a random chunk of
    each), long enough to ask about, none of those in `skip` (chunks never retrieved)."""
    rng = random.Random(seed)
    skipped = set(skip)
    by_file = defaultdict(list)
    for record in collection.files():
        if record.status != "ok":
            continue
        for chunk in collection.chunks_of(record.path):
            if chunk.id not in skipped and len(chunk.text.split()) >= min_words:
                by_file[record.path].append(chunk)
    pools = [rng.sample(chunks, len(chunks)) for _, chunks in sorted(by_file.items())]
    rng.shuffle(pools)
    picked = []
    while len(picked) < n and any(pools):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return picked


def _field(name: str, text: str) -> str:
    match = re.search(rf"(?im)^\s*\**{name}\**\s*:\s*(.+)$", text)
    return match.group(1).strip().strip('"').strip() if match else ""


class QuestionWriter:
    def __init__(self, generator, prompts, max_tokens: int = 160):
        self.generator = generator
        self.prompts = prompts
        self.max_tokens = max_tokens
        self._asked: list[set[str]] = []        # content words of the questions kept so far
        self.last_draft = ""                    # what the model wrote last (kept with a dropped draft)

    def _ask(self, name: str, **values) -> str:
        messages = [{"role": "system", "content": self.prompts.render(f"{name}.system.txt", **values.pop("system", {}))},
                    {"role": "user", "content": self.prompts.render(f"{name}.user.txt", **values)}]
        self.last_draft = "".join(self.generator.stream(messages, max_tokens=self.max_tokens)).strip()
        return self.last_draft

    def _passage(self, chunk) -> dict:
        heading = " > ".join(chunk.heading_path)
        return {"source": chunk.path, "heading": f", {heading}" if heading else "", "text": chunk.text}

    def answerable(self, chunk, item_id: str) -> tuple[EvalItem | None, str]:
        """A question the chunk answers, or None and why the draft was dropped."""
        reply = self._ask("eval.question", **self._passage(chunk))
        question, answer, quote = _field("question", reply), _field("answer", reply), _field("quote", reply)
        why_not = self.check(question, answer, quote, chunk.text)
        if why_not:
            return None, why_not
        self._asked.append(content_words(question))
        return EvalItem(item_id, question, answer, True, "synthetic", [chunk.path], [quote], "answer",
                        chunk_id=chunk.id), ""

    def check(self, question: str, answer: str, quote: str, text: str) -> str:
        """Why a draft is not a good test question ("" when it is)."""
        if not question or not answer or not quote:
            return "not in the asked format"
        if len(question.split()) < 4 or not question.rstrip().endswith("?"):
            return "not a question"
        passage, said = normalise(text), normalise(quote)
        if not said or said[:120] not in passage:
            return "quote not in the passage"
        # The answer may reword the passage a little, but its numbers and most of its
        # words must be there.
        said_words, passage_words = content_words(answer), content_words(text)
        numbers = {w for w in said_words if any(c.isdigit() for c in w)}
        if not numbers <= passage_words or len(said_words & passage_words) < 0.75 * len(said_words):
            return "answer not in the passage"
        if normalise(answer) and normalise(answer) in normalise(question):
            return "the question gives the answer away"
        if _REFERS.search(question):
            return "refers to the passage"
        return self._duplicate(question)

    def _duplicate(self, question: str) -> str:
        words = content_words(question)
        for earlier in self._asked:
            if words and len(words & earlier) / len(words | earlier) >= 0.7:
                return "near duplicate"
        return ""

    def unanswerable(self, chunk, item_id: str, search, collection) -> tuple[EvalItem | None, str]:
        """A question on the chunk's subject that names something specific that none of
        the passages found for it mention (so they cannot answer it), or None and why not.
        `search(question) -> [passage text]`: the passages docent would read."""
        question = _field("question", self._ask("eval.unanswerable", **self._passage(chunk)))
        if len(question.split()) < 4 or not question.rstrip().endswith("?"):
            return None, "not a question"
        if _REFERS.search(question):
            return None, "refers to the passage"
        words = content_words(question)
        closest = set().union(*(content_words(text) for text in search(question)))
        # It must ask about something specific the passages lack: a word they do not hold
        # that is rare in the whole collection too ("purpose" is missing from many
        # passages that do answer a question).
        missing = sorted(w for w in words - closest if w not in QUESTION_STOP)
        frequency = collection.document_frequency(missing) if missing else {}
        rare = max(3, collection.chunk_count() // 200)
        if not any(count <= rare for count in frequency.values()):
            return None, "the passages it finds may answer it (they name everything specific it asks about)"
        duplicate = self._duplicate(question)
        if duplicate:
            return None, duplicate
        self._asked.append(words)
        return EvalItem(item_id, question, None, False, "unanswerable", [], [], "abstain"), ""

    def paraphrases(self, question: str, count: int = 2) -> list[str]:
        """Up to `count` rewordings, each different from the question and from each other."""
        reply = self._ask("eval.paraphrase", system={"count": count}, question=question)
        seen, out = {normalise(question)}, []
        for line in reply.splitlines():
            line = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line).strip().strip('"')
            if len(line.split()) >= 3 and line.endswith("?") and normalise(line) not in seen:
                seen.add(normalise(line))
                out.append(line)
        return out[:count]


def build_test_set(writer: QuestionWriter, collection, search, out_path, questions: int, unanswerable: float = 0.2,
                   paraphrased: int = 5, skip: Sequence[int] = (), seed: int = 0,
                   progress=None) -> tuple[list[EvalItem], dict[str, int]]:
    """About `questions` items (a share `unanswerable` of them unanswerable, the first
    `paraphrased` answerable ones with two paraphrases), written to `out_path` after each
    one, with a state file beside it so a stopped run picks up at the next chunk.
    `search(question) -> [passage text]` checks the unanswerable ones. Returns the items
    and the count of drafts dropped per reason."""
    from evaluation.dataset import read_dataset, write_dataset
    from docent.atomic import write_atomically
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    state_path = out_path.with_name(out_path.stem + ".state.json")
    dropped_path = out_path.with_name(out_path.stem + ".dropped.jsonl")
    state = {"next": 0, "dropped": {}, "done": False}
    items: list[EvalItem] = []
    if out_path.is_file() and state_path.is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        items = read_dataset(out_path)
        writer._asked = [content_words(i.question) for i in items]
    if state.get("done"):
        return items, state["dropped"]
    want_unanswerable = round(questions * unanswerable)
    want_answerable = questions - want_unanswerable
    # Drafts fail: sample more chunks than questions wanted.
    chunks = sample_chunks(collection, questions * 3, seed=seed, skip=skip)
    for index in range(state["next"], len(chunks)):
        made_u = sum(not i.answerable for i in items)
        missing_a, missing_u = want_answerable - (len(items) - made_u), want_unanswerable - made_u
        if missing_a <= 0 and missing_u <= 0:
            break
        chunk, notes = chunks[index], []
        if missing_a > 0:
            item, why_not = writer.answerable(chunk, f"syn-{index:03d}")
            if item and sum(bool(i.paraphrases) for i in items) < paraphrased:
                item.paraphrases = writer.paraphrases(item.question)
            notes.append((item, why_not, writer.last_draft))
        # A question the documents cannot answer, on the same subject, keeping the share
        # asked for as the set grows (so a short or stopped run still has both kinds).
        if missing_u > 0 and (missing_a <= 0 or made_u < unanswerable * (len(items) + 1)):
            notes.append((*writer.unanswerable(chunk, f"syn-u{index:03d}", search, collection), writer.last_draft))
        for item, why_not, draft in notes:
            if item:
                items.append(item)
            else:
                state["dropped"][why_not] = state["dropped"].get(why_not, 0) + 1
                with dropped_path.open("a", encoding="utf-8") as fh:     # for a look at what the model wrote
                    fh.write(json.dumps({"chunk_id": chunk.id, "source": chunk.path, "reason": why_not,
                                         "draft": draft}, ensure_ascii=False) + "\n")
        state["next"] = index + 1
        if items:
            write_dataset(items, out_path)
        write_atomically(state_path, json.dumps(state))
        if progress:
            last = notes[-1][0]
            progress(len(items), questions, last.question if last else f"dropped: {notes[-1][1]}")
    state["done"] = True
    if items:
        write_dataset(items, out_path)
    write_atomically(state_path, json.dumps(state))
    return items, state["dropped"]
