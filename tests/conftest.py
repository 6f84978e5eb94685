"""Shared fixtures and markers.

``gpu`` tests skip cleanly where CUDA is absent; ``slow`` and ``browser`` tests are
left out of the default run by ``setup.cfg`` (run them with ``make test-all``).
"""

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# The test problems are tiny: one thread is as fast and does not oversubscribe a busy 2-core machine.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
