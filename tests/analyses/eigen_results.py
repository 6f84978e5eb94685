"""Test support: exact eigenpairs of a tiny run's Hessian, stored as ``landscape hessian`` stores them.

The Hessian is built densely in float64 (P HVPs on the identity, symmetrised) and
diagonalised by ``torch.linalg.eigh``, so the stored eigenvectors are exact to rounding
and orthonormal to float32 precision — an oracle for the eigendirection commands,
independent of the Lanczos solver.
"""

from __future__ import annotations

import numpy as np
import torch

from landscape.io import step_key


def dense_eigenpairs(run, step: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest eigenpairs ``(λ (k,), V (k, P))`` of the full-data Hessian at ``step``."""
    from landscape.objective import Objective

    obj = Objective(run.model_at(step), run.dataset.x_train, run.stepper.y_train, loss=run.config.loss,
                    dtype=torch.float64)
    P = obj.theta.numel()
    H = obj.hvp(obj.theta, torch.eye(P, dtype=torch.float64))
    lam, U = torch.linalg.eigh((H + H.T) / 2)
    return lam.flip(0)[:k].numpy(), U.flip(1)[:, :k].T.contiguous().numpy()


def write_dense_eigen(run_path, out_path, k: int = 6, steps=None) -> dict[int, np.ndarray]:
    """Write ``hessian/step_*/eigen`` items (float32 eigenvectors) for ``steps`` (default all saved)."""
    from checkpoints.replay import open_run
    from landscape.io import ResultsFile

    eigenvalues = {}
    with open_run(run_path) as run:
        rid = {"path": run.file.path, "run_sha256": run.file.file_sha256}
        with ResultsFile(out_path, "a", run_id=rid) as res:
            for s in (run.saved_steps if steps is None else steps):
                lam, V = dense_eigenpairs(run, int(s), k)
                res.write_item(step_key("hessian", int(s), "eigen"),
                               {"eigenvalues": lam, "eigenvectors": V.astype(np.float32), "residuals": np.zeros(k)},
                               {"config": {"k": k, "which": "LA", "params": None, "bn": "eval", "subset": None}})
                eigenvalues[int(s)] = lam
    return eigenvalues
