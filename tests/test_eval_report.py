"""The figures of `docent eval` (evaluation/metrics.py) on rows whose expected values
were worked out by hand, and the report files (evaluation/report.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.metrics import agreement_f1, percentile, summarize
from evaluation.report import write_report

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def row(id: str, variant: str = "original", of: str | None = None, **fields) -> dict:
    """A row as `docent eval` writes it: a plain answered, answerable question unless
    the fields say otherwise."""
    base = {
        "id": id, "question": f"question {id}?", "variant": variant, "of": of or id,
        "answerable": True, "reference": "ref", "source_paths": [], "retrieved": [],
        "hit_rank": None, "answer": "", "abstained": False, "cited_sources": [],
        "f1": None, "contains": None, "groundedness": None, "unsupported": 0,
        "leak_flags": 0, "flags": [], "retrieve_ms": 0.0, "first_token_ms": 0.0,
        "total_ms": 0.0, "error": None,
    }
    return base | fields


def unanswerable(id: str, **fields) -> dict:
    return row(id, answerable=False, reference=None, **fields)


# Seven originals (q1-q7) and five paraphrases. Expected figures, by hand:
#   answerable q1 q2 q3 q6; unanswerable q4 q5 q7; q6 failed after retrieval.
#   hit ranks 1, 3, -, 2 -> hit@1 1/4, hit@2 2/4, hit@3..10 3/4; MRR (1 + 1/3 + 0 + 1/2)/4 = .458
#   answered answerable q1 q2 -> answered 2/4, F1 (.8 + .2)/2, contains 1/2;
#   correct with citation: q1 only (cites docs/a.md, the tail a.md matches) -> 1/4
#   answered originals q1 q2 q5 q7: groundedness (.9 + .5 + .3 + .1)/4 = .45, unsupported 2/4
#   abstention (q6 left out): should q4 q5 q7, did q3 q4 -> P 1/2, R 1/3, F1 2PR/(P+R) = .4
#   latency (q6 left out): total 100..500, 700 -> p50 350, p95 500 + .75*200 = 650
ROWS = [
    row("q1", source_paths=["a.md"], hit_rank=1, answer="The server listens on port 5432 [1].",
        cited_sources=["docs/a.md"], f1=0.8, contains=True, groundedness=0.9,
        retrieve_ms=10, first_token_ms=40, total_ms=100),
    row("q2", source_paths=["b.md"], hit_rank=3, answer="API keys rotate every 90 days [1].",
        cited_sources=["docs/c.md"], f1=0.2, contains=False, groundedness=0.5, unsupported=1,
        leak_flags=1, flags=["pii"], retrieve_ms=20, first_token_ms=50, total_ms=200),
    row("q3", source_paths=["a.md", "c.md"], abstained=True, answer="I don't know.",
        retrieve_ms=30, first_token_ms=60, total_ms=300),
    unanswerable("q4", abstained=True, answer="I don't know.",
                 retrieve_ms=40, first_token_ms=70, total_ms=400),
    unanswerable("q5", answer="The answer is <script>alert(1)</script> 42.", groundedness=0.3,
                 leak_flags=2, flags=["secret", "confidential"],
                 retrieve_ms=50, first_token_ms=80, total_ms=500),
    row("q6", source_paths=["b.md"], hit_rank=2, error="model crashed", total_ms=9999),
    unanswerable("q7", answer="Probably Tuesday.", groundedness=0.1, unsupported=2,
                 retrieve_ms=60, first_token_ms=90, total_ms=700),
    # Paraphrases. q1-p1 agrees (token F1 4/7) with the same citations; q1-p2 abstains;
    # q2-p1 cites the same file but disagrees (F1 4/9); q4-p1 abstains like its original;
    # q3-p1 failed and is not compared. Their leak flags must not count.
    row("q1-p1", "paraphrase-1", "q1", answer="The port is 5432 by default [2].",
        cited_sources=["docs/a.md"], leak_flags=5, total_ms=1e6),
    row("q1-p2", "paraphrase-2", "q1", abstained=True),
    row("q2-p1", "paraphrase-1", "q2", answer="Keys rotate monthly.", cited_sources=["docs/c.md"]),
    row("q3-p1", "paraphrase-1", "q3", error="timeout"),
    unanswerable("q4-p1", variant="paraphrase-1", of="q4", abstained=True),
]


@pytest.fixture(scope="module")
def summary() -> dict:
    return summarize(ROWS)


def test_counts_only_originals(summary):
    assert (summary["questions"], summary["answerable"], summary["unanswerable"], summary["errors"]) == (7, 4, 3, 1)
    assert summary["leaks"] == {"answers_flagged": 2, "flags": 3}


def test_retrieval_figures(summary):
    hits = summary["retrieval"]["hit_at_k"]
    assert list(hits) == [str(k) for k in range(1, 11)]
    assert (hits["1"], hits["2"], hits["3"], hits["10"]) == pytest.approx((0.25, 0.5, 0.75, 0.75), abs=1e-3)
    assert summary["retrieval"]["mrr"] == pytest.approx(0.458, abs=1e-3)


def test_answer_and_groundedness_figures(summary):
    assert summary["answers"] == pytest.approx(
        {"f1": 0.5, "contains": 0.5, "answered": 0.5, "correct_with_citation": 0.25}, abs=1e-3)
    assert summary["groundedness"] == pytest.approx({"mean": 0.45, "answers_with_unsupported": 0.5}, abs=1e-3)


def test_abstention_figures(summary):
    assert summary["abstention"] == pytest.approx(
        {"precision": 0.5, "recall": 0.333, "f1": 0.4, "false_abstentions": 1}, abs=1e-3)


def test_latency_percentiles_interpolate_like_numpy(summary):
    assert summary["latency"] == {
        "total_ms_p50": 350.0, "total_ms_p95": 650.0,
        "first_token_ms_p50": 65.0, "first_token_ms_p95": 87.5, "retrieve_ms_p50": 35.0,
    }
    assert percentile([3, 1, 2], 50) == 2.0 and percentile([], 50) is None
    assert percentile([10, 20], 95) == pytest.approx(19.5)


def test_per_source_counts_each_source_of_a_question(summary):
    assert summary["per_source"] == {
        "a.md": {"questions": 2, "hit_at_5": 0.5},
        "b.md": {"questions": 2, "hit_at_5": 1.0},
        "c.md": {"questions": 1, "hit_at_5": 0.0},
    }


def test_consistency_across_paraphrases(summary):
    assert agreement_f1("The server listens on port 5432 [1].", "The port is 5432 by default [2].") == pytest.approx(4 / 7)
    assert agreement_f1("API keys rotate every 90 days [1].", "Keys rotate monthly.") == pytest.approx(4 / 9)
    assert agreement_f1("The cat sat.", "the CAT sat") == 1.0
    assert agreement_f1("", "the") == 1.0 and agreement_f1("", "cat") == 0.0
    assert summary["consistency"] == pytest.approx(
        {"groups": 3, "same_citations": 0.75, "agreement": 0.5, "mean_answer_f1": (4 / 7 + 4 / 9) / 2,
         "entailment": None}, abs=1e-3)


def test_worst_puts_errors_first_and_gives_reasons(summary):
    worst = summary["worst"]
    assert [(w["id"], w["reason"]) for w in worst] == [
        ("q6", "error: model crashed"),
        ("q3", "abstained on an answerable question"),
        ("q2", "wrong answer (F1 0.20)"),
        ("q7", "answered an unanswerable question; unsupported sentences"),
        ("q5", "answered an unanswerable question"),
    ]
    assert set(worst[0]) == {"id", "question", "answer", "reference", "f1", "abstained", "flags", "reason"}
    assert worst[-1]["flags"] == ["secret", "confidential"]


def test_worst_keeps_ten():
    rows = [row(f"e{i}", error="boom") for i in range(12)]
    assert len(summarize(rows)["worst"]) == 10


def test_empty_and_sparse_rows_do_not_crash():
    empty = summarize([])
    assert (empty["questions"], empty["errors"], empty["worst"], empty["per_source"]) == (0, 0, [], {})
    assert set(empty["retrieval"]["hit_at_k"].values()) == {None} and empty["retrieval"]["mrr"] is None
    assert set(empty["latency"].values()) == {None}
    assert empty["abstention"] == {"precision": None, "recall": None, "f1": None, "false_abstentions": 0}
    assert empty["consistency"] == {"groups": 0, "same_citations": None, "agreement": None, "mean_answer_f1": None,
                                    "entailment": None}
    # An error row may hold little more than its id.
    bare = summarize([{"id": "x", "question": "?", "variant": "original", "of": "x", "answerable": True, "error": "boom"}])
    assert bare["errors"] == 1 and bare["answers"]["answered"] == 0.0


def test_write_report_writes_every_file(summary, tmp_path):
    out = tmp_path / "run"
    meta = {"date": "2025-01-02T03:04:05+00:00", "collection": "handbook", "model": "qwen"}
    paths = write_report(summary, ROWS, out, title="handbook eval", meta=meta)
    names = ["report.json", "recall_at_k.png", "latency.png", "sources.png", "report.html"]
    assert paths == [out / n for n in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)   # no scratch files left

    document = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert document["title"] == "handbook eval" and document["summary"] == summary
    assert document["meta"] == meta | {"questions": 7}
    for name in names[1:4]:
        assert (out / name).read_bytes().startswith(PNG)

    page = (out / "report.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    for name in names[1:4]:
        assert f'src="{name}"' in page
    assert "handbook" in page and "answered an unanswerable question" in page


def test_write_report_with_nothing_to_plot(tmp_path):
    paths = write_report(summarize([]), [], tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)
    assert (tmp_path / "latency.png").read_bytes().startswith(PNG)


def test_importing_the_report_does_not_import_matplotlib():
    code = "import sys, evaluation.report, evaluation.metrics; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_benchmark_figures_go_into_the_same_report_shape(tmp_path):
    from evaluation.report import write_figures_report
    sections = {"guard": {"date": "2026-12-01", "leaks": {"secrets": {"recall": 0.96, "precision": 0.966}},
                          "rows": [{"q": "<script>"}] * 20, "types": ["PERSON", "EMAIL"]}}
    paths = write_figures_report(sections, tmp_path / "r", meta={"machine": "test"})
    document = json.loads((tmp_path / "r" / "report.json").read_text())
    assert set(document) == {"title", "meta", "summary"} and document["summary"] == sections
    page = (tmp_path / "r" / "report.html").read_text()
    assert "leaks.secrets.recall" in page and "0.96" in page and "PERSON, EMAIL" in page
    assert "<script>" not in page and "20 entries" in page
    assert [p.name for p in paths] == ["report.json", "report.html"]


def test_every_value_in_the_report_page_is_escaped(tmp_path):
    bad = "<script>alert(1)</script>"
    summary = summarize([row("q1", question=bad, answer=bad, reference=bad, flags=[bad], error=bad)])
    write_report(summary, [], tmp_path, title=bad, meta={"date": "2026-01-02", "collection": bad, bad: "x"})
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8
    assert page.startswith("<!DOCTYPE html>\n<html lang=en>") and page.endswith("</body></html>\n")
