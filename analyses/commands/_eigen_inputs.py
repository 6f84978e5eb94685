"""Inputs shared by the eigendirection commands (linesearch, trajectory, evolution).

They read the eigenpairs that ``landscape hessian`` stored under
``hessian/step_XXXXXXXX/eigen`` (``eigenvalues (k,)``, ``eigenvectors (k, P)``,
``residuals (k,)``) and write their own items into a results file that may be the
same one: when ``--eigen`` and ``--out`` name one file it is opened once, for
appending, since HDF5 does not open a file twice in one process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from analyses.runner import step_key
from landscape.errors import ConfigMismatchError, InputError


@dataclass(frozen=True)
class Eigen:
    """The stored eigenpairs at one step, and the options they were computed with."""

    step: int
    eigenvalues: np.ndarray   # (k,) float64
    eigenvectors: np.ndarray  # (k, P)
    residuals: np.ndarray     # (k,)
    config: dict


def eigen_key(step: int) -> str:
    """``hessian/step_XXXXXXXX/eigen``."""
    return step_key("hessian", step, "eigen")


def eigen_steps(results) -> list[int]:
    """Steps with a complete eigen item, ascending."""
    keys = [k for k in results.keys("hessian/") if k.endswith("/eigen")]
    return sorted(int(k.split("/")[1].removeprefix("step_")) for k in keys)


def _listed(steps: list[int]) -> str:
    return ", ".join(map(str, steps)) if steps else "none"


def check_eigen_steps(results, steps: list[int]) -> None:
    """Refuse steps without stored eigenvectors, naming those that have them."""
    have = eigen_steps(results)
    missing = [s for s in steps if s not in have]
    if missing:
        raise InputError(f"{results.path} holds no eigenvectors for step(s) {_listed(missing)}; steps with "
                         f"eigenvectors: {_listed(have)}. Run `landscape hessian RUN.h5 --steps "
                         f"{','.join(map(str, missing))} --k K --out {results.path}` first")


def read_eigen(results, step: int) -> Eigen:
    """The eigenpairs stored at ``step`` (see :func:`check_eigen_steps` for the error)."""
    check_eigen_steps(results, [step])
    arrays, attrs = results.read_item(eigen_key(step))
    if "eigenvectors" not in arrays:
        raise InputError(f"the eigen item of step {step} in {results.path} stores no eigenvectors; "
                         "recompute it with `landscape hessian`")
    lam = np.asarray(arrays["eigenvalues"], dtype=np.float64)
    res = np.asarray(arrays.get("residuals", np.full_like(lam, np.nan)), dtype=np.float64)
    return Eigen(int(step), lam, np.asarray(arrays["eigenvectors"]), res, dict(attrs.get("config", {})))


def check_same_run(results, run_sha256: str) -> None:
    """Refuse an eigen file computed from another run than the one opened."""
    stored = (results.run_id or {}).get("run_sha256")
    if stored is not None and stored != run_sha256:
        raise ConfigMismatchError(f"{results.path} holds results of another run (sha {str(stored)[:12]}), "
                                  f"not of this run file (sha {run_sha256[:12]}); pass the matching --eigen file")


@contextlib.contextmanager
def open_eigen_and_out(eigen_path: str | None, out_path: str, run_id: dict) -> Iterator[tuple]:
    """``(eigen_results, out_results)``: one handle when both paths are the same file."""
    from landscape.io import ResultsFile

    eigen_path = eigen_path or out_path
    if not os.path.exists(eigen_path):
        raise InputError(f"no results file {eigen_path}: compute eigenpairs first with `landscape hessian "
                         f"RUN.h5 --k K --out {eigen_path}`, or pass --eigen")
    if os.path.realpath(eigen_path) == os.path.realpath(out_path):
        with ResultsFile(out_path, "a", run_id=run_id) as both:
            yield both, both
        return
    with ResultsFile(eigen_path, "r") as eig:
        check_same_run(eig, run_id["run_sha256"])
        with ResultsFile(out_path, "a", run_id=run_id) as out:
            yield eig, out


def check_compatible(results, key: str, config: dict, fields: tuple[str, ...]) -> None:
    """Refuse to extend an item family computed with other options (compares ``fields`` of the configs).

    Raises:
        ConfigMismatchError: naming each differing option, stored and asked.
    """
    if not results.is_complete(key):
        return
    stored = results.read_item(key)[1].get("config", {})
    diff = {f: (stored.get(f), config.get(f)) for f in fields if _norm(stored.get(f)) != _norm(config.get(f))}
    if diff:
        shown = ", ".join(f"{f}: stored {a!r}, asked {b!r}" for f, (a, b) in diff.items())
        raise ConfigMismatchError(f"{results.path} already holds {key} computed with other options ({shown}); "
                                  "use the same options or another --out")


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def select_eigen(eig: Eigen, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(eigenvalues (m,), eigenvectors (m, P))`` of the chosen rows."""
    return eig.eigenvalues[indices], eig.eigenvectors[indices]
