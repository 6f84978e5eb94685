"""--steps grammar against a list of saved steps."""

import pytest

from analyses.driver.steps import parse_steps
from landscape.errors import InputError

SAVED = [0, 10, 20, 30, 40, 50]


@pytest.mark.parametrize("spec,expected", [
    ("all", SAVED), ("last", [50]), ("first", [0]), ("10,30", [10, 30]),
    ("15:40", [20, 30, 40]), ("every:2", [0, 20, 40]), ("::3", [0, 30]),
    ("last,0", [0, 50]), (":20", [0, 10, 20]),
])
def test_specs(spec, expected):
    assert parse_steps(spec, SAVED) == expected


@pytest.mark.parametrize("spec,fragment", [
    ("15", "not saved"), ("x", "cannot parse"), ("60:70", "selects no saved step"), ("every:0", "≥ 1"),
])
def test_bad_specs(spec, fragment):
    with pytest.raises(InputError, match=fragment):
        parse_steps(spec, SAVED)


def test_unsaved_step_lists_available():
    with pytest.raises(InputError, match="0, 10, 20"):
        parse_steps("7", SAVED)
