"""Merge the per-task results files of a job array into one results file.

Each array task writes ``RESULTS.partN.h5`` (one writer per HDF5 file); merging
copies every complete item not yet in ``RESULTS.h5`` — arrays, configuration and
the task's own provenance — item by item, each one written completely before it
is marked complete. Merging is idempotent: run it again (after a rerun of failed
tasks) and it adds only what is new. Parts from another run are refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from landscape.errors import ConfigMismatchError, InputError
from landscape.io import ResultsFile


@dataclass
class MergeSummary:
    """Keys copied into the merged file, keys it already had, and parts removed."""

    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def find_parts(out: str | os.PathLike) -> list[str]:
    """The files ``RESULTS.partN.h5`` beside ``out``, in task order."""
    out = Path(out)
    pattern = re.compile(re.escape(out.stem) + r"\.part(\d+)" + re.escape(out.suffix or ".h5") + "$")
    found = [(int(m.group(1)), p) for p in out.parent.glob(f"{out.stem}.part*")
             if (m := pattern.match(p.name))]
    return [str(p) for _, p in sorted(found)]


def merge_results(out: str | os.PathLike, parts: Sequence[str] | None = None, *, remove_parts: bool = False,
                  log: Callable[[str], None] = print) -> MergeSummary:
    """Copy the complete items of ``parts`` (default: :func:`find_parts`) into ``out``.

    Args:
        out: the merged results file (created if missing, bound to the parts' run).
        parts: part files; missing ones are skipped (a task that never started).
        remove_parts: delete each part whose items are all complete in ``out`` afterwards.
        log: where the one-line summary goes.

    Raises:
        ConfigMismatchError: a part belongs to another run than ``out`` or the other parts.
        InputError: no part file exists.
    """
    parts = [p for p in (find_parts(out) if parts is None else parts) if os.path.exists(p)]
    if not parts:
        raise InputError(f"no part files to merge into {out} (looked for {Path(out).stem}.partN.h5 beside it)")
    summary = MergeSummary()
    run_id = _run_id(parts[0])
    with ResultsFile(out, "a", run_id=run_id) as dst:
        for part in parts:
            _merge_one(dst, part, run_id, summary)
    if remove_parts:
        summary.removed = _remove_merged(out, parts)
    log(f"merged {len(parts)} part file(s) into {out}: {len(summary.copied)} item(s) copied, "
        f"{len(summary.present)} already there" + (f", {len(summary.removed)} part(s) removed" if remove_parts else ""))
    return summary


def _run_id(part: str) -> dict | None:
    with ResultsFile(part, "r") as src:
        return src.run_id


def _merge_one(dst: ResultsFile, part: str, run_id: dict | None, summary: MergeSummary) -> None:
    with ResultsFile(part, "r") as src:
        theirs = (src.run_id or {}).get("run_sha256")
        if theirs != (run_id or {}).get("run_sha256"):
            raise ConfigMismatchError(f"{part} belongs to run {(src.run_id or {}).get('path')} (sha "
                                      f"{str(theirs)[:12]}), not the run of the other parts; merge it elsewhere")
        for key in src.keys():
            if dst.is_complete(key):
                summary.present.append(key)
                continue
            arrays, attrs = src.read_item(key)
            dst.write_item(key, arrays, attrs)
            summary.copied.append(key)


def _remove_merged(out, parts: Sequence[str]) -> list[str]:
    removed = []
    with ResultsFile(out, "r") as dst:
        done = set(dst.keys())
    for part in parts:
        with ResultsFile(part, "r") as src:
            mine = src.keys(complete_only=False)
        if set(mine) <= done:
            os.remove(part)
            removed.append(part)
    return removed
