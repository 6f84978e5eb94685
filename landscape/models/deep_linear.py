"""Deep linear networks ``y = W_D W_{D-1} ⋯ W_1 x`` (Saxe, McClelland & Ganguli 2014,
"Exact solutions to the nonlinear dynamics of learning in deep linear neural networks").

Shapes: ``W_1`` is (width × in_dim), ``W_2 … W_{D-1}`` are (width × width), ``W_D`` is
(out_dim × width); with ``depth = 1`` the single matrix is (out_dim × in_dim). No biases.

Initialisation (``init``):

* ``"gaussian"`` (default): entries i.i.d. ``N(0, init_scale² / fan_in)``, so at
  ``init_scale = 1`` each layer preserves the expected squared norm of its input.
* ``"orthogonal"``: ``init_scale · Q`` with Q a (semi-)orthogonal matrix of the layer's shape
  (``torch.nn.init.orthogonal_``), Saxe et al.'s orthogonal initialisation.

Small ``init_scale`` gives the slow, stage-like learning of Saxe et al.; the loss landscape of
such a network has a saddle at θ = 0 (for depth ≥ 2) with a known Hessian, useful as an oracle.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from landscape.errors import InputError

INITS = ("gaussian", "orthogonal")


class DeepLinear(nn.Module):
    """A bias-free product of ``depth`` matrices; see the module docstring."""

    def __init__(self, depth: int, width: int, in_dim: int, out_dim: int, init_scale: float, init: str):
        super().__init__()
        dims = [in_dim] + [width] * (depth - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:]))
        with torch.no_grad():
            for layer in self.layers:
                if init == "orthogonal":
                    nn.init.orthogonal_(layer.weight, gain=init_scale)
                else:
                    nn.init.normal_(layer.weight, std=init_scale / math.sqrt(layer.in_features))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, in_dim) (or any (N, …) that flattens to it) → (N, out_dim)."""
        x = x.flatten(1)
        for layer in self.layers:
            x = layer(x)
        return x

    def end_to_end(self) -> Tensor:
        """The end-to-end matrix ``W_D ⋯ W_1`` of shape (out_dim, in_dim)."""
        W = self.layers[0].weight
        for layer in self.layers[1:]:
            W = layer.weight @ W
        return W


def deep_linear(depth: int = 3, width: int = 16, in_dim: int = 16, out_dim: int = 16,
                init_scale: float = 1.0, init: str = "gaussian") -> DeepLinear:
    """Build a :class:`DeepLinear` network (see the module docstring for ``init``)."""
    for name, value in {"depth": depth, "width": width, "in_dim": in_dim, "out_dim": out_dim}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"deep_linear {name} must be a positive integer, got {value!r}")
    if not (isinstance(init_scale, (int, float)) and math.isfinite(init_scale) and init_scale >= 0):
        raise InputError(f"deep_linear init_scale must be a finite number ≥ 0, got {init_scale!r}")
    if init not in INITS:
        raise InputError(f"deep_linear init must be one of {INITS}, got {init!r}")
    return DeepLinear(depth, width, in_dim, out_dim, float(init_scale), init)
