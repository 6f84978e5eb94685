"""``landscape plot FILE... --out DIR``: every figure the stored results support, for one or several runs.

Files are run files and results files in any order, paired by the run checksum each results file
stores (as for ``landscape report``). One run: ``DIR/<figure>.pdf|png``. Several runs: each run's
figures in ``DIR/<label>/`` and the figures comparing the runs in ``DIR``.
"""

from __future__ import annotations

from analyses.plots import all_figures
from landscape.errors import InputError

NAME = "plot"
HELP = "draw every figure the stored results support (PDF + PNG, paper style), for one or several runs"


def add_arguments(p):
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="run files and/or results files, in any order (results are matched to their run)")
    p.add_argument("--out", required=True, help="output directory for the figures (one folder per run if several)")
    p.add_argument("--only", default="", help="comma-separated figure names; known: " + ", ".join(all_figures()))
    p.add_argument("--labels", default=None, metavar="A,B,...",
                   help="names of the runs (their folders), in the order of the run files; default: the file names")


def run(args) -> int:
    from analyses.output.inputs import open_runs
    from analyses.output.render import render_runs

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(all_figures()))
    if unknown:
        raise InputError(f"--only: unknown figure(s) {', '.join(unknown)}; known: {', '.join(all_figures())}")
    labels = None if args.labels is None else [s.strip() for s in args.labels.split(",")]
    with open_runs(args.files, labels) as views:
        made = render_runs(views, args.out, only=names or None, log=print)
    print(f"{len(made.figures)} figure(s) written to {args.out}")
    return 0
