"""Fully connected networks: ``x ↦ W_L σ(… σ(W_1 x + b_1) …) + b_L`` on flattened inputs.

Inputs of any shape ``(N, *input_shape)`` are flattened to ``(N, D)`` with
``D = prod(input_shape)``. Initialisation is PyTorch's default for ``nn.Linear``
(weights and biases uniform in ``±1/sqrt(fan_in)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from landscape.errors import InputError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class MLP(nn.Module):
    """A multilayer perceptron.

    Args:
        in_dim: D, the number of input features after flattening.
        hidden: widths of the hidden layers (empty: a linear model).
        out_dim: number of outputs (classes, or regression targets).
        activation: ``"relu"``, ``"tanh"`` or ``"gelu"``.
        bias: whether the affine layers have biases.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int,
                 activation: str = "relu", bias: bool = True):
        super().__init__()
        widths = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers += [nn.Linear(a, b, bias=bias)] + ([ACTIVATIONS[activation]()] if i < len(hidden) else [])
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, …) → (N, out_dim)."""
        return self.net(x.flatten(1))


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"mlp {name} must be a positive integer, got {value!r}")
    return value


def _resolve_in_dim(in_dim, input_shape) -> int:
    if (in_dim is None) == (input_shape is None):
        raise InputError("mlp needs exactly one of in_dim (features) or input_shape (flattened), "
                         f"got in_dim={in_dim!r}, input_shape={input_shape!r}")
    if input_shape is not None:
        return _positive_int("input_shape size", math.prod(int(s) for s in input_shape))
    return _positive_int("in_dim", in_dim)


def _resolve_out_dim(num_classes, out_dim) -> int:
    if out_dim is not None and num_classes is not None and out_dim != num_classes:
        raise InputError(f"mlp got num_classes={num_classes} and out_dim={out_dim}; give one of them")
    value = out_dim if out_dim is not None else num_classes
    return _positive_int("out_dim/num_classes", 10 if value is None else value)


def mlp(in_dim: int | None = None, hidden: Sequence[int] = (128,), num_classes: int | None = None, *,
        input_shape: Sequence[int] | None = None, out_dim: int | None = None,
        activation: str = "relu", bias: bool = True) -> MLP:
    """Build an :class:`MLP` from ``in_dim`` or ``input_shape``; ``num_classes``/``out_dim`` default to 10."""
    if activation not in ACTIVATIONS:
        raise InputError(f"mlp activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    hidden = [_positive_int("hidden width", h) for h in hidden]
    return MLP(_resolve_in_dim(in_dim, input_shape), hidden, _resolve_out_dim(num_classes, out_dim),
               activation, bool(bias))
