"""Figures over the rows that `docent eval` writes to rows.jsonl (one row per asked
question). Pure functions, no third-party imports: the report and the tests build on them.

Only `variant == "original"` rows count, except for consistency, which compares each
paraphrase with its original. A share whose denominator is empty is None, never 0/0.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Any, Iterable

from bot.citations import MARKER
from docent.metrics import token_f1
from docent.words import ANSWER_STOP
from evaluation.dataset import same_source

Row = dict[str, Any]

# Citation markers ([1], [1, 2]): two answers to paraphrased questions may number the
# same passage differently, so they are removed before answers are compared.
_WORD = re.compile(r"\w+")
# Negations ("not", "no") stay: they are what tells two answers apart.
_STOP = ANSWER_STOP

AGREE_F1 = 0.5      # token F1 at which two answers count as saying the same thing
WORST_LIMIT = 10


# ---------------------------------------------------------------- small helpers

def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _share(part: int, whole: int) -> float | None:
    return _round(part / whole) if whole else None


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return _round(sum(values) / len(values)) if values else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks,
    like numpy's default method; None for no values."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def _tokens(text: str | None) -> Counter[str]:
    text = MARKER.sub(" ", (text or "").lower())
    return Counter(w for w in _WORD.findall(text) if w not in _STOP)


def agreement_f1(a: str | None, b: str | None) -> float:
    """Token F1 between two answers (lowercased, stop words and citation markers dropped).
    Two texts with no content words are equal (1.0); one alone scores 0.0."""
    ta, tb = _tokens(a), _tokens(b)
    if not ta or not tb:
        return float(not ta and not tb)
    return token_f1(ta, tb)


def _is_original(row: Row) -> bool:
    return row.get("variant", "original") == "original"


def _failed(row: Row) -> bool:
    return bool(row.get("error"))


def _answered(row: Row) -> bool:
    """The system gave an answer: no error and no abstention."""
    return not _failed(row) and not row.get("abstained")


def _hit(row: Row, k: int) -> bool:
    rank = row.get("hit_rank")
    return rank is not None and rank <= k


def _cites_source(row: Row) -> bool:
    # Cited sources are paths as ingested; a test set may name them by their tail.
    sources = row.get("source_paths") or []
    return any(same_source(cited, sources) for cited in row.get("cited_sources") or [])


# ---------------------------------------------------------------- sections

def _retrieval(answerable: list[Row], k_max: int) -> dict:
    n = len(answerable)
    hits = {str(k): _share(sum(_hit(r, k) for r in answerable), n) for k in range(1, k_max + 1)}
    mrr = _mean(1 / r["hit_rank"] if r.get("hit_rank") else 0.0 for r in answerable)
    return {"hit_at_k": hits, "mrr": mrr}


def _answers(answerable: list[Row]) -> dict:
    answered = [r for r in answerable if _answered(r)]
    scored = [r for r in answered if r.get("contains") is not None]
    return {
        "f1": _mean(r["f1"] for r in answered if r.get("f1") is not None),
        "contains": _share(sum(bool(r["contains"]) for r in scored), len(scored)),
        "answered": _share(len(answered), len(answerable)),
        "correct_with_citation": _share(
            sum(bool(r.get("contains")) and _cites_source(r) for r in answerable), len(answerable)
        ),
    }


def _groundedness(originals: list[Row]) -> dict:
    answered = [r for r in originals if _answered(r)]
    return {
        "mean": _mean(r["groundedness"] for r in answered if r.get("groundedness") is not None),
        "answers_with_unsupported": _share(
            sum((r.get("unsupported") or 0) > 0 for r in answered), len(answered)
        ),
    }


def _abstention(originals: list[Row]) -> dict:
    # Failed rows neither answered nor abstained, so they are left out of the matrix.
    done = [r for r in originals if not _failed(r)]
    should = [not r.get("answerable", True) for r in done]
    did = [bool(r.get("abstained")) for r in done]
    both = sum(s and d for s, d in zip(should, did))
    precision = both / sum(did) if any(did) else None
    recall = both / sum(should) if any(should) else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": _round(precision),
        "recall": _round(recall),
        "f1": _round(f1),
        "false_abstentions": sum(d and not s for s, d in zip(should, did)),
    }


def _leaks(originals: list[Row]) -> dict:
    return {
        "answers_flagged": sum((r.get("leak_flags") or 0) > 0 for r in originals),
        "flags": sum(r.get("leak_flags") or 0 for r in originals),
    }


def _latency(originals: list[Row]) -> dict:
    ok = [r for r in originals if not _failed(r)]

    def pct(field: str, q: float) -> float | None:
        return _round(percentile((r[field] for r in ok if r.get(field) is not None), q), 1)

    return {
        "total_ms_p50": pct("total_ms", 50),
        "total_ms_p95": pct("total_ms", 95),
        "first_token_ms_p50": pct("first_token_ms", 50),
        "first_token_ms_p95": pct("first_token_ms", 95),
        "retrieve_ms_p50": pct("retrieve_ms", 50),
    }


def _per_source(answerable: list[Row]) -> dict:
    # The question's own hit_rank counts for each of its sources: a question answered
    # from any of its files is a hit for all of them.
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in answerable:
        for source in dict.fromkeys(row.get("source_paths") or []):
            counts[source][0] += 1
            counts[source][1] += _hit(row, 5)
    return {s: {"questions": n, "hit_at_5": _share(h, n)} for s, (n, h) in sorted(counts.items())}


def same_citations(original: Row, para: Row) -> bool:
    """Both abstained, or both cite the same source files (docent eval's measure of two
    answers to one question agreeing, beside the guard's entailment between them)."""
    if original.get("abstained") or para.get("abstained"):
        return bool(original.get("abstained") and para.get("abstained"))
    return set(original.get("cited_sources") or []) == set(para.get("cited_sources") or [])


def _consistency(rows: list[Row]) -> dict:
    """Each paraphrase against its original. Rows that failed cannot be compared and
    are skipped; a group counts when at least one pair remains."""
    originals = {r.get("of", r.get("id")): r for r in rows if _is_original(r) and not _failed(r)}
    pairs: dict[Any, list[tuple[Row, Row]]] = defaultdict(list)
    for row in rows:
        if not _is_original(row) and not _failed(row) and row.get("of") in originals:
            pairs[row["of"]].append((originals[row["of"]], row))
    flat = [pair for group in pairs.values() for pair in group]
    same = agree = 0
    answer_f1: list[float] = []
    # The guard's reading of the paraphrase's answer against the original's (share of its
    # sentences the original backs), where evaluation.run could check it.
    entailed = [para["entailment"] for _, para in flat if para.get("entailment") is not None]
    for original, para in flat:
        same += same_citations(original, para)
        if original.get("abstained") and para.get("abstained"):
            agree += 1
        elif not original.get("abstained") and not para.get("abstained"):
            score = agreement_f1(original.get("answer"), para.get("answer"))
            answer_f1.append(score)
            agree += score >= AGREE_F1
    return {
        "groups": len(pairs),
        "same_citations": _share(same, len(flat)),
        "agreement": _share(agree, len(flat)),
        "mean_answer_f1": _mean(answer_f1),
        "entailment": _mean(entailed),
    }


# ---------------------------------------------------------------- worst questions

def _verdict(row: Row) -> tuple[int, float, str] | None:
    """(rank, tiebreak, reason) for a row worth showing, lower is worse; None when fine."""
    if _failed(row):
        return 0, 0.0, f"error: {row['error']}"
    if row.get("answerable", True):
        if row.get("abstained"):
            return 1, 0.0, "abstained on an answerable question"
        if row.get("contains") is False:
            f1 = row.get("f1") or 0.0
            return 2, f1, f"wrong answer (F1 {f1:.2f})"
    hallucinated = not row.get("answerable", True) and not row.get("abstained")
    if not row.get("abstained") and (row.get("unsupported") or 0) > 0:
        reason = "unsupported sentences"
        if hallucinated:
            reason = "answered an unanswerable question; " + reason
        return 3, -float(row["unsupported"]), reason
    if hallucinated:
        return 4, 0.0, "answered an unanswerable question"
    return None


def _worst(originals: list[Row], limit: int = WORST_LIMIT) -> list[dict]:
    ranked = [(v, i, r) for i, r in enumerate(originals) if (v := _verdict(r)) is not None]
    ranked.sort(key=lambda t: (t[0][0], t[0][1], t[1]))
    return [
        {
            "id": r.get("id"),
            "question": r.get("question"),
            "answer": r.get("answer"),
            "reference": r.get("reference"),
            "f1": _round(r.get("f1")),
            "abstained": bool(r.get("abstained")),
            "flags": list(r.get("flags") or []),
            "reason": verdict[2],
        }
        for verdict, _, r in ranked[:limit]
    ]


# ---------------------------------------------------------------- entry point

def summarize(rows: list[Row], k_max: int = 10) -> dict:
    """All figures of an evaluation run as one JSON-ready dict."""
    originals = [r for r in rows if _is_original(r)]
    answerable = [r for r in originals if r.get("answerable", True)]
    return {
        "questions": len(originals),
        "answerable": len(answerable),
        "unanswerable": len(originals) - len(answerable),
        "errors": sum(_failed(r) for r in originals),
        "retrieval": _retrieval(answerable, k_max),
        "answers": _answers(answerable),
        "groundedness": _groundedness(originals),
        "abstention": _abstention(originals),
        "leaks": _leaks(originals),
        "latency": _latency(originals),
        "per_source": _per_source(answerable),
        "consistency": _consistency(rows),
        "worst": _worst(originals),
    }
