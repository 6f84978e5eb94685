"""The run-file layout: create it up front, read and write its committed counters.

All datasets are created here, once, when the file is created (docs/file-formats.md):
appending rows only resizes them, so the object count of a run file never changes. Every
appendable dataset is chunked with the fletcher32 checksum filter, so a flipped bit in
any stored row (not only in parameters) fails the read instead of returning wrong data.
"""

from __future__ import annotations

import h5py
import numpy as np

from landscape.errors import FileFormatError
from landscape.io import _h5, schema
from landscape.io._frontier import create_table


def create_layout(f: h5py.File, attrs: dict, *, P: int, B: int, batch_size: int,
                  full_batch: bool, batch_log: bool = True) -> None:
    """Write the root attributes and create every (empty, resizable) dataset of a run file."""
    _root_attrs(f, attrs, P=P, B=B, batch_size=batch_size, full_batch=full_batch)
    f.create_dataset(schema.COMMITTED, data=np.zeros(len(schema.COUNTED_GROUPS), np.int64))
    f[schema.COMMITTED].attrs["groups"] = _h5.json_dumps(schema.COUNTED_GROUPS)
    _steps_group(f.create_group("steps"), batch_size, full_batch or not batch_log)
    _snapshots_group(f.create_group("snapshots"), P, B)
    evals = f.create_group("evals")
    for name in schema.EVAL_FIELDS:
        _column(evals, name, "int64" if name == "step" else "float64", schema.SMALL_CHUNK_ROWS)
    sharp = f.create_group("sharpness")
    _column(sharp, "step", "int64", schema.SMALL_CHUNK_ROWS)
    _column(sharp, "lr", "float64", schema.SMALL_CHUNK_ROWS)
    sharp.create_dataset("eigenvalues", shape=(0, 0), maxshape=(None, None), dtype="float64",
                         chunks=(schema.SMALL_CHUNK_ROWS, schema.SHARPNESS_CHUNK_K), fletcher32=True)
    create_table(f, schema.COUNTED_GROUPS)


def _root_attrs(f, attrs: dict, **sizes) -> None:
    f.attrs["schema"] = schema.RUN_SCHEMA
    f.attrs["schema_version"] = schema.RUN_SCHEMA_VERSION
    f.attrs["created"] = attrs["created"]
    f.attrs["run_sha256"] = attrs["run_sha256"]
    for name in ("meta", "provenance", "history"):
        _h5.write_json_attr(f, name, attrs[name])
    f.attrs["status"], f.attrs["status_message"] = "running", ""
    for name, value in sizes.items():
        f.attrs[name] = value


def _column(g, name: str, dtype: str, chunk_rows: int, width: int | None = None, **kw):
    tail = () if width is None else (width,)
    if name in schema.SENTINEL_COLUMNS:  # an unwritten chunk reads as -1, never as a valid row
        kw["fillvalue"] = schema.SENTINEL
    return g.create_dataset(name, shape=(0, *tail), maxshape=(None, *tail), dtype=dtype,
                            chunks=(chunk_rows, *tail), fletcher32=True, **kw)


def _steps_group(g, batch_size: int, full_batch: bool) -> None:
    for name, dtype in schema.STEP_FIELDS.items():
        _column(g, name, dtype, schema.STEP_CHUNK_ROWS)
    if not full_batch:
        rows = max(1, schema.BATCH_CHUNK_BYTES // (4 * batch_size))
        _column(g, schema.BATCH_INDICES, schema.BATCH_INDEX_DTYPE, rows, batch_size)


def _snapshots_group(g, P: int, B: int) -> None:
    _column(g, "step", "int64", schema.SMALL_CHUNK_ROWS)
    for name, width in zip(schema.SNAPSHOT_VECTORS, (P, B, P, P)):
        if width:  # one row per chunk: a snapshot is read and checksummed on its own
            _column(g, name, "float32", 1, width)
        _column(g, f"{name}_sha256", schema.SHA_DTYPE, schema.SMALL_CHUNK_ROWS)


def read_counts(f: h5py.File, path) -> dict[str, int]:
    """The committed row counts per group, checked against the dataset lengths."""
    counts = read_counter(f, path)
    check_rows(f, counts, path)
    return counts


def read_counter(f: h5py.File, path) -> dict[str, int]:
    """The raw ``/committed`` counters."""
    with _h5.h5_errors(path, schema.COMMITTED):
        raw = f[schema.COMMITTED][()]
    if raw.shape != (len(schema.COUNTED_GROUPS),):
        raise FileFormatError(f"{path}: /{schema.COMMITTED} has shape {raw.shape}, expected "
                              f"({len(schema.COUNTED_GROUPS)},); the file is not a valid run file")
    return {g: int(n) for g, n in zip(schema.COUNTED_GROUPS, raw)}


def check_rows(f: h5py.File, counts: dict[str, int], path) -> None:
    """FileFormatError if a counter claims more rows than a dataset of its group holds."""
    for group, n in counts.items():
        with _h5.h5_errors(path, group):
            short = [name for name, ds in f[group].items() if ds.shape[0] < n]
        if n < 0 or short:
            raise FileFormatError(f"{path}: /{schema.COMMITTED} claims {n} rows in /{group} but "
                                  f"{short} hold fewer; the file is damaged, restore it from a copy")


def write_counts(f: h5py.File, counts: dict[str, int]) -> None:
    """Overwrite ``/committed`` in place (one 32-byte raw-data write)."""
    f[schema.COMMITTED][...] = np.array([counts[g] for g in schema.COUNTED_GROUPS], np.int64)


def truncate_group(f: h5py.File, group: str, n: int) -> None:
    """Cut every dataset of ``group`` to its first ``n`` rows."""
    for ds in f[group].values():
        if ds.shape[0] > n:
            ds.resize(n, axis=0)
