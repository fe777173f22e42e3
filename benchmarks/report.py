"""Every benchmark's latest figures on one page, in the shape `docent eval` writes:
benchmarks/results/report/report.json ({"title", "meta", "summary": {benchmark: figures}})
and report.html. Each benchmark script writes its own benchmarks/results/NAME.json (with
its date and machine); a `docent eval` report folder can be added with --eval DIR.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", action="append", default=[], metavar="DIR",
                        help="a docent eval output folder to include (repeatable)")
    parser.add_argument("--out", default=str(RESULTS / "report"), metavar="DIR")
    args = parser.parse_args()
    from evaluation.report import write_figures_report
    sections = {}
    for path in sorted(RESULTS.glob("*.json")):
        sections[f"{path.stem} (benchmarks/{path.stem}.py)"] = json.loads(path.read_text())
    for folder in args.eval:
        report = json.loads((Path(folder) / "report.json").read_text())
        summary = {k: v for k, v in report["summary"].items() if k != "worst"}
        sections[f"{report['title']} ({folder})"] = {"meta": report["meta"], **summary}
    paths = write_figures_report(sections, Path(args.out),
                                 meta={"machine": f"{platform.machine()}, {platform.platform()}"})
    print("\n".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
