"""``landscape evolution RESULTS.h5``: how the spectrum and the eigenvectors change across steps.

Reads the ``hessian/step_*/eigen`` (and ``…/density``) items of a results file and writes

* ``evolution/step_A/overlap_step_B`` for each compared pair (a < b): the overlap matrix
  |V_a V_bᵀ|, its row maxima and their columns, |v_i(a)·v_i(b)|, the principal angles
  between the top-k subspaces and the subspace overlap (resumable, one item per pair);
* ``evolution/eigenvalues`` — steps, eigenvalues ``(n, k)`` (NaN-padded) and residuals;
* ``evolution/density`` — the SLQ densities of every step on one common grid.

The two tables summarise the steps asked for; they are rewritten when that set of steps
changes (cheap: no Hessian products), and skipped when it does not.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np

from analyses.commands._eigen_inputs import check_compatible, eigen_steps, read_eigen
from analyses.runner import Item, Record, run_items, step_key
from analyses.spectrum_evolution import (PAIR_MODES, compare, density_evolution, eigenvalue_table, step_pairs)
from analyses.steps import parse_steps
from landscape.errors import InputError

NAME = "evolution"
HELP = "eigenvalues, eigenvector overlaps |V_a V_bᵀ| with row maxima, principal angles and densities over steps"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", metavar="RESULTS.h5", help="results file with hessian eigen items")
    p.add_argument("--out", default=None, metavar="OUT.h5", help="where to write (default: RESULTS.h5 itself)")
    p.add_argument("--steps", default="all", metavar="SPEC",
                   help="steps with eigenvectors to use (same grammar as elsewhere); default all")
    p.add_argument("--pairs", choices=PAIR_MODES, default="consecutive",
                   help="which checkpoints to compare: consecutive, each vs first, each vs last, all pairs")
    p.add_argument("--subspace-k", type=int, default=None, metavar="K",
                   help="dimension of the subspaces whose principal angles are reported; default: all stored")
    p.add_argument("--density-points", type=int, default=512, help="points of the common density grid")
    p.add_argument("--density-sigma", type=float, default=0.01,
                   help="Gaussian kernel width as a fraction of the grid's range; default 0.01")


def run(args) -> int:
    from landscape.io import ResultsFile

    if args.density_points < 2 or not 0 < args.density_sigma < 1:
        raise InputError("--density-points must be ≥ 2 and --density-sigma in (0, 1)")
    out_path = args.out or args.results
    same = args.out is None or _same(args.out, args.results)
    with ResultsFile(args.results, "a" if same else "r") as src:
        have = eigen_steps(src)
        if len(have) == 0:
            raise InputError(f"{args.results} holds no eigenvectors; run `landscape hessian RUN.h5 --steps all "
                             f"--k K --out {args.results}` first")
        try:
            steps = parse_steps(args.steps, have)
        except InputError as err:
            raise InputError(f"{err} (the steps that count here are those with eigenvectors in "
                             f"{args.results})") from None
        if same:
            return _write(src, src, steps, args)
        with ResultsFile(out_path, "a", run_id=src.run_id) as out:
            return _write(src, out, steps, args)


def _same(a: str, b: str) -> bool:
    import os

    return os.path.realpath(a) == os.path.realpath(b)


def _write(src, out, steps: list[int], args) -> int:
    config = {"steps": steps, "pairs": args.pairs, "subspace_k": args.subspace_k,
              "density_points": args.density_points, "density_sigma": args.density_sigma}
    source = {"results": src.path, "run": src.run_id}
    pairs = step_pairs(steps, args.pairs)
    for a, b in pairs:
        check_compatible(out, step_key(NAME, a, f"overlap_step_{b:08d}"), config, ("subspace_k",))
    items = [Item(step_key(NAME, a, f"overlap_step_{b:08d}"), partial(_pair, src, a, b, args.subspace_k))
             for a, b in pairs]
    summary = run_items(out, items, config=config, source=source)
    tables = [("eigenvalues", partial(_eigenvalues, src, steps)), ("density", partial(_densities, src, steps, args))]
    for name, compute in tables:
        _write_table(out, f"{NAME}/{name}", steps, compute, config, source)
    print(f"{len(summary.computed)} overlap item(s) computed, {len(summary.skipped)} already complete; "
          f"tables for {len(steps)} step(s) in {out.path}")
    return 0


def _pair(src, a: int, b: int, k: int | None) -> Record:
    ea, eb = read_eigen(src, a), read_eigen(src, b)
    kmax = min(len(ea.eigenvalues), len(eb.eigenvalues))
    if k is not None and not 1 <= k <= kmax:
        raise InputError(f"--subspace-k {k}: steps {a} and {b} store {kmax} eigenvectors in common; use 1 … {kmax}")
    arrays = compare(ea.eigenvectors, eb.eigenvectors, k)
    return Record({**arrays, "eigenvalues_a": ea.eigenvalues, "eigenvalues_b": eb.eigenvalues},
                  {"step_a": a, "step_b": b})


def _eigenvalues(src, steps: list[int]) -> Record:
    eig = [read_eigen(src, s) for s in steps]
    return Record({"steps": np.asarray(steps, dtype=np.int64),
                   "eigenvalues": eigenvalue_table([e.eigenvalues for e in eig]),
                   "residuals": eigenvalue_table([e.residuals for e in eig])})


def _densities(src, steps: list[int], args) -> Record | None:
    keys = {s: step_key("hessian", s, "density") for s in steps}
    have = [s for s in steps if src.is_complete(keys[s])]
    if not have:
        return None
    arrays = [src.read_item(keys[s])[0] for s in have]
    out = density_evolution([a["nodes"] for a in arrays], [a["weights"] for a in arrays],
                            num=args.density_points, sigma_fraction=args.density_sigma)
    return Record({"steps": np.asarray(have, dtype=np.int64), **out})


def _write_table(out, key: str, steps: list[int], compute, config: dict, source: dict) -> None:
    """Write a summary table unless the stored one already covers exactly these steps and options."""
    from landscape.io import provenance

    if out.is_complete(key):
        _, attrs = out.read_item(key)
        if attrs.get("config") == config:
            return
    record = compute()
    if record is None:
        return
    attrs = {**record.attrs, "config": config, "source": source, "provenance": provenance()}
    out.write_item(key, record.arrays, attrs, overwrite=True)
    print(f"{key}: written for steps {steps[0]} … {steps[-1]} ({len(steps)})")
