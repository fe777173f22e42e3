"""Neighbouring chunks of one file, retrieved together, joined into one passage (the
setting retrieval.merge_neighbours)."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
        text = chunks[parts[0]].text
        for previous, current in zip(parts, parts[1:]):
            text += "\n" + _after(chunks[current], chunks[previous])
        dense = [d for d in (other.dense, passage.dense) if d is not None]
        words = [w for w in (other.keyword, passage.keyword) if w is not None]
        out[target] = Passage(tuple(parts), other.source, min(pages) if pages else None, max(ends) if ends else None,
                              chunks[parts[0]].heading_path, text, max(other.score, passage.score),
                              max(dense) if dense else None, max(words) if words else None)
    return out


def _after(chunk: "StoredChunk", previous: "StoredChunk") -> str:
    """A chunk's text without what it repeats of the previous chunk (long paragraphs are
    split with a few sentences of overlap). Chunk texts are exact slices of the document,
    so the overlap is a prefix of known length."""
    overlap = previous.end - chunk.start
    if 0 < overlap < len(chunk.text):
        return chunk.text[overlap:].lstrip()
    return chunk.text
