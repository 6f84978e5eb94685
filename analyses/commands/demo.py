"""``landscape demo --out DIR``: the whole study on MNIST-1D (generated offline), with a report."""

from __future__ import annotations

import time

NAME = "demo"
HELP = "run the whole study on MNIST-1D: training, Hessian jobs, analyses, figures and an HTML report"


def add_arguments(p) -> None:
    p.add_argument("--out", default="demo-out", help="output directory (default demo-out)")
    p.add_argument("--overwrite", action="store_true", help="redo the demo in a directory that already holds one")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of every stage, under a minute or two)")


def run(args) -> int:
    from analyses.demo import QUICK, DemoConfig, run_demo

    start = time.perf_counter()
    times = run_demo(args.out, overwrite=args.overwrite, device=args.device,
                     config=QUICK if args.quick else DemoConfig())
    total = time.perf_counter() - start
    print("\n== done in {:.0f} s".format(total))
    for title, seconds in times.items():
        print(f"  {seconds:7.1f} s  {title}")
    print(f"\nreport:   {args.out}/report.html\nfigures:  {args.out}/figures/\n"
          f"runs:     {args.out}/run.h5, {args.out}/sibling.h5\nresults:  {args.out}/results.h5, "
          f"{args.out}/sibling-results.h5\ninspect:  landscape info {args.out}/results.h5")
    return 0
