"""``landscape evolution RESULTS.h5``: how the spectrum and the eigenvectors change across steps.

Reads the ``hessian/step_*/eigen`` (and ``…/density``) items of a results file and writes

* ``evolution/step_A/overlap_step_B`` for each compared pair (a < b): the overlap matrix
  |V_a V_bᵀ|, its row maxima and their columns, |v_i(a)·v_i(b)|, the principal angles
  between the top-k subspaces and the subspace overlap (resumable, one item per pair);
* ``evolution/eigenvalues`` — steps, eigenvalues ``(n, k)`` (NaN-padded) and residuals;
* ``evolution/density`` — the SLQ densities of every step on one common grid.

The two tables summarise the steps asked for; they are rewritten when that set of steps
changes (cheap: no Hessian products), and skipped when it does not. The computations are
in :mod:`analyses.evolution`.
"""

from __future__ import annotations

import os
from functools import partial

from analyses import evolution as EV
from analyses.cli.args import add_recompute_arg
from analyses.driver.eigen import eigen_steps, read_eigen
from analyses.driver.runner import Item, run_items, write_table
from analyses.driver.settings import check_settings
from analyses.driver.steps import parse_steps
from landscape.errors import InputError
from landscape.io import step_key

NAME = "evolution"
HELP = "eigenvalues, eigenvector overlaps |V_a V_bᵀ| with row maxima, principal angles and densities over steps"


def add_arguments(p) -> None:
    p.add_argument("results", metavar="RESULTS.h5", help="results file with hessian eigen items")
    p.add_argument("--out", default=None, metavar="OUT.h5", help="where to write (default: RESULTS.h5 itself)")
    p.add_argument("--steps", default="all", metavar="SPEC",
                   help="steps with eigenvectors to use (same grammar as elsewhere); default all")
    p.add_argument("--pairs", choices=EV.PAIR_MODES, default="consecutive",
                   help="which checkpoints to compare: consecutive, each vs first, each vs last, all pairs")
    p.add_argument("--subspace-k", type=int, default=None, metavar="K",
                   help="dimension of the subspaces whose principal angles are reported; default: all stored")
    p.add_argument("--density-points", type=int, default=512, help="points of the common density grid")
    p.add_argument("--density-sigma", type=float, default=0.01,
                   help="Gaussian kernel width as a fraction of the grid's range; default 0.01")
    add_recompute_arg(p)


def run(args) -> int:
    from landscape.io import ResultsFile

    if args.density_points < 2 or not 0 < args.density_sigma < 1:
        raise InputError("--density-points must be ≥ 2 and --density-sigma in (0, 1)")
    same = args.out is None or os.path.realpath(args.out) == os.path.realpath(args.results)
    with ResultsFile(args.results, "a" if same else "r") as src:
        steps, density_steps = _steps(src, args)
        if same:
            return _write(src, src, steps, density_steps, args)
        with ResultsFile(args.out, "a", run_id=src.run_id) as out:
            return _write(src, out, steps, density_steps, args)


def _steps(src, args) -> tuple[list[int], list[int]]:
    """The chosen steps with eigenvectors and those with densities (each stored density is its own step)."""
    eigen, density = eigen_steps(src), [s for s, _ in src.items("hessian", "density")]
    if not eigen and not density:
        raise InputError(f"{args.results} holds no eigenvectors or densities; run `landscape hessian RUN.h5 "
                         f"--steps all --k K --density --out {args.results}` first")
    try:
        chosen = set(parse_steps(args.steps, sorted(set(eigen) | set(density))))
    except InputError as err:
        raise InputError(f"{err} (the steps that count here are those with eigenvectors or densities in "
                         f"{args.results})") from None
    return [s for s in eigen if s in chosen], [s for s in density if s in chosen]


def _write(src, out, steps: list[int], density_steps: list[int], args) -> int:
    config = {"steps": steps, "density_steps": density_steps, "pairs": args.pairs, "subspace_k": args.subspace_k,
              "density_points": args.density_points, "density_sigma": args.density_sigma}
    source = {"results": src.path, "run": src.run_id}
    pairs = EV.step_pairs(steps, args.pairs)
    keys = {(a, b): step_key(NAME, a, f"overlap_step_{b:08d}") for a, b in pairs}
    if not args.recompute:
        check_settings(out, {key: {"subspace_k": args.subspace_k} for key in keys.values()})
    items = [Item(key, partial(_pair, src, a, b, args.subspace_k)) for (a, b), key in keys.items()]
    summary = run_items(out, items, config=config, source=source, recompute=args.recompute)
    def eigen():
        return EV.eigenvalue_record([read_eigen(src, s) for s in steps]) if steps else None

    def density():
        stored = {s: src.read_item(k)[0] for s, k in src.items("hessian", "density") if s in set(density_steps)}
        return EV.density_record(stored, num=args.density_points, sigma_fraction=args.density_sigma)

    for name, compute in (("eigenvalues", eigen), ("density", density)):
        if write_table(out, f"{NAME}/{name}", compute, config, source):
            shown = steps if name == "eigenvalues" else density_steps
            print(f"{NAME}/{name}: written for steps {shown[0]} … {shown[-1]} ({len(shown)})")
    print(f"{len(summary.computed)} overlap item(s) computed, {len(summary.skipped)} already complete; "
          f"tables for {len(steps)} step(s) with eigenvectors, {len(density_steps)} with densities, in {out.path}")
    return 0


def _pair(src, a: int, b: int, k: int | None):
    return EV.pair_record(read_eigen(src, a), read_eigen(src, b), k)
