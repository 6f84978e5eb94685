"""Benchmark of issue 5's target: the cost of a 10-direction × 41-point full-dataset line search.

Times :func:`analyses.linesearch.curves.along` (k unit directions × T grid points, the centre
θ evaluated once: k·(T − 1) + 1 parameter vectors, vmapped ``--chunk`` at a time through
:meth:`Objective.losses_at`) against one full-dataset forward pass (``loss_and_accuracy``,
the same data, batch size and dtype), and reports the ratio. The timings are interleaved: each
round times ten forward passes, then each line search, so a change of machine load hits both
alike; the ratio is the median over rounds of the same-round ratios. The target is at most one
forward pass per grid point, i.e. ratio ≤ k·(T − 1) + 1 = 401. With ``--minibatch-size`` it
also times the same search with per-minibatch curves, which reuse the forward passes via
per-example losses (they should cost about the same).

Which unit vectors are used does not change the cost, so the directions are seeded random
ones (no eigensolve needed).

Usage::

    .venv/bin/python bench/linesearch_cost.py [--model resnet_100k] [--dataset cifar_synthetic]
        [--N 2048] [--batch-size 256] [--k 10] [--num-t 41] [--chunk 32] [--minibatch-size 128]
        [--device cuda] [--repeats 3]

Prints a Markdown table for bench/RESULTS.md and the machine header.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyses.linesearch.curves import TGrid, along, minibatches  # noqa: E402
from bench.common import (Timing, header_markdown, machine_info, markdown_table, round_ratios,  # noqa: E402
                          setup_torch, time_interleaved)
from bench.problems import build_problem  # noqa: E402
from landscape.directions import gaussian, unit_rows  # noqa: E402


FORWARDS_PER_ROUND = 10  # one round's reference: this many forwards, so a round's ratio is not one noisy sample


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet_100k")
    p.add_argument("--model-kwargs", default="{}", help="JSON keyword arguments of the model")
    p.add_argument("--dataset", default="cifar_synthetic", choices=("cifar_synthetic", "synthetic1d", "mnist1d"))
    p.add_argument("--N", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--num-t", type=int, default=41)
    p.add_argument("--chunk", type=int, default=32, help="parameter vectors per vmapped forward")
    p.add_argument("--minibatch-size", type=int, default=128, help="0: skip the minibatch-curve timing")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: 1 on the CPU)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_torch(args.device, args.threads)
    problem = build_problem(args.model, dataset=args.dataset, N=args.N, batch_size=args.batch_size,
                            device=args.device, **json.loads(args.model_kwargs))
    obj = problem.objective()
    theta = obj.theta
    V = unit_rows(gaussian(problem.P, args.k, seed=0, device=theta.device))
    ts = TGrid(1.0, args.num_t).values()
    points = args.k * int((ts != 0).sum()) + int((ts == 0).any())
    fns = {"forward": lambda: [obj.loss_and_accuracy(theta) for _ in range(FORWARDS_PER_ROUND)],
           "plain": lambda: along(obj, theta, V, ts, chunk=args.chunk)}
    if args.minibatch_size:
        B = minibatches(problem.N, args.minibatch_size, seed=0)
        fns["minibatch"] = lambda: along(obj, theta, V, ts, batches=B, chunk=args.chunk)
    t = time_interleaved(fns, repeats=args.repeats, device=args.device)
    fwd = Timing(*(x / FORWARDS_PER_ROUND for x in (t["forward"].median_s, t["forward"].min_s, t["forward"].max_s)),
                 tuple(x / FORWARDS_PER_ROUND for x in t["forward"].samples))
    rows = [["one full-data forward pass", 1, fwd.median_s, fwd.spread(), 1.0, 1.0]]
    labels = {"plain": f"line search {args.k}×{args.num_t}"}
    if args.minibatch_size:
        path = "vmapped" if hasattr(obj, "per_example_losses_at") else "one pass per point (fallback)"
        labels["minibatch"] = f"… + {len(B)} minibatch curves of {args.minibatch_size} ({path})"
    for name, label in labels.items():
        med, lo, hi = round_ratios(t[name], fwd)
        rows.append([label, points, t[name].median_s, t[name].spread(), f"{med:.0f} ({lo:.0f}–{hi:.0f})",
                     f"{med / points:.2f}"])
    print(f"### Line-search cost ({problem.describe()}; chunk {args.chunk})\n")
    print(markdown_table(["what", "parameter vectors", "median s", "min–max s", "× forward pass (median, min–max over rounds)",
                          "× forward pass per vector"], rows))
    print(f"\nTarget: ≤ 1 forward pass per parameter vector, i.e. ≤ {points}× one forward pass.\n")
    print(header_markdown(machine_info(args.device)))


if __name__ == "__main__":
    main()
