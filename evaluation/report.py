"""The report of an evaluation run: report.json, three PNG plots and one self-contained
report.html that shows them. matplotlib is imported only when a report is written, so
the CLI and the tests that never plot do not pay for it."""

from __future__ import annotations

import functools
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from docent.atomic import write_atomically

MAX_SOURCES = 25       # bars in sources.png; more would be unreadable
NO_DATA = "no data"


# ---------------------------------------------------------------- files

# ---------------------------------------------------------------- plots

def _figure(width: float = 6.4, height: float = 4.0):
    # A bare Figure on an Agg canvas: no pyplot, so no global backend or GUI state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _no_data(ax) -> None:
    ax.text(0.5, 0.5, NO_DATA, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _plot_recall(summary: dict) -> bytes:
    fig, ax = _figure()
    curve = [(int(k), v) for k, v in (summary.get("retrieval", {}).get("hit_at_k") or {}).items()
             if v is not None]
    ax.set_title("Retrieval: answer source in the top k")
    if curve:
        ks, values = zip(*sorted(curve))
        ax.plot(ks, values, marker="o")
        ax.set_xticks(ks)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("k (passages retrieved)")
        ax.set_ylabel("hit@k")
        ax.grid(alpha=0.3)
    else:
        _no_data(ax)
    return _png(fig)


def _plot_latency(summary: dict, rows: list[dict]) -> bytes:
    fig, ax = _figure()
    # The same rows as the summary's percentiles: originals that did not fail.
    totals = [r["total_ms"] for r in rows if r.get("variant", "original") == "original"
              and not r.get("error") and r.get("total_ms") is not None]
    ax.set_title("Time to a full answer")
    if totals:
        ax.hist(totals, bins=min(30, max(5, len(totals) // 2)), color="#8aa8c8")
        latency = summary.get("latency", {})
        for name, style in (("total_ms_p50", "-"), ("total_ms_p95", "--")):
            value = latency.get(name)
            if value is not None:
                label = f"{name.rsplit('_', 1)[1]} {value:.0f} ms"
                ax.axvline(value, color="#b03030", linestyle=style, label=label)
        ax.set_xlabel("total ms")
        ax.set_ylabel("questions")
        ax.yaxis.get_major_locator().set_params(integer=True)   # counts, not 0.25 steps
        ax.legend()
    else:
        _no_data(ax)
    return _png(fig)


def _short(path: str, width: int = 40) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1):]


def _plot_sources(summary: dict) -> bytes:
    per_source = summary.get("per_source") or {}
    # Worst first; among equals the source with more questions matters more.
    ranked = sorted(
        ((s, v) for s, v in per_source.items() if v.get("hit_at_5") is not None),
        key=lambda sv: (sv[1]["hit_at_5"], -sv[1]["questions"], sv[0]),
    )[:MAX_SOURCES]
    fig, ax = _figure(height=max(3.0, 1.2 + 0.3 * len(ranked)))
    ax.set_title("Retrieval by source: hit@5")
    if ranked:
        labels = [f"{_short(s)} ({v['questions']})" for s, v in ranked]
        ax.barh(range(len(ranked)), [v["hit_at_5"] for _, v in ranked], color="#7fb07f")
        ax.set_yticks(range(len(ranked)), labels, fontsize=8)
        ax.invert_yaxis()          # the worst source on top
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of its questions with the source in the top 5")
    else:
        _no_data(ax)
    return _png(fig)


# ---------------------------------------------------------------- html

@functools.cache
def _templates():
    """The report pages' Jinja2 templates (docent/templates), built on the first report.
    Autoescaped: questions and answers come from documents and the model, never HTML."""
    import jinja2
    return jinja2.Environment(loader=jinja2.PackageLoader("docent", "templates"), autoescape=True,
                              keep_trailing_newline=True)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _num(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:.3f}".rstrip("0").rstrip(".") + unit if isinstance(value, float) else f"{value}{unit}"


def _headline(summary: dict) -> list[tuple[str, str]]:
    def get(section: str) -> dict:
        return summary.get(section) or {}

    hits = get("retrieval").get("hit_at_k") or {}
    top_k = max(hits, key=int) if hits else None
    lines = [
        ("Questions (answerable / unanswerable)",
         f"{summary.get('questions', 0)} ({summary.get('answerable', 0)} / {summary.get('unanswerable', 0)})"),
        ("Errors", _num(summary.get("errors", 0))),
        ("Hit@1", _pct(hits.get("1"))),
        ("Hit@5", _pct(hits.get("5"))),
    ]
    if top_k and top_k not in ("1", "5"):
        lines.append((f"Hit@{top_k}", _pct(hits[top_k])))
    ans, grd, abst = get("answers"), get("groundedness"), get("abstention")
    lat, leaks = get("latency"), get("leaks")
    lines += [
        ("MRR", _num(get("retrieval").get("mrr"))),
        ("Answered (answerable questions)", _pct(ans.get("answered"))),
        ("Answer F1 (mean)", _num(ans.get("f1"))),
        ("Reference contained", _pct(ans.get("contains"))),
        ("Correct with a citation of the source", _pct(ans.get("correct_with_citation"))),
        ("Groundedness (mean)", _num(grd.get("mean"))),
        ("Answers with unsupported sentences", _pct(grd.get("answers_with_unsupported"))),
        ("Abstention precision / recall / F1",
         " / ".join(_num(abst.get(k)) for k in ("precision", "recall", "f1"))),
        ("False abstentions", _num(abst.get("false_abstentions"))),
        ("Answers with leak flags (flags)",
         f"{_num(leaks.get('answers_flagged'))} ({_num(leaks.get('flags'))})"),
        ("Total time p50 / p95", f"{_num(lat.get('total_ms_p50'), ' ms')} / {_num(lat.get('total_ms_p95'), ' ms')}"),
        ("First token p50 / p95",
         f"{_num(lat.get('first_token_ms_p50'), ' ms')} / {_num(lat.get('first_token_ms_p95'), ' ms')}"),
        ("Retrieval p50", _num(lat.get("retrieve_ms_p50"), " ms")),
    ]
    return lines


def _consistency(summary: dict) -> list[tuple[str, str]]:
    cons = summary.get("consistency") or {}
    return [
        ("Question groups with paraphrases", _num(cons.get("groups", 0))),
        ("Same cited sources", _pct(cons.get("same_citations"))),
        ("Agreeing answers", _pct(cons.get("agreement"))),
        ("Answer F1 between paraphrases (mean)", _num(cons.get("mean_answer_f1"))),
        ("Sentences of a paraphrase's answer backed by the original's (guard, mean)", _pct(cons.get("entailment"))),
    ]


def _html(title: str, meta: dict, summary: dict, plots: list[str]) -> str:
    return _templates().get_template("eval_report.html").render(
        title=title, meta=meta, headline=_headline(summary), plots=plots, consistency=_consistency(summary),
        worst=summary.get("worst") or [])


# ---------------------------------------------------------------- entry point

def _meta(summary: dict, meta: dict | None) -> dict:
    """The caller's meta, led by the date, collection, model and question count."""
    meta = dict(meta or {})
    lead = {
        "date": meta.pop("date", None) or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "collection": meta.pop("collection", None),
        "model": meta.pop("model", None),
        "questions": meta.pop("questions", summary.get("questions", 0)),
    }
    return {k: v for k, v in {**lead, **meta}.items() if v is not None}


def write_report(summary: dict, rows: list[dict], out_dir: Path, title: str = "docent eval",
                 meta: dict | None = None) -> list[Path]:
    """Write report.json, recall_at_k.png, latency.png, sources.png and report.html
    into out_dir (created if needed); returns their paths in that order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = _meta(summary, meta)
    document = {"title": title, "meta": meta, "summary": summary}
    written = [write_atomically(out_dir / "report.json",
                             (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())]
    plots = {
        "recall_at_k.png": lambda: _plot_recall(summary),
        "latency.png": lambda: _plot_latency(summary, rows),
        "sources.png": lambda: _plot_sources(summary),
    }
    for name, draw in plots.items():
        written.append(write_atomically(out_dir / name, draw()))
    page = _html(title, meta, summary, list(plots))
    written.append(write_atomically(out_dir / "report.html", page.encode("utf-8")))
    return written


# ---------------------------------------------------------------- figures of other runs

def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested figures as (dotted name, shown value) rows; long lists are summarised."""
    if isinstance(value, dict):
        return [pair for key, sub in value.items() for pair in _flatten(sub, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value) and len(value) <= 12:
            return [(prefix, ", ".join(_num(v) if isinstance(v, (int, float)) else str(v) for v in value))]
        return [(prefix, f"{len(value)} entries (see the JSON)")]
    return [(prefix, _num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value))]


def write_figures_report(sections: dict[str, dict], out_dir: Path, title: str = "docent benchmarks",
                         meta: dict | None = None) -> list[Path]:
    """The benchmarks' figures in the eval report's shape: report.json ({"title", "meta",
    "summary": {benchmark: figures}}) and one report.html with a table per benchmark."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **(meta or {})}
    document = {"title": title, "meta": meta, "summary": sections}
    written = [write_atomically(out_dir / "report.json", (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())]
    page = _templates().get_template("figures_report.html").render(
        title=title, meta=meta, sections=[(name, _flatten(figures)) for name, figures in sections.items()])
    written.append(write_atomically(out_dir / "report.html", page.encode("utf-8")))
    return written
