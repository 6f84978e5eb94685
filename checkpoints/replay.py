"""Open a run file for analysis: the model, the data and θ at any step.

θ_t at a saved step is read from the file (checksum-verified). At any other step it is
rebuilt from the nearest snapshot s ≤ t by replaying updates s … t−1 with the logged batch
indices, augmentation seeds and learning rates (:mod:`checkpoints.step`): bitwise the θ_t the
trainer had, on the CPU (and on a GPU with deterministic algorithms), provided torch and the
thread count are those of the run.

Runs written by a :class:`~checkpoints.recorder.Recorder` (the user's own loop) replay with
the same update rule, equal to the loop's θ up to rounding (the loop ran its own kernels): the
first time an interval between two snapshots is replayed it is replayed to its end and checked
against the snapshot there (:data:`REPLAY_RTOL`). A run without a batch log (an import, or a
recorder called without indices) or with an optimizer the toolkit does not implement cannot be
replayed: unsaved steps are refused with the reason; saved steps work as always.

Example (an analysis script in a few lines)::

    import landscape as ls
    from checkpoints import open_run

    with open_run("run.h5") as run:
        for step in run.saved_steps[::10]:
            obj = run.objective(step, subset=2048, bn="eval")
            top = ls.eigsh(obj.hessian(obj.theta), k=5, seed=0)
            print(step, top.eigenvalues)
        theta_1234 = run.theta(1234)          # replayed from the snapshot at 1200
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
from torch import Tensor

from checkpoints.batches import ReplayPlan
from checkpoints.config import TrainConfig
from checkpoints.recording import fixed_subset
from checkpoints.step import Stepper, TrainState, deterministic_mode
from landscape.errors import ConfigMismatchError, InputError

# Relative ‖θ_replayed − θ_saved‖/‖θ_saved‖ accepted at the end of a replayed interval of a
# recorded run: the user's loop and the replay agree to float32 rounding per step (~1e-7),
# which a few hundred steps of training dynamics amplify by at most a few hundred; a loop that
# did something the log does not hold (its own augmentation, clipping, another loss) differs
# by the size of an update or more.
REPLAY_RTOL = 1e-4
TRAINER_REPLAY = {"possible": True, "exact": True, "why": ""}  # files written by the trainer (and older ones)


def open_run(path: str | os.PathLike, *, device: str = "cpu", data_dir: str | None = None) -> Run:
    """Open the run file at ``path`` (see :class:`Run`)."""
    return Run(path, device=device, data_dir=data_dir)


class Run:
    """A training run opened for analysis (read-only; the file may still be growing).

    Args:
        path: the run file.
        device: where the data, the model and θ live.
        data_dir: where the CIFAR-10 files are on this machine (checked by the run's checksum).

    Attributes:
        file: the :class:`landscape.io.RunFile`.
        config: the run's :class:`~checkpoints.config.TrainConfig`.
        model: the network (built from the stored name and kwargs; its own parameters are the
            initialisation; use :meth:`theta`/:meth:`model_at` for trained values).
    """

    def __init__(self, path, *, device: str = "cpu", data_dir: str | None = None):
        from landscape.io import RunFile
        from landscape.models import build_model

        self.file = RunFile(path)
        self.device, self.data_dir = device, data_dir
        try:
            self.config = TrainConfig.from_dict(self.file.config).replace(device=device)
            self.model = self._build_model(build_model).to(device)
        except BaseException:
            self.file.close()
            raise
        self._dataset, self._stepper, self._cache, self._lrs, self._verified = None, None, None, None, set()

    def _build_model(self, build_model):
        """The model from the stored spec, checked against the stored parameter names and shapes."""
        from landscape.models import check_structure

        f = self.file
        kwargs = {**f.meta.get("model_data_kwargs", {}), **f.model_kwargs}
        try:
            model = build_model(f.model_name, seed=self.config.seed, **kwargs)
        except InputError as err:
            origin = f.meta.get("model_origin") or {}
            where = f" (it was loaded from {origin['file']} when the run was written)" if origin.get("file") else ""
            raise InputError(f"the model of {f.path} cannot be rebuilt{where}: {err}") from err
        if "param_names" in f.meta:
            check_structure(model, f.meta, name=f.model_name, kwargs=kwargs, origin=f.meta.get("model_origin"),
                            what=str(f.path))
        return model

    @property
    def replay(self) -> dict:
        """Whether unsaved steps can be replayed: ``{"possible", "exact", "why"}`` (module docstring)."""
        return {**TRAINER_REPLAY, **self.file.meta.get("replay", {})}

    # --- what the file holds -------------------------------------------------------------
    @property
    def saved_steps(self) -> np.ndarray:
        """Steps with a stored snapshot (ascending)."""
        return self.file.saved_steps

    @property
    def num_steps(self) -> int:
        """Logged updates: θ_t can be rebuilt for 0 ≤ t ≤ num_steps (from a snapshot ≤ t)."""
        return self.file.num_steps

    @property
    def dataset(self):
        """The run's data (rebuilt from its spec; checksum-verified), loaded on first use."""
        if self._dataset is None:
            from landscape.datasets import load_dataset_from_spec

            spec = dict(self.file.dataset_spec)
            if self.data_dir is not None:
                spec["data_dir"] = os.fspath(self.data_dir)
            self._dataset = load_dataset_from_spec(spec, self.device, checksum=self.file.dataset_checksum)
        return self._dataset

    @property
    def stepper(self) -> Stepper:
        """The training step of this run (model, data, loss, optimiser, augmentation)."""
        if self._stepper is None:
            self._stepper = Stepper(copy.deepcopy(self.model), self.dataset, self.config)
            self._stepper.update_offset = int(self.file.meta.get("optimizer_step_offset", 0))
        return self._stepper

    # --- θ at any step --------------------------------------------------------------------
    def snapshot_state(self, step: int) -> TrainState:
        """S_s = (θ, momentum, buffers) stored at the saved step ``s`` (checksums verified)."""
        f, s = self.file, int(step)
        m, v = (torch.from_numpy(read(s)) if f.has_vector(name, s) else None
                for name, read in (("momentum", f.momentum), ("second_moment", f.second_moment)))
        b = f.buffers(s)
        flat = torch.from_numpy(np.asarray(b, np.float64)) if len(b) else None
        return self.stepper.state(s, torch.from_numpy(f.params(s)), m, flat, v)

    def state(self, step: int) -> TrainState:
        """S_t at any step t ≤ num_steps: the nearest snapshot at or before t, plus replay."""
        t = int(step)
        if t in set(self.saved_steps.tolist()):
            return self.snapshot_state(t)
        self._check_replayable(t)
        if not 0 <= t <= self.num_steps:
            raise InputError(f"step {t} is outside the run: θ can be rebuilt for steps 0 … {self.num_steps}")
        saved = self.saved_steps[self.saved_steps <= t]
        if len(saved) == 0:
            raise InputError(f"no snapshot at or before step {t} in {self.file.path}; saved steps start at "
                             f"{self.saved_steps[:1].tolist()}")
        s = int(saved[-1])
        cached = self._cache if self._cache is not None and s <= self._cache.step <= t else None
        if cached is None and not self.replay["exact"] and s not in self._verified:
            return self._verify_interval(s, t)
        return self._replay(cached or self.snapshot_state(s), t)

    def _check_replayable(self, t: int) -> None:
        rp = self.replay
        if not rp["possible"]:
            raise InputError(f"θ at step {t} is not saved in {self.file.path} and cannot be replayed: {rp['why']}; "
                             f"choose a saved step ({_abbrev(self.saved_steps)})")

    def _replay(self, state: TrainState, t: int, keep: int | None = None) -> TrainState:
        """Replay from ``state`` to step t; with ``keep``, also return the state passed at step ``keep``."""
        plan, lrs, kept = ReplayPlan(self.file), self._logged_lrs(), None
        with deterministic_mode(self.config):
            while state.step < t:
                kept = state if state.step == keep else kept
                idx, seed = plan.batch(state.step)
                state, _ = self.stepper.step(state, idx, seed, float(lrs[state.step]))
        self._cache = state
        return state if keep is None else (kept if keep < t else state)

    def _logged_lrs(self) -> np.ndarray:
        if self._lrs is None or len(self._lrs) < self.num_steps:
            self._lrs = self.file.step_metrics()["lr"]
        return self._lrs

    def _verify_interval(self, s: int, t: int) -> TrainState:
        """Replay a recorded run's interval from snapshot s to the next one, check it, return S_t."""
        later = self.saved_steps[(self.saved_steps > s) & (self.saved_steps <= self.num_steps)]
        if len(later) == 0:  # nothing to check against: the replay is as good as the rule
            return self._replay(self.snapshot_state(s), t)
        end = int(later[0])
        at_t = self._replay(self.snapshot_state(s), end, keep=t)
        got, want = self._cache.theta, self.snapshot_state(end).theta
        rel = float((got - want).norm() / want.norm().clamp_min(1e-30))
        if not rel <= REPLAY_RTOL:
            raise ConfigMismatchError(
                f"replaying {self.file.path} from step {s} does not reproduce its snapshot at step {end} "
                f"(relative difference {rel:.2e} > {REPLAY_RTOL:g}): the training loop did something the run "
                "file does not record (its own augmentation, gradient clipping, another loss or optimizer "
                f"setting); use saved steps only ({_abbrev(self.saved_steps)})")
        self._verified.add(s)
        self._cache = at_t
        return at_t

    def theta(self, step: int) -> Tensor:
        """θ_t ``(P,)`` float32 on the device (saved, or replayed from the nearest snapshot)."""
        return self.state(step).theta.clone()

    def buffers(self, step: int) -> dict[str, Tensor]:
        """The BatchNorm buffers at step t ``{name: tensor}``."""
        return {k: v.clone() for k, v in self.state(step).buffers.items()}

    def model_at(self, step: int) -> torch.nn.Module:
        """A copy of the model holding θ_t and the buffers at t, in eval mode."""
        state, model = self.state(step), copy.deepcopy(self.model)
        params = self.stepper.spec.unflatten(state.theta)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(params[name])
            for name, b in model.named_buffers():
                b.copy_(state.buffers[name])
        return model.eval()

    # --- analysis -------------------------------------------------------------------------
    def subset(self, n: int) -> Tensor:
        """The fixed seeded subset of n training examples (the one online sharpness used)."""
        return fixed_subset(self.config.seed, self.dataset.num_train, n)

    def objective(self, step: int, subset=None, bn: str = "eval", split: str = "train",
                  batch_size: int = 1024, **options):
        """The :class:`landscape.Objective` at step t; ``obj.theta`` is θ_t.

        Args:
            step: the training step.
            subset: None (the whole split), an int n (:meth:`subset`), or example indices.
            bn: ``"eval"`` (running statistics at step t) or ``"train"`` (batch statistics).
            split: ``"train"`` or ``"test"``.
            batch_size: examples per forward pass (results do not depend on it).
            **options: passed on to :class:`landscape.Objective` — ``params`` (a per-layer
                Hessian: name patterns), ``dtype`` (e.g. float64), ``hvp_method``,
                ``vmap_chunk``, ``all_reduce`` (data parallel).
        """
        from landscape.objective import Objective

        if split not in ("train", "test"):
            raise InputError(f"split must be 'train' or 'test', got {split!r}")
        x = self.dataset.x_train if split == "train" else self.dataset.x_test
        y = self.stepper.y_train if split == "train" else self.stepper.y_test
        if subset is not None:
            idx = self.subset(subset) if isinstance(subset, (int, np.integer)) else torch.as_tensor(subset)
            x, y = x[idx.to(x.device)], y[idx.to(x.device)]
        return Objective(self.model_at(step), x, y, loss=self.config.loss, bn=bn, batch_size=batch_size, **options)

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"Run({self.file!r})"


def _abbrev(steps: np.ndarray) -> str:
    s = [str(int(x)) for x in steps]
    return ", ".join(s) if len(s) <= 8 else ", ".join(s[:4] + ["…"] + s[-3:])
