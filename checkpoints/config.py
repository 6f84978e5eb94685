"""The training configuration: one frozen dataclass, stored as JSON in every run file.

A :class:`TrainConfig` says everything that decides the numbers a run produces: data, model,
optimiser, learning-rate schedule, batch plan, seed and what is recorded. Run-time choices that
do not change the numbers (output path, progress bar) are arguments of
:func:`checkpoints.train`, not fields here.

Units: every step count is in **optimiser steps** (one update of θ), never in epochs, except
``epochs`` itself. With ``full_batch`` one step is one epoch.

Example::

    >>> cfg = TrainConfig(dataset="mnist1d", model="cnn1d", lr=0.05, momentum=0.9, steps=200)
    >>> TrainConfig.from_json(cfg.to_json()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from landscape.errors import ConfigMismatchError, InputError

SCHEDULES = ("constant", "step", "cosine", "list")
OPTIMIZERS = ("sgd", "adamw")           # the update rules of landscape.optim
OTHER_OPTIMIZER = "other"               # a recorded run's own optimizer (no update rule here: not replayable)
SOURCES = ("train", "recorder", "import")  # who wrote the run file: the trainer, a Recorder, `landscape import`
# Fields added after run files were first written: a stored config without them is an SGD run of
# the trainer, which the defaults describe (checkpoints.setup lets them be absent on resume).
LATER_FIELDS = ("optimizer", "betas", "eps", "source")
LOSSES = ("cross_entropy", "mse")
SHARPNESS_BN = ("eval", "train")
# Fields that may change when a run is resumed: they extend the run or move it to another
# device without changing any number already in the file (bitwise replay across devices is
# not promised; see docs/trainer.md).
RESUMABLE_FIELDS = ("steps", "epochs", "device", "deterministic")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's numbers (see the module docstring for units)."""

    # data and model
    dataset: str = "mnist1d"                # cifar10 | mnist1d | synthetic | package.module:factory
    dataset_kwargs: dict = field(default_factory=dict)  # e.g. {"data_dir": ...} for cifar10
    model: str = "cnn1d"                    # a name of landscape.models.model_names() or package.module:factory
    model_kwargs: dict = field(default_factory=dict)
    loss: str = "cross_entropy"             # cross_entropy | mse (mse against one-hot targets)
    # optimiser: SGD as torch.optim.SGD (dampening 0), or AdamW as torch.optim.AdamW (landscape.optim)
    optimizer: str = "sgd"                  # sgd | adamw (| other: a recorded run's own, not replayable)
    lr: float = 0.1                         # base learning rate η
    momentum: float = 0.0                   # sgd: heavy-ball coefficient β in [0, 1)
    nesterov: bool = False                  # sgd: Nesterov momentum (needs momentum > 0)
    weight_decay: float = 0.0               # sgd: L2 coefficient λ (g + λθ); adamw: decoupled, θ ← θ(1 − ηλ)
    betas: tuple = (0.9, 0.999)             # adamw: (β₁, β₂), decay rates of the two moments
    eps: float = 1e-8                       # adamw: ε added to √v̂
    # learning-rate schedule (checkpoints.schedules)
    schedule: str = "constant"              # constant | step | cosine | list
    milestones: tuple = ()                  # step: lr is multiplied by gamma at each of these steps
    gamma: float = 0.1                      # step: decay factor
    cosine_steps: int | None = None         # cosine: period in steps (None: the run's total steps)
    min_lr: float = 0.0                     # cosine: floor
    lr_points: tuple = ()                   # list: ((step, lr), ...), first step 0, piecewise constant
    warmup_steps: int = 0                   # linear warm-up over this many steps, on any schedule
    # batches (checkpoints.batches)
    batch_size: int = 128                   # examples per step (ignored by full_batch)
    full_batch: bool = False                # gradient descent on the whole training set
    epochs: int | None = None               # length of the run: give epochs or steps
    steps: int | None = None
    seed: int = 0                           # initialisation, batch order, augmentation
    augment: bool | None = None             # crop+flip (None: on for cifar10, off otherwise)
    # what is recorded
    save_every: int = 100                   # snapshot every k steps (0: off)
    save_steps: tuple = ()                  # snapshot at these steps as well
    save_log: int = 0                       # n log-spaced snapshot steps as well (0: off)
    eval_every: int = 0                     # full train+test loss/accuracy every k steps (0: ends only)
    eval_batch_size: int = 1024             # examples per forward pass in evaluations
    sharpness_every: int = 0                # online top Hessian eigenvalues every k steps (0: off)
    sharpness_k: int = 1                    # how many top eigenvalues
    sharpness_subset: int = 1024            # fixed subset of training examples (seeded)
    sharpness_bn: str = "train"             # BN mode of the sharpness objective
    sharpness_tol: float = 1e-3             # eigsh tolerance
    sharpness_max_matvecs: int = 200        # eigsh budget per measurement
    # lineage (sibling runs)
    init_from: str | None = None            # run file whose step-0 parameters and buffers we start from
    batches_from: str | None = None         # run file whose batch indices and aug seeds we replay
    # execution
    device: str = "cpu"
    deterministic: bool | None = None       # deterministic algorithms (None: on for CPU)
    # provenance
    source: str = "train"                   # train | recorder (checkpoints.Recorder) | import (landscape import)

    def __post_init__(self):
        for name in ("milestones", "save_steps"):
            object.__setattr__(self, name, tuple(int(s) for s in getattr(self, name)))
        object.__setattr__(self, "lr_points", tuple((int(s), float(v)) for s, v in self.lr_points))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "dataset_kwargs", dict(self.dataset_kwargs))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        validate(self)

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        return json.loads(self.to_json())

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, so equal configs give equal strings."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an :class:`InputError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"unknown training config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """Inverse of :meth:`to_json`."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"training config is not valid JSON ({err})") from None
        if not isinstance(d, dict):
            raise InputError("training config JSON must be an object of field: value")
        return cls.from_dict(d)

    def total_steps(self, num_train: int) -> int | None:
        """T, the number of optimiser steps: ``steps``, or ``epochs`` × steps per epoch.

        None for a recorded or imported run that does not say (its file tells what was logged).
        """
        if self.steps is not None or self.epochs is None:
            return self.steps
        if self.full_batch:
            return self.epochs
        return self.epochs * (num_train // self.batch_size)

    def resolved(self, num_train: int, dataset_default_augment: bool) -> TrainConfig:
        """Fill the ``None`` defaults that depend on the data or device, as stored in the file."""
        from landscape.factories import canonical

        changes = {k: canonical(getattr(self, k)) for k in ("model", "dataset")
                   if canonical(getattr(self, k)) != getattr(self, k)}  # file paths made absolute
        if self.augment is None:
            changes["augment"] = bool(dataset_default_augment)
        if self.deterministic is None:
            changes["deterministic"] = self.device == "cpu"
        if self.schedule == "cosine" and self.cosine_steps is None:
            changes["cosine_steps"] = self.total_steps(num_train)
        return self.replace(**changes) if changes else self


def differing_fields(a: TrainConfig, b: TrainConfig, ignore=RESUMABLE_FIELDS) -> list[str]:
    """Names of the fields in which ``a`` and ``b`` differ, leaving out ``ignore``."""
    da, db = a.to_dict(), b.to_dict()
    return sorted(k for k in da if k not in ignore and da[k] != db[k])


def check_resumable(stored: TrainConfig, given: TrainConfig, path) -> None:
    """Raise :class:`ConfigMismatchError` unless ``given`` continues the run ``stored``."""
    diff = differing_fields(stored, given)
    if diff:
        pairs = ", ".join(f"{k}: file={getattr(stored, k)!r} vs given={getattr(given, k)!r}" for k in diff)
        raise ConfigMismatchError(
            f"{path} was trained with another configuration ({pairs}); resume it without changing "
            f"these, or train a new run with another --out")


def validate(cfg: TrainConfig) -> None:
    """Raise :class:`InputError` naming the first field that cannot be used."""
    for check in (_check_choices, _check_optimiser, _check_length, _check_schedule, _check_recording):
        check(cfg)


def _fail(msg: str) -> None:
    raise InputError(msg)


def _check_choices(c: TrainConfig) -> None:
    if c.source not in SOURCES:
        _fail(f"source must be one of {list(SOURCES)}, got {c.source!r}")
    if c.optimizer not in OPTIMIZERS + ((OTHER_OPTIMIZER,) if c.source != "train" else ()):
        _fail(f"unknown optimizer {c.optimizer!r}; the trainer implements {list(OPTIMIZERS)} (--optimizer)")
    if c.schedule not in SCHEDULES:
        _fail(f"unknown schedule {c.schedule!r}; choose one of {list(SCHEDULES)}")
    if c.loss not in LOSSES:
        _fail(f"unknown loss {c.loss!r}; choose one of {list(LOSSES)}")
    if c.sharpness_bn not in SHARPNESS_BN:
        _fail(f"sharpness_bn must be one of {list(SHARPNESS_BN)}, got {c.sharpness_bn!r}")
    for name in ("dataset_kwargs", "model_kwargs"):
        try:
            json.dumps(getattr(c, name))
        except TypeError as err:
            _fail(f"{name} must be JSON-serialisable ({err})")


def _positive(value, name: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        _fail(f"{name} must be a positive finite number, got {value!r}")


def _check_optimiser(c: TrainConfig) -> None:
    if c.source == "train":
        _positive(c.lr, "lr")
    elif not (math.isfinite(c.lr) and c.lr >= 0):  # a recorded loop may start at η = 0 (warm-up)
        _fail(f"lr must be a finite number >= 0, got {c.lr!r}")
    if c.optimizer == "adamw":
        _check_adamw(c)
    if not 0.0 <= c.momentum < 1.0:
        _fail(f"momentum must be in [0, 1), got {c.momentum}")
    if c.nesterov and c.momentum == 0:
        _fail("nesterov needs momentum > 0; pass --momentum 0.9 (say) or drop --nesterov")
    if not (math.isfinite(c.weight_decay) and c.weight_decay >= 0):
        _fail(f"weight_decay must be >= 0, got {c.weight_decay}")


def _check_adamw(c: TrainConfig) -> None:
    if c.momentum or c.nesterov:
        _fail("adamw takes its momentum from betas (β₁); drop --momentum/--nesterov and pass --betas 0.9,0.999")
    if len(c.betas) != 2 or not all(0.0 <= b < 1.0 for b in c.betas):
        _fail(f"betas must be two numbers in [0, 1), got {list(c.betas)}")
    _positive(c.eps, "eps")


def _check_length(c: TrainConfig) -> None:
    if c.source != "train" and c.epochs is None and c.steps is None:
        return  # a recorded or imported run: its length is what the file holds
    if (c.epochs is None) == (c.steps is None):
        _fail("give exactly one of epochs and steps (the length of the run), "
              f"got epochs={c.epochs} steps={c.steps}")
    for name in ("epochs", "steps"):
        v = getattr(c, name)
        if v is not None and (not isinstance(v, int) or v < 1):
            _fail(f"{name} must be a positive integer, got {v!r}")
    if not isinstance(c.batch_size, int) or c.batch_size < 1:
        _fail(f"batch_size must be a positive integer, got {c.batch_size!r}")


def _ascending(values, name: str, first_min: int) -> None:
    if any(b <= a for a, b in zip(values, values[1:])) or (values and values[0] < first_min):
        _fail(f"{name} must be strictly increasing steps >= {first_min}, got {list(values)}")


def _check_schedule(c: TrainConfig) -> None:
    if c.schedule == "step":
        if not c.milestones:
            _fail("schedule 'step' needs milestones, e.g. --milestones 20000,40000")
        _ascending(c.milestones, "milestones", 1)
        _positive(c.gamma, "gamma")
    if c.schedule == "cosine":
        if c.cosine_steps is not None and c.cosine_steps < 1:
            _fail(f"cosine_steps must be >= 1, got {c.cosine_steps}")
        if not 0 <= c.min_lr <= c.lr:
            _fail(f"min_lr must be in [0, lr], got {c.min_lr}")
    if c.schedule == "list":
        if not c.lr_points or c.lr_points[0][0] != 0:
            _fail("schedule 'list' needs (step, lr) pairs starting at step 0, e.g. --lr-points 0:0.1,500:0.01")
        _ascending([s for s, _ in c.lr_points], "lr_points steps", 0)
        for _, v in c.lr_points:
            _positive(v, "every lr in lr_points")
    if c.warmup_steps < 0:
        _fail(f"warmup_steps must be >= 0, got {c.warmup_steps}")


def _check_recording(c: TrainConfig) -> None:
    for name in ("save_every", "save_log", "eval_every", "sharpness_every"):
        v = getattr(c, name)
        if not isinstance(v, int) or v < 0:
            _fail(f"{name} must be an integer >= 0 (0 turns it off), got {v!r}")
    if any(s < 0 for s in c.save_steps):
        _fail(f"save_steps must be >= 0, got {list(c.save_steps)}")
    for name in ("eval_batch_size", "sharpness_k", "sharpness_subset", "sharpness_max_matvecs"):
        v = getattr(c, name)
        if not isinstance(v, int) or v < 1:
            _fail(f"{name} must be a positive integer, got {v!r}")
    _positive(c.sharpness_tol, "sharpness_tol")
