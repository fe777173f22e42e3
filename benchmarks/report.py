"""Every benchmark's latest figures on one page, in the shape `docent eval` writes:
benchmarks/results/report/report.json ({"title", "meta", "summary": {benchmark: figures}})
and report.html, built from benchmarks/results/*.json alone (not kept in git: rebuilt).
Each benchmark script writes its own results file (with its date and machine) and then
rebuilds the page; --eval DIR keeps a `docent eval` run's figures as
benchmarks/results/eval-COLLECTION.json, so they stay on the page.

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


def keep_eval(folder: str) -> Path:
    """A docent eval run's figures (all but the worst questions) as a results file."""
    report = json.loads((Path(folder) / "report.json").read_text())
    figures = {"meta": {**report["meta"], "folder": folder},
               **{k: v for k, v in report["summary"].items() if k != "worst"}}
    path = RESULTS / f"eval-{report['meta'].get('collection', 'default')}.json"
    path.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    return path


def refresh(out: Path = RESULTS / "report") -> list[Path]:
    """Rebuild the page from every results/*.json. Each benchmark calls this last."""
    from evaluation.report import write_figures_report
    sections = {f"{path.stem} (benchmarks/results/{path.name})": json.loads(path.read_text())
                for path in sorted(RESULTS.glob("*.json"))}
    return write_figures_report(sections, out, meta={"machine": f"{platform.machine()}, {platform.platform()}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", action="append", default=[], metavar="DIR",
                        help="a docent eval output folder to keep on the page (repeatable)")
    args = parser.parse_args()
    for folder in args.eval:
        print(keep_eval(folder))
    print("\n".join(str(p) for p in refresh()))


if __name__ == "__main__":
    main()
