"""ResultsFile: analysis outputs, one group per item, written so that a rerun resumes.

An item (key ``"hessian/step_00000100/eigen"``) is a group holding its arrays and
attributes; it counts only once its ``complete`` attribute is set, which happens last,
after a flush (and is followed by flush + fsync). A job killed mid-item leaves an
incomplete group that the next :meth:`ResultsFile.write_item` for that key deletes and
rewrites; complete items are skipped by callers through :meth:`ResultsFile.is_complete`.

Long items are written in row blocks (dense Hessian columns, surface rows):
:meth:`~ResultsFile.create_block_dataset` preallocates the dataset and a per-block
``done`` flag, :meth:`~ResultsFile.write_block` writes one block then sets its flag
(flush between), :meth:`~ResultsFile.blocks_done` tells a rerun which blocks remain, and
:meth:`~ResultsFile.write_item` completes the item with its other arrays and attributes.

The file is bound to the run it analyses by ``run_id = {"path", "run_sha256"}``
(:attr:`landscape.io.RunFile.file_sha256`); reopening it for another run is refused.
One process writes a results file at a time (the HDF5 file lock enforces it); readers
(mode ``"r"``) open it without a lock, also while a job writes.
"""

from __future__ import annotations

import os
import re

import h5py
import numpy as np

from landscape.errors import ConfigMismatchError, FileFormatError, InputError, OutputExistsError
from landscape.io import _atomic, _blocks, _h5, _items, schema
from landscape.io.provenance import provenance, utc_now


_STEP_KEY = re.compile(r"^(?P<analysis>[^/]+)/step_(?P<step>\d+)/(?P<quantity>[^/]+)$")


def step_key(analysis: str, step: int, quantity: str) -> str:
    """The canonical key of a per-step item, ``analysis/step_00000123/quantity``.

    Analyses store one item per (step, quantity); read them back with
    :meth:`ResultsFile.items` or :meth:`ResultsFile.by_step`, never by parsing keys.
    """
    return f"{analysis}/step_{int(step):08d}/{quantity}"


def _split_step_key(key: str) -> tuple[str, int, str] | None:
    """``(analysis, step, quantity)`` of a per-step key, None for any other key."""
    m = _STEP_KEY.match(key)
    return None if m is None else (m["analysis"], int(m["step"]), m["quantity"])


class ResultsFile:
    """Read (``mode="r"``) or create/extend (``mode="a"``) a results file.

    Args:
        path: the results file.
        mode: ``"r"`` read-only; ``"a"`` creates the file if missing, else opens it to add items.
        run_id: ``{"path": ..., "run_sha256": ...}`` of the source run. Stored when the file
            is created; when reopening, a different ``run_sha256`` raises ConfigMismatchError.
    """

    def __init__(self, path, mode: str = "r", *, run_id: dict | None = None):
        if mode not in ("r", "a"):
            raise InputError(f"mode must be 'r' or 'a', got {mode!r}")
        if run_id is not None and (not isinstance(run_id, dict) or "run_sha256" not in run_id):
            raise InputError("run_id must be a dict {'path': ..., 'run_sha256': ...} or None")
        self.path, self.mode = os.fspath(path), mode
        self._f = self._open(run_id)
        try:
            self._check_run(run_id)
        except BaseException:
            self.close()
            raise

    # --- opening --------------------------------------------------------------------------
    def _open(self, run_id):
        if self.mode == "a" and not os.path.exists(self.path):
            f = self._create(run_id)
            if f is not None:
                return f
        f = _h5.open_read(self.path)
        try:
            kind = _h5.read_schema(f, self.path)
        except BaseException:
            f.close()
            raise
        if kind != schema.RESULTS_SCHEMA or self.mode == "a":
            f.close()
        if kind != schema.RESULTS_SCHEMA:
            raise FileFormatError(f"{self.path} is a run file, not a results file; give a "
                                  "results file (or choose another --out)")
        return f if self.mode == "r" else _h5.open_write(self.path, "r+")

    def _create(self, run_id) -> h5py.File | None:
        tmp = _atomic.temp_path(self.path)
        _atomic.remove_stale_temps(self.path)
        f = _h5.open_write(tmp, "x")
        try:
            f.attrs["schema"] = schema.RESULTS_SCHEMA
            f.attrs["schema_version"] = schema.RESULTS_SCHEMA_VERSION
            f.attrs["created"] = utc_now()
            _h5.write_json_attr(f, "run_id", run_id)
            _h5.write_json_attr(f, "provenance", provenance())
            _h5.flush(f, fsync=True)
            _atomic.publish(tmp, self.path, replace=False)
        except BaseException as e:
            f.close()
            os.remove(tmp)
            if isinstance(e, FileExistsError):  # created meanwhile by another process: open it
                return None
            raise
        return f

    @property
    def run_id(self) -> dict | None:
        """The ``{"path", "run_sha256"}`` the file was created for (None if unbound)."""
        return _h5.read_json_attr(self._f, "run_id", self.path)

    def _check_run(self, run_id) -> None:
        if run_id is None:
            return
        stored = self.run_id
        if stored is None:
            raise ConfigMismatchError(f"results file {self.path} is not bound to a run, so it cannot "
                                      f"hold results of {run_id.get('path')}; use another --out")
        if stored.get("run_sha256") != run_id.get("run_sha256"):
            raise ConfigMismatchError(
                f"results file {self.path} belongs to run {stored.get('path')} (sha "
                f"{str(stored.get('run_sha256'))[:12]}), not {run_id.get('path')} (sha "
                f"{str(run_id.get('run_sha256'))[:12]}); use another --out")

    # --- items ----------------------------------------------------------------------------
    def _item(self, key: str) -> h5py.Group | None:
        _items.check_key(key)
        with _h5.h5_errors(self.path, key):
            g = self._f.get(key)
        if g is not None and not (isinstance(g, h5py.Group) and g.attrs.get(schema.ITEM_MARK, False)):
            raise InputError(f"{key!r} in {self.path} is a group of other items, not an item; "
                             "use a longer key")
        return g

    def is_complete(self, key: str) -> bool:
        """Whether the item ``key`` exists and was completely written."""
        def read():
            g = self._item(key)
            return g is not None and bool(g.attrs.get(schema.COMPLETE, False))

        return self._reading(read)

    def _reading(self, read):
        """Run ``read()``; read-only views of a file a job is writing retry with a fresh handle."""
        return read() if self.mode == "a" else _h5.retry_live(read, self.path, self._reopen)

    def _reopen(self) -> None:
        self._f.close()
        self._f = _h5.open_read(self.path)

    def write_item(self, key: str, arrays: dict, attrs: dict | None = None, *,
                   overwrite: bool = False) -> None:
        """Write the item ``key`` (arrays as datasets, attrs as attributes) and mark it complete.

        An incomplete item of that key (an interrupted job) is cleared first, keeping only
        finished block datasets; ``provenance()`` is added unless ``attrs`` has one.

        Raises:
            OutputExistsError: the item is complete and ``overwrite`` is False.
            InputError: bad key, names or values, or a block dataset still misses blocks.
        """
        self._writable()
        arrays = _items.prepare_arrays(arrays)
        attrs = dict(attrs or {})
        attrs.setdefault("provenance", provenance())
        _items.check_attrs(attrs)
        g = self._prepare(key, overwrite)
        with _h5.h5_errors(self.path, key, writing=True):
            _items.write_arrays(g, arrays)
            _items.write_attrs(g, attrs)
            _h5.flush(self._f)
            g.attrs[schema.COMPLETE] = True
            _h5.flush(self._f, fsync=True)

    def remove_item(self, key: str) -> None:
        """Delete the item ``key`` (complete or not; nothing happens if it does not exist).

        For commands that recompute on request (``--recompute``); the space is reused by HDF5.
        """
        self._writable()
        if self._item(key) is not None:
            with _h5.h5_errors(self.path, key, writing=True):
                del self._f[key]
                _h5.flush(self._f, fsync=True)

    def _prepare(self, key: str, overwrite: bool) -> h5py.Group:
        g = self._item(key)
        if g is not None and g.attrs.get(schema.COMPLETE, False):
            if not overwrite:
                raise OutputExistsError(f"item {key!r} in {self.path} is complete; pass --overwrite "
                                        "(overwrite=True) to recompute it")
            with _h5.h5_errors(self.path, key, writing=True):
                del self._f[key]
            g = None
        if g is None:
            return self._new_item(key)
        with _h5.h5_errors(self.path, key, writing=True):
            _blocks.clear_unfinished(g, key, self.path)
        return g

    def _new_item(self, key: str) -> h5py.Group:
        parts = key.split("/")
        for i in range(1, len(parts)):
            parent = self._f.get("/".join(parts[:i]))
            if parent is not None and parent.attrs.get(schema.ITEM_MARK, False):
                raise InputError(f"{key!r} would be inside the item {'/'.join(parts[:i])!r}; "
                                 "items cannot nest, choose another key")
        with _h5.h5_errors(self.path, key, writing=True):
            g = self._f.require_group(key)
            g.attrs[schema.ITEM_MARK] = True
        return g

    def read_item(self, key: str) -> tuple[dict, dict]:
        """``(arrays, attrs)`` of a complete item; FileFormatError if missing or incomplete."""
        if not self.is_complete(key):
            state = "does not exist" if self._item(key) is None else \
                "is incomplete (its job was interrupted; rerun it)"
            near = [k for k in self.keys() if k.split("/")[0] == key.split("/")[0]][:10]
            raise FileFormatError(f"item {key!r} in {self.path} {state}; complete items here: "
                                  f"{near or self.keys()[:10] or 'none'}")

        def read():
            with _h5.h5_errors(self.path, key, corrupt=True):
                g = self._item(key)
                return _items.read_arrays(g), _items.read_attrs(g)

        return self._reading(read)

    def keys(self, prefix: str = "", complete_only: bool = True) -> list[str]:
        """Sorted keys of the items whose key starts with ``prefix`` (complete ones only by default)."""
        def read():
            with _h5.h5_errors(self.path, "(item tree)"):
                found = _items.item_keys(self._f, complete_only)
            return sorted(k for k in found if k.startswith(prefix))

        return self._reading(read)

    def items(self, analysis: str, quantity: str) -> list[tuple[int, str]]:
        """``[(step, key)]`` of the complete items ``analysis/step_*/quantity``, by step."""
        return [(step, key) for step, q, key in self._step_items(analysis) if q == quantity]

    def by_step(self, analysis: str) -> dict[int, dict[str, str]]:
        """``{step: {quantity: key}}`` of the complete per-step items of ``analysis``, steps ascending."""
        out: dict[int, dict[str, str]] = {}
        for step, quantity, key in self._step_items(analysis):
            out.setdefault(step, {})[quantity] = key
        return out

    def _step_items(self, analysis: str) -> list[tuple[int, str, str]]:
        parts = (_split_step_key(k) for k in self.keys(analysis + "/"))
        return sorted((step, q, step_key(a, step, q)) for a, step, q in (p for p in parts if p) if a == analysis)

    # --- block datasets -------------------------------------------------------------------
    def create_block_dataset(self, key: str, name: str, shape, dtype, block_rows: int, *,
                             attrs: dict | None = None) -> None:
        """Preallocate ``name`` of the (incomplete) item ``key``, written in blocks of rows.

        Calling it again with the same shape, dtype, block_rows and ``attrs`` (a fingerprint
        of what the blocks depend on) keeps the blocks already done; anything else restarts it.
        """
        self._writable()
        g = self._prepare_blocks(key)
        with _h5.h5_errors(self.path, f"{key}/{name}", writing=True):
            _blocks.create(g, name, shape, dtype, block_rows, attrs)
            _h5.flush(self._f, fsync=True)

    def _prepare_blocks(self, key: str) -> h5py.Group:
        g = self._item(key)
        if g is not None and g.attrs.get(schema.COMPLETE, False):
            raise OutputExistsError(f"item {key!r} in {self.path} is complete; nothing to write")
        return g if g is not None else self._new_item(key)

    def write_block(self, key: str, name: str, start: int, rows) -> None:
        """Write rows ``start … start+len(rows)-1`` (one whole block) and mark the block done."""
        self._writable()
        g = self._prepare_blocks(key)
        with _h5.h5_errors(self.path, f"{key}/{name}", writing=True):
            block = _blocks.write(g, name, int(start), rows)
            _h5.flush(self._f)
            _blocks.mark_done(g, name, block)
            _h5.flush(self._f, fsync=True)

    def blocks_done(self, key: str, name: str):
        """Bool array (n_blocks,): which blocks of ``name`` in item ``key`` are written."""
        g = self._item(key)
        if g is None or name not in g:
            raise InputError(f"no block dataset {name!r} in item {key!r} of {self.path}; "
                             "create it with create_block_dataset")
        return _blocks.done(g, name)

    def read_block_dataset(self, key: str, name: str) -> np.ndarray:
        """All rows of the block dataset ``name`` of item ``key`` (complete or not).

        Raises:
            InputError: no such block dataset, or blocks of it are still missing.
        """
        done = self.blocks_done(key, name)
        if not done.all():
            raise InputError(f"block dataset {name!r} of {key!r} in {self.path} misses "
                             f"{int((~done).sum())} of {len(done)} blocks; rerun the job to finish it")

        def read():
            with _h5.h5_errors(self.path, f"{key}/{name}", corrupt=True):
                return self._item(key)[name][...]

        return self._reading(read)

    def _writable(self) -> None:
        if self.mode != "a":
            raise InputError(f"{self.path} was opened read-only; open it with mode='a' to write")

    def close(self) -> None:
        """Flush and close (safe to call twice)."""
        if getattr(self, "_f", None) is not None:
            f, self._f = self._f, None
            if self.mode == "a":
                _h5.flush(f, fsync=True)
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
