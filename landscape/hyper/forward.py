"""Forward-mode hypergradients: carry Z_t = dS_t/dε along one direction ḣ (Franceschi et al. 2017).

For a direction ḣ in hyperparameter space, Ż_0 = (∂θ_0/∂h ḣ, 0) and

    Ż_{t+1} = ∂S_{t+1}/∂S_t · Ż_t + ∂S_{t+1}/∂h · ḣ,       dL_val(θ_T)/dε = ∇L_val(θ_T) · θ̇_T,

one Jacobian-vector product per step (a Hessian-vector product for the gradient part). Memory
is four vectors (θ, m, θ̇, ṁ) whatever T; the cost is one pass per direction, so this route
is for one or a few scalar hyperparameters — and a scan gets the hypergradient at every
horizon T_1 < T_2 < … of one run for free. ‖θ̇_t‖ is the growth of the training map's
Jacobian along ḣ: it explodes in the chaotic regime (Metz et al. 2021).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from landscape.errors import InputError
from landscape.hyper.hyperparams import check_hyper, check_wrt
from landscape.hyper.loop import (HyperGradient, init_jvp, initial_state, meta_and_grad, state_bytes, step_jvp,
                                  uses_momentum)

MAX_DIRECTIONS = 256  # forward mode costs one pass per direction; beyond this use a reverse route


@dataclass
class Directional:
    """Meta-losses and directional derivatives at each horizon of one forward-mode pass.

    Attributes:
        horizons: the T_i, ascending.
        meta_loss, val_accuracy, derivative: ``(n_T,)`` — L_val(θ_{T_i}), accuracy, dL/dε.
        tangent_norms: ``(T_max + 1,)`` ‖(θ̇_t, ṁ_t)‖, the growth of the training map along ḣ.
        theta: θ at the largest horizon (detached).
    """

    horizons: list[int]
    meta_loss: list[float]
    val_accuracy: list[float]
    derivative: list[float]
    tangent_norms: list[float]
    theta: Tensor | None = None


def directional(problem, hyper: Mapping[str, Tensor], tangent: Mapping[str, Tensor],
                horizons: Sequence[int]) -> Directional:
    """One forward-mode pass: L_val and dL_val/dε along ``tangent`` at every horizon.

    Args:
        hyper: hyperparameter groups (see :mod:`landscape.hyper.hyperparams`).
        tangent: ``{group: ḣ}`` with the group's shape; groups left out have ḣ = 0.
        horizons: the T at which to evaluate (the run goes to the largest).

    Raises:
        InputError: bad groups/shapes, a tangent for a group not in ``hyper``, T ≤ 0.
        NonFiniteError: a NaN meta-loss (training diverged).
    """
    horizons = sorted({int(T) for T in horizons})
    if not horizons:
        raise InputError("give at least one horizon T")
    check_hyper(problem, hyper, horizons[-1])
    _check_tangent(hyper, tangent)
    theta, m = initial_state(problem, hyper)
    theta_dot, m_dot = init_jvp(problem, hyper, tangent), (None if m is None else torch.zeros_like(theta))
    out = Directional(horizons, [], [], [], [_norm(theta_dot, m_dot)])
    for t in range(horizons[-1] + 1):
        if t in horizons:
            loss, acc, g = meta_and_grad(problem, theta)
            out.meta_loss.append(loss)
            out.val_accuracy.append(acc)
            out.derivative.append(float(g.double() @ theta_dot.double()))
        if t < horizons[-1]:
            theta, m, theta_dot, m_dot = step_jvp(problem, hyper, tangent, t, theta, m, theta_dot, m_dot)
            out.tangent_norms.append(_norm(theta_dot, m_dot))
    out.theta = theta.detach()
    return out


def _norm(theta_dot: Tensor, m_dot: Tensor | None) -> float:
    total = theta_dot.double().square().sum() + (0 if m_dot is None else m_dot.double().square().sum())
    return float(total.sqrt())


def _check_tangent(hyper, tangent) -> None:
    for name, value in tangent.items():
        if name not in hyper:
            raise InputError(f"a tangent is given for {name!r}, which is not among the hyperparameters "
                             f"({', '.join(hyper) or 'none'}); add the group to hyper")
        if tuple(value.shape) != tuple(hyper[name].shape):
            raise InputError(f"the tangent of {name} has shape {tuple(value.shape)}, the group "
                             f"{tuple(hyper[name].shape)}")


def hypergradient_forward(problem, hyper: Mapping[str, Tensor], T: int, wrt: Sequence[str]) -> HyperGradient:
    """The full gradient of the groups ``wrt`` by one forward pass per scalar (unit tangents).

    Raises:
        InputError: more than :data:`MAX_DIRECTIONS` scalars (use a reverse route).
    """
    check_hyper(problem, hyper, T)
    check_wrt(hyper, wrt)
    sizes = {k: hyper[k].numel() for k in wrt}
    if sum(sizes.values()) > MAX_DIRECTIONS:
        raise InputError(f"forward mode needs one pass per scalar hyperparameter ({sum(sizes.values())} here, "
                         f"more than {MAX_DIRECTIONS}); use route='checkpointed' or 'reversible'")
    grads, last = {}, None
    for name in wrt:
        flat = torch.zeros(hyper[name].numel(), dtype=torch.float64)
        for i in range(flat.numel()):
            unit = torch.zeros_like(hyper[name]).reshape(-1)
            unit[i] = 1
            last = directional(problem, hyper, {name: unit.reshape(hyper[name].shape)}, [T])
            flat[i] = last.derivative[0]
        grads[name] = flat.reshape(hyper[name].shape).to(hyper[name].dtype)
    if last is None:
        last = directional(problem, hyper, {}, [T])
    return _result(problem, hyper, T, grads, last)


def _result(problem, hyper, T, grads, last: Directional) -> HyperGradient:
    per_state = state_bytes(problem, uses_momentum(problem, hyper))
    return HyperGradient("forward", T, last.meta_loss[-1], last.val_accuracy[-1], grads,
                         memory={"stored_states": 2, "state_bytes": per_state, "buffer_bits": 0,
                                 "bytes": 2 * per_state},
                         info={"tangent_norms": last.tangent_norms}, theta=last.theta)
