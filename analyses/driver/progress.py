"""Progress bars on stderr for long work (rate and ETA)."""

from __future__ import annotations

import sys


def progress(total: int | None, desc: str, *, enabled: bool = True, unit: str = "HVP"):
    """A tqdm bar on stderr (rate in ``unit``/s and ETA); a silent one when not ``enabled``."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, leave=False, mininterval=0.5)


def ticker(bar):
    """``on_matvec(total_so_far)`` → advance ``bar`` to that count."""
    return lambda n: bar.update(n - bar.n)
