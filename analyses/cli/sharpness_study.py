"""``landscape sharpness-study R1.h5 R2.h5 ... --out STUDY.h5``: measures against the gap over a zoo.

Each input is the results file of one run written by ``landscape sharpness``. For every
run the measures of one step (``--step``, default each run's last analysed step) are
tabulated against its generalization gap (``--gap loss``: test − train loss, or
``error``: test − train error) with Kendall's τ, Spearman's ρ, bootstrap intervals and
the granulated τ over the hyperparameters that differ between runs (Jiang et al. 2020).
Runs of different models are refused. The table is printed and stored as
``sharpness_study/table`` in ``--out`` (``landscape plot STUDY.h5`` draws it).
"""

from __future__ import annotations

import argparse
import numpy as np

from analyses import sharpness_study as SS
from landscape.errors import InputError

NAME = "sharpness-study"
HELP = "rank correlations (Kendall τ, Spearman ρ, bootstrap CIs) of sharpness measures with the gap over runs"
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULTS.h5", help="results files of `landscape sharpness`, one per run")
    p.add_argument("--out", required=True, metavar="STUDY.h5", help="where the table is stored")
    p.add_argument("--step", type=int, default=None, help="the step to compare (default: each run's last)")
    p.add_argument("--gap", choices=SS.GAP_KINDS, default="loss", help="test − train loss (default) or error")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples; default 1000")
    p.add_argument("--confidence", type=float, default=0.95, help="level of the intervals; default 0.95")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling; default 0")
    p.add_argument("--hparams", default=None,
                   help="comma-separated run-config fields for the granulated τ (default: those that vary)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing table in --out")


def _step_items(results, step: int | None, path: str) -> tuple[int, dict, dict]:
    by_step = results.by_step("sharpness")
    steps = sorted(by_step)
    if not steps:
        raise InputError(f"{path} holds no sharpness results; run `landscape sharpness RUN.h5 --out {path}` first")
    if step is not None and step not in steps:
        raise InputError(f"{path} has no sharpness results at step {step}; it has steps {steps}")
    s = steps[-1] if step is None else step
    items, attrs = {}, {}
    for quantity, key in by_step[s].items():
        items[quantity], attrs = results.read_item(key)
    return s, items, attrs


def load_run(path: str, args) -> SS.RunMeasures:
    """One run's measures, gap, model signature and hyperparameters from its results file."""
    from landscape.io import ResultsFile

    with ResultsFile(path, "r") as results:
        step, items, attrs = _step_items(results, args.step, path)
        label = (results.run_id or {}).get("path") or path
    return SS.run_measures(items, attrs, f"{label}@{step}", args.gap)


def format_table(t: dict) -> str:
    lines = [f"{'measure':<34} {'tau':>6} {'95% CI':>15} {'rho':>6} {'95% CI':>15} {'Psi':>6}"]
    for j in np.argsort(-np.abs(np.nan_to_num(t["tau"]))):
        lines.append(f"{t['measures'][j]:<34} {t['tau'][j]:6.3f} [{t['tau_lo'][j]:6.3f},{t['tau_hi'][j]:6.3f}] "
                     f"{t['rho'][j]:6.3f} [{t['rho_lo'][j]:6.3f},{t['rho_hi'][j]:6.3f}] {t['Psi'][j]:6.3f}")
    return "\n".join(lines)


def run(args) -> int:
    from landscape.io import ResultsFile, provenance

    if args.bootstrap < 1 or not 0 < args.confidence < 1:
        raise InputError("--bootstrap must be ≥ 1 and --confidence in (0, 1)")
    runs = SS.select_hparams([load_run(p, args) for p in args.results], args.hparams)
    table = SS.study(runs, SS.StudyConfig(args.bootstrap, args.confidence, args.seed))
    arrays = {k: v for k, v in table.items() if k not in ("axes", "measures", "labels")}
    arrays.update(measures=np.array(table["measures"]), labels=np.array(table["labels"]))
    attrs = {"axes": table["axes"], "gap": args.gap, "step": args.step, "inputs": list(args.results),
             "config": {"bootstrap": args.bootstrap, "confidence": args.confidence, "seed": args.seed},
             "provenance": provenance()}
    with ResultsFile(args.out, "a") as out:
        out.write_item("sharpness_study/table", arrays, attrs, overwrite=args.overwrite)
    print(format_table(table))
    print(f"{len(runs)} runs; table stored in {args.out} (sharpness_study/table)")
    return 0
