"""landscape.solvers.sampling: probe vectors are seeded, of the right law, and device independent."""

import pytest
import torch

from landscape.errors import InputError
from landscape.solvers.sampling import make_generator, probe_vectors, random_unit_vector


def test_rademacher_entries_and_normalization():
    Z = probe_vectors(50, 400, seed=0)
    assert set(Z.unique().tolist()) == {-1.0, 1.0} and Z.dtype == torch.float64
    # mean of 20000 ±1 entries has std 1/√20000 ≈ 0.007; 0.05 is 7 standard deviations
    assert abs(float(Z.mean())) < 0.05
    U = probe_vectors(5, 400, "gaussian", seed=0, normalize=True, dtype=torch.float32)
    assert U.dtype == torch.float32 and torch.allclose(U.norm(dim=1), torch.ones(5), atol=1e-6)


def test_seeds_and_generators():
    assert torch.equal(probe_vectors(3, 10, seed=4), probe_vectors(3, 10, seed=4))
    assert not torch.equal(probe_vectors(3, 10, seed=4), probe_vectors(3, 10, seed=5))
    g = make_generator(4)
    first, second = probe_vectors(3, 10, seed=g), probe_vectors(3, 10, seed=g)
    assert torch.equal(first, probe_vectors(3, 10, seed=4)) and not torch.equal(first, second)
    assert make_generator(g) is g
    assert float(random_unit_vector(30, seed=1).norm()) == pytest.approx(1.0, abs=1e-14)


def test_bad_input():
    with pytest.raises(InputError, match="distribution='uniform'"):
        probe_vectors(1, 3, "uniform")
    with pytest.raises(InputError, match="seed must be an int or a torch.Generator"):
        make_generator(1.5)
    with pytest.raises(InputError, match="num >= 0 and dim >= 1"):
        probe_vectors(1, 0)
