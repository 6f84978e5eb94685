"""Benchmark: hyperparameter optimisation recipes — a meta-iteration against one training run, and the whole recipe.

For each recipe of ``landscape hyper optimize`` at its default size (MNIST-1D, float64, one torch thread):

* side by side, interleaved: one training run of the inner problem (:func:`landscape.hyper.train` at the
  starting hyperparameters, one seed) and one meta-iteration (:meth:`OptimizeWork.iteration`: the
  hypergradient of every seed of the iteration by the recipe's route, the metrics of θ_T, the meta-step);
  the ratio per round, and per seed (the iteration averages ``seeds_per_iter`` hypergradients);
* with ``--full``: the recipe end to end by its command (``landscape hyper optimize --recipe NAME``:
  every meta-iteration, the evaluation), wall time against the target of 10 minutes on 2 CPU cores.

The machine's load average is recorded before and after each recipe (other engineers share it).

    .venv/bin/python bench/hyperopt.py                 # ratios, every recipe
    .venv/bin/python bench/hyperopt.py --full          # and each recipe's command end to end (≈ 20 min)
    .venv/bin/python bench/hyperopt.py --only distill --full
    .venv/bin/python bench/hyperopt.py --tiny          # smoke test
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (bench_main, header_markdown, log, machine_info, markdown_table, round_ratios,  # noqa: E402
                    setup_torch, time_interleaved)

TARGET_S = 600.0   # each recipe at its default size within 10 minutes on 2 CPU cores (issue 17)
RECIPES = ("schedule", "init", "ard", "distill", "distill_fixed")
TINY = {"dataset_kwargs": {"num_train": 300, "num_test": 100}, "num_val": 100, "steps": 6, "iterations": 2,
        "seeds_per_iter": 1, "eval_seeds": 2, "const_num": 3, "curve_points": 3}


def work_of(name: str, tiny: bool):
    """The recipe's :class:`OptimizeWork` and its problem source (built as the command builds them)."""
    import torch

    from analyses import hyper_optimize as HO
    from analyses.driver.problems import ProblemSource

    cfg = HO.recipe(name, **(TINY if tiny else {}))
    ns = argparse.Namespace(run=None, nesterov=False, **{k: getattr(cfg, k) for k in (
        "model", "model_kwargs", "dataset", "dataset_kwargs", "loss", "lr", "momentum", "weight_decay",
        "batch_size", "full_batch")})
    source = ProblemSource(ns, cfg.steps, "cpu", torch.float64, num_val=cfg.num_val)
    data = HO.ProblemData(source.problem, source.train, source.val, source.test, source.targets,
                          source.data.num_classes)
    return cfg, HO.OptimizeWork(cfg, data)


def ratios(name: str, tiny: bool, repeats: int) -> dict:
    """One training run against one meta-iteration, interleaved."""
    from landscape.hyper import train

    cfg, work = work_of(name, tiny)
    prob, h0 = work.problem(cfg.seed), work.hyper(work.phi0)
    counter = iter(range(10 ** 6))
    calls = {"training run": lambda: train(prob, h0, cfg.steps),
             "meta-iteration": lambda: work.iteration(next(counter))}
    t = time_interleaved(calls, repeats=repeats, warmup=1)
    med, lo, hi = round_ratios(t["meta-iteration"], t["training run"])
    return {"recipe": name, "route": work.route, "T": cfg.steps, "seeds_per_iter": cfg.seeds_per_iter,
            "iterations": cfg.iterations, "train_s": t["training run"].median_s,
            "meta_iteration_s": t["meta-iteration"].median_s, "ratio": med, "ratio_min": lo, "ratio_max": hi,
            "ratio_per_seed": med / cfg.seeds_per_iter,
            "hyperparameters": int(sum(v.numel() for v in work.phi0.values()))}


def full_run(name: str, tiny: bool) -> dict:
    """The recipe's command end to end in this process, wall time and load before/after."""
    from analyses.cli import main

    before = os.getloadavg()
    extra = []
    if tiny:
        extra = ["--steps", "6", "--iterations", "2", "--seeds-per-iter", "1", "--eval-seeds", "2", "--const-num", "3",
                 "--curve-points", "3", "--num-val", "100", "--dataset-kwargs", '{"num_train": 300, "num_test": 100}']
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        rc = main(["hyper", "optimize", "--recipe", name, "--out", os.path.join(d, "r.h5"), "--no-progress", *extra])
        wall = time.perf_counter() - start
    return {"recipe": name, "rc": rc, "wall_s": wall, "load_before": [round(x, 2) for x in before],
            "load_after": [round(x, 2) for x in os.getloadavg()], "within_target": wall <= TARGET_S}


def run(args) -> dict:
    setup_torch("cpu", args.threads)
    names = [n for n in RECIPES if args.only in (None, n)]
    out = {"machine": machine_info("cpu"), "ratios": [], "full": []}
    for name in names:
        log(f"{name}: training run against a meta-iteration (load {os.getloadavg()[0]:.2f})")
        row = ratios(name, args.tiny, 2 if args.tiny else (3 if args.quick else 5))
        row["load_1min"] = round(os.getloadavg()[0], 2)
        out["ratios"].append(row)
    for name in names if args.full else ():
        log(f"{name}: the whole recipe by its command")
        out["full"].append(full_run(name, args.tiny))
    return out


def report(r: dict) -> str:
    lines = ["### Hyperparameter optimisation: cost of the recipes", "", header_markdown(r["machine"]), ""]
    rows = [(x["recipe"], x["route"], x["T"], x["hyperparameters"], x["seeds_per_iter"], f"{x['train_s']:.3f}",
             f"{x['meta_iteration_s']:.3f}", f"{x['ratio']:.1f} ({x['ratio_min']:.1f}–{x['ratio_max']:.1f})",
             f"{x['ratio_per_seed']:.1f}", x["iterations"], x["load_1min"]) for x in r["ratios"]]
    lines.append(markdown_table(["recipe", "route", "T", "hyperparameters", "seeds / iteration", "training run (s)",
                                 "meta-iteration (s)", "ratio (min–max)", "ratio per seed", "meta-iterations",
                                 "load (1 min)"], rows))
    if r["full"]:
        lines += ["", markdown_table(["recipe", "wall time (s)", f"≤ {TARGET_S:.0f} s", "load before", "load after",
                                      "exit"],
                                     [(x["recipe"], f"{x['wall_s']:.0f}", "yes" if x["within_target"] else "NO",
                                       x["load_before"], x["load_after"], x["rc"]) for x in r["full"]])]
    return "\n".join(lines)


def extra_args(parser) -> None:
    parser.add_argument("--only", choices=RECIPES, default=None, help="one recipe only")
    parser.add_argument("--full", action="store_true", help="also run each recipe's command end to end")


if __name__ == "__main__":
    sys.exit(bench_main(__doc__, run, report, None, extra_args))
