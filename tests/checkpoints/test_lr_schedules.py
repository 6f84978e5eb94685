"""Learning-rate schedules give their documented values (closed forms)."""

import doctest
import math

import pytest

import checkpoints.schedules as schedules
from checkpoints.config import TrainConfig
from checkpoints.schedules import (
    Constant,
    Cosine,
    Piecewise,
    StepDecay,
    Warmup,
    make_schedule,
)

EXACT = 0.0      # piecewise-constant schedules return stored floats: no rounding at all
COSINE_RTOL = 1e-15  # one cos() and three flops in float64


def test_doctest():
    assert doctest.testmod(schedules).failed == 0


def test_constant_and_step():
    assert [Constant(0.3)(t) for t in (0, 7, 10**6)] == [0.3] * 3
    s = StepDecay(1.0, (10, 20), 0.5)
    assert [s(t) for t in (0, 9, 10, 19, 20, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


@pytest.mark.parametrize("t,expected", [(0, 1.0), (50, 0.55), (100, 0.1), (150, 0.1)])
def test_cosine_closed_form(t, expected):
    value = Cosine(1.0, 100, 0.1)(t)
    assert math.isclose(value, expected, rel_tol=COSINE_RTOL), f"η({t}) = {value}, expected {expected}"


def test_piecewise_list():
    s = Piecewise(((0, 0.1), (5, 0.05), (8, 0.2)))
    got = [s(t) for t in range(10)]
    assert got == [0.1] * 5 + [0.05] * 3 + [0.2] * 2


def test_warmup_composes():
    s = Warmup(Cosine(1.0, 100), 4)
    got = [s(t) for t in range(5)]
    inner = Cosine(1.0, 100)
    expected = [inner(0) / 4, inner(1) * 2 / 4, inner(2) * 3 / 4, inner(3), inner(4)]
    assert max(abs(a - b) for a, b in zip(got, expected)) <= EXACT, (got, expected)


def test_make_schedule_from_config():
    cfg = TrainConfig(dataset="mnist1d", steps=30, lr=0.2, schedule="step", milestones=(10,), warmup_steps=2)
    s = make_schedule(cfg)
    assert [s(0), s(1), s(10)] == [0.1, 0.2, 0.2 * 0.1]
    cos = TrainConfig(dataset="mnist1d", steps=30, schedule="cosine").resolved(100, False)
    assert make_schedule(cos)(30) == 0.0
