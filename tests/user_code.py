"""A user's own model and data, written as a file outside the project for the tests.

``write_user_module(dir)`` writes ``mynets.py`` (a small network with BatchNorm, a class with
a required argument, and data-set factories of every accepted form) into ``dir``; the tests
then name them by ``mynets:Net`` (with ``dir`` on ``sys.path``) or ``dir/mynets.py:Net``.
"""

from pathlib import Path

USER_MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    """Linear → BatchNorm → ReLU → Linear."""

    def __init__(self, in_dim=12, width=16, num_classes=3):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, width)
        self.bn = nn.BatchNorm1d(width)
        self.fc2 = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x.flatten(1)))))


class Plain(nn.Module):
    """No BatchNorm: a tanh MLP (smooth, for dense Hessian checks)."""

    def __init__(self, in_dim=12, width=8, num_classes=3):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_dim, width), nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x.flatten(1))))


def needs_width(width):
    return nn.Linear(12, width)


def broken(**kwargs):
    raise RuntimeError("the factory failed on purpose")


def not_a_module():
    return 42


def blobs(n=96, n_test=32, dim=12, classes=3, seed=0):
    """Gaussian blobs: (x_train, y_train, x_test, y_test)."""
    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(classes, dim, generator=g)

    def draw(m):
        y = torch.randint(0, classes, (m,), generator=g)
        return centres[y] + torch.randn(m, dim, generator=g), y

    return (*draw(n), *draw(n_test))


def blobs_dict(n=96):
    x, y, xt, yt = blobs(n=n)
    return {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt, "num_classes": 5}


def blobs_datasets():
    x, y, xt, yt = blobs()
    return torch.utils.data.TensorDataset(x, y), torch.utils.data.TensorDataset(xt, yt)


def regression(n=64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n + 16, 12, generator=g, dtype=torch.float64)
    y = x[:, :2] * 0.5
    return x[:n], y[:n], x[n:], y[n:]


def wrong():
    return "not data"
'''


def write_user_module(directory, name: str = "mynets") -> Path:
    """Write the user's module into ``directory``; return its path."""
    path = Path(directory) / f"{name}.py"
    path.write_text(USER_MODULE)
    return path
