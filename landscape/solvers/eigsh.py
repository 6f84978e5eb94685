"""Certified extreme eigenpairs of a symmetric operator: thick-restart Lanczos.

The method (Wu & Simon 2000, "Thick-restart Lanczos method for large symmetric
eigenvalue problems"): build a Krylov basis of size m with full reorthogonalization
in float64, take Ritz pairs of the Rayleigh quotient T = V A Vᵀ, and restart from
the wanted Ritz vectors plus a few neighbours (keeping their Lanczos couplings),
until every wanted pair has residual ‖Av − λv‖ ≤ tol · ‖A‖_est, where ‖A‖_est is
the largest |Ritz value| seen (a lower bound of ‖A‖₂, so the certificate is never
looser than tol · ‖A‖₂).

Two safeguards make the answer trustworthy:

* **Missed eigenvalues.** A Krylov space grown from one vector sees one copy of a
  repeated eigenvalue (in exact arithmetic), and barely sees eigenvectors the start
  vector is nearly orthogonal to. Once all wanted pairs converge, they are locked and
  one more cycle is grown from a fresh random vector orthogonal to them; if it turns
  up a value that belongs among the wanted, iteration goes on (``verify=True``).
* **Honest residuals.** Convergence is judged from the Lanczos relation
  (β_m |u_m| plus couplings dropped on purpose), then the returned vectors — in the
  operator's dtype — are multiplied by A once more and ``residuals`` are those
  explicit ‖Av − λv‖. Those k products are counted in ``num_matvecs``.

A warm start from a block ``v0`` (j, P), e.g. the eigenvectors at the previous
checkpoint, starts Lanczos from b ∝ Σ_i v0_i. If the first product shows span(v0)
nearly invariant (η = ‖(I − P_v0) A b‖ / ‖A b‖ ≤ ``SEED_ETA_PER_TOL`` · tol), j − 1
more products give the Rayleigh–Ritz pairs of span(v0), which start the iteration as
the kept vectors of a thick restart (Wu & Simon 2000); their j residual directions
are all kept, so the relation stays exact and the run goes on as band Lanczos (Ruhe
1979; :class:`~landscape.solvers.restart.KrylovBasis`). Converged rows then cost j
products instead of the Krylov steps that would rebuild them from b, which with
close eigenvalues resolves the block only to its error times a large Vandermonde-like
factor. Otherwise the block is used as b alone: a block Krylov space of degree d
costs j·d products where one vector's costs d, so a block seed only pays off once it
is nearly converged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from landscape.errors import InputError, NonFiniteError
from landscape.operators import LinearOperator, apply_float64, as_operator
from landscape.solvers.lanczos import BREAKDOWN_RTOL, start_vector
from landscape.solvers.restart import KrylovBasis, ThickRestart
from landscape.solvers.sampling import Seed, make_generator

WHICH = ("LA", "SA", "LM", "BE")

# Default budget: this many Krylov sizes' worth of matvecs before giving up.
DEFAULT_BUDGET_CYCLES = 30

# Breakdown threshold relative to ``tol``: a dropped β must not spoil the certificate.
BREAKDOWN_PER_TOL = 1e-2

# A block v0 is seeded as a subspace when η ≤ this × tol (see the module docstring). On the
# oracle matrices (wishart, ghost_demo, indefinite; k = 5, LA and SA; exact eigenvectors of
# A as v0 for A + εE; tol 1e-8 and 1e-5) seeding took 21–34 matvecs against 21–80 from b alone for
# η ≤ 1.6 tol; for LA they tied at η ≈ 5–9 tol (62/58, 25/21, 58/66) and seeding lost at
# η ≈ 50–90 tol (96/67, 144/84). For SA, ‖A b‖ ≪ ‖A‖ inflates η and seeding still won at
# η ≈ 15–160 tol (36/96, 38/40): 10 is on the safe side there.
SEED_ETA_PER_TOL = 10.0


@dataclass(frozen=True)
class EigshResult:
    """Eigenpairs with their certificates.

    Attributes:
        eigenvalues: ``(k,)`` float64, sorted as ``which`` asks (LA descending, SA
            ascending, LM by descending |λ|, BE ascending).
        eigenvectors: ``(k, P)`` orthonormal rows, in the operator's dtype and device.
        residuals: ``(k,)`` float64 explicit ‖A v − λ v‖ of the returned vectors.
        num_matvecs: every product with A, the residual check included.
        converged: every residual ≤ tol · norm_estimate.
        which, tol: as asked.
        norm_estimate: ‖A‖_est, the largest |Ritz value| seen (≤ ‖A‖₂).
        num_restarts: restarts of the Krylov basis.
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    num_matvecs: int
    converged: bool
    which: str
    tol: float
    norm_estimate: float = math.nan
    num_restarts: int = 0

    def as_dict(self) -> dict:
        """Arrays and scalars to store (eigenvectors as float arrays, ``(k, P)``)."""
        return {"eigenvalues": self.eigenvalues.numpy(), "eigenvectors": self.eigenvectors.detach().cpu().numpy(),
                "residuals": self.residuals.numpy(), "num_matvecs": self.num_matvecs,
                "converged": int(self.converged), "which": self.which, "tol": self.tol,
                "norm_estimate": self.norm_estimate, "num_restarts": self.num_restarts}


def eigsh(A, k: int = 6, which: str = "LA", tol: float = 1e-6, *, max_matvecs: int | None = None,
          seed: Seed = 0, v0: Tensor | None = None, callback: Callable[[dict], None] | None = None,
          dim: int | None = None, krylov_size: int | None = None,
          basis_device: torch.device | str | None = None, verify: bool = True) -> EigshResult:
    """k extreme eigenpairs of a symmetric operator, each certified by its residual.

    Args:
        A: operator, dense symmetric tensor, or matvec callable (then pass ``dim``).
        k: number of eigenpairs, 1 ≤ k < P.
        which: ``"LA"`` largest algebraic, ``"SA"`` smallest algebraic, ``"LM"`` largest
            magnitude, ``"BE"`` both ends (⌈k/2⌉ largest and ⌊k/2⌋ smallest).
        tol: wanted residual ‖Av − λv‖ relative to ‖A‖_est. With a float32 operator
            the floor is about the relative error of one product (≳1e-6).
        max_matvecs: budget, the final residual check included (default 30 Krylov sizes).
        seed: int or generator for the random start and probe vectors.
        v0: warm start. ``(P,)``: the Krylov space is grown from v0. ``(j, P)`` (e.g. the
            eigenvectors at the previous checkpoint; at most ``max_matvecs`` − k rows are
            used): the rows are orthonormalized (dependent ones dropped) and Lanczos starts
            from their sum b; if span(v0) is nearly invariant (module docstring), its
            Ritz pairs start the iteration instead, as the kept vectors of a thick restart
            (the basis then holds up to j − 1 more P-vectors). The products this takes (at
            most j) are counted in ``num_matvecs``.
        callback: called after each cycle with ``{"num_matvecs", "max_residual",
            "num_converged", "num_restarts"}`` (``max_residual`` relative to ‖A‖_est).
        dim: P, for a matvec callable.
        krylov_size: m, the basis size (default max(2k+1, k+20), at most P).
        basis_device: where the float64 basis lives (default the operator's device).
        verify: after convergence, search once more from a fresh random direction
            orthogonal to the found vectors for missed (e.g. repeated) eigenvalues.

    Returns:
        :class:`EigshResult`; ``converged=False`` with the best pairs and their honest
        residuals when the budget runs out.

    Raises:
        InputError: k ≥ P, k < 1, an unknown ``which``, a bad ``tol``/``v0``/budget.
        NonFiniteError: the operator returned NaN or Inf.

    Example:
        >>> import torch
        >>> res = eigsh(torch.diag(torch.arange(1.0, 41.0, dtype=torch.float64)), k=2, which="BE", tol=1e-10)
        >>> [round(float(x), 8) for x in res.eigenvalues], res.converged
        ([1.0, 40.0], True)
    """
    op = as_operator(A, dim)
    which, m, budget = _check_args(op.dim, k, which, tol, max_matvecs, krylov_size)
    device = torch.device(basis_device) if basis_device is not None else op.device
    generator = make_generator(seed)  # one stream: start vector first, then probe/breakdown vectors
    basis = KrylovBasis(op, m, device, generator, min(BREAKDOWN_RTOL, BREAKDOWN_PER_TOL * tol))
    loop = ThickRestart(basis, k, which, tol, m, budget - k, callback, verify)
    rows = _warm_rows(op.dim, v0, device)
    if rows is None or rows.shape[0] == 1:
        basis.open(start_vector(op.dim, v0 if rows is None else rows[0], generator, device))
    else:  # j ≤ budget − k seed products leave k for the residual check
        basis.seed(rows[: budget - k], which, loop.n_keep, SEED_ETA_PER_TOL * tol)
    theta, Y = loop.run()
    return _certify(op, theta, Y, which, tol, basis, loop.restarts)


def default_krylov_size(k: int, P: int) -> int:
    """m = max(2k + 1, k + 20), at most P."""
    return min(max(2 * k + 1, k + 20), P)


def _check_args(P: int, k: int, which: str, tol: float, max_matvecs, krylov_size) -> tuple[str, int, int]:
    if not isinstance(which, str) or which.upper() not in WHICH:
        raise InputError(f"which={which!r} is not one of {', '.join(WHICH)} (largest algebraic, smallest "
                         "algebraic, largest magnitude, both ends)")
    if int(k) != k or k < 1 or k >= P:
        raise InputError(f"k={k} eigenpairs need 1 <= k < P, and P={P}; for all eigenvalues of a small "
                         "matrix use numpy.linalg.eigh on the dense matrix")
    if not (0 < tol < 1):
        raise InputError(f"tol={tol} must be in (0, 1): it is a residual relative to ‖A‖")
    m = default_krylov_size(k, P) if krylov_size is None else min(int(krylov_size), P)
    if m <= k and m < P:
        raise InputError(f"krylov_size={krylov_size} must exceed k={k}")
    budget = DEFAULT_BUDGET_CYCLES * m if max_matvecs is None else int(max_matvecs)
    if budget < 2 * k:
        raise InputError(f"max_matvecs={max_matvecs} is too small: k={k} pairs need at least 2k = {2 * k} "
                         "(k to build them, k to check their residuals)")
    return which.upper(), m, budget


def _warm_rows(P: int, v0: Tensor | None, device: torch.device) -> Tensor | None:
    """Orthonormal float64 rows ``(j', P)`` spanning a block ``v0`` (dependent rows dropped); None for
    no v0 or a ``(P,)`` one."""
    if v0 is None or torch.as_tensor(v0).ndim == 1:
        return None
    V0 = torch.as_tensor(v0).to(device, torch.float64)
    if V0.ndim != 2 or V0.shape[1] != P or V0.shape[0] == 0:
        raise InputError(f"v0 must have shape ({P},) or (j, {P}), got {tuple(V0.shape)}")
    if not torch.isfinite(V0).all():
        raise NonFiniteError("v0 holds NaN or Inf entries")
    Q, R = torch.linalg.qr(V0.T)
    d = R.diagonal().abs()
    keep = d > 1e-8 * d.max()  # drop dependent rows
    if not bool(keep.any()):
        raise InputError("v0 holds only zero rows; pass nonzero start vectors or v0=None for a random start")
    return Q[:, keep].T


def output_order(theta: Tensor, which: str) -> Tensor:
    """Permutation that sorts the chosen values as ``which`` reports them."""
    if which == "LA":
        return torch.argsort(theta, descending=True, stable=True)
    if which == "LM":
        return torch.argsort(theta.abs(), descending=True, stable=True)
    return torch.argsort(theta, stable=True)


def _certify(op: LinearOperator, theta: Tensor, Y: Tensor, which: str, tol: float,
             basis: KrylovBasis, restarts: int) -> EigshResult:
    """Sort, cast to the operator's dtype, and measure the explicit residuals (k more matvecs)."""
    perm = output_order(theta, which)
    theta, Y = theta[perm], _fix_signs(Y[perm])
    Y_out = Y.to(op.device, op.dtype)
    R = apply_float64(op, Y_out) - theta.to(op.device).unsqueeze(1) * Y_out.to(torch.float64)
    residuals = torch.linalg.norm(R, dim=1).cpu()
    converged = bool((residuals <= tol * basis.scale).all())
    return EigshResult(theta.clone(), Y_out, residuals, basis.num_matvecs + Y.shape[0], converged, which,
                       float(tol), basis.scale, restarts)


def _fix_signs(Y: Tensor) -> Tensor:
    """Flip each row so that its entry of largest magnitude is positive (a reproducible sign)."""
    idx = Y.abs().argmax(dim=1, keepdim=True)
    return Y * torch.sign(Y.gather(1, idx))
