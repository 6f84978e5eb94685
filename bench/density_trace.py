"""Spectral density (SLQ) and trace (Hutchinson, Hutch++) against the exact spectrum.

A small 1-D CNN on MNIST-1D, so that the dense float64 Hessian (``dense_hessian`` on a float64
objective) and its eigenvalues are the exact answer. The estimators run on the float32
operator every tool sees (its rounding, ≈1e-7 relative, is far below the sampling error).

* Trace: relative error |est − tr H| / |tr H| against the number of matvecs, median and
  min–max over ``seeds`` independent seeds: ours ``trace(H, m, "hutchinson"|"hutch++")``,
  hessian-eigenthings ``hutchinson``/``hutch_plus_plus``, PyHessian ``trace(maxIter=m, tol=0)``
  (tol 0 never stops early, so it uses exactly m HVPs) and PyHessian at its defaults
  (``maxIter=100, tol=1e-3``: the HVPs it chose to use).
* Density: Wasserstein-1 distance between the SLQ quadrature measure (mean over probes) and the
  exact spectral measure (1/P at each eigenvalue), divided by the spectral width λ_max − λ_min:
  ours ``spectral_density``, hessian-eigenthings ``spectral_density``, PyHessian ``density``
  (PyPI 0.1 calls ``torch.eig``, removed from torch: we run it and report the error it raises).

Usage: ``python bench/density_trace.py [--quick|--tiny] [--device cpu|cuda] [--json OUT]``
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
from common import bench_main, log, machine_info, markdown_table, setup_torch  # noqa: E402
from problems import build_problem, size_of  # noqa: E402

import landscape as ls  # noqa: E402
from landscape.operators import CountingOperator  # noqa: E402

PROBLEMS = {"full": dict(model="cnn1d", dataset="mnist1d", N=1000, batch_size=500, channels=(12, 12, 12)),
            "quick": dict(model="cnn1d", dataset="mnist1d", N=1000, batch_size=500, channels=(8, 8, 8)),
            "tiny": dict(model="cnn1d", dataset="synthetic1d", N=128, batch_size=64, channels=(4, 4, 4),
                         train_steps=4)}
BUDGETS = {"full": (30, 99, 300), "quick": (30, 99), "tiny": (12,)}  # matvecs per trace estimate
SEEDS = {"full": 10, "quick": 5, "tiny": 2}
SLQ = {"full": (10, 100), "quick": (5, 50), "tiny": (2, 10)}  # (probes n_v, Lanczos steps m)


def exact_spectrum(problem) -> np.ndarray:
    """Eigenvalues of the dense float64 Hessian (ascending)."""
    obj = problem.objective(dtype=torch.float64)
    H = ls.dense_hessian(obj, obj.theta)
    return np.linalg.eigvalsh(((H + H.T) / 2).cpu().numpy())


def _trace_methods(problem, H, m: int) -> dict[str, Callable[[int], tuple[float, int]]]:
    """name → (seed ↦ (estimate, matvecs used))."""
    def ours(method):
        def f(seed):
            counted = CountingOperator(H)
            return ls.trace(counted, m, method, seed=seed).value, counted.num_matvecs
        return f

    methods = {"ours hutchinson": ours("hutchinson"), "ours hutch++": ours("hutch++")}
    if peers.available("eigenthings"):
        methods["eigenthings hutchinson"] = lambda s: _eigenthings_trace(problem, m, "hutchinson", s)
        methods["eigenthings hutch_plus_plus"] = lambda s: _eigenthings_trace(problem, m, "hutch++", s)
    if peers.available("pyhessian"):
        methods[f"PyHessian trace(maxIter={m}, tol=0)"] = lambda s: _pyhessian_trace(problem, m, 0.0, s)
    return methods


def _eigenthings_trace(problem, m: int, method: str, seed: int) -> tuple[float, int]:
    import hessian_eigenthings as he

    op = peers.eigenthings_operator(problem)
    rec = peers.Recorder(op.matvec)
    wrapped = he.LambdaOperator(rec, op.size, op.device, op.dtype)
    est = he.hutchinson(wrapped, num_samples=m, seed=seed) if method == "hutchinson" else \
        he.hutch_plus_plus(wrapped, num_matvecs=m, seed=seed)
    return est.estimate, rec.count


def _pyhessian_trace(problem, max_iter: int, tol: float, seed: int) -> tuple[float, int]:
    torch.manual_seed(seed)  # PyHessian draws its Rademacher probes from the global RNG
    samples = peers.pyhessian_object(problem).trace(maxIter=max_iter, tol=tol)
    return float(np.mean(samples)), len(samples)


def trace_rows(problem, H, exact: float, budgets, seeds: int) -> list[dict]:
    """One row per (method, budget): matvecs, relative error median [min–max], seconds."""
    rows = []
    for m in budgets:
        for name, f in _trace_methods(problem, H, m).items():
            rows.append(_trace_row(name, f, exact, seeds))
        log(f"trace, {m} matvecs: done")
    if peers.available("pyhessian"):
        rows.append(_trace_row("PyHessian trace() defaults (maxIter=100, tol=1e-3)",
                               lambda s: _pyhessian_trace(problem, 100, 1e-3, s), exact, seeds))
    return rows


def _trace_row(name: str, f, exact: float, seeds: int) -> dict:
    errors, used, seconds = [], [], []
    for seed in range(seeds):
        start = time.perf_counter()
        value, n = f(seed)
        seconds.append(time.perf_counter() - start)
        errors.append(abs(value - exact) / abs(exact))
        used.append(n)
    return dict(method=name, matvecs_median=statistics.median(used), matvecs_range=(min(used), max(used)),
                error_median=statistics.median(errors), error_min=min(errors), error_max=max(errors),
                seconds_median=statistics.median(seconds))


def wasserstein1(nodes: np.ndarray, weights: np.ndarray, eigenvalues: np.ndarray) -> float:
    """W1 = ∫ |F_SLQ(t) − F_exact(t)| dt between two discrete measures (exact, by merging supports)."""
    points = np.concatenate([nodes.ravel(), eigenvalues])
    mass = np.concatenate([weights.ravel() / nodes.shape[0], -np.full(eigenvalues.size, 1.0 / eigenvalues.size)])
    order = np.argsort(points, kind="stable")
    gap = np.cumsum(mass[order])[:-1]
    return float(np.sum(np.abs(gap) * np.diff(points[order])))


def density_rows(problem, H, eigenvalues: np.ndarray, n_v: int, m: int) -> list[dict]:
    """Ours, hessian-eigenthings and PyHessian SLQ with n_v probes × m steps."""
    width = float(eigenvalues[-1] - eigenvalues[0])
    rows = []
    start = time.perf_counter()
    ours = ls.spectral_density(CountingOperator(H), num_probes=n_v, num_iters=m, seed=0)
    rows.append(dict(method="ours spectral_density", seconds=time.perf_counter() - start,
                     matvecs=ours.num_matvecs,
                     w1_rel=wasserstein1(ours.nodes.numpy(), ours.weights.numpy(), eigenvalues) / width))
    if peers.available("eigenthings"):
        rows.append(_eigenthings_density(problem, eigenvalues, width, n_v, m))
    if peers.available("pyhessian"):
        rows.append(_pyhessian_density(problem, n_v, m))
    return rows


def _eigenthings_density(problem, eigenvalues, width, n_v: int, m: int) -> dict:
    import hessian_eigenthings as he

    start = time.perf_counter()
    res = he.spectral_density(peers.eigenthings_operator(problem), num_runs=n_v, lanczos_steps=m, seed=0)
    nodes, weights = res.raw_eigenvalues.double().numpy(), res.raw_weights.double().numpy()
    nodes = np.where(np.isnan(nodes), 0.0, nodes)  # padding of runs that broke down carries zero weight
    return dict(method="eigenthings spectral_density", seconds=time.perf_counter() - start, matvecs=n_v * m,
                w1_rel=wasserstein1(nodes, weights, eigenvalues) / width)


def _pyhessian_density(problem, n_v: int, m: int) -> dict:
    start = time.perf_counter()
    try:
        peers.pyhessian_object(problem).density(iter=m, n_v=n_v)
        outcome = "ran"
    except Exception as err:  # noqa: BLE001 — we report whatever PyHessian raises
        outcome = f"fails: {type(err).__name__}: {str(err).splitlines()[0]}"
    return dict(method="PyHessian density", seconds=time.perf_counter() - start, matvecs=None, w1_rel=None,
                note=outcome)


def run(args) -> dict:
    device, size = setup_torch(args.device, args.threads), size_of(args)
    problem = build_problem(**PROBLEMS[size], device=device)
    start = time.perf_counter()
    eigenvalues = exact_spectrum(problem)
    log(f"exact spectrum: P = {problem.P}, {time.perf_counter() - start:.1f} s")
    objective = problem.objective()
    H = objective.hessian(objective.theta)
    exact = float(eigenvalues.sum())
    n_v, m = SLQ[size]
    return dict(benchmark="density_trace", machine=machine_info(device), problem=problem.describe(),
                config=problem.config, exact_trace=exact, lambda_max=float(eigenvalues[-1]),
                lambda_min=float(eigenvalues[0]), seeds=SEEDS[size],
                trace=trace_rows(problem, H, exact, BUDGETS[size], SEEDS[size]),
                slq=dict(num_probes=n_v, num_iters=m, rows=density_rows(problem, H, eigenvalues, n_v, m)))


def report(result: dict) -> str:
    t = [[r["method"], f"{r['matvecs_median']:g}" + ("" if r["matvecs_range"][0] == r["matvecs_range"][1]
                                                     else f" [{r['matvecs_range'][0]}–{r['matvecs_range'][1]}]"),
          f"{r['error_median']:.2e} [{r['error_min']:.1e}–{r['error_max']:.1e}]", r["seconds_median"]]
         for r in result["trace"]]
    s = result["slq"]
    d = [[r["method"], "—" if r["matvecs"] is None else r["matvecs"], f"{r['seconds']:.3g}",
          "—" if r["w1_rel"] is None else f"{r['w1_rel']:.2e}", r.get("note", "")] for r in s["rows"]]
    return "\n".join([
        f"Problem: {result['problem']}. Exact (dense float64): tr H = {result['exact_trace']:.6g}, "
        f"λ ∈ [{result['lambda_min']:.4g}, {result['lambda_max']:.4g}].", "",
        f"Trace: relative error, median [min–max] over {result['seeds']} seeds.", "",
        markdown_table(["method", "matvecs", "rel. error", "s (median)"], t), "",
        f"SLQ density, {s['num_probes']} probes × {s['num_iters']} Lanczos steps: W1 distance to the exact "
        "spectral measure / (λ_max − λ_min).", "",
        markdown_table(["method", "matvecs", "seconds", "W1 / width", "note"], d)])


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
