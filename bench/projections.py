"""Benchmark of issue 6's targets: per-example projections and the cost of a loss surface.

1. Per-example projections g_i·v_j for N examples and k directions by forward-mode JVPs
   (:meth:`Objective.per_example_projections`) against one full-dataset gradient and
   against the naive route (chunked ``vmap(grad)`` per-example gradients, then ``@ Vᵀ``).
   Target: ≤ (k + 1) forward-mode passes, i.e. time(k) / time(k = 1) ≤ k + 1.
2. A G×G surface: the grid points actually evaluated (must be G²) and the time per point
   against one plain full-data forward pass (target: G² forward passes, nothing more).

Usage::

    .venv/bin/python bench/projections.py [--model cnn1d|mlp|resnet20] [--N 4000] [--k 10]
        [--grid 11] [--device cuda] [--dtype float32] [--repeat 3]

Prints Markdown tables (for bench/RESULTS.md) and the agreement between the two routes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {  # name → (model kwargs, dataset name, dataset kwargs)
    "cnn1d": ({}, "mnist1d", {}),
    "mlp": ({"in_dim": 40, "hidden": [256, 256]}, "mnist1d", {}),
    "resnet20": ({"width": 1}, "synthetic", {"input_shape": [3, 32, 32], "num_classes": 10}),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeat: int) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls after one warm-up call, and the last result."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, out


def build(args):
    from landscape.datasets import load_dataset
    from landscape.models import build_model
    from landscape.objective import Objective

    kwargs, data, data_kwargs = MODELS[args.model]
    ds = load_dataset(data, device=args.device, num_train=args.N, num_test=10, **data_kwargs)
    model = build_model(args.model, seed=0, **kwargs).to(args.device).eval()
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    model = model.to(dtype)
    obj = Objective(model, ds.x_train, ds.y_train, batch_size=args.batch_size, dtype=dtype)
    return obj, model, ds.x_train.to(dtype), ds.y_train


def naive_projections(spec, model, theta, V, x, y, chunk: int) -> torch.Tensor:
    """(N, k) by explicit per-example gradients, ``chunk`` examples × P at a time."""
    from torch.func import functional_call, grad, vmap

    def loss(th, xi, yi):
        out = functional_call(model, spec.unflatten(th), (xi[None],))
        return torch.nn.functional.cross_entropy(out, yi[None])

    g = vmap(grad(loss), in_dims=(None, 0, 0))
    return torch.cat([g(theta, xc, yc) @ V.T for xc, yc in zip(x.split(chunk), y.split(chunk))])


def bench_projections(obj, model, x, y, args) -> None:
    theta, P, N, dev = obj.theta, obj.spec.numel, obj.num_examples, obj.device
    V = torch.randn(args.k, P, generator=torch.Generator().manual_seed(0)).to(theta)
    t_grad, _ = timed(lambda: obj.grad(theta), dev, args.repeat)
    t_fwd, _ = timed(lambda: obj.loss(theta), dev, args.repeat)
    t_one, _ = timed(lambda: obj.per_example_projections(theta, V[:1]), dev, args.repeat)
    t_k, proj = timed(lambda: obj.per_example_projections(theta, V), dev, args.repeat)
    chunk = max(1, min(N, args.naive_budget // P))
    t_naive, ref = timed(lambda: naive_projections(obj.spec, model, theta, V, x, y, chunk), dev, args.repeat)
    err = ((proj - ref).abs().max() / ref.abs().max()).item()
    print(f"\n### Per-example projections: {args.model}, P = {P:,}, N = {N:,}, k = {args.k}, "
          f"{args.dtype}, {dev}\n")
    print("| route | time (s) | × full gradient | × one forward-mode pass |")
    print("|---|---|---|---|")
    for name, t in (("full-data forward (loss)", t_fwd), ("full-data gradient", t_grad),
                    ("projections, k = 1 (one JVP pass)", t_one), (f"projections, k = {args.k} (JVPs)", t_k),
                    (f"naive vmap(grad) + matmul (chunks of {chunk})", t_naive)):
        print(f"| {name} | {t:.4f} | {t / t_grad:.2f} | {t / t_one:.2f} |")
    print(f"\nTarget ≤ k + 1 = {args.k + 1} forward-mode passes: measured {t_k / t_one:.2f}. "
          f"time naive / JVP route: {t_naive / t_k:.2f}; max relative difference of the two: {err:.1e}.")


class Counting:
    """Counts the parameter vectors handed to ``losses_at``."""

    def __init__(self, obj):
        self.obj, self.points = obj, 0

    def losses_at(self, thetas):
        self.points += thetas.shape[0]
        return self.obj.losses_at(thetas)


def bench_surface(obj, args) -> None:
    import numpy as np

    from analyses.surface import evaluate_rows

    theta, G, dev = obj.theta, args.grid, obj.device
    D = torch.randn(2, theta.numel(), generator=torch.Generator().manual_seed(1)).to(theta) / theta.numel() ** 0.5
    xs = np.linspace(-1, 1, G)
    counting = Counting(obj)
    t_grid, _ = timed(lambda: evaluate_rows(counting, theta, D, xs, xs, points_per_call=args.points_per_call),
                      dev, args.repeat)
    t_fwd, _ = timed(lambda: obj.loss(theta), dev, args.repeat)
    points = counting.points // (args.repeat + 1)
    print(f"\n### {G}×{G} surface: {args.model}, N = {obj.num_examples:,}, {dev}\n")
    print("| quantity | value |")
    print("|---|---|")
    print(f"| grid points evaluated (G² = {G * G}) | {points} |")
    print(f"| time of the grid (s) | {t_grid:.3f} |")
    print(f"| time of one full-data forward (s) | {t_fwd:.4f} |")
    print(f"| grid / (G² forward passes) | {t_grid / (G * G * t_fwd):.2f} |")
    print(f"| points per second | {G * G / t_grid:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS), default="cnn1d")
    p.add_argument("--N", type=int, default=4000, help="training examples")
    p.add_argument("--k", type=int, default=10, help="directions")
    p.add_argument("--grid", type=int, default=11, help="G of the G×G surface")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--points-per-call", type=int, default=16)
    p.add_argument("--naive-budget", type=int, default=2**25, help="entries of one (chunk, P) gradient block")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    obj, model, x, y = build(args)
    bench_projections(obj, model, x, y, args)
    bench_surface(obj, args)


if __name__ == "__main__":
    main()
