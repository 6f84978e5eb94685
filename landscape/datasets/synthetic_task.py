"""``synthetic``: Gaussian inputs of any shape labelled by a fixed random linear teacher.

Classification: argmax of W x; regression: W x / sqrt(D) + noise. Learnable by construction.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from landscape.datasets.base import check_positive, check_seed
from landscape.errors import InputError

def _generator(seed: int, stream: int) -> torch.Generator:
    """An independent CPU generator per (seed, stream), so sizes of one split never move another."""
    state = np.random.SeedSequence([int(seed), stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def synthetic(num_train: int = 1000, num_test: int = 200, input_shape=(3, 32, 32), num_classes: int = 10,
              seed: int = 0, task: str = "classification", out_dim: int = 1, noise: float = 0.0):
    """Gaussian inputs x ~ N(0, I_D) labelled by a random linear teacher W (rows ~ N(0, I_D)).

    Classification: y = argmax(W x) with W of shape (num_classes, D). Regression
    (``task="regression"``): y = W x / sqrt(D) + noise · ε, W of shape (out_dim, D), ε ~ N(0, 1).
    Teacher, train inputs, test inputs and noise come from separate seeded streams.
    """
    input_shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    check_seed("synthetic", seed)
    check_positive(synthetic=dict(num_train=num_train, num_test=num_test, num_classes=num_classes,
                                   out_dim=out_dim, **{f"input_shape[{i}]": s for i, s in enumerate(input_shape)}))
    if task not in ("classification", "regression"):
        raise InputError(f"synthetic task must be 'classification' or 'regression', got {task!r}")
    D, K = math.prod(input_shape), num_classes if task == "classification" else out_dim
    W = torch.randn(K, D, generator=_generator(seed, 0))
    xs = [torch.randn(n, D, generator=_generator(seed, s)) for n, s in ((num_train, 1), (num_test, 2))]
    if task == "classification":
        ys = [(x @ W.T).argmax(1) for x in xs]
    else:
        ys = [x @ W.T / math.sqrt(D) + noise * torch.randn(len(x), K, generator=_generator(seed, s))
              for x, s in zip(xs, (3, 4))]
    xs = [x.reshape(len(x), *input_shape) for x in xs]
    return xs[0], ys[0], xs[1], ys[1], num_classes if task == "classification" else 0

