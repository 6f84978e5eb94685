"""``synthetic``: Gaussian inputs of any shape labelled by a fixed random linear teacher, or a Gaussian mixture.

Classification: argmax of W x; regression: W x / sqrt(D) + noise. Learnable by construction.
Mixture: one well-separated Gaussian component per class (a sharp class structure).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from landscape.datasets.base import check_positive, check_seed
from landscape.errors import InputError

SYNTHETIC_TASKS = ("classification", "regression", "mixture")


def _generator(seed: int, stream: int) -> torch.Generator:
    """An independent CPU generator per (seed, stream), so sizes of one split never move another."""
    state = np.random.SeedSequence([int(seed), stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def synthetic(num_train: int = 1000, num_test: int = 200, input_shape=(3, 32, 32), num_classes: int = 10,
              seed: int = 0, task: str = "classification", out_dim: int = 1, noise: float = 0.0,
              separation: float = 6.0):
    """Gaussian inputs labelled by a random linear teacher, or a Gaussian mixture with one component per class.

    Classification: x ~ N(0, I_D), y = argmax(W x) with W of shape (num_classes, D). Regression
    (``task="regression"``): y = W x / sqrt(D) + noise · ε, W of shape (out_dim, D), ε ~ N(0, 1).
    Mixture (``task="mixture"``): balanced labels (each class ⌊n/C⌋ or ⌈n/C⌉ times, in a seeded order),
    x = μ_y + ε with ε ~ N(0, I_D) and class means μ_c = (separation/√2) u_c, u_c ~ N(0, I_D/D), so
    ‖μ_c − μ_c'‖ ≈ ``separation`` noise standard deviations: well separated classes with a sharp class
    structure (the setting of Papyan 2019's outliers). Teacher (or means), train inputs, test inputs,
    labels and noise come from separate seeded streams.
    """
    input_shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    check_seed("synthetic", seed)
    check_positive(synthetic=dict(num_train=num_train, num_test=num_test, num_classes=num_classes,
                                  out_dim=out_dim, **{f"input_shape[{i}]": s for i, s in enumerate(input_shape)}))
    if task not in SYNTHETIC_TASKS:
        raise InputError(f"synthetic task must be one of {', '.join(SYNTHETIC_TASKS)}, got {task!r}")
    if not (math.isfinite(separation) and separation >= 0):
        raise InputError(f"synthetic separation must be a finite number ≥ 0, got {separation!r}")
    D, K = math.prod(input_shape), num_classes if task != "regression" else out_dim
    if task == "mixture":
        xs, ys = _mixture(num_train, num_test, D, K, seed, separation)
    else:
        xs, ys = _teacher(num_train, num_test, D, K, seed, task, noise)
    xs = [x.reshape(len(x), *input_shape) for x in xs]
    return xs[0], ys[0], xs[1], ys[1], 0 if task == "regression" else num_classes


def _teacher(num_train: int, num_test: int, D: int, K: int, seed: int, task: str, noise: float):
    W = torch.randn(K, D, generator=_generator(seed, 0))
    xs = [torch.randn(n, D, generator=_generator(seed, s)) for n, s in ((num_train, 1), (num_test, 2))]
    if task == "classification":
        return xs, [(x @ W.T).argmax(1) for x in xs]
    return xs, [x @ W.T / math.sqrt(D) + noise * torch.randn(len(x), K, generator=_generator(seed, s))
                for x, s in zip(xs, (3, 4))]


def _mixture(num_train: int, num_test: int, D: int, C: int, seed: int, separation: float):
    means = torch.randn(C, D, generator=_generator(seed, 10)) * (separation / math.sqrt(2 * D))
    xs, ys = [], []
    for n, s in ((num_train, 11), (num_test, 12)):
        y = (torch.arange(n) % C)[torch.randperm(n, generator=_generator(seed, s))]
        xs.append(means[y] + torch.randn(n, D, generator=_generator(seed, s + 10)))
        ys.append(y)
    return xs, ys
