"""Resuming a run file: check the configuration, then cut the logs back to the resume point.

The resume point is the last committed snapshot ``s`` (``θ_s``, taken before update ``s``;
``s = 0`` with no snapshot). After :func:`open_for_resume` the file holds

* every committed snapshot (the last one at ``s``),
* the step rows ``0 … s-1``, and the eval and sharpness rows labelled ``< s``,

so the trainer reloads ``θ_s`` and continues at step ``s``, logging everything from there
again. Counters are lowered (and flushed) before datasets shrink, so a kill during the
truncation leaves a consistent file too.
"""

from __future__ import annotations

import json
import os
import socket
import sys

import numpy as np

from landscape.errors import ConfigMismatchError, FileFormatError
from landscape.io import _h5, schema
from landscape.io._frontier import TABLE, FrontierTable, create_table, read_table, reseal
from landscape.io._layout import read_counts, truncate_group, write_counts
from landscape.io.provenance import utc_now

_ABSENT = "<absent>"


def open_for_resume(writer, resumable=None):
    """Check ``writer``'s meta and sizes against the stored run; open it r+ and roll it back."""
    path = writer.path
    if not os.path.exists(path):
        raise FileFormatError(f"no run file to resume at {path}; drop --resume to start a new run")
    with _h5.open_read(path) as f:
        if _h5.read_schema(f, path) != schema.RUN_SCHEMA:
            raise FileFormatError(f"{path} is a results file, not a run file; give the run file to resume")
        stored = _h5.read_json_attr(f, "meta", path, default={})
        sizes = {k: _plain(f.attrs.get(k)) for k in ("P", "B", "batch_size", "full_batch")}
    given = {"P": writer.P, "B": writer.B, "batch_size": writer.batch_size, "full_batch": writer.full_batch}
    diffs = differences(stored, writer._meta, sizes, given, resumable)
    if diffs:
        raise ConfigMismatchError(
            f"{path} was written by a run with another configuration ({'; '.join(diffs[:8])}); "
            "resume with the original settings, or pass --overwrite to start over, or choose another output")
    f = _h5.open_write(path, "r+")
    try:
        with _h5.h5_errors(path, "(resume)", writing=True):
            resealed = reseal_frontier(f, read_counts(f, path), path)
            dropped = roll_back(f, path)
            _record(f, writer._meta, dropped, resealed)
            _h5.flush(f, fsync=True)
    except BaseException:
        f.close()
        raise
    return f


def differences(stored: dict, meta: dict, sizes: dict, given: dict, resumable=None) -> list[str]:
    """``"key: stored X, given Y"`` for each config/meta/size entry that may not change."""
    resumable = schema.RESUMABLE_CONFIG_KEYS if resumable is None else frozenset(resumable)
    a = flatten(_normal(stored.get("config", {})), "config")
    b = flatten(_normal(meta.get("config", {})), "config")
    out = [_diff(k, a, b) for k in sorted(set(a) | set(b))
           if a.get(k, _ABSENT) != b.get(k, _ABSENT) and not _is_resumable(k, resumable)]
    for key in schema.IDENTITY_META_KEYS:
        if key in stored and key in meta and _normal(stored[key]) != _normal(meta[key]):
            out.append(_diff(key, {key: stored[key]}, {key: meta[key]}))
    out += [_diff(k, sizes, given) for k in given if sizes.get(k) is not None and sizes[k] != given[k]]
    return out


def flatten(value, prefix: str) -> dict:
    """``{"a": {"b": 1}}`` → ``{"prefix.a.b": 1}``; lists and scalars are leaves."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    out = {}
    for key, sub in value.items():
        out.update(flatten(sub, f"{prefix}.{key}"))
    return out


def _is_resumable(key: str, resumable: frozenset) -> bool:
    parts = key.split(".")[1:]  # drop the "config" prefix
    return ".".join(parts) in resumable or parts[-1] in resumable


def _diff(key: str, a: dict, b: dict) -> str:
    return f"{key}: stored {a.get(key, _ABSENT)!r}, given {b.get(key, _ABSENT)!r}"


def _normal(value):
    return json.loads(_h5.json_dumps(value))


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def reseal_frontier(f, counts: dict[str, int], path) -> list[str]:
    """Re-checksum the frontier chunks a killed writer tore (see ``_frontier``); their names.

    Done first, and flushed, so that the reads and the truncation of :func:`roll_back`
    (which rewrites the edge chunk) go through valid checksums. A file from before the
    ``/frontier`` records gets its table here.
    """
    records = read_table(f)
    if TABLE not in f:
        create_table(f, schema.COUNTED_GROUPS)
    torn = []
    for group, n in counts.items():
        for ds in f[group].values():
            with _h5.h5_errors(path, ds.name, corrupt=True):
                if reseal(ds, n, records.get(ds.name)):
                    torn.append(ds.name)
    if torn:
        f.flush()
    return torn


def roll_back(f, path) -> dict[str, int]:
    """Truncate to committed rows, then to the last snapshot; return rows dropped per group."""
    counts = read_counts(f, path)
    n_snap = counts["snapshots"]
    s = int(f["snapshots/step"][n_snap - 1]) if n_snap else 0
    keep = {"steps": min(counts["steps"], s), "snapshots": n_snap,
            "evals": _rows_before(f["evals/step"], counts["evals"], s),
            "sharpness": _rows_before(f["sharpness/step"], counts["sharpness"], s)}
    FrontierTable(f).write(keep)
    write_counts(f, keep)
    f.flush()
    for group, n in keep.items():
        truncate_group(f, group, n)
    return {g: counts[g] - keep[g] for g in keep}


def _rows_before(ds, n: int, s: int) -> int:
    steps = ds[:n]
    return int(np.searchsorted(steps, s, side="left"))


def _record(f, meta: dict, dropped: dict, resealed: list[str]) -> None:
    """Store the (possibly extended) meta and append a resume event to the history."""
    history = _h5.read_json_attr(f, "history", f.filename, default=[])
    event = {"event": "resume", "time": utc_now(), "hostname": socket.gethostname(),
             "argv": list(sys.argv), "dropped_rows": dropped}
    history.append(event | ({"resealed_chunks": resealed} if resealed else {}))
    if len(history) > 50:  # bounded (attributes hold < 64 KiB): keep "create" and the last 49
        history = history[:1] + history[-49:]
    _h5.write_json_attr(f, "history", history)
    _h5.write_json_attr(f, "meta", meta)
    f.attrs["status"], f.attrs["status_message"] = "running", ""
