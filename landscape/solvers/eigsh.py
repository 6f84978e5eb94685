"""Certified extreme eigenpairs of a symmetric operator: thick-restart Lanczos.

The method (Wu & Simon 2000, "Thick-restart Lanczos method for large symmetric
eigenvalue problems"): build a Krylov basis of size m with full reorthogonalization
in float64, take Ritz pairs of the Rayleigh quotient T = V A Vᵀ, and restart from
the wanted Ritz vectors plus a few neighbours (keeping their Lanczos couplings),
until every wanted pair meets the accuracy rule. ``tol`` is relative, and ``criterion``
says to what (:mod:`landscape.solvers.certify`):

* ``"residual"`` (default): ‖Av − θv‖ ≤ tol · ‖A‖_est, where ‖A‖_est is the largest |Ritz
  value| seen (a lower bound of ‖A‖₂, so the certificate is never looser than tol · ‖A‖₂);
* ``"eigenvalue"``: the eigenvalue error bound min(ρ, ρ²/gap) ≤ tol · |θ| for every pair:
  every eigenvalue to ``tol`` relative, which takes far fewer products than a residual of
  the same size (eigenvalue errors fall like the square of the residual).

Three things make the answer trustworthy at close to the cost of plain Lanczos:

* **Certified residuals without products.** The solver keeps an exact record of the
  Lanczos relation A V = V (T + D) + Q Cᵀ + H Fᵀ (:mod:`landscape.solvers.krylov`), so
  ‖A y − θ y‖ of every Ritz pair follows from small matrices, plus a rounding floor for
  the operator's own precision. Only a pair whose certificate would not be tight gets an
  explicit product (``recomputed``; none in any path measured so far).
* **A probe for missed eigenvalues.** Lanczos from one vector sees one copy of a repeated
  eigenvalue and barely sees eigenvectors its start is nearly orthogonal to. Once the
  wanted pairs meet the rule they are locked and the basis grows from fresh random vectors
  orthogonal to them (``verify=True``, :mod:`landscape.solvers.probe`): a value that belongs
  among the wanted sends the iteration back (its vector is already in the basis); else the
  probe stops as soon as the Kuczyński–Woźniakowski bound makes a missed value less likely
  than ``miss_probability``, or at ``probe_steps``, reporting ``miss_bound``.
* **Batched products.** ``block_size`` b > 1 starts from b vectors (band Lanczos: a repeated
  eigenvalue of multiplicity ≤ b is seen at once) and applies A to b vectors per call —
  one batched HVP, cheaper per vector where the operator's block route is.

A warm start from a block ``v0`` (j, P), e.g. the eigenvectors at the previous
checkpoint, starts Lanczos from b ∝ Σ_i v0_i. If the first product shows span(v0)
nearly invariant (η = ‖(I − P_v0) A b‖ / ‖A b‖ ≤ ``SEED_ETA_PER_TOL`` · tol), j − 1
more products give the Rayleigh–Ritz pairs of span(v0), which start the iteration as
the kept vectors of a thick restart (Wu & Simon 2000); their j residual directions
are all kept, so the relation stays exact and the run goes on as band Lanczos (Ruhe
1979). Converged rows then cost j products instead of the Krylov steps that would
rebuild them from b, which with close eigenvalues resolves the block only to its error
times a large Vandermonde-like factor. Otherwise the block is used as b alone: a block
Krylov space of degree d costs j·d products where one vector's costs d, so a block seed
only pays off once it is nearly converged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from landscape.errors import InputError, NonFiniteError
from landscape.operators import LinearOperator, as_operator, operator_provenance
from landscape.solvers.certify import (
    CRITERIA,
    LEAK_PER_TOL,
    Accuracy,
    certified_residuals,
    eigenvalue_errors,
    locked_errors,
)
from landscape.solvers.krylov import KrylovBasis
from landscape.solvers.lanczos import BREAKDOWN_RTOL, start_vector
from landscape.solvers.order import WHICH, output_order, priority
from landscape.solvers.probe import VERIFY_FAILURE_PROB, Probe, margin_steps
from landscape.solvers.restart import KEEP_FRACTION, Answer, ThickRestart
from landscape.solvers.sampling import Seed, make_generator

__all__ = ["WHICH", "EigshResult", "default_krylov_size", "eigsh", "output_order"]

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

# Weight of the random part of a randomized warm start (k = 1 per end, a single v0, probe on):
# x = v̂0 + η ẑ with η/(1 + η) = this. The probe's bound loosens by 1/this (Chebyshev form (4) of
# probe.py), about one more step on the HVP problems; the warm start's head start is barely dented
# (its error goes from ε to ≈ 0.3, which Lanczos removes in a step or two where the gap is not tiny).
WARM_RANDOM_SHARE = 0.25


@dataclass(frozen=True)
class EigshResult:
    """Eigenpairs with their certificates.

    Attributes:
        eigenvalues: ``(k,)`` float64, sorted as ``which`` asks (LA descending, SA
            ascending, LM by descending |λ|, BE ascending).
        eigenvectors: ``(k, P)`` orthonormal rows, in the operator's dtype and device.
        residuals: ``(k,)`` float64 certified ‖A v − λ v‖ of the returned vectors: from the
            Lanczos relation plus the rounding floor, or explicit where ``recomputed``.
        num_matvecs: every product with A (probe and any recomputed residual included).
        converged: every pair meets the rule of ``criterion`` at ``tol``.
        which, tol: as asked.
        norm_estimate: ‖A‖_est, the largest |Ritz value| seen (≤ ‖A‖₂).
        num_restarts: restarts of the Krylov basis (locking for the probe included).
        eigenvalue_errors: ``(k,)`` float64 bounds min(ρ, ρ²/gap) on |λ_i − θ_i|
            (:mod:`landscape.solvers.certify`; a bound once nothing was missed).
        recomputed: ``(k,)`` bool, residuals that took an explicit product.
        criterion: ``"residual"`` or ``"eigenvalue"``, as asked.
        miss_probability: the probe's accepted failure probability δ (nan without a probe).
        miss_bound: with probability ≥ 1 − δ no eigenvalue beyond the returned ones by more
            than this (eigenvalue units, from the probe's Ritz values) was missed; 0 when the
            probe settled or the Krylov space was exhausted, inf while the bound is not yet
            informative, nan without a probe.
        miss_margin: the worst-case form of the same statement, whatever the spectrum: no
            eigenvalue beyond the returned ones by more than ``miss_margin`` times their
            distance to the far end of the spectrum was missed (0 when settled, nan without
            a probe). It depends only on the probe's length, P and δ.
        probe_matvecs: products spent in the probe.
        block_size: vectors per batched product (and start vectors).
        provenance: how the operator computed its products (e.g. ``{"hvp_route": ...}``).
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
    eigenvalue_errors: Tensor | None = None
    recomputed: Tensor | None = None
    criterion: str = "residual"
    miss_probability: float = math.nan
    miss_bound: float = math.nan
    miss_margin: float = math.nan
    probe_matvecs: int = 0
    block_size: int = 1
    provenance: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Arrays and scalars to store (eigenvectors as float arrays, ``(k, P)``)."""
        k = self.eigenvalues.shape[0]
        nan = torch.full((k,), math.nan, dtype=torch.float64)
        errors = self.eigenvalue_errors if self.eigenvalue_errors is not None else nan
        recomputed = self.recomputed if self.recomputed is not None else torch.ones(k, dtype=torch.bool)
        return {"eigenvalues": self.eigenvalues.numpy(), "eigenvectors": self.eigenvectors.detach().cpu().numpy(),
                "residuals": self.residuals.numpy(), "num_matvecs": self.num_matvecs,
                "converged": int(self.converged), "which": self.which, "tol": self.tol,
                "norm_estimate": self.norm_estimate, "num_restarts": self.num_restarts,
                "eigenvalue_errors": errors.numpy(), "recomputed": recomputed.numpy().astype("int8"),
                "criterion": self.criterion, "miss_probability": float(self.miss_probability),
                "miss_bound": float(self.miss_bound), "miss_margin": float(self.miss_margin),
                "probe_matvecs": int(self.probe_matvecs),
                "block_size": int(self.block_size), "provenance": json.dumps(self.provenance, sort_keys=True)}


def eigsh(A, k: int = 6, which: str = "LA", tol: float = 1e-6, *, max_matvecs: int | None = None,
          seed: Seed = 0, v0: Tensor | None = None, callback: Callable[[dict], None] | None = None,
          dim: int | None = None, krylov_size: int | None = None,
          basis_device: torch.device | str | None = None, verify: bool = True,
          criterion: str = "residual", miss_probability: float = VERIFY_FAILURE_PROB,
          probe_steps: int | None = None, block_size: int = 1) -> EigshResult:
    """k extreme eigenpairs of a symmetric operator, each certified by its residual.

    Args:
        A: operator, dense symmetric tensor, or matvec callable (then pass ``dim``).
        k: number of eigenpairs, 1 ≤ k < P.
        which: ``"LA"`` largest algebraic, ``"SA"`` smallest algebraic, ``"LM"`` largest
            magnitude, ``"BE"`` both ends (⌈k/2⌉ largest and ⌊k/2⌋ smallest).
        tol: relative tolerance, in (0, 1); ``criterion`` says of what. With a float32
            operator the floor is about the relative error of one product (≳1e-6).
        max_matvecs: budget, probe and any recomputed residual included (default 30 Krylov sizes).
        seed: int or generator for the random start, block and probe vectors.
        v0: warm start. ``(P,)``: the Krylov space is grown from v0. ``(j, P)`` (e.g. the
            eigenvectors at the previous checkpoint; at most ``max_matvecs`` − k rows are
            used): the rows are orthonormalized (dependent ones dropped) and Lanczos starts
            from their sum b; if span(v0) is nearly invariant (module docstring), its
            Ritz pairs start the iteration instead, as the kept vectors of a thick restart
            (the basis then holds up to j − 1 more P-vectors). The products this takes (at
            most j) are counted in ``num_matvecs``.
        callback: called after each judged step of the main iteration (not during the final
            probe) with ``{"num_matvecs", "max_residual", "num_converged", "num_restarts"}``
            (``max_residual`` relative to ‖A‖_est).
        dim: P, for a matvec callable.
        krylov_size: m, the basis size (default max(2k+1, k+20), at most P).
        basis_device: where the float64 basis lives (default the operator's device).
        verify: after convergence, probe for missed (e.g. repeated) eigenvalues from fresh
            random vectors orthogonal to the found ones (module docstring).
        criterion: ``"residual"``: ‖Av − θv‖ ≤ tol·‖A‖_est for every pair; ``"eigenvalue"``:
            the bound on |λ − θ| ≤ tol·|θ| for every pair.
        miss_probability: δ, the accepted probability that the probe misses an eigenvalue
            beyond the found ones by more than the tolerance (it stops once below).
        probe_steps: the most probe steps (per probe vector; default (m − k) / block_size).
        block_size: b start vectors and products per batched call (1 ≤ b ≤ 8 is typical).

    Returns:
        :class:`EigshResult`; ``converged=False`` with the best pairs and their honest
        residuals when the budget runs out.

    Raises:
        InputError: k ≥ P, k < 1, an unknown ``which`` or ``criterion``, a bad
            ``tol``/``v0``/budget/``block_size``/``miss_probability``.
        NonFiniteError: the operator returned NaN or Inf.

    Example:
        >>> import torch
        >>> res = eigsh(torch.diag(torch.arange(1.0, 41.0, dtype=torch.float64)), k=2, which="BE", tol=1e-10)
        >>> [round(float(x), 8) for x in res.eigenvalues], res.converged
        ([1.0, 40.0], True)
    """
    op = as_operator(A, dim)
    which, m, budget = _check_args(op.dim, k, which, tol, max_matvecs, krylov_size)
    _check_options(criterion, miss_probability, block_size, probe_steps)
    device = torch.device(basis_device) if basis_device is not None else op.device
    generator = make_generator(seed)  # one stream: start vector first, then block, probe and breakdown vectors
    basis = KrylovBasis(op, m, device, generator, min(BREAKDOWN_RTOL, BREAKDOWN_PER_TOL * tol), block_size)
    accuracy = Accuracy(criterion, float(tol), op.dtype)
    probe = _probe(op.dim, k, which, m, verify, miss_probability, probe_steps, block_size)
    chains, share = _start(basis, v0, generator, which, tol, budget, k, block_size, m, probe is not None)
    loop = ThickRestart(basis, k, which, accuracy, m, budget - k, callback, probe, block_size, chains, share,
                        probe_steps)
    answer = loop.run()
    return _result(op, basis, answer, accuracy, which, block_size, probe, loop.restarts)


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


def _check_options(criterion: str, miss_probability: float, block_size: int, probe_steps) -> None:
    if criterion not in CRITERIA:
        raise InputError(f"criterion={criterion!r} is not one of {CRITERIA} (residual relative to ‖A‖, or "
                         "eigenvalue error relative to |λ|)")
    if not (0 < miss_probability < 1):
        raise InputError(f"miss_probability={miss_probability} must be in (0, 1): the accepted probability "
                         "that the probe misses an eigenvalue")
    if int(block_size) != block_size or block_size < 1:
        raise InputError(f"block_size={block_size} must be a positive integer (vectors per batched product)")
    if probe_steps is not None and (int(probe_steps) != probe_steps or probe_steps < 1):
        raise InputError(f"probe_steps={probe_steps} must be a positive integer or None")


def _probe(P: int, k: int, which: str, m: int, verify: bool, delta: float, steps, block: int) -> Probe | None:
    """The probe's rules: by default as many steps per chain as a one-spread margin needs at δ
    (:func:`~landscape.solvers.probe.margin_steps`), capped so that locked plus probe rows fit the basis."""
    if not verify:
        return None
    room = max((m - k) // block, 1)
    wanted = margin_steps(P - k, delta, block) if steps is None else int(steps)
    return Probe(which, k, P - k, float(delta), max(1, min(wanted, room)), block)


def _start(basis: KrylovBasis, v0, generator, which: str, tol: float, budget: int, k: int, block: int,
           m: int, verify: bool) -> tuple[int, float]:
    """Open the start vector(s) — v0 or a random one, plus block − 1 random ones — or seed from a
    block v0. Return (how many start vectors have a random part, its weight).

    With the probe on, one wanted value per end and a single warm vector v0 (the trainer's
    online λ_max), the start is v0 plus a random vector weighing ``WARM_RANDOM_SHARE`` of the
    sum: the run keeps most of the warm start's head start, and is its own probe for missed
    eigenvalues (``restart.ThickRestart._shared_probe``) instead of paying for a separate one.
    """
    rows = _warm_rows(basis.op.dim, v0, basis.V.device)
    if rows is not None and rows.shape[0] > 1:  # j ≤ budget − k seed products leave k for the residual check
        n_keep = min(k + int(KEEP_FRACTION * (m - k)), m - 1)
        basis.seed(rows[: budget - k], n_keep, SEED_ETA_PER_TOL * tol, lambda th: priority(th, which))
        return 0, 1.0
    P, device = basis.op.dim, basis.V.device
    x = start_vector(P, v0 if rows is None else rows[0], generator, device)
    per_end = k == 1 or (which == "BE" and k == 2)
    randomize = v0 is not None and verify and per_end and block == 1
    if randomize:  # x = v̂0 + η ẑ with η/(1 + η) = WARM_RANDOM_SHARE of the sum's weight
        eta = WARM_RANDOM_SHARE / (1 - WARM_RANDOM_SHARE)
        x = x + eta * basis.random()
    basis.open(x)
    for _ in range(block - 1):
        basis.open(basis.random())
    if v0 is None:
        return block, 1.0
    return (1, WARM_RANDOM_SHARE) if randomize else (block - 1, 1.0)


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


def _result(op: LinearOperator, basis: KrylovBasis, answer: Answer, accuracy: Accuracy, which: str, block: int,
            probe: Probe | None, restarts: int) -> EigshResult:
    """Sort, cast to the operator's dtype, certify the residuals and bound the eigenvalue errors."""
    perm = output_order(answer.theta, which)
    theta, U, index = answer.theta[perm], answer.U[:, perm], answer.index[perm]
    n, scale = basis.size, basis.scale
    floor = accuracy.floor(scale, n)
    relation = basis.residual_norms(U, theta)
    leak = basis.leak_part(U)
    Y = _fix_signs(U.T.to(basis.V.device) @ basis.V[:n])
    Y_out = Y.to(op.device, op.dtype)
    slack = LEAK_PER_TOL * accuracy.tol * scale
    residuals, recomputed, used = certified_residuals(op, theta, Y_out, relation, leak, floor, slack)
    errors = _errors(basis, answer, perm, index, theta, residuals, floor, accuracy.tolerance(theta, scale, n))
    converged = bool(accuracy.converged(errors, residuals, theta, scale, n).all())
    delta = probe.delta if probe is not None else math.nan
    return EigshResult(theta.clone(), Y_out, residuals, basis.num_matvecs + used, converged, which, accuracy.tol,
                       scale, restarts, errors, recomputed, accuracy.criterion, delta, answer.miss_bound,
                       answer.miss_margin, answer.probe_matvecs, block, operator_provenance(op))


def _errors(basis: KrylovBasis, answer: Answer, perm: Tensor, index: Tensor, theta: Tensor, residuals: Tensor,
            floor: float, tau: Tensor) -> Tensor:
    """Eigenvalue error bounds of the answer against every other Ritz value of the final basis
    (for locked rows: the bounds at lock time, narrowed by the probe's Ritz values)."""
    if answer.locked:
        return locked_errors(basis, theta, residuals, answer.errors[perm])
    all_theta, all_U = basis.ritz()
    all_rho = basis.residual_norms(all_U, all_theta) + floor
    all_rho[index] = residuals
    return eigenvalue_errors(all_theta, all_rho, index, tau)


def _fix_signs(Y: Tensor) -> Tensor:
    """Flip each row so that its entry of largest magnitude is positive (a reproducible sign)."""
    idx = Y.abs().argmax(dim=1, keepdim=True)
    return Y * torch.sign(Y.gather(1, idx))
