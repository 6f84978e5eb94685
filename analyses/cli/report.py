"""``landscape report RUN.h5 RESULTS.h5 [SIB.h5 SIB-RESULTS.h5 ...] --out DIR``: one self-contained HTML page.

Files come in any order: each results file is paired with the run whose SHA-256 it stores, so
several runs (a main run and its siblings) appear side by side. See :mod:`analyses.output.inputs`.
"""

from __future__ import annotations

NAME = "report"
HELP = "write a self-contained HTML report of one or several runs (tables, every figure, side by side)"


def add_arguments(p):
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="run files and their results files, in any order (each results file is matched to its "
                        "run by the checksum it stores); runs appear in the order their run files are given")
    p.add_argument("--out", required=True, help="output directory (report.html and figures/)")
    p.add_argument("--labels", default=None, metavar="A,B,...",
                   help="names of the runs, in the order of the run files (default: the run files' names)")
    p.add_argument("--title", default="Landscape report")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")


def labels(text: str | None) -> list[str] | None:
    """``"main,sibling"`` → ``["main", "sibling"]`` (None stays None)."""
    return None if text is None else [s.strip() for s in text.split(",")]


def run(args) -> int:
    from analyses.output.inputs import open_runs
    from analyses.output.report import build_report

    with open_runs(args.files, labels(args.labels)) as views:
        path = build_report(views, args.out, overwrite=args.overwrite, title=args.title)
    print(f"report: {path}")
    return 0
