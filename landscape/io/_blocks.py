"""Block datasets of a results item: preallocated, written a block of rows at a time.

Layout inside the item group: the dataset ``<name>`` (chunked one block per chunk, with
fletcher32) carrying the JSON attribute ``_block_attrs`` = {shape, dtype, block_rows,
attrs}, and ``_done_<name>``, uint8 (n_blocks,), set to 1 after the block's rows are
flushed. A rerun finds which blocks remain with :func:`done`.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from landscape.errors import InputError
from landscape.io import _h5, _items, schema

MAX_CHUNK_BYTES = 2**32 - 1  # HDF5's limit on one chunk


def _spec(shape, dtype, block_rows: int, attrs) -> dict:
    shape = tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    if not shape or min(shape) < 1 or int(block_rows) < 1 or dtype.kind not in "biuf":
        raise InputError(f"block dataset needs a non-empty shape, block_rows >= 1 and a numeric "
                         f"dtype; got shape={shape}, block_rows={block_rows}, dtype={dtype}")
    spec = {"shape": list(shape), "dtype": dtype.str, "block_rows": int(block_rows), "attrs": attrs}
    return json.loads(_h5.json_dumps(spec))


def create(g: h5py.Group, name: str, shape, dtype, block_rows: int, attrs) -> None:
    """Create the block dataset and its done flags, or keep them if the spec is unchanged."""
    _items.check_name(name, "block dataset name")
    spec = _spec(shape, dtype, block_rows, attrs)
    if name in g:
        if _h5.read_json_attr(g[name], schema.BLOCK_ATTRS, g.file.filename) == spec:
            return
        _delete(g, name)
    shape, rows = tuple(spec["shape"]), min(spec["block_rows"], spec["shape"][0])
    chunk = (rows, *shape[1:])
    if np.prod(chunk) * np.dtype(dtype).itemsize > MAX_CHUNK_BYTES:
        raise InputError(f"a block of {rows} rows of {name!r} exceeds HDF5's 4 GiB chunk limit; "
                         "use fewer block_rows")
    ds = g.create_dataset(name, shape=shape, dtype=dtype, chunks=chunk, fletcher32=True)
    _h5.write_json_attr(ds, schema.BLOCK_ATTRS, spec)
    n_blocks = -(-shape[0] // spec["block_rows"])
    g.create_dataset(schema.DONE_PREFIX + name, data=np.zeros(n_blocks, np.uint8))


def _delete(g: h5py.Group, name: str) -> None:
    del g[name]
    if schema.DONE_PREFIX + name in g:
        del g[schema.DONE_PREFIX + name]


def _block_ds(g: h5py.Group, name: str) -> tuple[h5py.Dataset, dict]:
    ds = g.get(name)
    if ds is None or schema.BLOCK_ATTRS not in ds.attrs:
        raise InputError(f"{name!r} in {g.name} is not a block dataset; create it with "
                         "create_block_dataset first")
    return ds, _h5.read_json_attr(ds, schema.BLOCK_ATTRS, g.file.filename)


def write(g: h5py.Group, name: str, start: int, rows) -> int:
    """Write one whole block of rows at ``start`` (a multiple of block_rows); return its index."""
    ds, spec = _block_ds(g, name)
    n, br = spec["shape"][0], spec["block_rows"]
    if start % br or not 0 <= start < n:
        raise InputError(f"start must be a multiple of block_rows={br} in [0, {n}), got {start}")
    want = (min(br, n - start), *spec["shape"][1:])
    rows = np.asarray(rows)
    if rows.shape != want:
        raise InputError(f"block at row {start} of {name!r} must have shape {want}, got {rows.shape}")
    ds[start:start + want[0]] = rows
    return start // br


def mark_done(g: h5py.Group, name: str, block: int) -> None:
    """Set the done flag of ``block`` (call after the block's rows were flushed)."""
    g[schema.DONE_PREFIX + name][block] = 1


def done(g: h5py.Group, name: str) -> np.ndarray:
    """Bool (n_blocks,): blocks of ``name`` already written."""
    _block_ds(g, name)
    return g[schema.DONE_PREFIX + name][...].astype(bool)


def clear_unfinished(g: h5py.Group, key: str, path) -> None:
    """Empty an incomplete item for rewriting, keeping only fully written block datasets."""
    keep = set()
    for name, obj in g.items():
        if isinstance(obj, h5py.Dataset) and schema.BLOCK_ATTRS in obj.attrs:
            missing = np.flatnonzero(~done(g, name))
            if len(missing):
                raise InputError(f"block dataset {name!r} of item {key!r} in {path} misses blocks "
                                 f"{missing[:10].tolist()}; write them with write_block first")
            keep |= {name, schema.DONE_PREFIX + name}
    for name in [n for n in g if n not in keep]:
        del g[name]
    for name in [a for a in g.attrs if a != schema.ITEM_MARK]:
        del g.attrs[name]
