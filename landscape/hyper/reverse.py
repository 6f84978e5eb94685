"""Reverse-mode hypergradients: checkpointed unrolling, and naive unrolling as the reference.

The adjoint recursion runs the steps backwards (Maclaurin et al. 2015, Alg. 2, in the
trainer's heavy-ball form): with S̄_T = (∇L_val(θ_T), 0),

    S̄_t = (∂S_{t+1}/∂S_t)ᵀ S̄_{t+1},        h̄ += (∂S_{t+1}/∂h)ᵀ S̄_{t+1},        h̄ += (∂θ_0/∂h)ᵀ θ̄_0,

one vector-Jacobian product per step (:func:`landscape.hyper.loop.step_vjp`, double backward).
It needs S_t in reverse order. **Checkpointed** (Griewank 1992's two-level scheme): the
forward pass keeps S_t every k steps; the reverse pass recomputes each segment of k steps
from its checkpoint before walking it backwards — ⌈T/k⌉ + k − 1 stored states (≈ 2√T at the
best k, or a user budget), one extra forward pass. **Unrolled** (``torch.func.grad`` through the
whole loop, what higher and torchopt do) keeps every step's activations: memory grows with T.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from landscape.errors import InputError
from landscape.hyper.hyperparams import (check_hyper, check_wrt, initial_theta, lr_at, momentum_at,
                                         train_inputs, weight_decay)
from landscape.hyper.loop import (HyperGradient, init_vjp, initial_state, leaves, meta_and_grad, plain_step,
                                  state_bytes, step_vjp, uses_momentum)
from landscape.hyper.problem import check_finite_meta
from landscape.optim import sgd_update


def stored_states(T: int, k: int) -> int:
    """Peak states held by the two-level scheme with segments of k steps: ⌈T/k⌉ + k − 1."""
    return math.ceil(T / k) + min(k, T) - 1


def segment_length(T: int, budget: int | None = None) -> int:
    """The k with the fewest stored states (≈ 2√T), or within ``budget`` the longest segment.

    With a budget ≥ T nothing is recomputed (k = T: every state is kept).

    Raises:
        InputError: a budget below the two-level scheme's minimum for this T.
    """
    best = min(range(1, T + 1), key=lambda k: (stored_states(T, k), k))
    if budget is None:
        return best
    fits = [k for k in range(1, T + 1) if stored_states(T, k) <= budget]
    if not fits:
        raise InputError(f"a checkpoint budget of {budget} state(s) is too small for T = {T}: two-level "
                         f"checkpointing needs at least {stored_states(T, best)}; raise the budget")
    return max(fits)   # the longest last segment: the fewest steps recomputed


def hypergradient_checkpointed(problem, hyper: Mapping[str, Tensor], T: int, wrt: Sequence[str], *,
                               budget: int | None = None) -> HyperGradient:
    """dL_val(θ_T)/dh for the groups ``wrt`` by checkpointed reverse mode.

    Args:
        budget: at most this many stored states (default: the ≈ 2√T minimum).

    Raises:
        InputError: bad hyperparameters or budget; NonFiniteError: a NaN meta-loss.
    """
    check_hyper(problem, hyper, T)
    check_wrt(hyper, wrt)
    k = segment_length(T, budget)
    h = leaves(hyper, wrt)
    checkpoints, tail, theta_T = _forward(problem, h, T, k)
    loss, acc, theta_bar = meta_and_grad(problem, theta_T)
    m_bar = None if checkpoints[0][1] is None else torch.zeros_like(theta_bar)
    acc_grads = {name: torch.zeros_like(hyper[name]) for name in wrt}
    for start in reversed(range(0, T, k)):
        states = tail if start == (T - 1) // k * k else _recompute(problem, h, start, min(start + k, T), checkpoints)
        for t in reversed(range(start, min(start + k, T))):
            theta, m = states.pop()
            theta_bar, m_bar = step_vjp(problem, h, t, theta, m, theta_bar, m_bar, acc_grads)
        checkpoints.pop()
    init_vjp(problem, h, theta_bar, acc_grads)
    per_state = state_bytes(problem, m_bar is not None)
    n = stored_states(T, k)
    return HyperGradient("checkpointed", T, loss, acc, acc_grads,
                         memory={"stored_states": n, "state_bytes": per_state, "buffer_bits": 0,
                                 "bytes": n * per_state},
                         info={"segment_length": k, "num_checkpoints": math.ceil(T / k)}, theta=theta_T.detach())


def _forward(problem, h, T: int, k: int):
    """States every k steps, the states of the last segment, and θ_T."""
    theta, m = initial_state(problem, h)
    x = train_inputs(problem, h).detach()
    last = (T - 1) // k * k
    checkpoints, tail = [], []
    for t in range(T):
        if t % k == 0:
            checkpoints.append((theta, m))
        if t >= last:
            tail.append((theta, m))
        theta, m = plain_step(problem, h, t, theta, m, x)
    return checkpoints, tail, theta


def _recompute(problem, h, start: int, stop: int, checkpoints) -> list:
    """S_start … S_{stop−1} from the checkpoint S_start."""
    theta, m = checkpoints[-1]
    x = train_inputs(problem, h).detach()
    states = [(theta, m)]
    for t in range(start, stop - 1):
        theta, m = plain_step(problem, h, t, theta, m, x)
        states.append((theta, m))
    return states


def hypergradient_unrolled(problem, hyper: Mapping[str, Tensor], T: int, wrt: Sequence[str]) -> HyperGradient:
    """The reference: ``torch.func.grad`` through the whole loop (memory grows with T)."""
    check_hyper(problem, hyper, T)
    check_wrt(hyper, wrt)
    fixed = {k: v.detach() for k, v in hyper.items() if k not in wrt}

    def meta(h):
        hh = {**fixed, **h}
        theta = initial_theta(problem, hh)
        m = torch.zeros_like(theta) if uses_momentum(problem, hh) else None
        x = train_inputs(problem, hh)
        for t in range(T):
            g = torch.func.grad(lambda th, t=t: problem.batch_loss(th, t, x))(theta)
            theta, m = sgd_update(theta, g, m, lr_at(problem, hh, t), momentum_at(problem, hh, t)
                                  if m is not None else 0.0, problem.nesterov, weight_decay(problem, hh))
        loss, _ = problem.val_loss(theta)
        return loss, theta

    grads, (loss, theta_T) = torch.func.grad_and_value(meta, has_aux=True)({k: hyper[k].detach() for k in wrt})
    _, acc = problem.val_metrics(theta_T)
    check_finite_meta(float(loss))
    per_state = state_bytes(problem, uses_momentum(problem, hyper))
    return HyperGradient("unrolled", T, float(loss), acc, {k: v.detach() for k, v in grads.items()},
                         memory={"stored_states": T + 1, "state_bytes": per_state, "buffer_bits": 0,
                                 "bytes": (T + 1) * per_state}, info={}, theta=theta_T.detach())
