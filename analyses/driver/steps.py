"""Parse ``--steps`` specifications against the steps a run file has saved.

Grammar (comma-separated terms, combined and sorted):

* ``all`` — every saved step; ``last`` — the last saved step; ``first`` — the first;
* ``120`` — that step (must be saved);
* ``100:2000`` — every saved step s with 100 ≤ s ≤ 2000;
* ``every:5`` — every 5th saved step, starting with the first (also ``::5``).
"""

from __future__ import annotations

from collections.abc import Sequence

from landscape.errors import InputError


def _available(saved: Sequence[int]) -> str:
    saved = list(saved)
    if len(saved) <= 12:
        return ", ".join(map(str, saved))
    return f"{', '.join(map(str, saved[:6]))}, ..., {', '.join(map(str, saved[-3:]))} ({len(saved)} in all)"


def _term(term: str, saved: list[int]) -> list[int]:
    if term == "all":
        return saved
    if term in ("last", "first"):
        return [saved[-1] if term == "last" else saved[0]]
    if term.startswith("every:") or term.startswith("::"):
        n = int(term.split(":")[-1])
        if n < 1:
            raise InputError(f"--steps {term!r}: the stride must be ≥ 1")
        return saved[::n]
    if ":" in term:
        lo, hi = (int(x) if x else None for x in term.split(":", 1))
        return [s for s in saved if (lo is None or s >= lo) and (hi is None or s <= hi)]
    step = int(term)
    if step not in saved:
        raise InputError(f"step {step} is not saved in the run file; saved steps: {_available(saved)}")
    return [step]


def parse_steps(spec: str, saved: Sequence[int]) -> list[int]:
    """Resolve ``spec`` to a sorted list of saved steps.

    Raises:
        InputError: a malformed term, a step that is not saved (the message lists
            the saved steps), or a spec that selects nothing.
    """
    saved = sorted(int(s) for s in saved)
    if not saved:
        raise InputError("the run file has no saved parameter snapshots yet")
    chosen: set[int] = set()
    for term in (t.strip() for t in spec.split(",") if t.strip()):
        try:
            chosen.update(_term(term, saved))
        except ValueError as err:
            raise InputError(f"--steps: cannot parse {term!r} ({err}); use e.g. 'all', 'last', "
                             "'0,100', '100:2000' or 'every:5'") from None
    if not chosen:
        raise InputError(f"--steps {spec!r} selects no saved step; saved steps: {_available(saved)}")
    return sorted(chosen)
