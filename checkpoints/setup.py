"""Everything a training session needs before its first step: data, model, plan, state, writer.

:func:`prepare_fresh` builds a new run (checking sibling runs against their parents);
:func:`prepare_resume` reopens a run file, reloads S_s from its last committed snapshot s,
checks that the data and the batch plan are those of the run, and opens the writer in
``resume`` mode (which drops the log rows written after s).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from checkpoints.batches import make_plan
from checkpoints.config import LATER_FIELDS, RESUMABLE_FIELDS, TrainConfig, check_resumable
from checkpoints.step import Stepper, TrainState
from landscape.errors import (CheckpointCorruptError, ConfigMismatchError, InputError, NonFiniteError,
                              OutputExistsError)

# Config keys RunWriter(mode="resume") lets differ from the stored run (see config.RESUMABLE_FIELDS;
# the data directory may move between machines: the data are checked by their checksum).
WRITER_RESUMABLE = RESUMABLE_FIELDS + ("dataset_kwargs.data_dir",)
VERIFY_STEPS = 4096  # logged steps before the resume point checked against the regenerated plan
# Warn when an epoch leaves out more than this fraction of the training set (N mod B examples of
# each permutation are skipped so that every batch has B examples): 1024 of MNIST-1D's 4,000 drop 23 %.
DROPPED_WARN_FRACTION = 0.05


@dataclass
class RunSetup:
    """The pieces of one training session (see the module docstring)."""

    cfg: TrainConfig
    out: str | None
    stepper: Stepper
    plan: object
    state: TrainState
    total_steps: int
    writer: object
    batch_width: int | None
    parents: dict = field(default_factory=dict)

    def close(self) -> None:
        for run in self.parents.values():
            run.close()


def load_data(cfg: TrainConfig):
    """The config's dataset on its device (``landscape.datasets.load_dataset``)."""
    from landscape.datasets import load_dataset

    return load_dataset(cfg.dataset, device=cfg.device, **cfg.dataset_kwargs)


def _open_parents(cfg: TrainConfig) -> dict:
    from landscape.io import RunFile

    return {name: RunFile(getattr(cfg, name)) for name in ("init_from", "batches_from") if getattr(cfg, name)}


def _check_fit(cfg: TrainConfig, data) -> None:
    if cfg.augment and data.x_train.ndim != 4:
        raise InputError(f"augmentation (random crop + flip) needs images (N, C, H, W); {cfg.dataset} "
                         f"inputs have shape {tuple(data.x_train.shape[1:])}; pass --no-augment")
    if data.num_classes == 0 and cfg.loss == "cross_entropy":
        raise InputError(f"{cfg.dataset} is a regression task; pass --loss mse")


def _check_parents(cfg: TrainConfig, data, parents: dict, T: int, model) -> None:
    init, batches = parents.get("init_from"), parents.get("batches_from")
    spec = model.build_spec
    if init is not None and (init.model_name, init.model_kwargs) != (spec["name"], cfg.model_kwargs) and (
            init.model_name, init.model_kwargs) != (cfg.model, cfg.model_kwargs):
        raise ConfigMismatchError(
            f"the sibling run's model {cfg.model} {cfg.model_kwargs} differs from the model "
            f"{init.model_name} {init.model_kwargs} of {cfg.init_from}; use the parent's --model and "
            "--model-kwargs, or drop --init-from")
    if batches is None:
        return
    if batches.dataset_checksum != data.checksum:
        raise ConfigMismatchError(
            f"the sibling run's data ({data.spec}) differ from the data of {cfg.batches_from} "
            f"({batches.dataset_spec}); use the parent's --dataset and --dataset-kwargs to replay its batches")
    width = data.num_train if cfg.full_batch else cfg.batch_size
    if bool(batches.full_batch) != cfg.full_batch or int(batches.batch_size) != width:
        raise ConfigMismatchError(
            f"{cfg.batches_from} was trained with batch size {batches.batch_size} (full batch: "
            f"{bool(batches.full_batch)}); replaying its batches needs the same --batch-size/--full-batch")
    if T > batches.num_steps:
        raise InputError(f"{cfg.batches_from} logs {batches.num_steps} steps but this run needs {T}; "
                         f"train at most {batches.num_steps} steps when replaying its batches")


def dropped_per_epoch(cfg: TrainConfig, num_train: int) -> dict:
    """Examples each epoch leaves out (N mod B; none for full-batch runs), as a count and a fraction."""
    n = 0 if cfg.full_batch or cfg.batch_size > num_train else num_train % cfg.batch_size
    return {"examples": n, "fraction": n / num_train}


def _warn_dropped(cfg: TrainConfig, num_train: int) -> None:
    d = dropped_per_epoch(cfg, num_train)
    if d["fraction"] > DROPPED_WARN_FRACTION:
        warnings.warn(f"batch size {cfg.batch_size} does not divide the {num_train} training examples: each epoch "
                      f"leaves out {d['examples']} of them ({100 * d['fraction']:.1f} %, a new random set every epoch); "
                      f"choose a --batch-size that divides {num_train} to use them all", stacklevel=3)


def _meta(cfg: TrainConfig, data, stepper: Stepper, T: int, parents: dict) -> dict:
    model = stepper.model
    spec = model.build_spec
    return dict(
        config=cfg.to_dict(), model_name=spec["name"], model_kwargs=cfg.model_kwargs,
        model_data_kwargs=spec["from_data"],
        model_origin=spec["origin"], dataset_spec=data.spec, dataset_checksum=data.checksum, seed=cfg.seed,
        param_names=list(stepper.spec.names), param_shapes=[list(s) for s in stepper.spec.shapes],
        buffer_names=[n for n, _ in model.named_buffers()],
        buffer_shapes=[list(b.shape) for _, b in model.named_buffers()],
        batch_size=data.num_train if cfg.full_batch else cfg.batch_size, num_train=data.num_train,
        full_batch=cfg.full_batch, total_steps=T, augment=cfg.augment, source="train", batch_log=True,
        dropped_per_epoch=dropped_per_epoch(cfg, data.num_train),
        parents={name: {"path": os.fspath(run.path), "run_sha256": run.file_sha256} for name, run in parents.items()},
        trainer={"num_threads": torch.get_num_threads(), "deterministic": cfg.deterministic,
                 "device": str(cfg.device)})


def build_fitted_model(cfg: TrainConfig, data, from_data: dict | None = None):
    """The config's model, its input size and output count filled from the data where not given.

    ``model.build_spec["from_data"]`` holds the keyword arguments taken from the data (the run
    file stores them as ``model_data_kwargs`` next to the given ``model_kwargs``). ``from_data``
    (a resumed run's stored ones; ``{}`` for a file from before this existed) is used as it is.
    """
    from landscape.errors import LandscapeError
    from landscape.models import build_model, fit_to_data

    try:
        if from_data is None:
            fitted = fit_to_data(cfg.model, cfg.model_kwargs, data.input_shape, data.num_outputs)
            from_data = {k: v for k, v in fitted.items() if k not in cfg.model_kwargs}
        model = build_model(cfg.model, seed=cfg.seed, **from_data, **cfg.model_kwargs)
    except InputError as err:
        raise InputError(f"{err} (model arguments: --model-kwargs JSON; the model: --model)") from err
    except LandscapeError:
        raise
    model.build_spec["from_data"] = dict(from_data)
    return model


def _build(cfg: TrainConfig, data, parents: dict, from_data: dict | None = None
           ) -> tuple[Stepper, object, TrainState, int]:
    T = cfg.total_steps(data.num_train)
    _check_fit(cfg, data)
    model = build_fitted_model(cfg, data, from_data)
    _check_parents(cfg, data, parents, T, model)
    stepper = Stepper(model, data, cfg)
    init = parents.get("init_from")
    state = (stepper.initial_state() if init is None else
             stepper.initial_state(torch.from_numpy(init.params(0)), _buffers_or_none(init, 0)))
    return stepper, make_plan(cfg, data.num_train, parents.get("batches_from")), state, T


def _buffers_or_none(run, step: int):
    b = run.buffers(step)
    return None if b is None or len(b) == 0 else torch.from_numpy(np.asarray(b, dtype=np.float64))


def _writer(cfg, out, mode, data, stepper, T, parents, extra_resumable=()):
    if out is None:
        return NoRunFile()
    from landscape.io import RunWriter

    width = None if cfg.full_batch else cfg.batch_size
    B = int(sum(b.numel() for b in stepper.model.buffers()))
    return RunWriter(out, mode=mode, meta=_meta(cfg, data, stepper, T, parents), P=stepper.spec.P, B=B,
                     batch_size=width or data.num_train, resumable=WRITER_RESUMABLE + tuple(extra_resumable))


def _closing_on_error(parents: dict, fn, *args):
    """``fn(*args)``, closing the parents' run files if it raises."""
    try:
        return fn(*args)
    except BaseException:
        for run in parents.values():
            run.close()
        raise


def prepare_fresh(config: TrainConfig, out, *, overwrite: bool) -> RunSetup:
    """A new run (or a sibling of ``config.init_from``/``batches_from``) writing to ``out``."""
    out = None if out is None else os.fspath(out)
    if out is not None and not overwrite and os.path.lexists(out):
        raise OutputExistsError(f"{out} exists; pass --resume to continue it or --overwrite to replace it")
    data = load_data(config)
    cfg = config.resolved(data.num_train, dataset_default_augment=config.dataset == "cifar10")
    _warn_dropped(cfg, data.num_train)
    parents = _open_parents(cfg)
    stepper, plan, state, T = _build(cfg, data, parents)
    writer = _closing_on_error(parents, _writer, cfg, out, "overwrite" if overwrite else "create", data, stepper,
                               T, parents)
    return RunSetup(cfg, out, stepper, plan, state, T, writer, None if cfg.full_batch else cfg.batch_size, parents)


def resumed_config(run, *, steps=None, epochs=None, device=None, data_dir=None) -> TrainConfig:
    """The stored config with the resumable changes applied."""
    cfg = TrainConfig.from_dict(run.config)
    changes = {}
    if steps is not None or epochs is not None:
        changes.update(steps=steps, epochs=epochs)
    if device is not None:
        changes["device"] = device
    if data_dir is not None:
        changes["dataset_kwargs"] = {**cfg.dataset_kwargs, "data_dir": os.fspath(data_dir)}
    return cfg.replace(**changes) if changes else cfg


def prepare_resume(out, *, steps=None, epochs=None, device=None, data_dir=None, expect=None) -> RunSetup:
    """Reopen ``out`` at its last committed snapshot (see the module docstring).

    ``expect``: a config the stored one must match up to the resumable fields (checked before
    the file is touched).
    """
    from landscape.io import RunFile

    out = os.fspath(out)
    with RunFile(out) as run:
        run_config = run.config
        if run.status == "diverged":
            raise NonFiniteError(f"{out} diverged ({getattr(run, 'status_message', '') or 'see landscape info'}); "
                                 "resuming would diverge again: train a new run with a lower learning rate")
        cfg = resumed_config(run, steps=steps, epochs=epochs, device=device, data_dir=data_dir)
        if expect is not None:
            check_resumable(cfg, expect, out)
        data = load_data(cfg)
        if data.checksum != run.dataset_checksum:
            raise ConfigMismatchError(f"the data loaded for {cfg.dataset} ({data.spec}) are not the data {out} "
                                      "was trained on (checksum differs); point --data-dir at the same files")
        parents = _open_parents(cfg)
        stepper, plan, state, T = _build(cfg, data, parents, run.meta.get("model_data_kwargs", {}))
        state = _snapshot_state(run, stepper, state)
        if state.step > T:
            raise InputError(f"{out} already has a snapshot at step {state.step} > the {T} steps asked for; "
                             "give more --steps")
        _verify_plan(run, plan, state.step, out)
    later = tuple(k for k in LATER_FIELDS if k not in run_config)  # a file from before these fields: SGD
    writer = _closing_on_error(parents, _writer, cfg, out, "resume", data, stepper, T, parents, later)
    return RunSetup(cfg, out, stepper, plan, state, T, writer, None if cfg.full_batch else cfg.batch_size,
                    parents)


def _snapshot_state(run, stepper: Stepper, initial: TrainState) -> TrainState:
    """S_s from the last committed snapshot s (checksums verified), or S_0 if none was committed."""
    if len(run.saved_steps) == 0:
        return initial
    s = int(run.saved_steps[-1])
    m = torch.from_numpy(run.momentum(s)) if stepper.uses_momentum else None
    v = torch.from_numpy(run.second_moment(s)) if stepper.cfg.optimizer == "adamw" else None
    return stepper.state(s, torch.from_numpy(run.params(s)), m, _buffers_or_none(run, s), v)


def _verify_plan(run, plan, s: int, out) -> None:
    """The logged batches of the steps before s must be the plan's (docs/trainer.md, sibling runs)."""
    a = max(0, s - VERIFY_STEPS)
    if s == a:
        return
    seeds = np.asarray(run.aug_seeds(a, s))
    logged = None if run.full_batch else np.asarray(run.batch_indices_range(a, s))
    for i, t in enumerate(range(a, s)):
        idx, seed = plan.batch(t)
        same = seed == int(seeds[i]) and (logged is None or np.array_equal(idx.numpy(), logged[i]))
        if not same:
            raise CheckpointCorruptError(
                f"the batch logged at step {t} of {out} differs from the batch plan regenerated from the "
                "run's seed: the file was altered or written by another trainer version; it cannot be "
                "resumed exactly (start a new run)")


class NoRunFile:
    """The writer of a run trained without a run file (``out=None``): records nothing."""

    last_snapshot_step, committed_steps = None, 0

    def append_steps(self, *a, **k): ...
    def append_snapshot(self, *a, **k): ...
    def append_eval(self, *a, **k): ...
    def append_sharpness(self, *a, **k): ...
    def commit(self, *a, **k): ...
    def set_status(self, *a, **k): ...
    def close(self): ...

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


__all__ = ["RunSetup", "prepare_fresh", "prepare_resume", "resumed_config", "load_data", "NoRunFile"]
