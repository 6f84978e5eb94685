"""Exact reversible SGD with momentum: the reverse pass retraces training instead of storing it.

Maclaurin, Duvenaud & Adams, "Gradient-based hyperparameter optimization through reversible
learning", ICML 2015 (Alg. 2 and §2.2). The forward pass runs the trainer's heavy-ball rule
in exact fixed-point arithmetic (:func:`landscape.optim.sgd_update_exact`; θ and m as int64
multiples of 2^-52, β = n/2^16). Given S_{t+1} the reverse pass recovers

    θ_t = θ_{t+1} + round(η_t m_{t+1}),     g_t = ∇L_t(θ_t),     m_t = (m_{t+1} − round(g_t + λθ_t)) / β_t,

where the division is exact thanks to the bits the forward multiplication pushed into the
information buffer (:class:`landscape.hyper.exact.InfoBuffer`), and pulls the adjoint back
through step t on the way (:class:`landscape.hyper.loop.StepGraph`, which yields g_t from the
same double-backward graph). At the end it checks that (θ, m, buffer) are back at
(θ_0, 0, empty) bit for bit.

Memory: θ, m, θ_0 and the buffer — about log₂(1/β_t) bits per weight per step (0.15 at
β = 0.9), against 2 × 32 or 64 bits for storing θ_t and m_t. Refused: Nesterov momentum and
β = 0 at any step (the whole velocity is destroyed: no finite bit budget).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from landscape.errors import InputError, LandscapeError
from landscape.hyper.exact import DEN_BITS, ExactVector, InfoBuffer
from landscape.hyper.hyperparams import (check_hyper, check_wrt, lr_at, momentum_ratio, train_inputs,
                                         weight_decay)
from landscape.hyper.loop import (HyperGradient, StepGraph, batch_grad, init_vjp, initial_state, leaves,
                                  meta_and_grad, state_bytes)
from landscape.optim import sgd_revert_exact, sgd_update_exact


class ReversibilityError(LandscapeError):
    """The reverse pass did not return to θ_0 exactly (non-deterministic gradients)."""


def check_reversible(problem, hyper: Mapping[str, Tensor], T: int) -> list[int]:
    """The momentum numerators n_t (β_t = n_t/2^16) after refusing what cannot be reversed.

    Raises:
        InputError: Nesterov momentum, or β_t = 0 or 1 at some step.
    """
    if problem.nesterov:
        raise InputError("the reversible route runs heavy-ball momentum only: Nesterov's step cannot be "
                         "undone without θ_t; use route='checkpointed' or 'forward'")
    ratios = [momentum_ratio(problem, hyper, t) for t in range(T)]
    bad = [t for t, n in enumerate(ratios) if n <= 0 or n >= 2 ** DEN_BITS]
    if bad:
        raise InputError(momentum_refusal(ratios[bad[0]] / 2 ** DEN_BITS, f"step {bad[0]} has"))
    return ratios


def momentum_refusal(beta: float, where: str = "the run has") -> str:
    """Why the reversible route cannot run with momentum β ∉ (0, 1) (one line)."""
    return (f"the reversible route needs momentum strictly between 0 and 1; {where} β = {beta:g}: β = 0 "
            "destroys the whole velocity each step (log₂(1/β) bits per weight per step is infinite: no finite "
            "bit budget), and β = 1 never forgets a gradient (training does not settle); use "
            "route='checkpointed' or 'forward', or a momentum in (0, 1)")


def hypergradient_reversible(problem, hyper: Mapping[str, Tensor], T: int, wrt: Sequence[str]) -> HyperGradient:
    """dL_val(θ_T)/dh for the groups ``wrt`` by exact reversible learning.

    Raises:
        InputError: see :func:`check_reversible`; NonFiniteError: a NaN meta-loss or a trajectory
        outside the fixed-point range; ReversibilityError: the reverse pass missed θ_0.
    """
    beta = hyper.get("momentum")
    values = [float(problem.momentum)] if beta is None else beta.detach().reshape(-1).tolist()
    if any(b <= 0 or b >= 1 for b in values):
        raise InputError(momentum_refusal(next(b for b in values if b <= 0 or b >= 1)))
    check_hyper(problem, hyper, T)
    check_wrt(hyper, wrt)
    ratios = check_reversible(problem, hyper, T)
    h = leaves(hyper, wrt)
    theta0, _ = initial_state(problem, h)
    buf = InfoBuffer(problem.P, problem.device)
    theta, m = ExactVector(theta0, what="parameters"), ExactVector(torch.zeros_like(theta0), buf, "velocity")
    start = theta.ints.clone()
    x = train_inputs(problem, h).detach()
    for t in range(T):
        g = batch_grad(problem, _float(problem, theta), t, x)
        sgd_update_exact(theta, g, m, _lr(problem, h, t), ratios[t], _wd(problem, h))
    peak_bits, peak_bytes, words = buf.bits, buf.nbytes, len(buf.words)
    theta_T = _float(problem, theta)
    loss, acc, theta_bar = meta_and_grad(problem, theta_T)
    m_bar, grads = torch.zeros_like(theta_bar), {name: torch.zeros_like(hyper[name]) for name in wrt}
    for t in reversed(range(T)):
        graph = {}

        def grad_at(value, t=t, graph=graph):
            graph["step"] = StepGraph(problem, h, t, value.to(problem.dtype))
            return graph["step"].g

        sgd_revert_exact(theta, m, _lr(problem, h, t), ratios[t], _wd(problem, h), grad_at)
        theta_bar, m_bar = graph["step"].pull(_float(problem, m), theta_bar, m_bar, grads)
    _check_return(theta, m, buf, start)
    init_vjp(problem, h, theta_bar, grads)
    out = _result(problem, T, loss, acc, grads, peak_bits, peak_bytes, words)
    out.theta = theta_T
    return out


def _float(problem, v: ExactVector) -> Tensor:
    return v.value().to(problem.dtype)


def _lr(problem, hyper, t: int):
    lr = lr_at(problem, hyper, t)
    return lr.detach().to(torch.float64) if isinstance(lr, Tensor) else lr


def _wd(problem, hyper):
    wd = weight_decay(problem, hyper)
    return wd.detach().to(torch.float64) if isinstance(wd, Tensor) else wd


def _check_return(theta: ExactVector, m: ExactVector, buf: InfoBuffer, start: Tensor) -> None:
    """θ, m and the buffer must be back at (θ_0, 0, empty) bit for bit."""
    if not torch.equal(theta.ints, start) or bool(m.ints.any()) or not buf.is_empty():
        off = int((theta.ints != start).sum())
        raise ReversibilityError(f"the reverse pass did not retrace training: {off} parameter(s) differ from θ_0 "
                                 "in the last bit; the gradients are not deterministic here (set "
                                 "torch.use_deterministic_algorithms(True), or use route='checkpointed')")


def _result(problem, T, loss, acc, grads, bits: int, nbytes: int, words: int) -> HyperGradient:
    per_state = state_bytes(problem, True)
    exact_state = 3 * 8 * problem.P                  # θ, m and θ_0 as int64
    per_weight_step = bits / (problem.P * T)
    stored_bits = 2 * 8 * torch.tensor([], dtype=problem.dtype).element_size()  # θ_t and m_t per weight
    return HyperGradient("reversible", T, loss, acc, grads,
                         memory={"stored_states": 0, "state_bytes": per_state, "buffer_bits": bits,
                                 "bytes": nbytes + exact_state},
                         info={"exact_return": True, "buffer_words": words,
                               "bits_per_weight_per_step": per_weight_step,
                               "ratio_to_storing_states": per_weight_step / stored_bits})
