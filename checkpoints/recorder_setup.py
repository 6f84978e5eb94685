"""What a :class:`~checkpoints.recorder.Recorder` checks and writes before and around the loop.

Argument checks, the model's import path (checked by rebuilding it), the data set, the run
file's config and meta (the trainer's format, ``source="recorder"``), batch-index checks, and
reopening a killed recording at its last snapshot.
"""

from __future__ import annotations

import numpy as np
import torch

from checkpoints import optimizer_state as opt_state
from checkpoints.config import LOSSES, TrainConfig
from landscape.errors import ConfigMismatchError, InputError

MODES = ("create", "overwrite", "resume")


def check_args(mode: str, augment, loss: str, save_every: int, batch_size) -> None:
    from checkpoints.recorder import AUGMENTATION

    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    if augment not in AUGMENTATION:
        raise InputError(f"augment must be False, True (checkpoints.augment) or 'custom', got {augment!r}")
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {list(LOSSES)} (the loss the analyses evaluate), got {loss!r}")
    if not isinstance(save_every, int) or save_every < 0:
        raise InputError(f"save_every must be an integer >= 0, got {save_every!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")


def dataset_of(dataset, kwargs: dict | None):
    """A :class:`landscape.datasets.Dataset` from one, or from a spec string and its kwargs."""
    from landscape.datasets import Dataset, load_dataset

    if isinstance(dataset, Dataset):
        if kwargs:
            raise InputError("dataset_kwargs go with a dataset spec string, not with a loaded Dataset")
        return dataset
    if isinstance(dataset, str):
        return load_dataset(dataset, **(kwargs or {}))
    raise InputError(f"dataset must be a landscape Dataset (landscape.load_dataset) or its spec string, got "
                     f"{type(dataset).__name__}; wrap your data in a factory 'package.module:load' that returns "
                     "(x_train, y_train, x_test, y_test), so that analyses can rebuild it")


def model_spec_of(model, spec: str | None, kwargs: dict | None) -> tuple[str, dict, dict]:
    """``(spec, kwargs, origin)`` that rebuild ``model``'s architecture, checked by rebuilding it.

    Raises:
        InputError: no spec can be derived, or the spec does not rebuild this network.
    """
    from landscape.models import build_model, check_structure, structure

    built = getattr(model, "build_spec", None)
    if spec is None and built is not None:
        spec, kwargs = built["name"], (built["kwargs"] if kwargs is None else kwargs)
    spec = spec if spec is not None else _class_path(model)
    kwargs = dict(kwargs or {})
    try:
        rebuilt = build_model(spec, seed=0, **kwargs)
        check_structure(rebuilt, structure(model), name=spec, kwargs=kwargs, what="the model being recorded")
    except (InputError, ConfigMismatchError) as err:
        raise InputError(f"the recorder stores how to rebuild the model, and {spec!r} with {kwargs} does not "
                         f"rebuild it ({err}); pass model_spec='package.module:factory' (or 'path/to/file.py:"
                         "factory') and the model_kwargs that build this network") from err
    return rebuilt.build_spec["name"], kwargs, rebuilt.build_spec["origin"]


def _class_path(model) -> str:
    cls = type(model)
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise InputError(f"{cls.__qualname__} is defined in a script (or inside a function), which analyses "
                         "cannot import again; move it to a module or file and pass model_spec="
                         "'module:Class' or 'path/to/file.py:Class'")
    return f"{cls.__module__}:{cls.__qualname__}"


def check_indices(rec, indices) -> np.ndarray | None:
    """The batch indices of step ``rec.t`` as int64, checked against the data set and the batch size."""
    if not rec.batch_log:
        if indices is not None:
            kind = "full_batch=True" if rec.full_batch else "batch_log=False"
            raise InputError(f"the recorder was created with {kind}: call rec.step(None, loss=...)")
        return None
    if indices is None:
        raise InputError(f"rec.step() at step {rec.t} needs the batch's example indices (or create the recorder "
                         "with batch_log=False, and unsaved steps cannot be replayed)")
    idx = indices.detach().cpu().numpy() if isinstance(indices, torch.Tensor) else np.asarray(indices)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise InputError(f"the indices of step {rec.t} must be a 1-D integer array, got {idx.dtype} {idx.shape}")
    N = rec.data.num_train
    if idx.size and (idx.min() < 0 or idx.max() >= N):
        raise InputError(f"the indices of step {rec.t} must lie in [0, {N}) (the rows of the data set's x_train), "
                         f"got [{idx.min()}, {idx.max()}]")
    if rec.batch_size is not None and len(idx) != rec.batch_size:
        raise InputError(f"step {rec.t} has {len(idx)} indices but the run logs {rec.batch_size} per step; drop the "
                         "short last batch (DataLoader(drop_last=True)) or create the recorder with batch_log=False")
    return idx.astype(np.int64)


def config_of(rec) -> TrainConfig:
    """The run's :class:`TrainConfig` (``source="recorder"``): what the analyses need to know."""
    d, spec = rec.described, dict(rec.data.spec)
    h = d.hyper
    fields = dict(dataset=spec.pop("name"), dataset_kwargs=spec, model=rec.model_spec, model_kwargs=rec.model_kwargs,
                  loss=rec.loss, optimizer=d.name, lr=float(h.get("lr") or 0.0), batch_size=rec.batch_size or 1,
                  full_batch=rec.full_batch, seed=rec.seed, augment=rec.augment is True,
                  save_every=rec.save_every, save_steps=tuple(sorted(rec.save_steps)), source="recorder",
                  device=str(next(rec.model.parameters()).device), deterministic=False)
    if d.name == "sgd":
        fields.update(momentum=float(h["momentum"]), nesterov=bool(h["nesterov"]),
                      weight_decay=float(h["weight_decay"]))
    elif d.name == "adamw":
        fields.update(betas=tuple(h["betas"]), eps=float(h["eps"]), weight_decay=float(h["weight_decay"]))
    return TrainConfig(**fields)


def _replay(rec) -> dict:
    d = rec.described
    why = (rec.not_replayable or
           ("the steps were logged without batch indices" if not rec.batch_log and not rec.full_batch else
            "the loop used its own augmentation (augment='custom')" if rec.augment == "custom" else d.why))
    return {"possible": not why, "exact": False, "why": why}


def meta_of(rec) -> dict:
    """The run file's meta: the trainer's keys plus the recorder's (source, replay, optimizer)."""
    from landscape.models import structure

    cfg, data = config_of(rec), rec.data
    return dict(config=cfg.to_dict(), model_name=rec.model_spec, model_kwargs=rec.model_kwargs,
                model_data_kwargs={}, model_origin=rec.model_origin, dataset_spec=data.spec,
                dataset_checksum=data.checksum, seed=rec.seed, **structure(rec.model),
                batch_size=rec.batch_size if rec.batch_log or rec.full_batch else 0,
                num_train=data.num_train, full_batch=rec.full_batch, batch_log=rec.batch_log or rec.full_batch,
                augment=rec.augment is True, source="recorder", replay=_replay(rec),
                optimizer={"name": rec.described.name, **rec.described.hyper},
                optimizer_step_offset=rec._offset)


def create_writer(rec):
    """The :class:`landscape.io.RunWriter` of a fresh recording."""
    from landscape.io import RunWriter

    meta = meta_of(rec)
    B = int(sum(b.numel() for b in rec.model.buffers()))
    P = int(sum(p.numel() for p in rec.model.parameters() if p.requires_grad))
    return RunWriter(rec.path, mode=rec.mode, meta=meta, P=P, B=B, batch_size=meta["batch_size"],
                     resumable=("save_every", "save_steps", "device"))


def open_resumed(rec) -> tuple[object, int, int]:
    """Reopen a killed recording at its last committed snapshot: ``(writer, step, optimizer offset)``."""
    from landscape.io import RunFile, RunWriter

    with RunFile(rec.path) as f:
        stored = f.meta
        rec.batch_size = int(f.batch_size) if f.has_batch_log or f.full_batch else None
    rec._offset = int(stored.get("optimizer_step_offset", 0))
    meta = meta_of(rec)
    B = int(sum(b.numel() for b in rec.model.buffers()))
    writer = RunWriter(rec.path, mode="resume", meta=meta, P=len(_theta(rec)), B=B,
                       batch_size=meta["batch_size"], resumable=("save_every", "save_steps", "device"))
    return writer, int(writer.last_snapshot_step or 0), rec._offset


def _theta(rec) -> np.ndarray:
    from landscape.params import ParamSpec

    return ParamSpec.from_module(rec.model).theta_of(rec.model).cpu().numpy()


def restore(rec) -> int:
    """Load the snapshot a resumed recording restarts from into the model and the optimizer."""
    from landscape.io import RunFile
    from landscape.params import ParamSpec, unflatten_buffers

    if rec.mode != "resume" or rec.writer is None:
        raise InputError("restore() belongs to a Recorder opened with mode='resume' (inside its with block)")
    s, kind = rec.t, rec.described.name
    with RunFile(rec.path) as f:
        theta, buffers = torch.from_numpy(f.params(s)), torch.from_numpy(np.asarray(f.buffers(s), np.float64))
        m = f.momentum(s) if f.has_vector("momentum", s) else None
        v = f.second_moment(s) if f.has_vector("second_moment", s) else None
    spec, named, bufs = ParamSpec.from_module(rec.model), dict(rec.model.named_parameters()), dict(
        rec.model.named_buffers())
    with torch.no_grad():
        for name, value in spec.unflatten(theta).items():
            named[name].copy_(value)
        for name, value in unflatten_buffers(rec.model, buffers).items():
            bufs[name].copy_(value)
    opt_state.load_state(rec.optimizer, rec.model, kind, m, v, s + rec._offset)
    return s


__all__ = ["check_args", "dataset_of", "model_spec_of", "check_indices", "config_of", "meta_of", "create_writer",
           "open_resumed", "restore"]
