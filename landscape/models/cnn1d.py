"""A small 1-D CNN for MNIST-1D (Greydanus 2020, "Scaling down deep learning").

Layout for ``channels = (c_1, …, c_L)`` and a signal of length T::

    conv(k) → [norm] → relu                        (length T)
    conv(k) → [norm] → relu → maxpool(2)           (length T/2)   for each further layer
    flatten → linear(c_L · T / 2^(L-1) → num_classes)

The default ``channels=(24, 24, 24)``, kernel 5, T = 40 has 8,362 parameters. Inputs may be
``(N, T)`` or ``(N, 1, T)``. Convolutions and the head use PyTorch's default initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from landscape.errors import InputError


class CNN1d(nn.Module):
    """See the module docstring; ``norm`` is ``"none"`` (default) or ``"bn"`` (BatchNorm1d)."""

    def __init__(self, channels: Sequence[int], kernel_size: int, num_classes: int,
                 input_length: int, in_channels: int, norm: str):
        super().__init__()
        widths = [in_channels, *channels]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel_size, padding=kernel_size // 2)
                                   for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(c) if norm == "bn" else nn.Identity() for c in channels)
        self.in_channels = in_channels
        length = input_length // 2 ** (len(channels) - 1)
        self.fc = nn.Linear(channels[-1] * length, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, T) or (N, C, T) → logits (N, num_classes)."""
        if x.ndim == 2 and self.in_channels == 1:
            x = x.unsqueeze(1)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = F.relu(norm(conv(x)))
            if i > 0:
                x = F.max_pool1d(x, 2)
        return self.fc(x.flatten(1))


def cnn1d(channels: Sequence[int] = (24, 24, 24), kernel_size: int = 5, num_classes: int = 10,
          input_length: int = 40, in_channels: int = 1, norm: str = "none") -> CNN1d:
    """Build a :class:`CNN1d` (defaults: MNIST-1D, 8,362 parameters)."""
    channels = list(channels)
    ints = {"kernel_size": kernel_size, "num_classes": num_classes, "input_length": input_length,
            "in_channels": in_channels, **{f"channels[{i}]": c for i, c in enumerate(channels)}}
    for name, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"cnn1d {name} must be a positive integer, got {value!r}")
    if not channels or input_length // 2 ** (len(channels) - 1) < 1:
        raise InputError(f"cnn1d needs 1 ≤ len(channels) ≤ 1 + log2(input_length); got {len(channels)} "
                         f"layers for length {input_length}")
    if kernel_size % 2 == 0:
        raise InputError(f"cnn1d kernel_size must be odd (same-length padding), got {kernel_size}")
    if norm not in ("none", "bn"):
        raise InputError(f"cnn1d norm must be 'none' or 'bn', got {norm!r}")
    return CNN1d(channels, kernel_size, num_classes, input_length, in_channels, norm)
