"""Write analysis results to a results file, one item at a time, resumably.

An analysis is a plan of :class:`Item` s: each has a key (its group in the
results file, e.g. ``"hessian/step_00000100/eigen"``) and a function that
computes a :class:`Record` (arrays and attributes). :func:`run_items` skips items
already complete in the file, computes the rest in order and writes each one
with its configuration and provenance, so a killed job loses at most the item it
was on and a rerun of the same command picks up where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from analyses.driver.records import Item, Record  # noqa: F401 — re-exported for the commands
from landscape.io import ResultsFile, provenance


@dataclass
class RunSummary:
    """Keys computed in this call and keys skipped because they were complete."""

    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def run_items(results: ResultsFile, items: Iterable[Item], *, config: dict, source: dict,
              device: str | None = None, log: Callable[[str], None] = print,
              recompute: bool = False) -> RunSummary:
    """Compute and store every item not yet complete in ``results`` (all of them with ``recompute``).

    Args:
        results: an open results file (mode ``"a"``).
        items: the plan, computed in order.
        config: the analysis configuration (stored as JSON with every item).
        source: where the inputs came from (run file path and checksum, step, BN mode...).
        device: the device the work ran on, for provenance.
        log: where one-line messages go: ``[i/n] key: summary (wall time)`` per computed item.
        recompute: replace complete items instead of skipping them (each is removed just before
            its replacement is computed, so a kill loses at most that item).

    Returns:
        The keys computed and skipped.
    """
    summary = RunSummary()
    prov = provenance(device)
    items = list(items)
    for i, item in enumerate(items, 1):
        if results.is_complete(item.key):
            if not recompute:
                summary.skipped.append(item.key)
                continue
            results.remove_item(item.key)
        start = time.perf_counter()
        record = item.compute()
        wall = time.perf_counter() - start
        attrs = {**record.attrs, "config": config, "source": source,
                 "provenance": prov, "wall_time_s": wall}
        results.write_item(item.key, record.arrays, attrs)
        summary.computed.append(item.key)
        log(f"[{i}/{len(items)}] {item.key}: {record.summary or 'done'} ({wall:.1f} s)")
    if summary.skipped:
        log(f"skipped {len(summary.skipped)} item(s) already complete in {results.path}")
    return summary


def write_table(results: ResultsFile, key: str, compute: Callable, config: dict, source: dict) -> bool:
    """Write a summary item that depends on a set of other items (a table over steps).

    Rewritten whenever ``config`` (which names the set) differs from the stored one, skipped
    when it is the same. ``compute()`` returns a :class:`Record`, or None when there is
    nothing to tabulate. Returns whether the table was written.
    """
    if results.is_complete(key) and results.read_item(key)[1].get("config") == config:
        return False
    record = compute()
    if record is None:
        return False
    attrs = {**record.attrs, "config": config, "source": source, "provenance": provenance()}
    results.write_item(key, record.arrays, attrs, overwrite=True)
    return True
