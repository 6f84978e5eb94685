"""RunFile: a read-only view of a run file, safe to open at any time (also during training).

Only committed rows are visible (the first ``/committed`` rows of each log), and every
vector read is checked against its stored SHA-256 (on top of HDF5's fletcher32), so a
value returned is the value the trainer wrote. Step convention: steps are numbered
``0 … num_steps-1``; a snapshot at step ``s`` holds θ *before* update ``s`` (θ_0 is the
initialization; a final snapshot at ``s = num_steps`` follows the last update).

The view is fixed when the file is opened; :meth:`RunFile.refresh` reopens it to see rows
committed since. The file is opened with ``locking=False`` so that it can be read while
the trainer holds it open for writing.
"""

from __future__ import annotations

import os

import numpy as np

from landscape.errors import CheckpointCorruptError, FileFormatError, InputError
from landscape.io import _h5, schema
from landscape.io._frontier import read_rows, read_table
from landscape.io._layout import check_rows, read_counter


class RunFile:
    """Read a run file written by :class:`~landscape.io.RunWriter`.

    Args:
        path: the run file.

    Raises:
        FileFormatError: missing, damaged, not a run file, or a newer schema version.
        UnsafeFileError: the file links to other files or needs plugins.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._f = None
        self.refresh()

    def refresh(self) -> None:
        """(Re)open the file and load the committed counters, metadata and checksums."""
        self.close()
        self._f = _h5.retry_live(self._open_view, self.path)

    def _open_view(self):
        """Open twice: read the counters, then reopen so the view covers every committed row.

        A second open, made after the counters were read, sees the file's end and the
        dataset shapes as of a time when every counted row had been flushed.
        """
        with _h5.open_read(self.path) as f:
            if _h5.read_schema(f, self.path) != schema.RUN_SCHEMA:
                raise FileFormatError(f"{self.path} is a results file, not a run file; give the "
                                      "run file written by `landscape train`")
            counts, run_sha = read_counter(f, self.path), f.attrs.get("run_sha256")
        f = _h5.open_read(self.path)
        try:
            if f.attrs.get("run_sha256") != run_sha:
                raise FileFormatError(f"{self.path} was replaced while being opened; open it again")
            check_rows(f, counts, self.path)
            self._load(f, counts)
        except BaseException:
            f.close()
            raise
        return f

    def _load(self, f, counts: dict) -> None:
        self._counts = counts
        with _h5.h5_errors(self.path, "/frontier"):
            self._frontier = read_table(f)
        self.meta: dict = _h5.read_json_attr(f, "meta", self.path, default={})
        self.provenance: dict = _h5.read_json_attr(f, "provenance", self.path, default={})
        self.history: list = _h5.read_json_attr(f, "history", self.path, default=[])
        with _h5.h5_errors(self.path, "/ (root attributes)"):
            self._attrs = {k: _plain(v) for k, v in f.attrs.items()
                           if k not in ("meta", "provenance", "history")}
        n = counts["snapshots"]
        self._snap_steps = self._checked(f, "snapshots/step", n)
        self._sha = {v: self._checked(f, f"snapshots/{v}_sha256", n).astype(str)
                     for v in schema.SNAPSHOT_VECTORS if f"snapshots/{v}_sha256" in f or v not in schema.LATER_VECTORS}
        for v in schema.LATER_VECTORS - set(self._sha):  # a file from before the column existed
            self._sha[v] = np.full(n, "", dtype=object).astype(str)
        if not all(self._sha["params"]):
            raise CheckpointCorruptError(f"{self.path}: a committed snapshot has no params sha256; "
                                         "the file is damaged, restore it from a copy")

    def _checked(self, f, name: str, n: int) -> np.ndarray:
        with _h5.h5_errors(self.path, name, corrupt=True):
            rows = read_rows(f[name], 0, n, n, self._frontier.get("/" + name))
        _check_written(rows, name, self.path)
        return rows

    def _reopen(self) -> None:
        """Reopen the handle (fresh metadata) keeping the view: counters and checksums."""
        run_sha = self._attrs.get("run_sha256")
        self.close()
        self._f = _h5.open_read(self.path)
        if self._f.attrs.get("run_sha256") != run_sha:
            raise FileFormatError(f"{self.path} was replaced by another run; open it again")

    # --- description ----------------------------------------------------------------------
    config = property(lambda self: self.meta.get("config", {}), doc="The training configuration.")
    model_name = property(lambda self: self.meta.get("model_name"))
    model_kwargs = property(lambda self: self.meta.get("model_kwargs", {}))
    dataset_spec = property(lambda self: self.meta.get("dataset_spec"))
    dataset_checksum = property(lambda self: self.meta.get("dataset_checksum"))
    seed = property(lambda self: self.meta.get("seed"))
    status = property(lambda self: self._attrs.get("status"), doc="running, complete, stopped or diverged.")
    status_message = property(lambda self: self._attrs.get("status_message", ""))
    batch_size = property(lambda self: int(self._attrs["batch_size"]))
    full_batch = property(lambda self: bool(self._attrs["full_batch"]))
    has_batch_log = property(lambda self: bool(self.meta.get("batch_log", True)),
                             doc="Whether every logged step's minibatch is known (False: an import, or a "
                                 "Recorder called without indices).")
    P = property(lambda self: int(self._attrs["P"]), doc="Number of parameters.")
    B = property(lambda self: int(self._attrs["B"]), doc="Number of BatchNorm buffer floats.")
    created = property(lambda self: self._attrs.get("created"))

    @property
    def file_sha256(self) -> str:
        """Identity of the run: SHA-256 of its creation meta, time and a random id.

        Fixed when the run file is created; unchanged as rows are appended and across
        resumes; different for every new run (also one overwriting an old file).
        """
        return str(self._attrs["run_sha256"])

    run_sha256 = file_sha256

    @property
    def saved_steps(self) -> np.ndarray:
        """Steps of the committed snapshots, ascending (int64)."""
        return self._snap_steps.copy()

    @property
    def num_steps(self) -> int:
        """Number of committed logged steps (steps 0 … num_steps − 1)."""
        return self._counts["steps"]

    # --- snapshots ------------------------------------------------------------------------
    def params(self, step: int) -> np.ndarray:
        """θ at ``step`` (before update ``step``), float32 (P,), checksum-verified.

        Raises:
            InputError: no snapshot at ``step`` (the message lists the saved steps).
            CheckpointCorruptError: the stored row fails fletcher32 or its SHA-256.
        """
        return self._vector("params", step)

    def buffers(self, step: int) -> np.ndarray:
        """BatchNorm running statistics at ``step``, float32 (B,), checksum-verified."""
        if self.B == 0:
            self._row(step)
            return np.zeros(0, np.float32)
        return self._vector("buffers", step)

    def momentum(self, step: int) -> np.ndarray:
        """Optimizer momentum (AdamW: first moment) at ``step``, float32 (P,); InputError where none was saved."""
        return self._vector("momentum", step)

    def second_moment(self, step: int) -> np.ndarray:
        """AdamW's second moment at ``step``, float32 (P,); InputError where none was saved."""
        return self._vector("second_moment", step)

    def has_vector(self, name: str, step: int) -> bool:
        """Whether the snapshot at ``step`` holds ``name`` (params, buffers, momentum, second_moment)."""
        return bool(self._sha[name][self._row(step)])

    def param_sha256(self, step: int) -> str:
        """Hex SHA-256 of θ at ``step`` as stored (see :func:`landscape.io.sha256_array`)."""
        return str(self._sha["params"][self._row(step)])

    def _row(self, step: int) -> int:
        i = int(np.searchsorted(self._snap_steps, int(step)))
        if i == len(self._snap_steps) or self._snap_steps[i] != int(step):
            raise InputError(f"no snapshot at step {step} in {self.path}; saved steps: "
                             f"{_abbrev(self._snap_steps)}")
        return i

    def _vector(self, name: str, step: int) -> np.ndarray:
        i = self._row(step)
        expected = self._sha[name][i]
        if not expected:
            raise InputError(f"no {name} saved at step {step} in {self.path} (the optimizer had none)")
        obj = f"snapshots/{name}[{i}] (step {step})"

        def read():
            row = self._read(f"snapshots/{name}", i, obj)
            return _h5.verify_sha256(row, expected, self.path, obj)

        return _h5.retry_live(read, self.path, self._reopen)

    def _read(self, name: str, sel, obj: str | None = None) -> np.ndarray:
        with _h5.h5_errors(self.path, obj or name, corrupt=True):
            return self._dataset(name)[sel]

    def _dataset(self, name: str):
        ds = self._f[name]
        if self.status == "running":  # a writer may be appending: drop cached metadata
            ds.id.refresh()
        return ds

    def verify(self) -> int:
        """Read and checksum every committed snapshot vector; return how many were checked."""
        checked = 0
        for step in self._snap_steps:
            for name in schema.SNAPSHOT_VECTORS:
                if self._sha[name][self._row(step)] and not (name == "buffers" and self.B == 0):
                    self._vector(name, step)
                    checked += 1
        return checked

    # --- per-step logs --------------------------------------------------------------------
    def batch_indices(self, step: int) -> np.ndarray:
        """Example indices of the minibatch of ``step``, int64 (batch_size,).

        For a full-batch run every step uses all examples: ``arange(num_train)``.
        """
        return self.batch_indices_range(int(step), int(step) + 1)[0]

    def batch_indices_range(self, a: int, b: int) -> np.ndarray:
        """Minibatch indices of steps ``a … b-1``, int64 (b − a, batch_size)."""
        self._check_range(a, b)
        if not self.has_batch_log:
            raise InputError(f"{self.path} has no batch log (it was imported, or recorded without batch "
                             "indices): the minibatches of its steps are unknown")
        if self.full_batch:
            n = int(self.meta.get("num_train") or self.batch_size)
            return np.tile(np.arange(n, dtype=np.int64), (b - a, 1))
        return self._log(f"steps/{schema.BATCH_INDICES}", a, b).astype(np.int64)

    def aug_seed(self, step: int) -> int:
        """Augmentation seed of ``step``."""
        return int(self.aug_seeds(int(step), int(step) + 1)[0])

    def aug_seeds(self, a: int, b: int) -> np.ndarray:
        """Augmentation seeds of steps ``a … b-1``, int64 (b − a,)."""
        self._check_range(a, b)
        return self._log("steps/aug_seed", a, b)

    def _check_range(self, a: int, b: int) -> None:
        if not 0 <= a <= b <= self.num_steps:
            raise InputError(f"steps [{a}, {b}) are not all logged in {self.path}; it holds "
                             f"{self.num_steps} committed steps, numbered from 0")

    def _log(self, name: str, a: int, b: int) -> np.ndarray:
        committed = self._counts[name.split("/")[0]]

        def read():
            with _h5.h5_errors(self.path, name, corrupt=True):
                rows = read_rows(self._dataset(name), a, b, committed, self._frontier.get("/" + name))
            _check_written(rows, name, self.path)
            return rows

        return _h5.retry_live(read, self.path, self._reopen)

    def step_metrics(self) -> dict[str, np.ndarray]:
        """``step``, ``loss`` (minibatch), ``lr`` of every committed step."""
        return self._columns("steps", ("step", "loss", "lr"))

    def eval_metrics(self) -> dict[str, np.ndarray]:
        """``step``, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` per evaluation."""
        return self._columns("evals", schema.EVAL_FIELDS)

    def sharpness(self) -> dict[str, np.ndarray]:
        """``step`` (n,), ``eigenvalues`` (n, k) top Hessian eigenvalues, ``lr`` (n,)."""
        return self._columns("sharpness", ("step", "eigenvalues", "lr"))

    def _columns(self, group: str, names) -> dict[str, np.ndarray]:
        n = self._counts[group]
        return {name: self._log(f"{group}/{name}", 0, n) for name in names}

    def info(self) -> dict:
        """A JSON-able summary: model, sizes, data, progress, status, final metrics, checksums."""
        evals, steps = self.eval_metrics(), self.step_metrics()
        last_eval = {k: float(v[-1]) for k, v in evals.items() if k != "step"} if len(evals["step"]) else {}
        return {"path": self.path, "model": self.model_name, "model_kwargs": self.model_kwargs,
                "params": self.P, "buffers": self.B, "dataset": self.dataset_spec,
                "dataset_checksum": self.dataset_checksum, "seed": self.seed,
                "batch_size": self.batch_size, "full_batch": self.full_batch,
                "steps_logged": self.num_steps, "snapshots": self.saved_steps.tolist(),
                "status": self.status, "status_message": self.status_message,
                "final_loss": float(steps["loss"][-1]) if self.num_steps else None,
                "final_eval": ({"step": int(evals["step"][-1]), **last_eval} if last_eval else None),
                "run_sha256": self.file_sha256, "created": self.created,
                "param_sha256": {int(s): str(h) for s, h in zip(self._snap_steps, self._sha["params"])}}

    def close(self) -> None:
        """Close the file (safe to call twice)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"RunFile({self.path!r}: {self.model_name}, P={self.P}, {self.num_steps} steps, "
                f"{len(self._snap_steps)} snapshots, {self.status})")


def _check_written(rows: np.ndarray, name: str, path) -> None:
    """CheckpointCorruptError if a sentinel column holds the fill value (an unwritten row)."""
    if name.rsplit("/", 1)[-1] in schema.SENTINEL_COLUMNS and (rows == schema.SENTINEL).any():
        raise CheckpointCorruptError(f"{path}: committed rows of {name} read as never written; "
                                     "the file is damaged, restore it from a copy")


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value


def _abbrev(steps: np.ndarray) -> str:
    if len(steps) == 0:
        return "none"
    s = [str(int(x)) for x in steps]
    return ", ".join(s) if len(s) <= 12 else ", ".join(s[:5] + ["…"] + s[-5:]) + f" ({len(s)} in all)"
