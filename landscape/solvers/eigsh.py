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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from scipy.linalg import eigh as scipy_eigh
from torch import Tensor

from landscape.errors import InputError
from landscape.operators import LinearOperator, apply_float64, as_operator
from landscape.solvers.lanczos import BREAKDOWN_RTOL, KrylovBasis, start_vector
from landscape.solvers.sampling import Seed, make_generator

WHICH = ("LA", "SA", "LM", "BE")

# Default budget: this many Krylov sizes' worth of matvecs before giving up.
DEFAULT_BUDGET_CYCLES = 30

# A Ritz vector found after locking counts as "already locked" when more than this
# share of its squared weight lies on the locked vectors (it is either ~1 or ~0).
LOCKED_WEIGHT = 0.5

# Verification: accepted probability that Lanczos from a random start misses an
# eigenvalue beyond the k found ones (Kuczyński & Woźniakowski 1992 bound).
VERIFY_FAILURE_PROB = 1e-3

# Share of the non-wanted Ritz vectors kept at a thick restart (Wu & Simon 2000 keep
# "about half"); on the oracle matrices 0.25–0.5 took the fewest matvecs, 0 and 0.75 more.
KEEP_FRACTION = 0.5

# Breakdown threshold relative to ``tol``: a dropped β must not spoil the certificate.
BREAKDOWN_PER_TOL = 1e-2


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
        v0: warm start, ``(P,)`` or ``(j, P)`` (e.g. the eigenvectors at the previous
            checkpoint): the Krylov space is grown from the sum of their orthonormalized
            rows, which lies close to the wanted invariant subspace.
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
        >>> res = eigsh(torch.diag(torch.arange(1.0, 41.0)), k=2, which="BE", tol=1e-10)
        >>> [round(float(x), 8) for x in res.eigenvalues], res.converged
        ([1.0, 40.0], True)
    """
    op = as_operator(A, dim)
    which, m, budget = _check_args(op.dim, k, which, tol, max_matvecs, krylov_size)
    device = torch.device(basis_device) if basis_device is not None else op.device
    generator = make_generator(seed)  # one stream: start vector first, then probe/breakdown vectors
    start = _warm_start(op.dim, v0, generator, device)
    basis = KrylovBasis(op, m, device, generator, min(BREAKDOWN_RTOL, BREAKDOWN_PER_TOL * tol))
    basis.open(start)
    loop = _Iteration(basis, k, which, tol, m, budget - k, callback, verify)
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


def _warm_start(P: int, v0: Tensor | None, seed: Seed, device: torch.device) -> Tensor:
    """Start vector: v0, or the sum of the orthonormalized rows of a ``(j, P)`` v0, or random."""
    if v0 is None or torch.as_tensor(v0).ndim == 1:
        return start_vector(P, v0, seed, device)
    V0 = torch.as_tensor(v0).to(device, torch.float64)
    if V0.ndim != 2 or V0.shape[1] != P or V0.shape[0] == 0:
        raise InputError(f"v0 must have shape ({P},) or (j, {P}), got {tuple(V0.shape)}")
    Q, R = torch.linalg.qr(V0.T)
    keep = R.diagonal().abs() > 1e-8 * R.diagonal().abs().max()  # drop dependent rows
    return start_vector(P, Q[:, keep].sum(dim=1), seed, device)


def priority(theta: Tensor, which: str) -> Tensor:
    """Indices of the Ritz values ``theta`` in order of preference for ``which``."""
    if which == "LA":
        return torch.argsort(theta, descending=True, stable=True)
    if which == "SA":
        return torch.argsort(theta, stable=True)
    if which == "LM":
        return torch.argsort(theta.abs(), descending=True, stable=True)
    top, bottom = torch.argsort(theta, descending=True, stable=True), torch.argsort(theta, stable=True)
    seen, order = set(), []
    for i in torch.stack([top, bottom], dim=1).reshape(-1).tolist():  # BE: top, bottom, top, ...
        if i not in seen:
            seen.add(i)
            order.append(i)
    return torch.tensor(order, dtype=torch.long)


def handicap(theta: Tensor, which: str, margin: float) -> Tensor:
    """``theta`` made less wanted by ``margin`` (never crossing the point it is judged from).

    LA/SA move values down/up; LM shrinks |θ| toward 0; BE moves values toward the
    middle of their range. Ties then go to the values that were not handicapped.
    """
    if which == "LA":
        return theta - margin
    if which == "SA":
        return theta + margin
    center = 0.0 if which == "LM" else float(theta.max() + theta.min()) / 2
    d = theta - center
    return center + torch.sign(d) * (d.abs() - margin).clamp(min=0.0)


def output_order(theta: Tensor, which: str) -> Tensor:
    """Permutation that sorts the chosen values as ``which`` reports them."""
    if which == "LA":
        return torch.argsort(theta, descending=True, stable=True)
    if which == "LM":
        return torch.argsort(theta.abs(), descending=True, stable=True)
    return torch.argsort(theta, stable=True)


class _Iteration:
    """The restart loop, judged after every step: stop, restart, or lock-and-probe.

    Modes: *normal* (thick restart until every wanted pair has converged) and *probe*
    (the k converged pairs are locked and the basis grows from a random vector
    orthogonal to them, until the extreme new Ritz values at the wanted ends have
    converged without beating the locked ones — then stop — or one of them does:
    then back to normal mode with it among the wanted).
    """

    def __init__(self, basis: KrylovBasis, k: int, which: str, tol: float, m: int, budget: int,
                 callback: Callable[[dict], None] | None, verify: bool):
        self.basis, self.k, self.which, self.tol, self.m = basis, k, which, tol, m
        self.budget, self.callback, self.verify = budget, callback, verify
        self.n_keep = min(k + int(KEEP_FRACTION * (m - k)), m - 1)  # wanted + a share of the rest
        self.restarts, self.locked, self.probe_steps = 0, 0, 0  # locked > 0: probe mode, V[:locked] locked

    def run(self) -> tuple[Tensor, Tensor]:
        """Iterate; return the wanted Ritz values (k,) and vectors (k, P) float64."""
        while True:
            action = self._cycle()
            if action == "stop":
                break
            keep = self.wanted if action == "probe" else self.order[: self.n_keep]
            self.basis.restart(self.U[:, keep], self.theta[keep], lock=action == "probe")
            self.locked, self.probe_steps = (self.k, 0) if action == "probe" else (self.locked, self.probe_steps)
            self.restarts += 1
        V = self.basis.V
        if self.locked:  # the probe found nothing new: the answer is the locked vectors
            return self.basis.T.diagonal()[: self.k].clone(), V[: self.k].clone()
        return self.theta[self.wanted], self.U[:, self.wanted].T.to(V.device) @ V[: self.basis.size]

    def _cycle(self) -> str:
        """Grow the basis one vector at a time until there is something to do."""
        while True:
            can_grow = self.basis.has_open and self.basis.num_matvecs < self.budget
            if can_grow:
                self.basis.step()
                self.probe_steps += 1
            if self.basis.size > self.k or not can_grow:
                action = self._judge(can_grow)
                if action is not None:
                    return action

    def _judge(self, can_grow: bool) -> str | None:
        self.theta, self.U, bounds = self.basis.ritz()
        tol = self.tol * self.basis.scale
        self.order = priority(self.theta, self.which)
        self.wanted = self.order[: self.k]
        converged = bounds[self.wanted] <= tol
        self._report(bounds[self.wanted], converged)
        if self.basis.complete:  # the Krylov space is invariant and has no room left: exact
            self.locked = 0
            return "stop"
        if self.locked:
            verdict = self._probe_verdict(tol)
            if verdict == "new":
                self.locked = 0  # back to normal mode, the new value among the wanted
            elif verdict == "settled" or self.probe_steps >= self.m - self.k:
                return "stop"
        if not self.locked and bool(converged.all()):
            return "probe" if self.verify else "stop"
        if not can_grow:
            self.locked = 0
            return "stop"
        return "restart" if self.basis.size >= self.m else None

    def _probe_verdict(self, tol: float) -> str | None:
        """"new" if a probe value belongs among the wanted, "settled" if none is likely to, else None.

        The probe block T[k:, k:] is (up to couplings ≤ tol) the Rayleigh quotient of the
        operator deflated by the locked vectors; its values are compared with the locked
        values diag T[:k, :k], handicapped by ``tol`` so that ties do not count as new.
        """
        k, n, T = self.k, self.basis.size, self.basis.T
        locked, free = T.diagonal()[:k], torch.from_numpy(scipy_eigh(T[k:n, k:n].numpy(), eigvals_only=True))
        values = torch.cat([locked, free])
        is_free = torch.arange(n) >= k
        values = torch.where(is_free, handicap(values, self.which, tol), values)
        if bool((priority(values, self.which)[:k] >= k).any()):
            return "new"
        return "settled" if self._settled(free, locked.sort().values, tol) else None

    def _settled(self, free: Tensor, locked: Tensor, tol: float) -> bool:
        """Is it unlikely (≤ 2δ) that the probe hides a value beyond the locked ones by more than ``tol``?

        With ε from :func:`kw_epsilon`, λ_max − θ_top ≤ ε S and θ_bottom − λ_min ≤ ε S each fail
        with probability ≤ δ, where S = λ_max − λ_min of the deflated operator; hence
        S ≤ R / (1 − 2ε) with R the range of the probe's Ritz values ``free``.
        """
        eps = kw_epsilon(self.probe_steps - 1, self.basis.op.dim - self.k, VERIFY_FAILURE_PROB)
        if free.numel() < 2 or eps >= 0.5:
            return False
        reach = eps * float(free.max() - free.min()) / (1 - 2 * eps)
        top, bottom = float(free.max()) + reach, float(free.min()) - reach
        if self.which == "LA":
            return top < float(locked[0]) + tol
        if self.which == "SA":
            return bottom > float(locked[-1]) - tol
        if self.which == "LM":
            floor = float(locked.abs().min())
            return top < floor + tol and bottom > -floor - tol
        n_bottom = self.k // 2
        top_ok = top < float(locked[n_bottom]) + tol
        return top_ok and (n_bottom == 0 or bottom > float(locked[n_bottom - 1]) - tol)

    def _report(self, bounds: Tensor, converged: Tensor) -> None:
        if self.callback is not None:
            scale = self.basis.scale or 1.0
            self.callback({"num_matvecs": self.basis.num_matvecs, "max_residual": float(bounds.max()) / scale,
                           "num_converged": int(converged.sum()), "num_restarts": self.restarts})


def kw_epsilon(num_matvecs: int, n: int, delta: float) -> float:
    """Relative accuracy ε that Lanczos from a random start reaches with probability ≥ 1 − δ.

    Kuczyński & Woźniakowski (1992), "Estimating the largest eigenvalue by the power
    and Lanczos algorithms with a random start", SIAM J. Matrix Anal. Appl. 13(4):
    for a symmetric positive semidefinite n × n matrix and a start vector uniform on
    the sphere, q ≥ 2 matvecs give θ < (1 − ε) λ_max with probability at most
    1.648 √n e^{−√ε (2q − 1)}. Applied to A − λ_min I, "relative" means relative to
    the spectral range λ_max − λ_min. Returns ``inf`` for q < 2.
    """
    if num_matvecs < 2:
        return math.inf
    return (math.log(1.648 * math.sqrt(max(n, 1)) / delta) / (2 * num_matvecs - 1)) ** 2


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
