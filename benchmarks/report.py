"""Every benchmark's latest figures on one page, in the shape `docent eval` writes:
benchmarks/results/report/report.json ({"title", "meta", "summary": {benchmark: figures}})
and report.html. Each benchmark script writes its own benchmarks/results/NAME.json (with
its date and machine) and then rebuilds this page; a `docent eval` report folder is added
with --eval DIR (and stays on the page).

    .venv/bin/python benchmarks/report.py [--eval benchmarks/.work/eval-docs]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
EVAL_PREFIX = "docent eval: "


def refresh(evals: list[str] = (), out: Path = RESULTS / "report") -> list[Path]:
    """Rebuild the page from every results/*.json; `evals`: docent eval folders to add
    (eval sections already on the page are kept). Each benchmark calls this last."""
    from evaluation.report import write_figures_report
    sections = {f"{path.stem} (benchmarks/{path.stem}.py)": json.loads(path.read_text())
                for path in sorted(RESULTS.glob("*.json"))}
    previous = out / "report.json"
    if previous.is_file():
        sections.update({name: figures for name, figures in json.loads(previous.read_text())["summary"].items()
                         if name.startswith(EVAL_PREFIX)})
    for folder in evals:
        report = json.loads((Path(folder) / "report.json").read_text())
        summary = {k: v for k, v in report["summary"].items() if k != "worst"}
        sections[f"{EVAL_PREFIX}{report['meta'].get('collection')} ({folder})"] = {"meta": report["meta"], **summary}
    return write_figures_report(sections, out, meta={"machine": f"{platform.machine()}, {platform.platform()}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", action="append", default=[], metavar="DIR",
                        help="a docent eval output folder to include (repeatable)")
    args = parser.parse_args()
    print("\n".join(str(p) for p in refresh(args.eval)))


if __name__ == "__main__":
    main()
