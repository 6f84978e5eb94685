"""``landscape report RUN.h5 RESULTS.h5 --out DIR``: one self-contained HTML page."""

from __future__ import annotations


NAME = "report"
HELP = "write a self-contained HTML report (provenance, eigenvalue table, every figure)"


def add_arguments(p):
    p.add_argument("files", nargs="+", metavar="FILE", help="the run file and the results file (any order)")
    p.add_argument("--out", required=True, help="output directory (report.html and figures/)")
    p.add_argument("--title", default="Landscape report")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")


def run(args) -> int:
    from analyses.output.render import open_inputs_for_figures
    from analyses.output.report import build_report

    with open_inputs_for_figures(args.files) as (results, runfile):
        path = build_report(results, runfile, args.out, overwrite=args.overwrite, title=args.title)
    print(f"report: {path}")
    return 0
