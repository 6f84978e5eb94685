"""Batch-level maths of the objective: pure functions of θ for one fixed batch.

Notation: ``losses(θ) -> (B,)`` are the per-example losses ℓ_i(θ) of one batch,
``outputs(θ) -> (B, C)`` the network outputs, f_b(θ) = Σ_{i∈b} ℓ_i(θ) the batch sum.
Every function returns a **sum over the batch** (or per-example rows); the objective
adds the sums over batches and divides by N. Blocks of vectors are row-wise ``(k, P)``.

* HVP, forward-over-reverse: H_b v = ∂/∂ε ∇f_b(θ + εv) = ``jvp(grad(f_b), (θ,), (v,))``
  (Pearlmutter 1994); k vectors at once with ``vmap`` over the tangents.
* GGN: G_b v = Σ_i J_iᵀ H_ℓ,i J_i v — a JVP through the network, the Hessian of the loss
  in the outputs, a VJP back (Schraudolph 2002).
* Per-example projection: g_i·v = ∂/∂ε ℓ_i(θ + εv), one forward-mode pass per v for all i,
  never holding the N×P per-example gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp, vmap

Fn = Callable[[Tensor], Tensor]


def map_rows(fn: Fn, V: Tensor, chunk: int | None) -> Tensor:
    """``stack([fn(v) for v in V])``, vmapped over chunks of at most ``chunk`` rows (None: all)."""
    out = []
    for block in V.split(chunk or V.shape[0]):
        out.append(fn(block[0])[None] if block.shape[0] == 1 else vmap(fn)(block))
    return torch.cat(out)


def hvp_sum(losses: Fn, theta: Tensor, V: Tensor, chunk: int | None) -> Tensor:
    """Rows H_b v_j, forward-over-reverse, ``(k, P)``."""
    g = grad(lambda th: losses(th).sum())
    return map_rows(lambda v: jvp(g, (theta,), (v,))[1], V, chunk)


def hvp_sum_double_backward(losses: Fn, theta: Tensor, V: Tensor) -> Tensor:
    """Rows H_b v_j by reverse-over-reverse (``autograd.grad`` twice), ``(k, P)`` — the checked alternative."""
    with torch.enable_grad():
        th = theta.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(losses(th).sum(), th, create_graph=True)
        rows = [torch.autograd.grad(g, th, v, retain_graph=i < len(V) - 1)[0] for i, v in enumerate(V)]
    return torch.stack(rows)


def ggn_sum(outputs: Fn, loss_of_outputs: Fn, theta: Tensor, V: Tensor, chunk: int | None) -> Tensor:
    """Rows G_b v_j = Jᵀ H_ℓ J v_j, ``(k, P)``, with ``loss_of_outputs(z) -> (B,)``."""
    z, pullback = vjp(outputs, theta)
    loss_grad = grad(lambda z_: loss_of_outputs(z_).sum())

    def one(v: Tensor) -> Tensor:
        Jv = jvp(outputs, (theta,), (v,))[1]
        HJv = jvp(loss_grad, (z,), (Jv,))[1]
        return pullback(HJv)[0]

    return map_rows(one, V, chunk)


def pullback_sums(outputs: Fn, cotangents: Callable[[Tensor], Tensor], theta: Tensor, chunk: int | None) -> Tensor:
    """Rows Σ_i J_iᵀ u_{r,i}, ``(R, P)``: one forward, then R VJPs with the cotangents ``U = cotangents(z) (R, B, ...)``."""
    z, pullback = vjp(outputs, theta)
    U = cotangents(z.detach())
    return map_rows(lambda u: pullback(u)[0], U, chunk)


def grouped_pullback_sums(outputs_of, cotangents_of, theta: Tensor, ids: Tensor, num_groups: int,
                          chunk: int | None) -> Tensor:
    """``(G, R, P)``: for each group g, Σ_{i: ids_i = g} J_iᵀ u_{r,i} from the group's own forward and R VJPs.

    ``outputs_of(θ, index) -> z`` runs the network on the examples ``index``; ``cotangents_of(z, index)
    -> (R, n_g, ...)``. Groups absent from the batch contribute zeros.
    """
    parts = {}
    for g in torch.unique(ids).tolist():
        index = (ids == g).nonzero().squeeze(1)
        parts[g] = pullback_sums(lambda t: outputs_of(t, index), lambda z: cotangents_of(z, index), theta, chunk)
    R = next(iter(parts.values())).shape[0]
    out = theta.new_zeros(num_groups, R, theta.shape[0])
    for g, rows in parts.items():
        out[g] = rows
    return out


def projections(losses: Fn, theta: Tensor, V: Tensor, chunk: int | None) -> Tensor:
    """Per-example directional derivatives g_i·v_j, ``(B, k)``."""
    return map_rows(lambda v: jvp(losses, (theta,), (v,))[1], V, chunk).T


def grad_norms_independent(example_loss: Callable[[Tensor, Tensor, Tensor], Tensor], theta: Tensor,
                           x: Tensor, y: Tensor, chunk: int) -> Tensor:
    """‖g_i‖ for examples that do not interact (BN in eval mode): chunked ``vmap(grad)``, ``(B,)``.

    ``example_loss(θ, x_i, y_i)`` is the scalar loss of one example.
    """
    g = grad(example_loss)
    norms = [vmap(lambda xi, yi: g(theta, xi, yi).double().norm())(xc, yc)
             for xc, yc in zip(x.split(chunk), y.split(chunk))]
    return torch.cat(norms)


def grad_norms_coupled(losses: Fn, theta: Tensor, chunk: int) -> Tensor:
    """‖g_i‖ where examples interact (BN batch statistics): rows of the batch Jacobian, ``(B,)``.

    Costs B backward passes over the batch (``vmap`` of the VJP over one-hot cotangents).
    """
    values, pullback = vjp(losses, theta)
    eye = torch.eye(values.shape[0], dtype=values.dtype, device=values.device)
    return torch.cat([vmap(lambda e: pullback(e)[0].double().norm())(E) for E in eye.split(chunk)])


def loss_and_correct_at(outputs_at: Callable[[Tensor], Tensor], loss_of_outputs: Fn, correct: Fn,
                        thetas: Tensor, chunk: int) -> Tensor:
    """``(m, 2)``: the batch's loss sum and number correct at each row of ``thetas``; one forward each."""
    def one(th: Tensor) -> Tensor:
        z = outputs_at(th)
        return torch.stack([loss_of_outputs(z).sum(), correct(z)])

    return map_rows(one, thetas, chunk)
