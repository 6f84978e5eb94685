"""Fixtures shared by the analysis tests: tiny trained runs, made once per session.

``tiny_run`` — a 30-step MNIST-1D run of a small MLP (40 → 12 → 10, P = 622, no
BatchNorm), snapshots at steps 0, 10, 20, 30; ``tiny_bn_run`` — the same data with a
small 1-D CNN with BatchNorm (for ``bn="train"`` vs ``"eval"``). Both are read-only:
copy the file before damaging it. Each takes a few seconds to train on 2 CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_DATA = {"num_train": 200, "num_test": 100}
TINY_RUN = dict(dataset="mnist1d", dataset_kwargs=TINY_DATA, model="mlp",
                model_kwargs={"in_dim": 40, "hidden": [12]}, lr=0.2, batch_size=50, steps=30,
                save_every=10, seed=0)
TINY_BN_RUN = dict(TINY_RUN, model="cnn1d", model_kwargs={"channels": [4, 4], "kernel_size": 3, "norm": "bn"},
                   steps=20)


@dataclass(frozen=True)
class TinyRun:
    """A trained run file: its path, its :class:`~checkpoints.config.TrainConfig`, its saved steps."""

    path: Path
    config: object
    saved_steps: tuple[int, ...]


def _train(directory: Path, fields: dict) -> TinyRun:
    from checkpoints.config import TrainConfig
    from checkpoints.train import train
    from landscape.io import RunFile

    cfg = TrainConfig(**fields)
    path = directory / "run.h5"
    train(cfg, path, progress=False, fsync=False)
    with RunFile(path) as f:
        steps = tuple(int(s) for s in f.saved_steps)
    return TinyRun(path, cfg, steps)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    """A 30-step MNIST-1D MLP run (P = 622) with snapshots at 0, 10, 20, 30."""
    return _train(tmp_path_factory.mktemp("tiny_run"), TINY_RUN)


@pytest.fixture(scope="session")
def tiny_bn_run(tmp_path_factory) -> TinyRun:
    """A 20-step MNIST-1D run of a 1-D CNN with BatchNorm, snapshots at 0, 10, 20."""
    return _train(tmp_path_factory.mktemp("tiny_bn_run"), TINY_BN_RUN)
