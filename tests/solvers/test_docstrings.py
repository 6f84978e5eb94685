"""The runnable examples in the solver docstrings hold (they check closed forms)."""

import doctest
import importlib

import pytest

MODULES = ["landscape.operators", "landscape.solvers.lanczos", "landscape.solvers.eigsh",
           "landscape.solvers.slq", "landscape.solvers.trace"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
