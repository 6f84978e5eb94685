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

Every operation is out of place, so the rule is differentiable with ``torch.func``
(forward and reverse mode). With Python-number hyperparameters it runs the very kernels of
``torch.optim.SGD`` (``add(…, alpha=…)``, a fused multiply-add on most CPUs), so a run is
bitwise the one ``torch.optim.SGD`` would give; with tensor hyperparameters (a learning
rate that carries derivatives, per-weight rates or penalties) the same formulas are written
as products and sums, equal to rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sgd_update(theta: Tensor, g: Tensor, m: Tensor | None, lr, momentum, nesterov: bool,
               weight_decay) -> tuple[Tensor, Tensor | None]:
    """One SGD step: ``(θ', m')`` from θ ``(P,)``, the gradient g ``(P,)`` and the momentum m.

    Args:
        theta: θ_t.
        g: the minibatch gradient at θ_t.
        m: the momentum buffer m_t (None when ``momentum`` is 0).
        lr: η_t (a float, or a tensor broadcastable to θ: per-layer or per-weight rates).
        momentum: β (a float or a 0-d tensor; 0 means plain SGD and m is returned unchanged).
        nesterov: Nesterov's form instead of heavy ball.
        weight_decay: λ (a float, or a tensor broadcastable to θ: per-weight L2).

    Returns:
        ``(θ_{t+1}, m_{t+1})``.
    """
    if not any(isinstance(h, Tensor) for h in (lr, momentum, weight_decay)):
        return _sgd_numbers(theta, g, m, float(lr), float(momentum), nesterov, float(weight_decay))
    d = g + weight_decay * theta if _present(weight_decay) else g
    if _present(momentum):
        m = momentum * m + d
        d = d + momentum * m if nesterov else m
    return theta - lr * d, m


def _sgd_numbers(theta, g, m, lr: float, momentum: float, nesterov: bool, weight_decay: float):
    """The rule with Python-number hyperparameters, with torch.optim.SGD's own kernels."""
    d = g.add(theta, alpha=weight_decay) if weight_decay else g
    if momentum:
        m = m.mul(momentum).add(d)
        d = d.add(m, alpha=momentum) if nesterov else m
    return theta.add(d, alpha=-lr), m


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
