"""Fixtures for the trainer tests (helpers live in trainer_helpers.py: a unique module name)."""

import pytest
import torch

from checkpoints import TrainConfig
from trainer_helpers import TINY


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tiny():
    """``tiny(**changes)`` → a TrainConfig of :data:`TINY` with changes."""
    return lambda **changes: TrainConfig(**{**TINY, **changes})

