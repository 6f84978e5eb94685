"""Pieces of the GPU suite: the torch.compile experiment, FLOP counting, the matmul rate."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad, jvp

from common import time_call
from landscape.params import ParamSpec

MATMUL_REPEATS = 10


def compiled_hvp(problem, theta: Tensor, v: Tensor) -> Callable[[], Tensor]:
    """An experiment, not the library path: the full-data HVP with ``torch.compile`` of the
    per-batch kernel ``jvp(grad(Σ_batch ℓ))`` (forward-over-reverse: the compilable order;
    double backward is not supported by AOTAutograd, performance.md §1.2).

    Batch sums are accumulated in float64 and divided by N, as ``Objective.hvp`` does.
    """
    model, spec = problem.model, ParamSpec.from_module(problem.model)
    buffers = dict(model.named_buffers())

    def batch_sum(t: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, (spec.unflatten(t), buffers), (x,)), y, reduction="sum")

    def kernel(t: Tensor, u: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return jvp(lambda s: grad(batch_sum)(s, x, y), (t,), (u,))[1]

    compiled = torch.compile(kernel, dynamic=False)

    def full() -> Tensor:
        total = torch.zeros(theta.shape, dtype=torch.float64, device=theta.device)
        for x, y in problem.batches:
            total += compiled(theta, v, x, y).double()
        return (total / problem.N).to(theta.dtype)

    return full


def flops_of(fn: Callable[[], object]) -> int:
    """FLOPs of one call, counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and
    convolutions, forward- and reverse-mode; elementwise ops are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_rate(n: int, device: torch.device) -> float:
    """Measured float32 FLOP/s of an n×n matmul (2n³ FLOPs), median of MATMUL_REPEATS (TF32 as set)."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(device) for _ in range(2))
    t = time_call(lambda: a @ b, repeats=MATMUL_REPEATS, warmup=2, device=device)[0]
    return 2 * n**3 / t.median_s
