"""Neighbouring chunks of one file joined into one passage: chunks retrieved together
(the setting retrieval.merge_neighbours), and a short passage widened by the chunks around
it in its section (retrieval.widen_chars)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Collection

from bot.retrieval import Passage

if TYPE_CHECKING:
    from ingest.store import StoredChunk


def merge_neighbours(passages: list[Passage], chunks: dict[int, "StoredChunk"]) -> list[Passage]:
    """Join passages that are consecutive chunks of the same file (in file order), keeping
    the rank of the better one. The merged text has the heading of the first part."""
    out: list[Passage] = []
    for passage in passages:
        first = chunks[passage.chunk_ids[0]]
        target = None
        for index, other in enumerate(out):
            ords = [chunks[i].ord for i in other.chunk_ids]
            if other.source == passage.source and (first.ord == max(ords) + 1 or first.ord == min(ords) - 1):
                target = index
                break
        if target is None:
            out.append(passage)
            continue
        other = out[target]
        parts = sorted(other.chunk_ids + passage.chunk_ids, key=lambda i: chunks[i].ord)
        pages = [chunks[i].page for i in parts if chunks[i].page is not None]
        ends = [chunks[i].page_end or chunks[i].page for i in parts if chunks[i].page is not None]
        text = joined([chunks[i] for i in parts])
        dense = [d for d in (other.dense, passage.dense) if d is not None]
        words = [w for w in (other.keyword, passage.keyword) if w is not None]
        out[target] = Passage(tuple(parts), other.source, min(pages) if pages else None, max(ends) if ends else None,
                              chunks[parts[0]].heading_path, text, max(other.score, passage.score),
                              max(dense) if dense else None, max(words) if words else None)
    return out


def joined(parts: list["StoredChunk"]) -> str:
    """The text of consecutive chunks of one file, in file order, overlaps said once."""
    text = parts[0].text
    for previous, current in zip(parts, parts[1:]):
        text += "\n" + _after(current, previous)
    return text


def widen_short(passages: list[Passage], chunks: dict[int, "StoredChunk"], store, min_chars: int,
                hidden: Collection[int] = (), reach: int = 4) -> list[Passage]:
    """Each passage shorter than `min_chars` takes in its file's neighbouring chunks of the
    same section until it is long enough: first the chunks after it, so that what the search
    matched stays at the top (the bundled model reads a passage's start most), then those
    before it (a short chunk is often a section's tail, and the section opens with what it
    is about). A chunk that another passage holds, that a search must leave out (`hidden`), or
    that belongs to another section stops the widening on that side. At most `reach`
    chunks a side. `chunks` holds the passages' own chunks (retrieval has read them); the
    store gives those around them."""
    if min_chars <= 0:
        return passages
    taken = {i for p in passages for i in p.chunk_ids}
    out = []
    for passage in passages:
        if len(passage.text) >= min_chars:
            out.append(passage)
            continue
        own = sorted((chunks[i] for i in passage.chunk_ids), key=lambda c: c.ord)
        section = own[0].heading_path
        near = {c.ord: c for c in store.chunks_between(passage.source, own[0].ord - reach, own[-1].ord + reach)}
        parts, length = list(own), len(passage.text)

        def fits(chunk) -> bool:
            return (chunk is not None and chunk.id not in taken and chunk.id not in hidden
                    and _same_section(chunk.heading_path, section))

        for step in (1, -1):
            while length < min_chars:
                chunk = near.get((parts[0] if step < 0 else parts[-1]).ord + step)
                if not fits(chunk):
                    break
                parts = [chunk] + parts if step < 0 else parts + [chunk]
                taken.add(chunk.id)
                length += len(chunk.text)
        if len(parts) == len(own):
            out.append(passage)
            continue
        pages = [c.page for c in parts if c.page is not None]
        ends = [c.page_end or c.page for c in parts if c.page is not None]
        out.append(replace(passage, chunk_ids=tuple(c.id for c in parts), page=min(pages) if pages else None,
                           page_end=max(ends) if ends else None, heading_path=parts[0].heading_path,
                           text=joined(parts)))
    return out


def _same_section(path: tuple[str, ...], section: tuple[str, ...]) -> bool:
    """`path` is the section itself, one of its sub-sections or one it sits under."""
    n = min(len(path), len(section))
    return path[:n] == section[:n]


def _after(chunk: "StoredChunk", previous: "StoredChunk") -> str:
    """A chunk's text without what it repeats of the previous chunk (long paragraphs are
    split with a few sentences of overlap). Chunk texts are exact slices of the document,
    so the overlap is a prefix of known length."""
    overlap = previous.end - chunk.start
    if 0 < overlap < len(chunk.text):
        return chunk.text[overlap:].lstrip()
    return chunk.text
