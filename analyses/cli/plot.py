"""``landscape plot RESULTS.h5 [RUN.h5] --out DIR``: every figure the stored results support."""

from __future__ import annotations

from analyses.plots import all_figures
from landscape.errors import InputError

NAME = "plot"
HELP = "draw every figure the stored results support (PDF + PNG, paper style)"


def add_arguments(p):
    p.add_argument("files", nargs="+", metavar="FILE", help="a results file and/or a run file (any order)")
    p.add_argument("--out", required=True, help="output directory for the figures")
    p.add_argument("--only", default="", help="comma-separated figure names; known: " + ", ".join(sorted(all_figures())))


def run(args) -> int:
    from analyses.output.render import open_inputs_for_figures, render_figures

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(all_figures()))
    if unknown:
        raise InputError(f"--only: unknown figure(s) {', '.join(unknown)}; known: {', '.join(sorted(all_figures()))}")
    with open_inputs_for_figures(args.files) as (results, runfile):
        made = render_figures(results, runfile, args.out, only=names or None, log=print)
    print(f"{len(made)} figure(s) written to {args.out}")
    return 0
