"""Fixtures for the landscape.io tests (helpers live in io_synthetic.py and io_child.py)."""

import pytest
from io_synthetic import BATCH, B, P, Synthetic, make_meta

from landscape.io import RunWriter


@pytest.fixture
def synth():
    return Synthetic()


@pytest.fixture
def writer_factory(tmp_path):
    def make(name="run.h5", mode="create", meta=None, **kw):
        sizes = {"P": P, "B": B, "batch_size": BATCH, **kw}
        return RunWriter(tmp_path / name, mode=mode, meta=meta or make_meta(), **sizes)
    return make
