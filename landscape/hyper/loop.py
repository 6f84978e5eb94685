"""The differentiable training loop: one step, its JVP and its VJP, and the plain training run.

Step t maps the state S_t = (θ_t, m_t) to S_{t+1} with the trainer's update rule
(:func:`landscape.optim.sgd_update`, heavy ball or Nesterov, dampening 0)::

    g_t     = ∇_θ L_t(θ_t; x)                       minibatch gradient (x: training inputs)
    d       = g_t + λ θ_t                            coupled L2
    m_{t+1} = β_t m_t + d,   θ_{t+1} = θ_t − η_t m_{t+1}      (heavy ball)

It is split as S_{t+1} = U(θ_t, m_t, G_t(θ_t, x), h) with G_t the gradient and U the
elementwise update. Derivatives of G_t are Hessian-vector products by double backward
(:func:`torch.autograd.grad` with ``create_graph``: measured 2.2–2.8× a gradient on the CPU,
cheaper than forward-over-reverse here), and its primal g_t is bitwise the plain gradient,
which the reversible route relies on. Derivatives of U are plain autograd (reverse) or dual
numbers (forward).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from landscape.hyper.hyperparams import (initial_theta, lr_at, momentum_at, train_inputs, weight_decay)
from landscape.hyper.problem import check_finite_meta
from landscape.optim import sgd_update

UPDATE_GROUPS = ("log_lr", "momentum", "log_l2")      # groups that enter U
INIT_GROUPS = ("log_init_scale", "init_quantiles")     # groups that enter θ_0
GRADIENT_GROUPS = ("train_inputs",)                    # groups that enter G_t


@dataclass
class HyperGradient:
    """A meta-loss and its hypergradient.

    Attributes:
        route: ``forward``, ``checkpointed``, ``reversible`` or ``unrolled``.
        T: training steps.
        meta_loss: L_val(θ_T); val_accuracy: validation accuracy at θ_T (not differentiated:
            its gradient is zero almost everywhere).
        grads: ``{group: dL_val/dh}`` of each differentiated group, in the group's shape.
        memory: what the route held: ``stored_states`` (peak number of (θ, m) pairs),
            ``state_bytes`` (bytes of one pair), ``buffer_bits`` (reversible: the information
            buffer), ``bytes`` (their total).
        info: route-specific numbers (checkpoint interval, exact-return check, tangent norms...).
        theta: θ_T, the trained parameters (detached), for metrics beyond the meta-loss (training
            and test loss of the same run, without training it again).
    """

    route: str
    T: int
    meta_loss: float
    val_accuracy: float
    grads: dict[str, Tensor]
    memory: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    theta: Tensor | None = None


def uses_momentum(problem, hyper: Mapping[str, Tensor]) -> bool:
    """Whether the state carries a momentum buffer m."""
    return "momentum" in hyper or problem.momentum != 0


def initial_state(problem, hyper: Mapping[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """(θ_0, m_0) detached; m_0 = 0 (None without momentum)."""
    with torch.no_grad():
        theta = initial_theta(problem, hyper).detach().clone()
    return theta, (torch.zeros_like(theta) if uses_momentum(problem, hyper) else None)


def plain(value):
    """A hyperparameter value for the plain run: 0-d tensors become floats (the trainer's kernels)."""
    if isinstance(value, Tensor):
        return float(value.detach()) if value.ndim == 0 else value.detach()
    return value


def batch_grad(problem, theta: Tensor, t: int, x: Tensor) -> Tensor:
    """g_t = ∇_θ L_t(θ; x) (no graph kept)."""
    with torch.enable_grad():
        leaf = theta.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(problem.batch_loss(leaf, t, x), leaf)
    return g


def plain_step(problem, hyper, t: int, theta: Tensor, m: Tensor | None, x: Tensor):
    """S_{t+1} without derivatives (the training run)."""
    g = batch_grad(problem, theta, t, x)
    lr, beta, wd = plain(lr_at(problem, hyper, t)), plain(momentum_at(problem, hyper, t)), \
        plain(weight_decay(problem, hyper))
    return sgd_update(theta, g, m, lr, beta if m is not None else 0.0, problem.nesterov, wd)


def train(problem, hyper: Mapping[str, Tensor], T: int, *, horizons: Sequence[int] = (),
          callback: Callable | None = None) -> dict:
    """The training run: θ_T, m_T and (loss, accuracy) on the validation set at each horizon.

    Returns:
        ``{"theta", "momentum", "metrics": {T_i: (loss, acc)}}``.
    """
    theta, m = initial_state(problem, hyper)
    x = train_inputs(problem, hyper).detach()
    metrics, wanted = {}, set(horizons)
    for t in range(T):
        if t in wanted:
            metrics[t] = problem.val_metrics(theta)
        theta, m = plain_step(problem, hyper, t, theta, m, x)
        if callback is not None:
            callback(t + 1, theta, m)
    if T in wanted or not horizons:
        metrics[T] = problem.val_metrics(theta)
    return {"theta": theta, "momentum": m, "metrics": metrics}


def leaves(hyper: Mapping[str, Tensor], wrt: Sequence[str]) -> dict[str, Tensor]:
    """The hyperparameters with the groups ``wrt`` as fresh leaves that require grad."""
    return {k: (v.detach().requires_grad_(True) if k in wrt else v.detach()) for k, v in hyper.items()}


def step_vjp(problem, hyper: Mapping[str, Tensor], t: int, theta: Tensor, m: Tensor | None,
             theta_bar: Tensor, m_bar: Tensor | None, acc: dict[str, Tensor]):
    """Pull (θ̄_{t+1}, m̄_{t+1}) back through step t at S_t = (θ, m); add the hyperparameters' part to ``acc``.

    Args:
        hyper: hyperparameters; those with ``requires_grad`` are differentiated.
        acc: ``{group: running gradient}``, updated in place.

    Returns:
        (θ̄_t, m̄_t).
    """
    return StepGraph(problem, hyper, t, theta).pull(m, theta_bar, m_bar, acc)


class StepGraph:
    """Step t's graph, opened at θ_t: the gradient g_t (bitwise the plain one) with its graph kept.

    The reversible route opens it first, reconstructs m_t from ``g``, then calls :meth:`pull`.
    """

    def __init__(self, problem, hyper: Mapping[str, Tensor], t: int, theta: Tensor):
        self.problem, self.hyper, self.t = problem, hyper, t
        with torch.enable_grad():
            self.theta = theta.detach().requires_grad_(True)
            self.graph_g = _graph_grad(problem, self.theta, t, hyper)
        self.g = self.graph_g.detach()

    def pull(self, m: Tensor | None, theta_bar: Tensor, m_bar: Tensor | None, acc: dict[str, Tensor]):
        """(θ̄_t, m̄_t) from (θ̄_{t+1}, m̄_{t+1}), with S_t's momentum ``m``; hyperparameter parts into ``acc``."""
        p, h, t = self.problem, self.hyper, self.t
        wanted = [k for k, v in h.items() if v.requires_grad]
        with torch.enable_grad():
            m_leaf = None if m is None else m.detach().requires_grad_(True)
            outs = sgd_update(self.theta, self.graph_g, m_leaf, lr_at(p, h, t),
                              momentum_at(p, h, t) if m is not None else 0.0, p.nesterov, weight_decay(p, h))
            pairs = [(outs[0], theta_bar)] + ([(outs[1], m_bar)] if m_bar is not None and m is not None else [])
            inputs = [self.theta] + ([m_leaf] if m_leaf is not None else []) + [h[k] for k in wanted]
            grads = torch.autograd.grad([o for o, _ in pairs], inputs, [c for _, c in pairs], allow_unused=True)
        for k, gk in zip(wanted, grads[len(inputs) - len(wanted):]):
            if gk is not None:
                acc[k] = acc[k] + gk
        return _zero_if_none(grads[0], theta_bar), (_zero_if_none(grads[1], m) if m_leaf is not None else None)


def _graph_grad(problem, th: Tensor, t: int, hyper) -> Tensor:
    """g_t with its graph kept (double backward follows)."""
    loss = problem.batch_loss(th, t, train_inputs(problem, hyper))
    (g,) = torch.autograd.grad(loss, th, create_graph=True)
    return g


def _zero_if_none(g: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if g is None else g.detach()


def init_vjp(problem, hyper: Mapping[str, Tensor], theta_bar: Tensor, acc: dict[str, Tensor]) -> None:
    """Add θ̄_0's pull-back through θ_0 = init(h) to ``acc``."""
    wanted = [k for k in INIT_GROUPS if k in hyper and hyper[k].requires_grad]
    if not wanted:
        return
    with torch.enable_grad():
        theta0 = initial_theta(problem, hyper)
        grads = torch.autograd.grad(theta0, [hyper[k] for k in wanted], theta_bar, allow_unused=True)
    for k, gk in zip(wanted, grads):
        if gk is not None:
            acc[k] = acc[k] + gk


def step_jvp(problem, hyper: Mapping[str, Tensor], tangent: Mapping[str, Tensor], t: int,
             theta: Tensor, m: Tensor | None, theta_dot: Tensor, m_dot: Tensor | None):
    """Push (θ̇_t, ṁ_t) and the hyperparameter tangent ḣ through step t.

    Ġ_t = H_t θ̇ + (∂g/∂x) ẋ = ∇_θ ⟨∇_{θ,x} L_t, (θ̇, ẋ)⟩ by double backward; U's tangent by
    dual numbers. Returns (θ_{t+1}, m_{t+1}, θ̇_{t+1}, ṁ_{t+1}).
    """
    g, g_dot = _grad_and_tangent(problem, hyper, tangent, t, theta, theta_dot)
    with fwAD.dual_level():
        dual = {k: fwAD.make_dual(v.detach(), tangent[k]) if k in tangent else v.detach()
                for k, v in hyper.items() if k in UPDATE_GROUPS}
        th = fwAD.make_dual(theta, theta_dot)
        md = None if m is None else fwAD.make_dual(m, m_dot)
        out = sgd_update(th, fwAD.make_dual(g, g_dot), md, lr_at(problem, dual, t),
                         momentum_at(problem, dual, t) if m is not None else 0.0, problem.nesterov,
                         weight_decay(problem, dual))
        theta_new, theta_dot_new = fwAD.unpack_dual(out[0])
        if m is None:
            return theta_new, None, _tangent(theta_dot_new, theta_new), None
        m_new, m_dot_new = fwAD.unpack_dual(out[1])
    return theta_new, m_new, _tangent(theta_dot_new, theta_new), _tangent(m_dot_new, m_new)


def _tangent(t: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if t is None else t


def _grad_and_tangent(problem, hyper, tangent, t: int, theta: Tensor, theta_dot: Tensor):
    """(g_t, Ġ_t) for the tangent (θ̇, ẋ)."""
    x_dot = tangent.get("train_inputs")
    with torch.enable_grad():
        th = theta.detach().requires_grad_(True)
        x = train_inputs(problem, hyper).detach()
        if x_dot is not None:
            x = x.requires_grad_(True)
        loss = problem.batch_loss(th, t, x)
        firsts = torch.autograd.grad(loss, [th] + ([x] if x_dot is not None else []), create_graph=True)
        s = (firsts[0] * theta_dot).sum() + ((firsts[1] * x_dot).sum() if x_dot is not None else 0)
        (g_dot,) = torch.autograd.grad(s, th, allow_unused=True)
    return firsts[0].detach(), _tangent(None if g_dot is None else g_dot.detach(), theta)


def init_jvp(problem, hyper: Mapping[str, Tensor], tangent: Mapping[str, Tensor]) -> Tensor:
    """θ̇_0 = ∂θ_0/∂h · ḣ (zero when no init group has a tangent)."""
    with fwAD.dual_level():
        dual = {k: fwAD.make_dual(v.detach(), tangent[k]) if k in tangent else v.detach()
                for k, v in hyper.items()}
        theta0, theta_dot = fwAD.unpack_dual(initial_theta(problem, dual))
    return _tangent(theta_dot, theta0)


def meta_and_grad(problem, theta_T: Tensor) -> tuple[float, float, Tensor]:
    """(L_val(θ_T), accuracy, ∇L_val(θ_T)) — NonFiniteError for a NaN meta-loss."""
    loss, acc, g = problem.val_loss_and_grad(theta_T)
    check_finite_meta(loss)
    return loss, acc, g


def state_bytes(problem, with_momentum: bool) -> int:
    """Bytes of one stored state (θ, m) in the problem's dtype."""
    item = torch.tensor([], dtype=problem.dtype).element_size()
    return item * problem.P * (2 if with_momentum else 1)
