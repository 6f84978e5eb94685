"""RunWriter: the trainer's append-only, crash-consistent log of one training run.

Layout: see :mod:`landscape.io.schema` and ``docs/file-formats.md``. The protocol
(docs/file-formats.md, "Commit semantics"):

* every dataset is created with the file, under a temporary name, and the file gets its
  final name only once its schema is flushed (and fsynced): a kill never leaves a
  half-created run file at ``path``;
* ``append_*`` resize datasets and write rows; nothing is visible to readers until
  :meth:`RunWriter.commit` flushes the rows, then advances ``/committed``, then flushes
  again (and fsyncs when asked). A kill at any moment leaves the committed prefix intact;
* ``mode="resume"`` truncates every log to its committed rows and then rolls the step,
  eval and sharpness logs back to the last committed snapshot ``s`` (keeping rows labelled
  ``< s``), so training continues from ``θ_s`` at step ``s`` and re-logs everything from there.
"""

from __future__ import annotations

import hashlib
import os
import uuid

import numpy as np

from landscape.errors import InputError, OutputExistsError
from landscape.io import _atomic, _h5, schema
from landscape.io._frontier import FrontierTable
from landscape.io._layout import create_layout, read_counts, write_counts
from landscape.io.provenance import provenance, utc_now

_MODES = ("create", "resume", "overwrite")


class RunWriter:
    """Append steps, snapshots, evaluations and sharpness rows to a run file; commit them.

    Args:
        path: the run file.
        mode: ``"create"`` (refuse an existing file), ``"resume"`` (continue one whose config
            matches) or ``"overwrite"`` (build a new file under a temporary name and replace
            the old one at the first :meth:`commit`, or at :meth:`close`; the old file is
            untouched until then, and kept if the writer exits with an exception first).
        meta: JSON-able run description; must hold ``"config"`` (dict). Usual keys: model_name,
            model_kwargs, dataset_spec, dataset_checksum, seed, param_names, param_shapes,
            buffer_names, buffer_shapes, batch_size, num_train, full_batch; ``batch_log=False``
            for a run without a batch log (no indices are logged, ``batch_size`` may be 0, and
            snapshots may be labelled with steps that are not logged: an imported checkpoint).
        P: number of parameters (length of θ).
        B: number of floats in the BatchNorm buffers (0 for none).
        batch_size: indices logged per step (ignored when ``meta["full_batch"]``).
        resumable: config keys allowed to differ on resume (default
            :data:`schema.RESUMABLE_CONFIG_KEYS`).

    Raises:
        OutputExistsError: ``mode="create"`` and ``path`` exists.
        ConfigMismatchError: ``mode="resume"`` and the stored run differs (keys named).
        FileFormatError: ``mode="resume"`` and ``path`` is missing or not a run file.
    """

    def __init__(self, path, *, mode: str, meta: dict, P: int, B: int, batch_size: int,
                 resumable=None):
        self.path = os.fspath(path)
        _check_args(mode, meta, P, B, batch_size)
        self.P, self.B, self.batch_size = int(P), int(B), int(batch_size)
        self.full_batch = bool(meta.get("full_batch", False))
        self.batch_log = bool(meta.get("batch_log", True))
        self._meta, self._tmp = meta, None
        if mode == "resume":
            from landscape.io._resume import open_for_resume
            self._f = open_for_resume(self, resumable)
        else:
            self._f = self._create(mode)
        self._committed = read_counts(self._f, self.path)
        self._n = dict(self._committed)
        self._ds = {g: dict(self._f[g].items()) for g in schema.COUNTED_GROUPS}  # cached handles
        self._last = _last_steps(self._f, self._n)
        self._frontier = FrontierTable(self._f)

    # --- opening -------------------------------------------------------------------------
    def _create(self, mode: str):
        exists = os.path.lexists(self.path)
        if exists and mode == "create":
            _raise_exists(self.path, None)
        if os.path.isdir(self.path):
            raise InputError(f"{self.path} is a directory; give a file name for the run file")
        tmp = _atomic.temp_path(self.path)
        _atomic.remove_stale_temps(self.path)
        f = _h5.open_write(tmp, "x")
        try:
            create_layout(f, self._root_attrs(), P=self.P, B=self.B, batch_size=self.batch_size,
                          full_batch=self.full_batch, batch_log=self.batch_log)
            _h5.flush(f, fsync=True)
            if mode == "create" or not exists:
                _atomic.publish(tmp, self.path, replace=mode == "overwrite")
            else:
                self._tmp = tmp
        except BaseException as e:
            f.close()
            os.remove(tmp)
            if isinstance(e, FileExistsError):
                _raise_exists(self.path, e)
            raise
        return f

    def _root_attrs(self) -> dict:
        created = utc_now()  # the run's identity: its creation meta, time and a random id
        ident = _h5.json_dumps({"meta": self._meta, "created": created, "uuid": uuid.uuid4().hex})
        return {"created": created, "run_sha256": hashlib.sha256(ident.encode()).hexdigest(),
                "meta": self._meta, "provenance": provenance(),
                "history": [{"event": "create", "time": created}]}

    # --- appending ------------------------------------------------------------------------
    def append_steps(self, steps, batch_indices, aug_seeds, losses, lrs) -> None:
        """Log ``n`` consecutive training steps (uncommitted until :meth:`commit`).

        Args:
            steps: int (n,), must be ``next, next+1, ...`` where ``next`` follows the last step.
            batch_indices: int (n, batch_size) example indices of each step's minibatch, or
                None for a full-batch run.
            aug_seeds: int64 (n,) seed of each step's augmentation.
            losses, lrs: float (n,) minibatch loss and learning rate of each step.
        """
        steps = _vector(steps, "steps", np.int64)
        n, first = len(steps), self._n["steps"]
        if n == 0:
            return
        if not np.array_equal(steps, np.arange(first, first + n)):
            raise InputError(f"steps must continue the log contiguously from step {first}; got "
                             f"{steps[:3].tolist()}… (steps are numbered 0, 1, 2, … without gaps)")
        rows = {"step": steps, "aug_seed": _vector(aug_seeds, "aug_seeds", np.int64, n),
                "loss": _vector(losses, "losses", np.float64, n), "lr": _vector(lrs, "lrs", np.float64, n)}
        if self.full_batch or not self.batch_log:
            if batch_indices is not None:
                kind = "a full-batch run (meta['full_batch'])" if self.full_batch else "a run without a batch log"
                raise InputError(f"this is {kind}; pass batch_indices=None")
        else:
            rows[schema.BATCH_INDICES] = self._batch_rows(batch_indices, n)
        self._append("steps", rows, n)

    def _batch_rows(self, batch_indices, n: int) -> np.ndarray:
        if batch_indices is None:
            raise InputError("batch_indices is None but meta['full_batch'] is false; pass the "
                             f"(n, {self.batch_size}) minibatch indices")
        idx = np.asarray(batch_indices)
        if idx.shape != (n, self.batch_size) or idx.dtype.kind not in "iu":
            raise InputError(f"batch_indices must be integers of shape ({n}, {self.batch_size}), "
                             f"got {idx.dtype} {idx.shape}")
        hi = int(self._meta.get("num_train") or np.iinfo(np.int32).max)
        if idx.size and (idx.min() < 0 or idx.max() >= hi):
            raise InputError(f"batch_indices must lie in [0, {hi}); got [{idx.min()}, {idx.max()}]")
        return idx.astype(schema.BATCH_INDEX_DTYPE)

    def append_snapshot(self, step: int, theta, buffers, momentum=None, second_moment=None) -> None:
        """Store θ, BN buffers and optimizer state at ``step`` (θ before update ``step``) with sha256s.

        ``momentum`` is SGD's momentum buffer or AdamW's first moment; ``second_moment`` AdamW's
        second moment (None: not saved; refused by a file resumed from before it existed).

        Re-appending the last committed snapshot with identical θ (what a resumed trainer
        does when it restarts at that step) is accepted and stores nothing.
        """
        step = int(step)
        theta = _vector(theta, "theta", np.float32, self.P)
        if self._last["snapshots"] is not None and step <= self._last["snapshots"]:
            if step == self._last["snapshots"] and self._same_snapshot(theta):
                return
            raise InputError(f"snapshot steps must increase: step {step} after {self._last['snapshots']}")
        rows = {"step": np.array([step], np.int64), "params": theta[None]}
        rows.update(self._optional_rows(buffers, momentum))
        rows.update(self._second_moment_row(second_moment))
        rows["params_sha256"] = _sha_row(theta)
        self._append("snapshots", rows, 1)

    def _optional_rows(self, buffers, momentum) -> dict:
        rows = {}
        buffers = np.zeros(0, np.float32) if buffers is None and self.B == 0 else buffers
        buffers = _vector(buffers, "buffers", np.float32, self.B)
        rows["buffers_sha256"] = _sha_row(buffers)
        if self.B:
            rows["buffers"] = buffers[None]
        rows["momentum_sha256"] = _sha_row(None)
        if momentum is not None:
            momentum = _vector(momentum, "momentum", np.float32, self.P)
            rows["momentum"], rows["momentum_sha256"] = momentum[None], _sha_row(momentum)
        return rows

    def _second_moment_row(self, second_moment) -> dict:
        if "second_moment_sha256" not in self._ds["snapshots"]:  # a file from before the column existed
            if second_moment is not None:
                raise InputError(f"{self.path} predates the second-moment column; train a new run for AdamW")
            return {}
        if second_moment is None:
            return {"second_moment_sha256": _sha_row(None)}
        v = _vector(second_moment, "second_moment", np.float32, self.P)
        return {"second_moment": v[None], "second_moment_sha256": _sha_row(v)}

    def _same_snapshot(self, theta: np.ndarray) -> bool:
        i = self._n["snapshots"] - 1
        stored = self._ds["snapshots"]["params_sha256"][i].decode()
        return i == self._committed["snapshots"] - 1 and stored == _h5.sha256_array(theta)

    def append_eval(self, step: int, train_loss, train_acc, test_loss, test_acc) -> None:
        """Log a full train/test evaluation of θ at ``step`` (steps strictly increasing)."""
        values = {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss,
                  "test_acc": test_acc}
        rows = {k: np.array([float(v)], np.float64) for k, v in values.items()}
        rows["step"] = self._next_labelled("evals", step)
        self._append("evals", rows, 1)

    def append_sharpness(self, step: int, eigenvalues, lr: float) -> None:
        """Log the top-k Hessian eigenvalues at ``step`` (k fixed by the first row) and the lr."""
        lam = np.asarray(eigenvalues, np.float64).reshape(-1)
        ds = self._ds["sharpness"]["eigenvalues"]
        k = ds.shape[1] if self._n["sharpness"] or ds.shape[0] else len(lam)
        if len(lam) != k or k == 0:
            raise InputError(f"eigenvalues must have the k={k} entries of the earlier rows, got {len(lam)}")
        if ds.shape[1] != k:
            ds.resize(k, axis=1)
        rows = {"step": self._next_labelled("sharpness", step), "eigenvalues": lam[None],
                "lr": np.array([float(lr)], np.float64)}
        self._append("sharpness", rows, 1)

    def _next_labelled(self, group: str, step: int) -> np.ndarray:
        last = self._last[group]
        if last is not None and int(step) <= last:
            raise InputError(f"{group} steps must increase: step {int(step)} after {last}")
        return np.array([int(step)], np.int64)

    def _append(self, group: str, rows: dict, n: int) -> None:
        start = self._n[group]
        with _h5.h5_errors(self.path, group, writing=True):
            columns = self._ds[group]
            for ds in columns.values():  # every column grows, also those without a value (momentum)
                ds.resize(start + n, axis=0)
            for name, values in rows.items():
                columns[name][start:start + n] = values
        self._n[group] = start + n
        self._last[group] = int(rows["step"][-1])

    # --- committing ------------------------------------------------------------------------
    def commit(self, fsync: bool = False) -> None:
        """Make every appended row visible: flush rows, advance ``/committed``, flush (fsync).

        Raises:
            InputError: a snapshot, eval or sharpness row is labelled with a step whose
                updates are not yet logged (append the steps up to it first).
        """
        self._check_labels()
        with _h5.h5_errors(self.path, schema.COMMITTED, writing=True):
            _h5.flush(self._f)
            self._frontier.write(self._n)  # digests of the frontier blocks, flushed with the counts
            write_counts(self._f, self._n)
            _h5.flush(self._f, fsync=fsync or self._tmp is not None)
        self._committed = dict(self._n)
        self._publish()

    def _check_labels(self) -> None:
        if not self.batch_log:
            return  # snapshots of an imported checkpoint need no logged steps before them
        n_steps = self._n["steps"]
        for group in ("snapshots", "evals", "sharpness"):
            last = self._last[group]
            if last is not None and last > n_steps:
                raise InputError(f"{group} row at step {last} but only {n_steps} steps are logged; "
                                 f"append steps up to {last - 1} before committing")

    def _publish(self) -> None:
        if self._tmp is not None:
            _atomic.publish(self._tmp, self.path, replace=True)
            self._tmp = None

    def set_status(self, status: str, message: str = "") -> None:
        """Record the run's status (running, complete, stopped, diverged); flushed and fsynced."""
        if status not in schema.STATUSES:
            raise InputError(f"status must be one of {schema.STATUSES}, got {status!r}")
        with _h5.h5_errors(self.path, "/@status", writing=True):
            self._f.attrs["status"], self._f.attrs["status_message"] = status, str(message)
            _h5.flush(self._f, fsync=True)

    @property
    def last_snapshot_step(self) -> int | None:
        """Step of the last committed snapshot (the resume point), or None."""
        n = self._committed["snapshots"]
        return int(self._ds["snapshots"]["step"][n - 1]) if n else None

    @property
    def committed_steps(self) -> int:
        """Number of committed logged steps (the steps 0 … committed_steps − 1)."""
        return self._committed["steps"]

    def close(self, *, publish: bool = True) -> None:
        """Flush, fsync and close; uncommitted rows stay invisible. Safe to call twice."""
        if self._f is None:
            return
        f, self._f, self._ds = self._f, None, {}
        try:
            with _h5.h5_errors(self.path, writing=True):
                _h5.flush(f, fsync=True)
        finally:
            f.close()
        if publish:
            self._publish()
        elif self._tmp is not None:
            os.remove(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(publish=exc_type is None or self._tmp is None)


def _check_args(mode, meta, P, B, batch_size) -> None:
    if mode not in _MODES:
        raise InputError(f"mode must be one of {_MODES}, got {mode!r}")
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise InputError("meta must be a dict with a 'config' dict (the training configuration)")
    smallest_batch = 1 if meta.get("batch_log", True) else 0
    if int(P) < 1 or int(B) < 0 or int(batch_size) < smallest_batch:
        raise InputError(f"need P >= 1, B >= 0, batch_size >= 1; got P={P}, B={B}, batch_size={batch_size}")
    _h5.json_dumps(meta)  # JSON-able, or InputError naming the value


def _vector(x, name: str, dtype, n: int | None = None) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or (n is not None and len(a) != n):
        raise InputError(f"{name} must be a vector of length {n if n is not None else 'n'}, got shape {a.shape}")
    if np.dtype(dtype).kind == "f" and a.dtype.kind not in "fiu":
        raise InputError(f"{name} must be floating point, got {a.dtype}")
    if np.dtype(dtype).kind == "i" and a.dtype.kind not in "iu":
        raise InputError(f"{name} must be integers, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _last_steps(f, counts: dict) -> dict:
    return {g: (int(f[g]["step"][counts[g] - 1]) if counts[g] else None) for g in schema.COUNTED_GROUPS}


def _raise_exists(path, cause) -> None:
    raise OutputExistsError(f"{path} exists; pass --resume to continue it or --overwrite to "
                            "replace it") from cause


def _sha_row(a) -> np.ndarray:
    return np.array([b"" if a is None else _h5.sha256_array(a).encode()], schema.SHA_DTYPE)
