"""Meta-optimisation of hyperparameters: parameterisations, per-block normalisation, the meta-step.

Gradient-based hyperparameter optimisation (Maclaurin, Duvenaud & Adams, ICML 2015) runs an
optimiser on meta-parameters φ whose image h(φ) is a hyperparameter set (see
:mod:`landscape.hyper.hyperparams`). Per meta-iteration::

    h = h(φ);    ḡ_h = mean over seeds s of dL_val(θ_T(h; s))/dh       (a hypergradient route each)
    g_φ = (∂h/∂φ)ᵀ ḡ_h                                                  (autograd through the parameterisation)
    ĝ_b = g_b / rms(g_b)  for each block b of each group                 (normalisation, below)
    φ ← Adam(φ, ĝ)  or  φ ← SGD-momentum(φ, ĝ)                           (landscape.optim: the one update rule)

**Parameterisations** (:class:`Parameterization`), each differentiable:

* ``identity`` — h = φ;
* ``monotone`` — for each row l, h_{l,0} = s_l φ_{l,0} and h_{l,k} = h_{l,k−1} + s_l exp(φ_{l,k}): an
  increasing quantile function through K knots, in units of a fixed scale s_l per row (the starting
  range h_{l,K−1} − h_{l,0}, so that a meta-step of a given size moves every layer by the same fraction of
  its own spread). Every one of its K − 1 bins keeps probability 1/(K − 1) and a positive width, so its
  density 1/((K − 1)(h_{l,k} − h_{l,k−1})) is finite and positive — the lab notes' "bins that have no data at
  all" cannot occur;
* ``knots`` — h = M φ with M ``(T, n)`` the piecewise-linear interpolation from n knots at steps
  round(linspace(0, T − 1, n)) to every step: a schedule without high-frequency content (the notes: "maybe
  the instability is only at high frequencies … we might just need some smoothing");
* ``logit`` — h = sigmoid(φ), for a momentum in (0, 1).

**Normalisation** (:func:`normalize`). Hypergradients of different groups, and of different layers within
a group, differ by orders of magnitude (the notes: "a few weights have much larger gradients than others
(possibly the bias terms?)"). Dividing each block's gradient by its root-mean-square makes every block take
steps of the same size for a given meta-learning rate, whatever its raw scale: ``how="group"`` (a block is
a group), ``"layer"`` (a block is the part of a group that belongs to one parameter tensor, see
:func:`layer_blocks`), or ``"none"``. The raw gradients are kept by the caller for inspection.

**Meta-optimisers** (:class:`MetaOptimizer`): Adam (Kingma & Ba 2015, as Maclaurin et al.) through
:func:`landscape.optim.adamw_update` with no weight decay, or SGD with heavy-ball momentum through
:func:`landscape.optim.sgd_update`; one learning rate per group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from landscape.errors import InputError
from landscape.optim import adamw_update, sgd_update

PARAMETERIZATIONS = ("identity", "monotone", "knots", "logit")
NORMALIZATIONS = ("none", "group", "layer")
META_OPTIMIZERS = ("adam", "sgd")
TINY_RMS = 1e-300  # a block whose gradient RMS is below this is treated as zero (no step), not divided by
MIN_GAP_FRACTION = 1e-6  # monotone: knots closer than this × the row's range are pulled apart (log 0 = −inf)


@dataclass(frozen=True)
class Parameterization:
    """φ → h for one group (see the module docstring).

    Attributes:
        kind: one of :data:`PARAMETERIZATIONS`.
        steps: ``knots`` only: T, the rows of h.
        scale: ``monotone`` only: s ``(rows,)``, the unit of each row (None: 1); :meth:`scaled` sets it
            to the starting range.
    """

    kind: str = "identity"
    steps: int = 0
    scale: Tensor | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.kind not in PARAMETERIZATIONS:
            raise InputError(f"unknown parameterisation {self.kind!r}; choose one of {', '.join(PARAMETERIZATIONS)}")

    @classmethod
    def scaled(cls, h: Tensor) -> Parameterization:
        """A ``monotone`` parameterisation whose rows are in units of their range in h (at least 1e-12)."""
        return cls("monotone", scale=(h[..., -1] - h[..., 0]).detach().abs().clamp_min(1e-12))

    def _scale(self, like: Tensor) -> Tensor:
        return torch.ones((), dtype=like.dtype, device=like.device) if self.scale is None else \
            self.scale.to(like)[..., None]

    def to_hyper(self, phi: Tensor) -> Tensor:
        """h(φ), differentiable."""
        if self.kind == "monotone":
            first, gaps = phi[..., :1], phi[..., 1:].exp()
            return torch.cat([first, first + gaps.cumsum(-1)], dim=-1) * self._scale(phi)
        if self.kind == "knots":
            return interpolation_matrix(self.steps, phi.shape[0]).to(phi) @ phi
        if self.kind == "logit":
            return torch.sigmoid(phi)
        return phi

    def from_hyper(self, h: Tensor, num_knots: int | None = None) -> Tensor:
        """φ with h(φ) = h (``knots``: h sampled at the knot steps; exact when h is linear between them).

        Raises:
            InputError: ``monotone`` rows that are not increasing, ``logit`` values outside (0, 1).
        """
        h = h.detach()
        if self.kind == "monotone":
            return _monotone_phi(h / self._scale(h))
        if self.kind == "knots":
            return h[knot_steps(self.steps, num_knots or self.steps)].clone()
        if self.kind == "logit":
            if not bool(((h > 0) & (h < 1)).all()):
                raise InputError("a logit parameterisation needs values strictly between 0 and 1")
            return torch.logit(h)
        return h.clone()

    def pull(self, phi: Tensor, grad_h: Tensor) -> Tensor:
        """(∂h/∂φ)ᵀ grad_h: the meta-gradient with respect to φ."""
        if self.kind == "identity":
            return grad_h.detach().clone()
        with torch.enable_grad():
            leaf = phi.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.to_hyper(leaf), leaf, grad_h.to(leaf.dtype))
        return g


def _monotone_phi(h: Tensor) -> Tensor:
    """Inverse of ``monotone``: first knot and log gaps (exact for increasing rows; gaps below
    :data:`MIN_GAP_FRACTION` × the row's range, e.g. equal knots, are widened to that)."""
    gaps = h[..., 1:] - h[..., :-1]
    if bool((gaps < 0).any()):
        raise InputError("a monotone (quantile-function) parameterisation needs non-decreasing knots in every row")
    span = (h[..., -1:] - h[..., :1]).abs().clamp_min(1.0)
    gaps = torch.maximum(gaps, MIN_GAP_FRACTION * span)
    return torch.cat([h[..., :1], gaps.log()], dim=-1)


def knot_steps(T: int, n: int) -> Tensor:
    """The n knot steps round(linspace(0, T − 1, n)) (n ≤ T, distinct)."""
    if not 1 <= n <= T:
        raise InputError(f"a schedule of {T} steps takes between 1 and {T} knots, got {n}")
    return torch.linspace(0, T - 1, n, dtype=torch.float64).round().long()


def interpolation_matrix(T: int, n: int) -> Tensor:
    """M ``(T, n)`` float64: row t holds the weights of the two knots around step t (1 at a knot)."""
    steps = knot_steps(T, n).double()
    M = torch.zeros(T, n, dtype=torch.float64)
    if n == 1:
        return M.add_(1.0)
    t = torch.arange(T, dtype=torch.float64)
    k = (torch.searchsorted(steps, t, right=True) - 1).clamp(0, n - 2)
    w = (t - steps[k]) / (steps[k + 1] - steps[k])
    M[torch.arange(T), k] = 1 - w
    M[torch.arange(T), k + 1] += w
    return M


def layer_blocks(problem, group: str, shape: tuple) -> Tensor:
    """Block ids ``(shape)`` of a group's meta-parameters: one block per parameter tensor (layer).

    A group with a layer axis — ``log_lr`` ``(n, L)`` (columns), ``init_quantiles`` ``(L, K)`` (rows),
    ``log_init_scale`` / ``log_l2`` ``(L,)`` (one entry each), ``log_l2`` ``(P,)`` (the layer of each
    weight) — is split by it; any other shape is one block.
    """
    L, P = len(problem.spec.names), problem.spec.P
    shape = tuple(shape)
    zeros = torch.zeros(shape, dtype=torch.long)
    if group == "log_lr" and len(shape) == 2 and shape[1] == L and L > 1:
        return zeros + torch.arange(L)
    if group == "init_quantiles" and len(shape) == 2 and shape[0] == L:
        return zeros + torch.arange(L)[:, None]
    if group in ("log_init_scale", "log_l2") and shape == (L,):
        return torch.arange(L)
    if group == "log_l2" and shape == (P,):
        return problem.layer_index.detach().cpu().long().clone()
    return zeros


def normalize(grad: Tensor, blocks: Tensor, how: str) -> tuple[Tensor, Tensor]:
    """(ĝ, rms): each block of ``grad`` divided by its root-mean-square, and those RMS values.

    Args:
        grad: the meta-gradient of one group (any shape).
        blocks: ids of ``grad``'s shape (:func:`layer_blocks`); ignored unless ``how="layer"``.
        how: ``"none"`` (ĝ = g), ``"group"`` (one block), ``"layer"`` (the blocks).

    Returns:
        ĝ (same shape; a block whose RMS is 0 stays 0) and ``(B,)`` float64 RMS per block (B = 1
        unless ``how="layer"``).
    """
    if how not in NORMALIZATIONS:
        raise InputError(f"unknown normalisation {how!r}; choose one of {', '.join(NORMALIZATIONS)}")
    ids = blocks.to(grad.device).reshape(-1) if how == "layer" else torch.zeros(grad.numel(), dtype=torch.long,
                                                                                   device=grad.device)
    g = grad.reshape(-1).double()
    count = torch.bincount(ids).double()
    rms = (torch.bincount(ids, weights=g * g) / count.clamp_min(1)).sqrt()
    if how == "none":
        return grad.clone(), rms.cpu()
    scale = torch.where(rms > TINY_RMS, 1 / rms.clamp_min(TINY_RMS), torch.zeros_like(rms))
    return (g * scale[ids]).reshape(grad.shape).to(grad.dtype), rms.cpu()


class MetaOptimizer:
    """Adam or SGD with heavy-ball momentum on named meta-parameter groups (the state is a flat dict).

    Args:
        kind: ``"adam"`` or ``"sgd"``.
        lr: ``{group: meta-learning rate}`` (each finite and > 0).
        betas, eps: Adam's (β₁, β₂) and ε.
        momentum: SGD's β (0: plain SGD).

    Raises:
        InputError: unknown kind, a learning rate ≤ 0 or non-finite, momentum outside [0, 1).
    """

    def __init__(self, kind: str, lr: Mapping[str, float], *, betas=(0.9, 0.999), eps: float = 1e-8,
                 momentum: float = 0.9):
        if kind not in META_OPTIMIZERS:
            raise InputError(f"unknown meta-optimiser {kind!r}; choose one of {', '.join(META_OPTIMIZERS)}")
        for name, value in lr.items():
            check_meta_lr(value, name)
        if not 0 <= momentum < 1:
            raise InputError(f"the meta-optimiser's momentum must lie in [0, 1), got {momentum}")
        self.kind, self.lr, self.betas, self.eps, self.momentum = kind, dict(lr), tuple(betas), float(eps), \
            float(momentum)

    def init_state(self, phi: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Zero moments per group (``m.<group>``, and ``v.<group>`` for Adam) and the step count ``t``."""
        state = {f"m.{k}": torch.zeros_like(v) for k, v in phi.items()}
        if self.kind == "adam":
            state.update({f"v.{k}": torch.zeros_like(v) for k, v in phi.items()})
        state["t"] = torch.zeros((), dtype=torch.long)
        return state

    def step(self, phi: Mapping[str, Tensor], grads: Mapping[str, Tensor],
             state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(φ', state') after one descent step along ``grads`` (new tensors; the inputs are untouched)."""
        t = int(state["t"]) + 1
        new_phi, new_state = {}, {"t": torch.tensor(t)}
        for name, value in phi.items():
            g, m, lr = grads[name].to(value), state[f"m.{name}"], self.lr[name]
            if self.kind == "adam":
                new_phi[name], new_state[f"m.{name}"], new_state[f"v.{name}"] = adamw_update(
                    value, g, m, state[f"v.{name}"], t, lr, self.betas, self.eps, 0.0)
            else:
                new_phi[name], m2 = sgd_update(value, g, m if self.momentum else None, lr, self.momentum, False, 0.0)
                new_state[f"m.{name}"] = m2 if self.momentum else m
        return new_phi, new_state


def check_meta_lr(value, name: str = "") -> float:
    """A meta-learning rate must be a finite number > 0 (InputError otherwise)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not (math.isfinite(x) and x > 0):
        where = f" of {name}" if name else ""
        raise InputError(f"the meta-learning rate{where} must be a finite number > 0, got {value!r}")
    return x
