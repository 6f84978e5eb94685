"""Per-example losses ℓ(f(x_i; θ), y_i) and correct-prediction counts.

Every loss here maps ``(outputs (B, ...), targets (B, ...))`` to per-example losses
``(B,)``; the objective sums them and divides by N.

Conventions:
    * ``"cross_entropy"``: ℓ_i = −log softmax(f(x_i))[y_i] (or −Σ_c y_ic log softmax_c for
      float soft targets ``(B, C)``), as ``torch.nn.functional.cross_entropy``.
    * ``"mse"``: ℓ_i = ‖f(x_i) − y_i‖² — summed over output dimensions, **no** factor 1/2,
      so for linear regression f = Xw the Hessian of the mean is H = (2/N) XᵀX.
      (``torch.nn.MSELoss()`` instead averages over outputs too.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from landscape.errors import InputError

LossFn = Callable[[Tensor, Tensor], Tensor]


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Per-example cross-entropy of logits ``(B, C)`` against labels ``(B,)`` or soft targets ``(B, C)``."""
    return F.cross_entropy(outputs, targets, reduction="none")


def mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """Per-example squared error ‖f(x_i) − y_i‖² summed over output dimensions (no 1/2)."""
    if outputs.numel() != targets.numel():
        raise InputError(f"mse: outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} "
                         "hold different numbers of values; give one target per output")
    diff = outputs - targets.reshape(outputs.shape)
    return diff.reshape(diff.shape[0], -1).square().sum(dim=1)


LOSSES: dict[str, LossFn] = {"cross_entropy": cross_entropy, "mse": mse}


def resolve_loss(loss: str | LossFn) -> LossFn:
    """The per-example loss function for a name in :data:`LOSSES` or a callable."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; use one of {sorted(LOSSES)} or a callable "
                         "(outputs, targets) -> per-example losses (B,)")
    return LOSSES[loss]


def correct_per_example(outputs: Tensor, targets: Tensor) -> Tensor:
    """1.0 where the argmax output matches the label, else 0.0, ``(B,)``; NaN where accuracy has no meaning."""
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        return outputs.new_full(outputs.shape[:1], math.nan)
    if targets.is_floating_point():
        if targets.shape != outputs.shape:
            return outputs.new_full(outputs.shape[:1], math.nan)
        targets = targets.argmax(dim=1)
    return (outputs.argmax(dim=1) == targets).to(outputs.dtype)


def num_correct(outputs: Tensor, targets: Tensor) -> Tensor:
    """Number of examples whose argmax output matches the label (0-dim float tensor).

    Labels are integer ``(B,)`` or float ``(B, C)`` (argmax taken). Returns NaN where
    accuracy has no meaning: a single output per example or real-valued targets.
    """
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        return outputs.new_full((), math.nan)
    if targets.is_floating_point():
        if targets.shape != outputs.shape:
            return outputs.new_full((), math.nan)
        targets = targets.argmax(dim=1)
    return (outputs.argmax(dim=1) == targets).sum().to(outputs.dtype)


def check_per_example(losses: Tensor, batch_size: int) -> None:
    """Raise if a loss did not return one value per example."""
    if losses.shape != (batch_size,):
        raise InputError(f"the loss returned shape {tuple(losses.shape)}, expected per-example losses "
                         f"({batch_size},); a callable loss must use reduction='none'")

