"""Fixtures for the trainer tests (helpers live in trainer_helpers.py: a unique module name)."""

import sys

import pytest
import torch
from trainer_helpers import TINY
from user_code import write_user_module

from checkpoints import TrainConfig


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



@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    """A directory outside the project holding the user's own model module (``mynets``), on sys.path."""
    d = tmp_path_factory.mktemp("user")
    write_user_module(d)
    sys.path.insert(0, str(d))
    torch.set_num_threads(1)
    yield d
    sys.path.remove(str(d))
    sys.modules.pop("mynets", None)
