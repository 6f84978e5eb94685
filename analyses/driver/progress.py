"""Progress bars on stderr for long work, shown when someone is watching.

Bars appear when stderr is a terminal; a log file or a pipe gets none (no redraw lines),
unless ``--progress`` asks for them; ``--no-progress`` turns them off everywhere.
:func:`configure` sets the policy for the command being run.
"""

from __future__ import annotations

import sys

_forced: bool | None = None   # None: bars when stderr is a TTY


def configure(show: bool | None) -> None:
    """``True``: always show bars; ``False``: never; ``None``: only when stderr is a terminal."""
    global _forced
    _forced = show


def showing() -> bool:
    """Whether bars are shown under the current policy."""
    return _forced if _forced is not None else bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress(total: int | None, desc: str, *, enabled: bool = True, unit: str = "HVP"):
    """A tqdm bar on stderr (rate in ``unit``/s and ETA); a silent one when not shown or not ``enabled``."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not (enabled and showing()),
                dynamic_ncols=True, leave=False, mininterval=0.5)
