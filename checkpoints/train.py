"""The training loop: SGD or AdamW on the flat θ, every step's batch logged, crash-safe resume.

:func:`train` runs a :class:`~checkpoints.config.TrainConfig` and writes one run file
(layout owned by :mod:`landscape.io`); :func:`resume` continues a killed or stopped run.

At each step boundary t (state S_t = (θ_t, m_t, b_t), see :mod:`checkpoints.step`) the loop
records, in this order: a full train/test evaluation, an online sharpness measurement, a
snapshot of S_t (rows written, flushed, committed, fsynced — at most once per
:data:`FSYNC_INTERVAL_S`, so that ``--save-all`` stays cheap), then applies update t. The
per-step log (batch indices, augmentation seed, loss, η) is written in blocks of
:data:`LOG_BLOCK` steps and committed with each block and each snapshot.

Guarantees (tests in ``tests/checkpoints``):

* the update is a pure function of (S_t, I_t, a_t, η_t), so a run killed at any moment and
  resumed from its last committed snapshot ends bitwise identical (CPU) to the run never
  interrupted: the batch plan and the schedule are stateless, the optimizer state (momentum;
  AdamW's two moments) and BN buffers are part of every snapshot, and ``RunWriter(mode="resume")`` drops the log rows
  written after that snapshot;
* SIGTERM/SIGUSR1 stop at the next step boundary: the state is snapshotted and committed,
  the status set to ``stopped``, and the process exits 0;
* a non-finite loss (or θ) stops the run: the log keeps the steps before it, the status is
  ``diverged`` and :class:`~landscape.errors.NonFiniteError` names the step;
* a full disk raises :class:`DiskFullError` (a :class:`~landscape.errors.LandscapeError`).
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from checkpoints.config import TrainConfig
from checkpoints.recording import SharpnessMonitor, StopRequest, eval_steps, sharpness_steps, snapshot_steps
from checkpoints.schedules import make_schedule
from checkpoints.setup import RunSetup, prepare_fresh, prepare_resume
from checkpoints.step import deterministic_mode
from landscape.errors import LandscapeError, NonFiniteError
from landscape.stability import run_constant

LOG_BLOCK = 256  # steps of per-step log buffered between commits (a few KiB per step at most)
FSYNC_INTERVAL_S = 1.0  # snapshots closer than this to the last fsync are flushed (kill-safe), not fsynced
CUBLAS_WORKSPACE = ":4096:8"  # deterministic cuBLAS workspaces (PyTorch's reproducibility notes; harmless on CPU)
PAUSE_ENV = "LANDSCAPE_TRAIN_TEST_PAUSE"  # test hook, see _pause(): "snapshot:<step>" or "step:<step>"


class DiskFullError(LandscapeError, OSError):
    """The disk holding the run file is full."""


@dataclass(frozen=True)
class TrainResult:
    """What a call to :func:`train` or :func:`resume` did.

    Attributes:
        path: the run file (None when trained without one).
        status: ``complete`` or ``stopped`` (a SIGTERM).
        step: the last step reached (θ_step is the final state).
        total_steps: T, the planned length.
        final_loss: the last minibatch loss.
        final_eval: the last full evaluation ``{step, train_loss, train_acc, test_loss, test_acc}``.
        wall_time: seconds spent in the loop.
    """

    path: str | None
    status: str
    step: int
    total_steps: int
    final_loss: float | None
    final_eval: dict = field(default_factory=dict)
    wall_time: float = 0.0


def train(config: TrainConfig, out: str | os.PathLike | None, *, overwrite: bool = False,
          progress: bool = True, fsync: bool = True) -> TrainResult:
    """Train a fresh run and write it to ``out`` (None: no run file, for benchmarks).

    Args:
        config: the run's configuration (``init_from``/``batches_from`` make a sibling run).
        out: the run file to create; an existing file is an :class:`OutputExistsError`
            unless ``overwrite`` (the old file is replaced only once the new one is valid).
        progress: show a tqdm bar (steps/s, loss, ETA).
        fsync: fsync the file at snapshots (at most once per :data:`FSYNC_INTERVAL_S`) and at the
            end, so that it survives a node crash, not only a killed process.

    Raises:
        InputError, ConfigMismatchError, OutputExistsError, NonFiniteError, DiskFullError,
        FileFormatError: see the module docstring.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # before CUDA starts
    with deterministic_mode(config):
        setup = prepare_fresh(config, out, overwrite=overwrite)
        return _guarded(setup, progress, fsync)


def resume(out: str | os.PathLike, *, steps: int | None = None, epochs: int | None = None,
           device: str | None = None, data_dir: str | None = None, progress: bool = True,
           fsync: bool = True, config: TrainConfig | None = None) -> TrainResult:
    """Continue the run in ``out`` from its last committed snapshot, to its (new) end.

    Args:
        out: an existing run file.
        steps, epochs: a new length (to train longer); None keeps the stored one.
        device: run the rest on another device (bitwise equality is promised on one device only).
        data_dir: where the CIFAR-10 files are on this machine (checked by checksum).
        config: if given, it must equal the stored config up to the resumable fields
            (:class:`~landscape.errors.ConfigMismatchError` otherwise).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # before CUDA starts
    setup = prepare_resume(out, steps=steps, epochs=epochs, device=device, data_dir=data_dir, expect=config)
    with deterministic_mode(setup.cfg):
        return _guarded(setup, progress, fsync)


def _guarded(setup: RunSetup, progress: bool, fsync: bool) -> TrainResult:
    """Run the loop, turning a full disk into :class:`DiskFullError` and closing the writer."""
    try:
        with setup.writer:
            return Loop(setup, progress, fsync).run()
    except OSError as err:
        if _is_enospc(err):
            raise DiskFullError(
                f"no space left on the device holding {setup.out}: the run file keeps everything up "
                f"to its last committed snapshot; free some space and continue with "
                f"`landscape train --resume --out {setup.out}`") from err
        raise
    finally:
        setup.close()


def _is_enospc(err: BaseException | None) -> bool:
    while err is not None:
        if getattr(err, "errno", None) == errno.ENOSPC or "No space left on device" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


class Loop:
    """The step loop of one training session (fresh or resumed); see the module docstring."""

    def __init__(self, setup: RunSetup, progress: bool, fsync: bool):
        self.s, self.cfg, self.w = setup, setup.cfg, setup.writer
        self.T, self.fsync, self.last_fsync = setup.total_steps, fsync, -np.inf
        self.schedule = make_schedule(self.cfg)
        self.snapshots = set(snapshot_steps(self.cfg, self.T).tolist())
        self.evals, self.sharp = eval_steps(self.cfg, self.T), sharpness_steps(self.cfg, self.T)
        self.monitor = SharpnessMonitor(setup.stepper, self.cfg) if self.sharp else None
        self.block = _StepBlock(setup.batch_width)
        self.final_eval, self.last_loss, self.postfix = {}, None, {}
        self.bar = _progress_bar(progress, self.T, setup.state.step, self.cfg)
        self.threshold = run_constant(self.cfg.to_dict())  # λ = c/η at the edge of stability

    def run(self) -> TrainResult:
        state, t0 = self.s.state, time.perf_counter()
        with StopRequest() as stop:
            while True:
                self._record(state)
                if state.step >= self.T or stop.requested:
                    break
                state = self._step(state)
            status = "complete" if state.step >= self.T else "stopped"
            self._flush(state.step)
            if status == "stopped" and state.step not in self.snapshots:
                self._snapshot(state)  # keep the work done since the last scheduled snapshot
            self.w.commit(fsync=self.fsync)
            self.w.set_status(status, f"stopped by {stop.signal_name} at step {state.step}" if stop.requested else "")
        self.bar.close()
        return TrainResult(self.s.out, status, state.step, self.T, self.last_loss, self.final_eval,
                           time.perf_counter() - t0)

    def _step(self, state):
        t = state.step
        idx, seed = self.s.plan.batch(t)
        lr = self.schedule(t)
        state, loss = self.s.stepper.step(state, idx, seed, lr)
        self.block.add(t, idx, seed, loss, lr)
        self.bar.update(1)
        _pause("step", t + 1)
        if len(self.block) >= LOG_BLOCK:
            self._flush(t + 1)
            self.w.commit()
        return state

    def _flush(self, t_next: int) -> None:
        """Append the buffered step rows (stopping at the first non-finite loss)."""
        if not len(self.block):
            return
        steps, idx, seeds, losses, lrs = self.block.take()
        bad = np.flatnonzero(~np.isfinite(losses))
        n = int(bad[0]) if len(bad) else len(steps)
        if n:
            self.w.append_steps(steps[:n], None if idx is None else idx[:n], seeds[:n], losses[:n], lrs[:n])
            self.last_loss = float(losses[n - 1])
            self.postfix.update(loss=f"{self.last_loss:.4g}", lr=f"{lrs[n - 1]:.3g}")
            self.bar.set_postfix(self.postfix, refresh=False)
        if len(bad):
            self._diverged(int(steps[n]), f"the minibatch loss is {losses[n]} at step {int(steps[n])} "
                                          f"(learning rate {lrs[n]:.4g})")

    def _diverged(self, step: int, what: str) -> None:
        msg = (f"training diverged: {what}; {self.s.out} keeps steps 0..{step - 1} and its snapshots "
               "before that; lower the learning rate (or add warm-up) and train a new run")
        self.w.commit(fsync=self.fsync)
        self.w.set_status("diverged", msg)
        self.bar.close()
        raise NonFiniteError(msg)

    def _record(self, state) -> None:
        t = state.step
        if t in self.evals or t in self.snapshots or t in self.sharp:
            self._flush(t)
        if t in self.snapshots and not bool(torch.isfinite(state.theta).all()):
            self._diverged(t, f"the parameters are non-finite after update {t - 1}")
        if t in self.evals:
            self._evaluate(state)
        if t in self.sharp:
            self._sharpness(state)
        if t in self.snapshots:
            self._snapshot(state)

    def _evaluate(self, state) -> None:
        train_loss, train_acc = self.s.stepper.evaluate(state, "train")
        test_loss, test_acc = self.s.stepper.evaluate(state, "test")
        self.w.append_eval(state.step, train_loss, train_acc, test_loss, test_acc)
        self.final_eval = dict(step=state.step, train_loss=train_loss, train_acc=train_acc,
                               test_loss=test_loss, test_acc=test_acc)
        self.postfix.update(test_acc=f"{test_acc:.3f}")
        self.bar.set_postfix(self.postfix)

    def _sharpness(self, state) -> None:
        lam = self.monitor.measure(state)
        self.w.append_sharpness(state.step, lam, self.schedule(state.step))
        self.postfix.update(lam=f"{lam[0]:.3g}", threshold=f"{self.threshold / self.schedule(state.step):.3g}")
        self.bar.set_postfix(self.postfix)

    def _snapshot(self, state) -> None:
        m, v = (None if a is None else a.detach().cpu().numpy() for a in (state.momentum, state.second_moment))
        self.w.append_snapshot(state.step, state.theta.detach().cpu().numpy(),
                               state.flat_buffers(self.s.stepper.model).numpy().astype(np.float32), m, v)
        _pause("snapshot", state.step)
        now = time.monotonic()
        durable = self.fsync and now - self.last_fsync >= FSYNC_INTERVAL_S
        self.w.commit(fsync=durable)
        self.last_fsync = now if durable else self.last_fsync


class _StepBlock:
    """Per-step rows buffered between commits; losses stay on the device until taken."""

    def __init__(self, width: int | None):
        self.width, self.rows = width, []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, t, idx, seed, loss, lr) -> None:
        self.rows.append((t, idx, seed, loss, lr))

    def take(self):
        steps = np.array([r[0] for r in self.rows], dtype=np.int64)
        idx = None if self.width is None else torch.stack([r[1] for r in self.rows]).numpy().astype(np.int32)
        seeds = np.array([r[2] for r in self.rows], dtype=np.int64)
        losses = torch.stack([r[3] for r in self.rows]).double().cpu().numpy()
        lrs = np.array([r[4] for r in self.rows], dtype=np.float64)
        self.rows = []
        return steps, idx, seeds, losses, lrs


def _progress_bar(progress: bool, T: int, start: int, cfg):
    from tqdm.auto import tqdm

    return tqdm(total=T, initial=start, unit="step", disable=not progress, dynamic_ncols=True,
                desc=f"train {cfg.model} on {cfg.dataset}", mininterval=0.5, smoothing=0.05)


def _pause(where: str, step: int) -> None:
    """Test hook: with ``$LANDSCAPE_TRAIN_TEST_PAUSE=where:step`` print a marker and sleep.

    ``snapshot:s`` pauses after the rows of snapshot s are written and before they are
    committed (a kill then hits a half-written snapshot); ``step:s`` pauses after update
    s−1 (between snapshots). The kill tests SIGKILL the process at the marker.
    """
    spec = os.environ.get(PAUSE_ENV)
    if spec and spec == f"{where}:{step}":
        print(f"PAUSED {where} {step}", flush=True)
        time.sleep(float(os.environ.get(PAUSE_ENV + "_SECONDS", "60")))


