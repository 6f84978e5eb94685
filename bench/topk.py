"""Top-k Hessian eigenpairs (k = 1, 10, 20): HVPs and seconds to reach ``ACCURACY`` relative
error in *every one* of the k eigenvalues, ours vs PyHessian vs hessian-eigenthings.

Reference: our ``eigsh`` for the top k_max + ``REF_EXTRA`` at ``REF_TOL``, cross-checked against
the Ritz values of an independent long Lanczos run (the difference is reported). Both run on
the same float32 operator every tool sees; a float32 HVP limits a certified residual to ≈1e-6
relative, so ``REF_TOL`` is 1e-6, not 1e-10 — its eigenvalue error (≈ residual²/gap plus the
≈2e-7 float32 Rayleigh-quotient error of performance.md §2.2) is far below ``ACCURACY``.

Each solver is run with its own stopping rule, and where that stops short of ``ACCURACY`` the
tolerance is tightened along a fixed ladder until it does (what a user would do):

* ours: ``eigsh(H, k, tol)`` for tol in ``EIGSH_TOLS`` (the targets are judged on this default,
  verified run), then the accepted tol again with ``verify=False`` (no final probe for missed
  eigenvalues, which PyHessian does not have either); also the oracle figure: the first Lanczos
  step whose top-k Ritz values are all within ``ACCURACY`` (one long ``lanczos`` run);
* PyHessian: ``hessian(...).eigenvalues(top_n=k)`` at its defaults (``maxIter=100, tol=1e-3``),
  then tol in ``PYHESSIAN_TOLS[1:]`` with ``maxIter=PYHESSIAN_TIGHT_MAX_ITER``; its oracle lower
  bound: Σ over the k eigenvalues of the first HVP at which its running estimate was within
  ``ACCURACY`` (from the tightest run made);
* hessian-eigenthings: ``lanczos(op, k)`` at its default ``max_iter = 2k``, the first step of its
  ``lanczos_tridiagonal`` at which all k Ritz values are within ``ACCURACY``, and
  ``deflated_power_iteration(op, k)`` at its defaults.

Peer runs are capped at ``BUDGET_PER_EIGENVALUE · k`` HVPs (PyHessian's own default maximum);
a capped run is reported as "> budget". Seconds include each solver's own bookkeeping.

Usage: ``python bench/topk.py [--quick|--tiny] [--device cpu|cuda] [--ks 1,10,20] [--json OUT]``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy.linalg import eigvalsh_tridiagonal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
from common import bench_main, log, machine_info, setup_torch  # noqa: E402
from problems import PRESETS, build_problem, size_of  # noqa: E402
from topk_report import NO_PROBE, report, summarise  # noqa: E402

import landscape as ls  # noqa: E402
from landscape.operators import CountingOperator  # noqa: E402

ACCURACY = 1e-3  # issue 2: every one of the k eigenvalues within 1e-3 relative error
REF_TOL = 1e-6  # reference eigsh residual tol: the float32 floor (see module docstring)
REF_EXTRA = 5  # reference computes k_max + 5 pairs, so the k-th is not at the edge of the search
EIGSH_TOLS = (1e-2, 1e-3, 1e-4)  # our tolerance ladder (residual relative to ‖H‖)
PYHESSIAN_TOLS = (1e-3, 1e-4, 1e-5)  # PyHessian's default first, then tightened
PYHESSIAN_TIGHT_MAX_ITER = 300  # per eigenvalue, for the tightened runs (default 100)
BUDGET_PER_EIGENVALUE = 100  # HVP cap per eigenvalue for peer runs (= PyHessian's default maxIter)
TINY_BUDGET_PER_EIGENVALUE = 20  # --tiny only exercises the code paths
KS = {"full": (1, 10, 20), "quick": (1, 10), "tiny": (1, 2)}  # quick: top-20 adds ~8 min of peer runs
PROBLEMS = {"full": dict(model="cnn1d", dataset="mnist1d", N=4000, batch_size=500),
            "quick": dict(model="cnn1d", dataset="mnist1d", N=1000, batch_size=500),
            "tiny": PRESETS["tiny"]}


def prefix_steps(k: int, P: int) -> int:
    """Lanczos steps of the oracle runs: enough for k converged Ritz values here, < P."""
    return min(3 * k + 60, P - 1)


def max_rel_error(found, ref: np.ndarray) -> float:
    """max_i |λ̂_i − λ_i| / |λ_i| with both sorted descending (inf if fewer than k found)."""
    if found is None or len(found) < len(ref):
        return float("inf")
    f = np.sort(np.asarray(found, dtype=np.float64))[::-1][: len(ref)]
    return float(np.max(np.abs(f - ref) / np.abs(ref)))


def first_hit(alphas: np.ndarray, betas: np.ndarray, times: list[float], ref: np.ndarray) -> tuple[int, float] | None:
    """First m whose top-k Ritz values (of T_m) are all within ACCURACY; (m, seconds at step m)."""
    for m in range(len(ref), len(alphas) + 1):
        ritz = eigvalsh_tridiagonal(alphas[:m], betas[: m - 1])[::-1][: len(ref)]
        if max_rel_error(ritz, ref) <= ACCURACY:
            return m, times[m - 1]
    return None


def reference(H, k_max: int, seed: int) -> dict:
    """Top k_max + REF_EXTRA by eigsh at REF_TOL, the smallest eigenvalue, and the cross-check."""
    start = time.perf_counter()
    res = ls.eigsh(H, k=k_max + REF_EXTRA, which="LA", tol=REF_TOL, seed=seed + 1000)
    values = res.eigenvalues.numpy()
    long_run = ls.lanczos(H, prefix_steps(k_max + REF_EXTRA, H.dim) + 40, seed=seed + 2000)
    ritz = long_run.ritz_values().numpy()[::-1][:k_max]
    smallest = ls.eigsh(H, k=1, which="SA", tol=1e-3, seed=seed + 3000)
    return dict(values=values, converged=res.converged, hvps=res.num_matvecs, seconds=time.perf_counter() - start,
                crosscheck_max_rel=max_rel_error(ritz, values[:k_max]),
                smallest=float(smallest.eigenvalues[0]))


def ours(H, k: int, ref: np.ndarray, seed: int) -> list[dict]:
    """eigsh along the tol ladder (stop at the first within ACCURACY), and the Lanczos oracle."""
    rows = []
    for tol in EIGSH_TOLS:
        start = time.perf_counter()
        res = ls.eigsh(H, k=k, which="LA", tol=tol, seed=seed)
        err = max_rel_error(res.eigenvalues.numpy(), ref)
        rows.append(dict(tool="ours", setting=f"eigsh tol={tol:g}", hvps=res.num_matvecs,
                         seconds=time.perf_counter() - start, error=err, own_rule=True))
        if err <= ACCURACY:
            break
    # Like for like with PyHessian, which has no such check: the same tol without the final
    # probe for missed eigenvalues (eigsh's verify, up to m − k extra HVPs).
    start = time.perf_counter()
    res = ls.eigsh(H, k=k, which="LA", tol=tol, seed=seed, verify=False)
    rows.append(dict(tool=NO_PROBE, setting=f"eigsh tol={tol:g}, verify=False", hvps=res.num_matvecs,
                     seconds=time.perf_counter() - start, error=max_rel_error(res.eigenvalues.numpy(), ref),
                     own_rule=True))
    times, start = [], time.perf_counter()
    run = ls.lanczos(CountingOperator(H, lambda n: times.append(time.perf_counter() - start)),
                     prefix_steps(k, H.dim), seed=seed)
    rows.append(_oracle_row("ours", "Lanczos (full reorth.), oracle stop",
                            first_hit(run.alphas.numpy(), run.betas.numpy(), times, ref), len(times)))
    return rows


def _oracle_row(tool: str, setting: str, hit, steps: int) -> dict:
    if hit is None:
        return dict(tool=tool, setting=setting, hvps=None, seconds=None, error=None, own_rule=False,
                    note=f"not within {ACCURACY:g} after {steps} steps")
    return dict(tool=tool, setting=setting, hvps=hit[0], seconds=hit[1], error=None, own_rule=False)


def pyhessian(problem, k: int, ref: np.ndarray, seed: int, budget: int) -> list[dict]:
    """PyHessian at its defaults, then along the tol ladder; plus its oracle lower bound."""
    rows, run = [], None
    for i, tol in enumerate(PYHESSIAN_TOLS):
        max_iter = 100 if i == 0 else PYHESSIAN_TIGHT_MAX_ITER
        run = peers.pyhessian_eigenvalues(problem, k, tol=tol, max_iter=max_iter,
                                          budget=budget * k, seed=seed)
        err = max_rel_error(run.eigenvalues, ref)
        rows.append(dict(tool="PyHessian", setting=f"eigenvalues(top_n={k}, tol={tol:g}, maxIter={max_iter})",
                         hvps=run.num_hvps, seconds=run.seconds, error=err, own_rule=True, note=run.note,
                         capped=run.eigenvalues is None))
        if err <= ACCURACY or run.eigenvalues is None:
            break
    rows.append(_pyhessian_oracle(run, ref))
    return rows


def _pyhessian_oracle(run: peers.SolverRun, ref: np.ndarray) -> dict:
    """Σ_i first HVP (within eigenvalue i's iterations) whose estimate is within ACCURACY of λ_i."""
    total, seconds_per_hvp = 0, run.seconds / max(run.num_hvps, 1)
    for i, lam in enumerate(ref):
        steps = [e for j, e, _ in run.trace if j == i]
        hits = [n for n, e in enumerate(steps, 1) if abs(e - lam) <= ACCURACY * abs(lam)]
        if not hits:
            return dict(tool="PyHessian", setting="deflated power, oracle stop (lower bound)", hvps=None,
                        seconds=None, error=None, own_rule=False,
                        note=f"eigenvalue {i + 1} never within {ACCURACY:g} in its {len(steps)} HVPs")
        total += hits[0]
    return dict(tool="PyHessian", setting="deflated power, oracle stop (lower bound)", hvps=total,
                seconds=total * seconds_per_hvp, error=None, own_rule=False,
                note="seconds = HVPs × its measured s/HVP")


def eigenthings(problem, k: int, ref: np.ndarray, seed: int, budget: int) -> list[dict]:
    """hessian-eigenthings: lanczos at its default, its tridiagonal oracle, deflated power."""
    run = peers.eigenthings_lanczos(problem, k, seed=seed)
    rows = [dict(tool="eigenthings", setting=f"lanczos(k={k}) default max_iter={run.num_hvps}", hvps=run.num_hvps,
                 seconds=run.seconds, error=max_rel_error(run.eigenvalues, ref), own_rule=True)]
    alphas, betas, times = peers.eigenthings_tridiagonal(problem, prefix_steps(k, problem.P), seed=seed)
    rows.append(_oracle_row("eigenthings", "lanczos_tridiagonal (reorth.), oracle stop",
                            first_hit(alphas, betas, times, ref), len(times)))
    run = peers.eigenthings_power(problem, k, budget=budget * k, seed=seed)
    rows.append(dict(tool="eigenthings", setting=f"deflated_power_iteration(k={k}) defaults", hvps=run.num_hvps,
                     seconds=run.seconds, error=max_rel_error(run.eigenvalues, ref), own_rule=True, note=run.note,
                     capped=run.eigenvalues is None))
    return rows


def run(args) -> dict:
    """Measure every k; return rows per k, the reference and the summary against the targets."""
    device, size = setup_torch(args.device, args.threads), size_of(args)
    ks = tuple(int(k) for k in args.ks.split(",")) if args.ks else KS[size]
    problem = build_problem(**PROBLEMS[size], device=device)
    objective = problem.objective()
    H = objective.hessian(objective.theta)
    ref = reference(H, max(ks), args.seed)
    budget = TINY_BUDGET_PER_EIGENVALUE if size == "tiny" else BUDGET_PER_EIGENVALUE
    log(f"reference: {ref['hvps']} HVPs, {ref['seconds']:.1f} s")
    per_k = {}
    for k in ks:
        target = ref["values"][:k]
        rows = ours(H, k, target, args.seed)
        log(f"top-{k}: ours done")
        if peers.available("pyhessian"):
            rows += pyhessian(problem, k, target, args.seed, budget)
            log(f"top-{k}: PyHessian done")
        if peers.available("eigenthings"):
            rows += eigenthings(problem, k, target, args.seed, budget)
            log(f"top-{k}: hessian-eigenthings done")
        per_k[k] = rows
    result = dict(benchmark="topk", machine=machine_info(device), problem=problem.describe(), config=problem.config,
                  accuracy=ACCURACY, reference=ref, rows=per_k)
    result["summary"] = summarise(result)
    return result


def main(argv: list[str] | None = None) -> int:
    def extra_args(parser) -> None:
        parser.add_argument("--ks", default=None, help="comma-separated k values (default 1,10,20)")
        parser.add_argument("--seed", type=int, default=0, help="seed of every solver's start vector")

    return bench_main(__doc__, run, report, argv, extra_args)


if __name__ == "__main__":
    raise SystemExit(main())
