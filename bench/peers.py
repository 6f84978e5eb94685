"""The peers, driven through their public APIs on a :class:`~problems.Problem`.

* PyHessian 0.1 (PyPI; amirgholami/PyHessian): ``hessian(model, criterion, dataloader=...)``;
  its full-data HVP is ``dataloader_hv_product`` (``backward(create_graph=True)`` then
  ``autograd.grad``, per batch, weighted by batch size).
* hessian-eigenthings 1.0.0a5 (noahgolmant/pytorch-hessian-eigenthings):
  ``HessianOperator(model, dataloader, supervised_loss(F.cross_entropy))`` (double backward per
  batch, batch means averaged with equal weights).
* curvlinops (f-dangel/curvlinops): ``HessianLinearOperator(model, CrossEntropyLoss(), params,
  data)`` (``jvp(jacrev(loss))`` per batch, vmapped over columns).

Each peer that is not installed is reported as such, never faked. Flat vectors follow
``model.named_parameters()`` order, the order of our θ and of all three peers.
"""

from __future__ import annotations

import importlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from problems import Problem

# PyHessian's documented HVP is backward(create_graph=True); torch warns about the cycle it makes.
warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")

PEER_MODULES = {"pyhessian": "pyhessian", "eigenthings": "hessian_eigenthings", "curvlinops": "curvlinops"}


def available(peer: str) -> bool:
    """Whether the peer imports here."""
    try:
        importlib.import_module(PEER_MODULES[peer])
        return True
    except ImportError:
        return False


def _params(problem: Problem) -> list[torch.nn.Parameter]:
    return [p for p in problem.model.parameters() if p.requires_grad]


def _split(problem: Problem, v: Tensor) -> list[Tensor]:
    params = _params(problem)
    return [c.reshape(p.shape) for c, p in zip(v.split([p.numel() for p in params]), params)]


def _flat(ts) -> Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


# ---- PyHessian -------------------------------------------------------------------------------
def pyhessian_object(problem: Problem):
    """``pyhessian.hessian`` over the whole batch plan (``full_dataset`` mode)."""
    from pyhessian import hessian

    return hessian(problem.model, torch.nn.CrossEntropyLoss(), dataloader=problem.batches,
                   cuda=problem.device.type == "cuda")


def pyhessian_hvp(problem: Problem) -> Callable[[Tensor], Tensor]:
    """Flat ``v ↦ Hv`` through PyHessian's ``dataloader_hv_product``."""
    h = pyhessian_object(problem)
    return lambda v: _flat(h.dataloader_hv_product(_split(problem, v))[1])


# ---- hessian-eigenthings ---------------------------------------------------------------------
def eigenthings_operator(problem: Problem):
    """hessian-eigenthings' ``HessianOperator`` (autograd, full data set)."""
    import hessian_eigenthings as he

    return he.HessianOperator(problem.model, problem.batches, he.supervised_loss(F.cross_entropy))


def eigenthings_hvp(problem: Problem) -> Callable[[Tensor], Tensor]:
    """Flat ``v ↦ Hv`` through ``HessianOperator.matvec``."""
    op = eigenthings_operator(problem)
    return op.matvec


# ---- curvlinops ------------------------------------------------------------------------------
def curvlinops_operator(problem: Problem):
    """curvlinops' ``HessianLinearOperator`` (mean reduction, its determinism check on)."""
    from curvlinops import HessianLinearOperator

    return HessianLinearOperator(problem.model, torch.nn.CrossEntropyLoss(), _params(problem), problem.batches,
                                 num_data=problem.N)


def curvlinops_hvp(problem: Problem) -> Callable[[Tensor], Tensor]:
    """Flat ``v ↦ Hv`` (``op @ v``)."""
    op = curvlinops_operator(problem)
    return lambda v: op @ v


HVPS: dict[str, Callable[[Problem], Callable[[Tensor], Tensor]]] = {
    "pyhessian": pyhessian_hvp, "eigenthings": eigenthings_hvp, "curvlinops": curvlinops_hvp}


# ---- recording a solver's products -----------------------------------------------------------
@dataclass
class Recorder:
    """Wraps a flat HVP: counts products and timestamps each (seconds since ``start``).

    ``budget`` products at most: the next one raises :class:`BudgetExceeded`, so a run that
    would not stop in reasonable time is cut off (and reported as such).
    """

    hvp: Callable[[Tensor], Tensor]
    budget: int | None = None
    times: list[float] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)

    def __call__(self, v: Tensor) -> Tensor:
        if self.budget is not None and len(self.times) >= self.budget:
            raise BudgetExceeded(self.budget)
        out = self.hvp(v)
        self.times.append(time.perf_counter() - self.start)
        return out

    @property
    def count(self) -> int:
        return len(self.times)


class BudgetExceeded(RuntimeError):
    """A peer solver used up the HVP budget the benchmark allows it."""

    def __init__(self, budget: int):
        super().__init__(f"stopped after {budget} HVPs (benchmark budget)")
        self.budget = budget


# ---- recorded eigensolver runs ----------------------------------------------------------------
@dataclass
class SolverRun:
    """What one top-k run did: eigenvalues found (None if cut off), HVPs, seconds, and per HVP
    the (index of the eigenvalue being computed, its estimate after this HVP, seconds since start)."""

    eigenvalues: list[float] | None
    num_hvps: int
    seconds: float
    trace: list[tuple[int, float, float]] = field(default_factory=list)
    note: str = ""


def pyhessian_eigenvalues(problem: Problem, k: int, *, tol: float = 1e-3, max_iter: int = 100,
                          budget: int | None = None, seed: int = 0) -> SolverRun:
    """``hessian(...).eigenvalues(maxIter, tol, top_n=k)``, PyHessian's deflated power iteration.

    Records every ``dataloader_hv_product`` (the Rayleigh quotient it returns is PyHessian's
    estimate after that HVP) and which eigenvalue it serves: PyHessian orthonormalises the
    iterate against the ``len(eigenvectors)`` vectors found so far just before each HVP.
    Its start vectors come from the global RNG, seeded here with ``seed``.
    """
    ph = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports the class by that name)
    h, index, trace = pyhessian_object(problem), [0], []
    original_orth, original_hv = ph.orthnormal, h.dataloader_hv_product
    start = time.perf_counter()

    def orth(w, v_list):
        index[0] = len(v_list)
        return original_orth(w, v_list)

    def hv(v):
        if budget is not None and len(trace) >= budget:
            raise BudgetExceeded(budget)
        lam, Hv = original_hv(v)
        trace.append((index[0], float(lam), time.perf_counter() - start))
        return lam, Hv

    h.dataloader_hv_product, ph.orthnormal = hv, orth
    torch.manual_seed(seed)
    try:
        values, note = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)[0], ""
    except BudgetExceeded as err:
        values, note = None, str(err)
    finally:
        ph.orthnormal = original_orth
    return SolverRun(values, len(trace), time.perf_counter() - start, trace, note)


def _recorded_eigenthings_operator(problem: Problem, budget: int | None):
    import hessian_eigenthings as he

    op = eigenthings_operator(problem)
    rec = Recorder(op.matvec, budget)
    return he.LambdaOperator(rec, op.size, op.device, op.dtype), rec


def eigenthings_lanczos(problem: Problem, k: int, *, max_iter: int | None = None, seed: int = 0) -> SolverRun:
    """``hessian_eigenthings.lanczos(op, k=k, which="LA")`` (default ``max_iter = 2k``)."""
    import hessian_eigenthings as he

    op, rec = _recorded_eigenthings_operator(problem, None)
    rec.start = time.perf_counter()
    res = he.lanczos(op, k=k, max_iter=max_iter, which="LA", seed=seed)
    return SolverRun(res.eigenvalues.tolist(), rec.count, time.perf_counter() - rec.start)


def eigenthings_tridiagonal(problem: Problem, num_iters: int, *, seed: int = 0):
    """``lanczos_tridiagonal`` with full reorthogonalisation (the default of its ``lanczos`` up to
    50 steps), from the same Gaussian start as its ``lanczos``; returns (alphas, betas, HVP times)."""
    import hessian_eigenthings as he

    op, rec = _recorded_eigenthings_operator(problem, None)
    v0 = torch.randn(op.size, dtype=op.dtype, generator=torch.Generator().manual_seed(seed)).to(op.device)
    rec.start = time.perf_counter()
    td = he.lanczos_tridiagonal(op, v0, num_iters, reorthogonalize=True)
    return td.alphas.double().cpu().numpy(), td.betas.double().cpu().numpy(), rec.times


def eigenthings_power(problem: Problem, k: int, *, budget: int | None = None, seed: int = 0) -> SolverRun:
    """``hessian_eigenthings.deflated_power_iteration(op, k=k)`` with its defaults
    (``max_iter=100`` per eigenvalue, ``tol=1e-4`` on the change *and* the residual)."""
    import hessian_eigenthings as he

    op, rec = _recorded_eigenthings_operator(problem, budget)
    rec.start = time.perf_counter()
    try:
        res = he.deflated_power_iteration(op, k=k, seed=seed)
        return SolverRun(res.eigenvalues.tolist(), rec.count, time.perf_counter() - rec.start)
    except BudgetExceeded as err:
        return SolverRun(None, rec.count, time.perf_counter() - rec.start, note=str(err))
