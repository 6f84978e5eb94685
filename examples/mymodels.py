"""Your own code: a model and a data set, as a researcher has them (nothing here imports the toolkit).

The examples name them by file path, ``"examples/mymodels.py:SmallCNN"`` — or, with this
directory on ``PYTHONPATH``, by module path ``"mymodels:SmallCNN"``. The toolkit calls the
factories with keyword arguments (stored as JSON in the run file) and rebuilds them in every
later command.
"""

import math

import torch
from torch import nn


class SmallCNN(nn.Module):
    """A 1-D convolutional net with BatchNorm for signals of length ``length`` (N, length)."""

    def __init__(self, length: int = 32, channels: int = 8, num_classes: int = 4):
        super().__init__()
        self.conv = nn.Conv1d(1, channels, kernel_size=5, padding=2)
        self.bn = nn.BatchNorm1d(channels)
        self.head = nn.Linear(channels * (length // 2), num_classes)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x.unsqueeze(1))))
        return self.head(nn.functional.max_pool1d(h, 2).flatten(1))


def waves(num_train: int = 512, num_test: int = 128, length: int = 32, num_classes: int = 4, noise: float = 0.3,
          seed: int = 0):
    """Noisy sine waves; the class is the frequency. Returns (x_train, y_train, x_test, y_test)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, length)

    def draw(n):
        y = torch.randint(0, num_classes, (n,), generator=g)
        phase = 2 * math.pi * torch.rand(n, 1, generator=g)
        x = torch.sin(2 * math.pi * (y[:, None] + 1) * t + phase) + noise * torch.randn(n, length, generator=g)
        return x, y

    return (*draw(num_train), *draw(num_test))
