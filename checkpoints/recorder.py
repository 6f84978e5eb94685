"""Record a training loop you wrote yourself into a run file that every analysis reads.

Example (a plain PyTorch loop; ``mynets.py`` defines ``Net``, ``mydata.py`` the data)::

    import landscape as ls
    from checkpoints import Recorder

    data = ls.load_dataset("mydata:load")                # or "mnist1d", "path/to/file.py:load", ...
    model = ls.build_model("mynets:Net", seed=0, width=64)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with Recorder("run.h5", model, opt, dataset=data, save_every=50) as rec:
        for step in range(1000):
            idx = torch.randint(0, data.num_train, (128,))          # the batch, as indices
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad(); loss.backward(); opt.step()
            rec.step(idx, loss=loss)                                 # once per step, after opt.step()

    # then: landscape hessian run.h5 --steps all --k 10 --out res.h5, linesearch, surface, ...

What is written is the run-file format of the trainer (:mod:`landscape.io`): θ, BatchNorm
buffers and the optimizer state (SGD momentum; AdamW's two moments) at step 0, at the chosen
steps and at the end; every step's batch indices, augmentation seed, learning rate and loss;
the model's import path and arguments, the data set's spec and SHA-256, and the optimizer's
class and hyperparameters. Step numbering is the trainer's: the snapshot "at step s" holds θ
after s updates; ``rec.step(...)`` logs update t (its batch and the loss at θ_t, computed
before the update) and then, if t + 1 is a chosen step, saves θ_{t+1}.

The learning rate and the optimizer's hyperparameters are read through an
``optimizer.step`` pre-hook, at the moment each update is applied, so a scheduler may step
before or after ``rec.step``; the hook also checks that ``rec.step`` is called exactly once per
optimizer step. Snapshots are committed (and fsynced at most once a second) as they are taken,
so a SIGKILL leaves a readable file holding every snapshot taken before it;
``Recorder(..., mode="resume")`` reopens such a file at its last snapshot and
:meth:`Recorder.restore` loads θ, buffers and optimizer state into your model and optimizer.

Which analyses need what (also in ``docs/your-own-models.md``): everything at saved steps works
from the snapshots alone. θ at an *unsaved* step (``Run.theta(t)``, ``landscape surface`` with a
``step:T`` direction between snapshots, ``landscape train --batches-from``) needs the batch log
and an optimizer the toolkit implements (SGD, AdamW), and your loop must do nothing the log does
not hold (``augment="custom"``, gradient clipping, another loss): the replay is checked against
the next snapshot and refused with one line when it does not reproduce it.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import torch

from checkpoints import optimizer_state as opt_state
from checkpoints.config import TrainConfig
from landscape.errors import InputError, NonFiniteError

LOG_BLOCK = 256  # steps of per-step log buffered between commits
FSYNC_INTERVAL_S = 1.0  # snapshots closer than this to the last fsync are flushed (kill-safe), not fsynced
AUGMENTATION = (False, True, "custom")  # none; checkpoints.augment.augment(x, aug_seed); your own


class Recorder:
    """Log a user's training loop into a run file (see the module docstring).

    Args:
        path: the run file to write.
        model: the network being trained (θ = its parameters with ``requires_grad``, in order).
        optimizer: its ``torch.optim`` optimizer (None: no optimizer state, no replay).
        dataset: the training data, a :class:`landscape.datasets.Dataset` (from
            :func:`landscape.load_dataset`, also with ``"package.module:factory"``) or a spec
            string given to :func:`landscape.load_dataset` with ``dataset_kwargs``. Batch indices
            refer to its ``x_train`` rows.
        model_spec: how analyses rebuild the model: ``"package.module:factory"``,
            ``"path/to/file.py:factory"``, a plugin or registered name. Default: the model's
            ``build_spec`` (from :func:`landscape.build_model`), else its class's import path.
        model_kwargs: the factory's keyword arguments (JSON).
        loss: ``"cross_entropy"`` or ``"mse"``: the loss the analyses evaluate (and replay uses).
        batch_size: indices per step (default: the length of the first batch).
        full_batch: every step uses the whole training set (``rec.step(None, ...)``).
        batch_log: False: steps are logged without indices (``rec.step(None, ...)``); saved steps
            are analysed as always, unsaved ones cannot be replayed.
        save_every: snapshot every k steps (0: only step 0, ``save_steps`` and the end).
        save_steps: snapshot at these steps as well.
        augment: False (none), True (your loop calls ``checkpoints.augment.augment(x, aug_seed)``:
            replayable), or ``"custom"`` (your own; logged seeds, no replay).
        seed: the run's seed (the seeded subsets analyses draw, e.g. ``--subset``).
        not_replayable: say here why your loop cannot be replayed from the log (e.g. "gradient
            clipping"); unsaved steps are then refused with this reason.
        mode: ``"create"``, ``"overwrite"`` (replace an existing file once the new one commits)
            or ``"resume"`` (continue a killed run at its last snapshot; see :meth:`restore`).
        fsync: fsync at snapshots (at most once a second) so that a node crash keeps them.

    Raises:
        InputError: a model spec that does not rebuild this network, bad arguments.
        OutputExistsError: ``mode="create"`` and ``path`` exists.
    """

    def __init__(self, path, model: torch.nn.Module, optimizer=None, *, dataset, dataset_kwargs=None,
                 model_spec: str | None = None, model_kwargs: dict | None = None, loss: str = "cross_entropy",
                 batch_size: int | None = None, full_batch: bool = False, batch_log: bool = True,
                 save_every: int = 100, save_steps=(), augment=False, seed: int = 0, mode: str = "create",
                 fsync: bool = True, not_replayable: str = ""):
        from checkpoints.recorder_setup import check_args, dataset_of, model_spec_of

        check_args(mode, augment, loss, save_every, batch_size)
        self.path, self.model, self.optimizer, self.mode = os.fspath(path), model, optimizer, mode
        self.data = dataset_of(dataset, dataset_kwargs)
        self.model_spec, self.model_kwargs, self.model_origin = model_spec_of(model, model_spec, model_kwargs)
        self.loss, self.full_batch, self.batch_log = loss, bool(full_batch), bool(batch_log) and not full_batch
        self.batch_size = self.data.num_train if full_batch else batch_size
        self.save_every, self.save_steps, self.augment = int(save_every), {int(s) for s in save_steps}, augment
        self.seed, self.fsync, self.not_replayable = int(seed), fsync, str(not_replayable)
        self.described = opt_state.describe(optimizer, model)
        self.t, self.writer, self.block, self.last_fsync = 0, None, [], -math.inf
        self._updates, self._hook, self._theta0, self._offset = 0, None, None, 0
        self.start_step = 0

    # --- the loop's side -------------------------------------------------------------------
    def __enter__(self) -> Recorder:
        self.open()
        return self

    def open(self) -> None:
        """Start recording: remember S_0 (or reopen a killed run at its last snapshot)."""
        if self._hook is None and self.optimizer is not None:
            self._hook = self.optimizer.register_step_pre_hook(self._before_update)
        if self.mode == "resume":
            from checkpoints.recorder_setup import open_resumed

            self.writer, self.t, self._offset = open_resumed(self)
            self.start_step = self.t
        else:
            self._theta0 = self._snapshot_arrays()
            _, _, adam_step = opt_state.state_vectors(self.optimizer, self.model, self.described.name)
            self._offset = int(adam_step or 0)
            if self.batch_size is not None or not self.batch_log:  # else: the first batch tells its size
                self._ensure_writer(None)

    def step(self, indices=None, *, loss, lr: float | None = None, aug_seed: int = 0, step: int | None = None) -> int:
        """Log update t (call once per optimizer step, after ``optimizer.step()``); return t + 1.

        Args:
            indices: the batch's example indices into ``dataset.x_train`` (tensor, array or list);
                None for ``full_batch`` or ``batch_log=False``.
            loss: the minibatch loss at θ_t (a float or a 0-d tensor).
            lr: the learning rate of this update (default: the optimizer's, read when it stepped).
            aug_seed: the seed of this step's augmentation (``augment=True``: the seed your loop
                passed to ``checkpoints.augment.augment``).
            step: optional check: the number of this update (0, 1, 2, … in order).

        Raises:
            InputError: indices outside the data set or of the wrong size, steps out of order,
                no (or two) optimizer steps since the last call.
            NonFiniteError: the loss is NaN or infinite (the run is marked diverged).
        """
        if step is not None and int(step) != self.t:
            raise InputError(f"rec.step(step={step}) but the recorder expects step {self.t}: steps are numbered "
                             "0, 1, 2, … and logged once each, in order")
        idx = self._indices(indices)
        lr = self._lr_of_update(lr)
        self._ensure_writer(idx)
        self.block.append((self.t, idx, int(aug_seed), _detached(loss), float(lr)))
        self.t += 1
        if self.t in self.save_steps or (self.save_every and self.t % self.save_every == 0):
            self.save()
        elif len(self.block) >= LOG_BLOCK:
            self._flush()
            self.writer.commit()
        return self.t

    def log_eval(self, train_loss: float, train_acc: float, test_loss: float, test_acc: float) -> None:
        """Log your loop's full train/test evaluation of θ at the current step t (drawn in the training figure)."""
        if self.writer is None:
            raise InputError("log_eval() needs an open recording: call it inside the with block, after a first step")
        self._flush()
        self.writer.append_eval(self.t, train_loss, train_acc, test_loss, test_acc)

    def save(self) -> None:
        """Snapshot θ, buffers and optimizer state now (at step t), and commit everything logged.

        Raises:
            InputError: called between ``optimizer.step()`` and :meth:`step` (θ is then θ_{t+1}).
        """
        if self.writer is None:
            return
        if self._updates:
            raise InputError(f"save() after optimizer.step() but before rec.step(): the model holds θ_{self.t + 1}, "
                             f"not θ_{self.t}; call rec.step() first (it saves at the chosen steps)")
        self._flush()
        theta, buffers, m, v = self._snapshot_arrays()
        self.writer.append_snapshot(self.t, theta, buffers, m, v)
        now = time.monotonic()
        durable = self.fsync and now - self.last_fsync >= FSYNC_INTERVAL_S
        self.writer.commit(fsync=durable)
        self.last_fsync = now if durable else self.last_fsync

    def restore(self) -> int:
        """Load the resumed snapshot (θ, buffers, optimizer state) into the model and optimizer.

        Returns:
            The step to continue at (the first ``rec.step`` logs this update).
        """
        from checkpoints.recorder_setup import restore

        return restore(self)

    def close(self, status: str = "complete", message: str = "") -> None:
        """Snapshot the last step (if not saved), commit, set the status and close the file.

        No final snapshot is taken when the optimizer stepped since the last :meth:`step` (the
        model is then ahead of the log); the status message says so.
        """
        self._finish(status, message, snapshot=True)

    def _finish(self, status: str, message: str, snapshot: bool) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.writer is None:
            return
        try:
            if self._updates:
                message = message or (f"{self._updates} optimizer step(s) after step {self.t} were not recorded; "
                                      f"the last snapshot is the one before")
            if snapshot and not self._updates and (self.writer.last_snapshot_step != self.t or self.block):
                self.save()
            else:  # keep every logged step; θ now may not be θ_t (the loop failed mid-step)
                self._flush()
                self.writer.commit(fsync=self.fsync)
            self.writer.set_status(status, message)
        finally:
            self.writer.close()
            self.writer = None

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        elif self.writer is not None and not isinstance(exc, NonFiniteError):
            self._finish("stopped", f"the training loop raised {exc_type.__name__} after step {self.t}", snapshot=False)
        else:
            self.close_quietly()
        return False

    def close_quietly(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    @property
    def optimizer_steps_pending(self) -> int:
        """Optimizer steps taken since the last :meth:`step` (must be 1 when it is called)."""
        return self._updates

    # --- internals ---------------------------------------------------------------------------
    def _before_update(self, optimizer, args, kwargs) -> None:
        self._updates += 1
        self._lr = float(optimizer.param_groups[0]["lr"])

    def _lr_of_update(self, lr: float | None) -> float:
        if self.optimizer is not None:
            seen, self._updates = self._updates, 0
            if seen != 1:
                raise InputError(f"rec.step() at step {self.t} saw {seen} optimizer steps since the last call; call "
                                 "it exactly once per optimizer.step(), right after it (a skipped or accumulated "
                                 "step cannot be recorded as one update)")
            lr = self._lr if lr is None else lr
        if lr is None:
            raise InputError("pass lr= to rec.step() (the recorder has no optimizer to read it from)")
        return lr

    def _indices(self, indices) -> np.ndarray | None:
        from checkpoints.recorder_setup import check_indices

        return check_indices(self, indices)

    def _ensure_writer(self, idx) -> None:
        if self.writer is not None:
            return
        from checkpoints.recorder_setup import create_writer

        if self.batch_size is None and idx is not None:
            self.batch_size = len(idx)
        self.writer = create_writer(self)
        theta, buffers, m, v = self._theta0
        self.writer.append_snapshot(0, theta, buffers, m, v)
        self.writer.commit(fsync=self.fsync)

    def _flush(self) -> None:
        if not self.block:
            return
        rows, self.block = self.block, []
        losses = np.array([float(r[3]) for r in rows], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(losses))
        n = int(bad[0]) if len(bad) else len(rows)
        if n:
            idx = None if rows[0][1] is None else np.stack([r[1] for r in rows[:n]])
            self.writer.append_steps([r[0] for r in rows[:n]], idx, [r[2] for r in rows[:n]], losses[:n],
                                     [r[4] for r in rows[:n]])
        if len(bad):
            self._diverged(rows[n][0], losses[n])

    def _diverged(self, t: int, loss: float) -> None:
        msg = f"the loss is {loss} at step {t}; {self.path} keeps the steps before it and the snapshots up to it"
        self.writer.commit(fsync=self.fsync)
        self.writer.set_status("diverged", msg)
        raise NonFiniteError(msg)

    def _snapshot_arrays(self):
        from landscape.params import ParamSpec, flatten_buffers

        theta = ParamSpec.from_module(self.model).theta_of(self.model).cpu().numpy()
        buffers = flatten_buffers(self.model).numpy().astype(np.float32)
        m, v, _ = opt_state.state_vectors(self.optimizer, self.model, self.described.name)
        return theta, buffers, None if m is None else m.numpy(), None if v is None else v.numpy()

    def config(self) -> TrainConfig:
        """The run's description as a :class:`TrainConfig` (``source="recorder"``)."""
        from checkpoints.recorder_setup import config_of

        return config_of(self)


def _detached(loss):
    return loss.detach() if isinstance(loss, torch.Tensor) else float(loss)


class IndexedDataset(torch.utils.data.Dataset):
    """A map-style data set whose items end with their index: ``(*item, i)``.

    Wrap the data set your ``DataLoader`` reads so that every batch carries the example
    indices the :class:`Recorder` logs (``batch[-1]``). Items that are not tuples become
    ``(item, i)``.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        item = self.dataset[i]
        return (*item, i) if isinstance(item, tuple) else (item, i)


def with_indices(dataset) -> IndexedDataset:
    """:class:`IndexedDataset` of ``dataset``; a :class:`landscape.datasets.Dataset` becomes its training split."""
    if all(hasattr(dataset, n) for n in ("x_train", "y_train")):
        dataset = torch.utils.data.TensorDataset(dataset.x_train, dataset.y_train)
    return IndexedDataset(dataset)
