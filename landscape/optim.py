"""The parameter update rules, as pure functions of (θ, optimiser state, g, hyperparameters).

One rule serves every caller — the trainer (:mod:`checkpoints.step`), the replay of a run
from its snapshots, the differentiable training loop of :mod:`landscape.hyper` and the
continued training of the interventions — so "exactly as the trainer runs it" holds by
construction. Nothing here reads global state; with the same inputs the outputs are
bitwise the same on the CPU.

SGD with heavy-ball or Nesterov momentum, ``torch.optim.SGD`` with dampening 0 written on
the flat θ (Sutskever et al. 2013 for the Nesterov form)::

    d  = g + λ θ                     (weight decay λ, coupled L2)
    m' = β m + d                     (m_0 = 0, so m_1 = d)
    d  = d + β m'  (Nesterov)   or   d = m'  (heavy ball)
    θ' = θ − η d

AdamW (Loshchilov & Hutter 2019, "Decoupled weight decay regularization"; Kingma & Ba 2015
for Adam), ``torch.optim.AdamW`` (amsgrad off) written on the flat θ, with t the number of
this update (1, 2, …)::

    θ  = θ (1 − η λ)                 (decoupled weight decay λ)
    m' = β₁ m + (1 − β₁) g           (m_0 = 0)
    v' = β₂ v + (1 − β₂) g²          (v_0 = 0)
    θ' = θ − η/(1 − β₁ᵗ) · m' / (√v' / √(1 − β₂ᵗ) + ε)

The effective preconditioner is P = diag(√v̂ + ε) with v̂ = v/(1 − β₂ᵗ): :func:`adam_preconditioner`.

**Shaped in a subspace** (``shape=``, a :class:`SubspaceShape`): the step direction d (after
the momentum, just before θ' = θ − η d) is reshaped in the span of k orthonormal rows v_i (e.g.
the top-k Hessian eigenvectors) and its complement::

    d ← Σ_i s_i (v_i·d) v_i + ρ (d − Σ_i (v_i·d) v_i)

so v_i moves with learning rate η s_i and the complement with η ρ: per-eigendirection rates
(s_i = f(λ_i), e.g. inverse-λ preconditioning in the subspace), Dom-SGD (s = 1, ρ = 0: the
update projected onto the top subspace) and Bulk-SGD (s = 0, ρ = 1: projected out of it;
Song, Ahn & Yun, ICLR 2025). The momentum buffer stays the plain one: along a fixed v_i the
recursion is heavy ball with rate η s_i, and θ never moves where the shape says it must not —
also when the buffer comes from unshaped training or the basis has just been refreshed.

Every operation is out of place, so the rules are differentiable with ``torch.func``
(forward and reverse mode). With Python-number hyperparameters they run the very kernels of
``torch.optim.SGD`` (``add(…, alpha=…)``, a fused multiply-add on most CPUs) and of the
for-loop ``torch.optim.AdamW`` (``lerp``, ``addcmul``, ``addcdiv``), so a run is bitwise the
one those optimizers would give on the same flat tensor; with tensor hyperparameters (a learning
rate that carries derivatives, per-weight rates or penalties) the same formulas are written
as products and sums, equal to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from landscape.errors import InputError


@dataclass(frozen=True, eq=False)
class SubspaceShape:
    """How an update is reshaped in span(V) and its complement (see the module docstring).

    Attributes:
        basis: V ``(k, P)``, orthonormal rows (e.g. eigenvectors from :func:`landscape.eigsh`).
        scales: s ``(k,)``: the factor of the learning rate along each row v_i.
        rest: ρ, the factor in the orthogonal complement of span(V).
    """

    basis: Tensor
    scales: Tensor
    rest: float = 1.0

    def __post_init__(self):
        V, s = self.basis, self.scales
        if V.ndim != 2 or s.shape != (V.shape[0],):
            raise InputError(f"a subspace shape needs a basis (k, P) and k scales; got basis {tuple(V.shape)} "
                             f"and scales {tuple(s.shape)}")
        if not (bool(torch.isfinite(s).all()) and torch.isfinite(torch.as_tensor(self.rest))):
            raise InputError(f"subspace scales must be finite, got scales {s.tolist()} and rest {self.rest}")

    @classmethod
    def onto(cls, basis: Tensor) -> SubspaceShape:
        """Dom-SGD: the update projected onto span(V) (s = 1, ρ = 0)."""
        return cls(basis, torch.ones(basis.shape[0], dtype=basis.dtype, device=basis.device), 0.0)

    @classmethod
    def out_of(cls, basis: Tensor) -> SubspaceShape:
        """Bulk-SGD: the update with its span(V) part removed (s = 0, ρ = 1)."""
        return cls(basis, torch.zeros(basis.shape[0], dtype=basis.dtype, device=basis.device), 1.0)

    def apply(self, d: Tensor) -> Tensor:
        """Σ_i s_i (v_i·d) v_i + ρ (d − Σ_i (v_i·d) v_i) for d ``(P,)``."""
        V = self.basis.to(d)
        c = V @ d                                               # (k,) coordinates v_i·d
        inside = (self.scales.to(d) * c) @ V
        if self.rest == 0:
            return inside
        return inside + self.rest * (d - c @ V)


def shape_in_subspace(d: Tensor, shape: SubspaceShape | None) -> Tensor:
    """``shape.apply(d)``, or d itself when there is no shape."""
    return d if shape is None else shape.apply(d)


def sgd_update(theta: Tensor, g: Tensor, m: Tensor | None, lr, momentum, nesterov: bool,
               weight_decay, shape: SubspaceShape | None = None) -> tuple[Tensor, Tensor | None]:
    """One SGD step: ``(θ', m')`` from θ ``(P,)``, the gradient g ``(P,)`` and the momentum m.

    Args:
        theta: θ_t.
        g: the minibatch gradient at θ_t.
        m: the momentum buffer m_t (None when ``momentum`` is 0).
        lr: η_t (a float, or a tensor broadcastable to θ: per-layer or per-weight rates).
        momentum: β (a float or a 0-d tensor; 0 means plain SGD and m is returned unchanged).
        nesterov: Nesterov's form instead of heavy ball.
        weight_decay: λ (a float, or a tensor broadcastable to θ: per-weight L2).
        shape: reshape the step direction (after the momentum) in a subspace (:class:`SubspaceShape`);
            None (the trainer's default) leaves the rule bitwise that of ``torch.optim.SGD``.

    Returns:
        ``(θ_{t+1}, m_{t+1})``.
    """
    if not any(isinstance(h, Tensor) for h in (lr, momentum, weight_decay)):
        return _sgd_numbers(theta, g, m, float(lr), float(momentum), nesterov, float(weight_decay), shape)
    d = g + weight_decay * theta if _present(weight_decay) else g
    if _present(momentum):
        m = momentum * m + d
        d = d + momentum * m if nesterov else m
    return theta - lr * shape_in_subspace(d, shape), m


def _sgd_numbers(theta, g, m, lr: float, momentum: float, nesterov: bool, weight_decay: float, shape=None):
    """The rule with Python-number hyperparameters, with torch.optim.SGD's own kernels."""
    d = g.add(theta, alpha=weight_decay) if weight_decay else g
    if momentum:
        m = m.mul(momentum).add(d)
        d = d.add(m, alpha=momentum) if nesterov else m
    return theta.add(shape_in_subspace(d, shape), alpha=-lr), m


def _present(x) -> bool:
    """Whether a hyperparameter takes part: a tensor always does (it may carry derivatives)."""
    return isinstance(x, Tensor) or bool(x)


def sgd_update_exact(theta, g: Tensor, m, lr, momentum_n: int, weight_decay) -> None:
    """The heavy-ball rule on exact fixed-point state, in place (Maclaurin et al. 2015).

    ``theta`` and ``m`` are :class:`landscape.hyper.exact.ExactVector` s (anything with
    ``value()``, ``add``, ``sub``, ``mul(n)`` and ``div(n)``); β = n/2^16 exactly. The rule is
    :func:`sgd_update`'s, with each rounding made a function of data the reverse step sees::

        d = g + λ θ;    m ← β m + round(d);    θ ← θ − round(η m)

    so :func:`sgd_revert_exact` undoes it bit for bit. Nesterov's form is not reversible this
    way (θ_t would be needed to recompute the direction that produced θ_{t+1}).
    """
    d = _direction(theta.value(), g, weight_decay)
    m.mul(momentum_n).add(d)
    theta.sub(lr * m.value())


def sgd_revert_exact(theta, m, lr, momentum_n: int, weight_decay, grad_at) -> Tensor:
    """Undo :func:`sgd_update_exact` in place; ``grad_at(θ_t)`` recomputes g_t (returned).

    ``grad_at`` must return bitwise the gradient the forward step used, or the trajectory
    does not retrace (the reversible route checks that it returns to θ_0 exactly).
    """
    theta.add(lr * m.value())
    g = grad_at(theta.value())
    m.sub(_direction(theta.value(), g.detach(), weight_decay)).div(momentum_n)
    return g


def _direction(theta: Tensor, g: Tensor, weight_decay) -> Tensor:
    """d = g + λθ in float64 (the same expression forward and backward)."""
    g = g.detach().to(torch.float64)
    if isinstance(weight_decay, Tensor):
        return g + weight_decay.detach().to(torch.float64) * theta
    return g + float(weight_decay) * theta if weight_decay else g
def adamw_update(theta: Tensor, g: Tensor, m: Tensor, v: Tensor, t: int, lr, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay=0.0) -> tuple[Tensor, Tensor, Tensor]:
    """One AdamW step: ``(θ', m', v')`` from θ ``(P,)``, the gradient g and the moments m, v.

    Args:
        theta: θ_t.
        g: the minibatch gradient at θ_t.
        m: the first moment (``exp_avg``), zeros before the first update.
        v: the second moment (``exp_avg_sq``), zeros before the first update.
        t: the number of this update, counted from 1 (``torch.optim.AdamW``'s ``state["step"]``
            after its increment); the bias corrections use it.
        lr: η_t (a float, or a tensor broadcastable to θ).
        betas: (β₁, β₂) (floats or 0-d tensors).
        eps: ε, added to √v̂.
        weight_decay: λ, decoupled: θ is multiplied by 1 − ηλ before the Adam step.

    Returns:
        ``(θ_{t+1}, m_{t+1}, v_{t+1})``.
    """
    beta1, beta2 = betas
    if int(t) < 1:
        raise ValueError(f"t counts updates from 1, got {t}")
    if not any(isinstance(h, Tensor) for h in (lr, beta1, beta2, weight_decay)):
        return _adamw_numbers(theta, g, m, v, float(t), float(lr), float(beta1), float(beta2), float(eps),
                              float(weight_decay))
    if _present(weight_decay):
        theta = theta * (1 - lr * weight_decay)
    m = m + (1 - beta1) * (g - m)
    v = beta2 * v + (1 - beta2) * g * g
    bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
    denom = torch.sqrt(v) / torch.sqrt(torch.as_tensor(bc2, dtype=v.dtype)) + eps
    return theta - (lr / bc1) * m / denom, m, v


def _adamw_numbers(theta, g, m, v, t: float, lr: float, beta1: float, beta2: float, eps: float,
                   weight_decay: float):
    """The rule with Python-number hyperparameters, with torch.optim.AdamW's for-loop kernels."""
    if weight_decay:
        theta = theta.mul(1 - lr * weight_decay)
    m = m.lerp(g, 1 - beta1)
    v = v.mul(beta2).addcmul(g, g, value=1 - beta2)
    step_size = lr / (1 - beta1 ** t)
    denom = (v.sqrt() / (1 - beta2 ** t) ** 0.5).add(eps)
    return theta.addcdiv(m, denom, value=-step_size), m, v


def adam_preconditioner(v: Tensor, t: int, betas=(0.9, 0.999), eps: float = 1e-8) -> Tensor:
    """The diagonal P = √v̂ + ε of the Adam step after t updates, with v̂ = v / (1 − β₂ᵗ).

    The AdamW step is θ' = θ(1 − ηλ) − η P⁻¹ m̂, so P⁻¹H is the matrix whose top eigenvalue
    (the *preconditioned sharpness*) decides stability on a quadratic: Cohen et al. 2022,
    "Adaptive gradient methods at the edge of stability". Returns ``(P,)`` in ``v``'s dtype.
    """
    if int(t) < 1:
        raise ValueError("the preconditioner needs at least one update (t >= 1): v_0 = 0")
    return (v.sqrt() / (1 - float(betas[1]) ** float(t)) ** 0.5).add(eps)
