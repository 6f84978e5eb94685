"""The eigenpairs ``landscape hessian`` stored, read back and checked against the run.

They live in items ``hessian/step_XXXXXXXX/eigen`` (``eigenvalues (k,)``, ``eigenvectors
(k, P)``, ``residuals (k,)``; attrs ``param_sha256``, ``param_names``, ``config``). Every
analysis that uses them (line searches, evolution, trajectory, projections, surfaces,
interventions) reads them through :func:`read_eigen`, which refuses eigenvectors of other
parameters (checksum), of another parameter subset (names) or of another run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from landscape.errors import ConfigMismatchError, InputError
from landscape.io import step_key

ANALYSIS, QUANTITY = "hessian", "eigen"


@dataclass(frozen=True)
class Eigen:
    """The stored eigenpairs at one step, and the options they were computed with."""

    step: int
    eigenvalues: np.ndarray   # (k,) float64
    eigenvectors: np.ndarray  # (k, P)
    residuals: np.ndarray     # (k,) ‖Hv − λv‖ (NaN when not stored)
    config: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    @property
    def subset(self) -> int | None:
        """The training subset size the Hessian was computed on (None: all examples)."""
        return self.config.get("subset")

    def top(self, k: int | None) -> Eigen:
        """The first ``k`` pairs (all when None)."""
        n = len(self.eigenvalues)
        k = n if k is None else k
        if not 1 <= k <= n:
            raise InputError(f"--k {k}: step {self.step} has {n} stored eigenvectors")
        return Eigen(self.step, self.eigenvalues[:k], self.eigenvectors[:k], self.residuals[:k], self.config,
                     self.attrs)


def eigen_key(step: int) -> str:
    """``hessian/step_XXXXXXXX/eigen``."""
    return step_key(ANALYSIS, step, QUANTITY)


def eigen_steps(results) -> list[int]:
    """Steps with a complete eigen item, ascending."""
    return [s for s, _ in results.items(ANALYSIS, QUANTITY)]


def _listed(steps: list[int]) -> str:
    return ", ".join(map(str, steps)) if steps else "none"


def check_eigen_steps(results, steps: list[int]) -> None:
    """Refuse steps without stored eigenvectors, naming those that have them and the command that makes them."""
    have = eigen_steps(results)
    missing = [s for s in steps if s not in have]
    if missing:
        subject = f"step {missing[0]} has" if len(missing) == 1 else f"steps {_listed(missing)} have"
        raise InputError(f"{subject} no stored eigenvectors: {results.path} holds no eigenvectors for step(s) "
                         f"{_listed(missing)}; steps with eigenvectors: {_listed(have)}. Compute them first with "
                         f"`landscape hessian RUN.h5 --steps {','.join(map(str, missing))} --k 10 --out "
                         f"{results.path}` (or pass --eigen FILE)")


def read_eigen(results, step: int, *, param_sha256: str | None = None, names=None) -> Eigen:
    """The eigenpairs stored at ``step``, checked against the parameters they are used with.

    Args:
        results: an open results file.
        step: the saved step.
        param_sha256: θ's checksum at that step in the run (refused when the stored one differs).
        names: the parameter names the objective covers (refused when the stored ones differ).

    Raises:
        InputError: the step has no stored eigenvectors (the message says how to compute them).
        ConfigMismatchError: they belong to other parameters (checksum or parameter subset).
    """
    check_eigen_steps(results, [step])
    arrays, attrs = results.read_item(eigen_key(step))
    if "eigenvectors" not in arrays:
        raise InputError(f"the eigen item of step {step} in {results.path} stores no eigenvectors; "
                         "recompute it with `landscape hessian`")
    if param_sha256 is not None and attrs.get("param_sha256") not in (None, param_sha256):
        raise ConfigMismatchError(f"the eigenvectors of step {step} in {results.path} were computed at other "
                                  "parameters (checksum differs); recompute them for this run")
    if names is not None and list(attrs.get("param_names", names)) != list(names):
        raise ConfigMismatchError(f"the eigenvectors of step {step} cover parameters {attrs.get('param_names')}, "
                                  f"not {list(names)}; pass the same --params as to `landscape hessian`")
    lam = np.asarray(arrays["eigenvalues"], dtype=np.float64)
    res = np.asarray(arrays.get("residuals", np.full_like(lam, np.nan)), dtype=np.float64)
    return Eigen(int(step), lam, np.asarray(arrays["eigenvectors"]), res, dict(attrs.get("config", {})), dict(attrs))


def previous_eigen_step(results, step: int) -> int | None:
    """The latest step before ``step`` with stored eigenvectors (a warm start), or None."""
    earlier = [s for s in eigen_steps(results) if s < step]
    return earlier[-1] if earlier else None


def warm_starts(store):
    """``warm_start(step)`` → ``(previous step, its eigenvectors (k, P))`` or None, for the Hessian job.

    ``store`` is the results file as every rank sees it
    (:class:`~analyses.driver.distributed.RankResults`): rank 0 reads, every rank gets the answer.
    """
    def warm_start(step: int):
        prev = store.shared(lambda r: _as_array(previous_eigen_step(r, step)))
        if prev is None:
            return None
        vectors = store.shared(lambda r: r.read_item(eigen_key(int(prev[0])))[0]["eigenvectors"])
        return int(prev[0]), vectors

    return warm_start


def _as_array(step: int | None) -> np.ndarray | None:
    return None if step is None else np.array([step], dtype=np.int64)


def check_same_run(results, run_sha256: str) -> None:
    """Refuse an eigen file computed from another run than the one opened."""
    stored = (results.run_id or {}).get("run_sha256")
    if stored is not None and stored != run_sha256:
        raise ConfigMismatchError(f"{results.path} holds results of another run (sha {str(stored)[:12]}), "
                                  f"not of this run file (sha {run_sha256[:12]}); pass the matching --eigen file")


@contextlib.contextmanager
def open_eigen_and_out(eigen_path: str | None, out_path: str, run_id: dict) -> Iterator[tuple]:
    """``(eigen_results, out_results)``: one handle when both paths are the same file.

    HDF5 does not open a file twice in one process, so ``--eigen`` naming the ``--out`` file
    (the default) opens it once, for appending.
    """
    from landscape.io import ResultsFile

    eigen_path = eigen_path or out_path
    if not os.path.exists(eigen_path):
        raise InputError(f"no stored eigenvectors: there is no results file {eigen_path}; compute eigenpairs "
                         f"first with `landscape hessian RUN.h5 --k K --out {eigen_path}`, or pass --eigen")
    if os.path.realpath(eigen_path) == os.path.realpath(out_path):
        with ResultsFile(out_path, "a", run_id=run_id) as both:
            yield both, both
        return
    with ResultsFile(eigen_path, "r") as eig:
        check_same_run(eig, run_id["run_sha256"])
        with ResultsFile(out_path, "a", run_id=run_id) as out:
            yield eig, out
