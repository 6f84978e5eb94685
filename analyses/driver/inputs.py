"""The inputs of a per-step analysis: an opened run, the chosen steps, and the objectives.

There is one way to build the :class:`landscape.Objective` at a checkpoint: through
:meth:`checkpoints.replay.Run.objective` (θ and BatchNorm buffers of the step, the targets
as the run's loss sees them), with the options of :class:`ObjectiveOptions` (BN mode,
training subset, parameter subset, batch size, dtype) and, under ``torchrun``, this
process's shard of the examples and the all-reduce that sums partial results.

Example::

    with open_run_inputs("run.h5", "every:2,last", device="cpu", options=ObjectiveOptions(subset=1000)) as inp:
        for step in inp.steps:
            obj = inp.objective(step)                 # θ_step is obj.theta
            test = inp.objective(step, split="test")  # the whole test split
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from analyses.driver.distributed import SINGLE, DistContext, all_reduce_sum, shard
from analyses.driver.steps import parse_steps
from landscape.errors import InputError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
BN_MODES = ("eval", "train")
SPLITS = ("train", "test")


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(device: str) -> str:
    """Refuse a CUDA device on a machine without one (one clear line instead of a traceback)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {device!r} is not a torch device; use e.g. cpu, cuda, cuda:1") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device is visible here; use --device cpu")
    return device


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` → ``torch.float32``."""
    if name not in DTYPES:
        raise InputError(f"--dtype {name!r}: choose one of {', '.join(sorted(DTYPES))}")
    return DTYPES[name]


def param_patterns(spec: str | None) -> list[str] | None:
    """``"fc.*,conv1.*"`` → ``["fc.*", "conv1.*"]``; None or empty → None (all parameters)."""
    if not spec:
        return None
    return [s.strip() for s in spec.split(",") if s.strip()] or None


@dataclass(frozen=True)
class ObjectiveOptions:
    """Which loss the analysis is of (the ``--subset``, ``--bn``, ``--params``, ``--batch-size``, ``--dtype`` flags)."""

    bn: str = "eval"              # BatchNorm: running statistics (eval) or per-batch (train)
    subset: int | None = None     # training examples: the run's fixed seeded subset of this size (None: all)
    params: str | None = None     # comma-separated glob patterns on parameter names (None: all)
    batch_size: int = 1024        # examples per forward pass (results do not depend on it)
    dtype: str = "float32"        # dtype of the model and the products

    def settings(self) -> dict:
        """The options results depend on (``batch_size`` changes no number)."""
        return {"bn": self.bn, "subset": self.subset, "params": self.params, "dtype": self.dtype}

    def __post_init__(self):
        if self.subset == "all":           # ``--subset all``: every training example
            object.__setattr__(self, "subset", None)

    @classmethod
    def from_args(cls, args) -> ObjectiveOptions:
        """The options a parsed command line gives (missing flags keep the defaults)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


class RunInputs:
    """An opened run (:class:`checkpoints.replay.Run`), the chosen steps and the objectives at them.

    Args:
        run: the opened run.
        steps: the chosen saved steps.
        device: where to compute.
        options: what the objective is of.
        ctx: this process's place in a data-parallel group (one process by default).
    """

    def __init__(self, run, steps: list[int], device: str, options: ObjectiveOptions = ObjectiveOptions(),
                 ctx: DistContext = SINGLE):
        self.run, self.steps, self.device, self.options, self.ctx = run, list(steps), device, options, ctx
        self.dtype = torch_dtype(options.dtype)
        self._cache: dict = {}

    def replace(self, **options) -> RunInputs:
        """The same run and steps with other objective options (e.g. ``dtype="float64"``)."""
        return RunInputs(self.run, self.steps, self.device, dataclasses.replace(self.options, **options), self.ctx)

    # --- identity -----------------------------------------------------------------------
    @property
    def run_id(self) -> dict:
        """``{"path", "run_sha256"}`` binding a results file to this run."""
        return {"path": self.run.file.path, "run_sha256": self.run.file.file_sha256}

    @property
    def source(self) -> dict:
        """Provenance of the inputs: the run file and its identifying checksum."""
        return {"run": self.run.file.path, "run_sha256": self.run.file.file_sha256}

    def param_sha256(self, step: int) -> str:
        """SHA-256 of θ at a saved step (stored with every item computed at it)."""
        return self.run.file.param_sha256(step)

    @property
    def spec(self):
        """The :class:`~landscape.params.ParamSpec` of the parameters the objective covers."""
        from landscape.params import ParamSpec

        return ParamSpec.from_module(self.run.model, include=param_patterns(self.options.params))

    def item_attrs(self, step: int) -> dict:
        """What identifies the inputs of an item at ``step``: checksums, sizes, model, run config."""
        file, spec = self.run.file, self.spec
        return {"step": int(step), "param_sha256": self.param_sha256(step), "P": spec.numel,
                "N": int(len(self.indices)), "param_names": list(spec.names), "run_config": file.config,
                "model": {"name": file.model_name, "kwargs": file.model_kwargs, "params": self.options.params}}

    # --- data and objectives ---------------------------------------------------------------
    @property
    def indices(self) -> np.ndarray:
        """Training examples used (all processes together): the run's seeded subset, or all."""
        if "indices" not in self._cache:
            self._cache["indices"] = subset_indices(self.run, self.options.subset)
        return self._cache["indices"]

    def objective(self, step: int, split: str = "train"):
        """The objective at ``step`` over the training examples (this process's shard) or the test split.

        Built through ``Run.objective`` once per (step, split) and kept while the step is current.
        """
        if split not in SPLITS:
            raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if self._cache.get("step") != step:
            self._cache = {"step": step, "indices": self._cache.get("indices")} if "indices" in self._cache \
                else {"step": step}
        if split not in self._cache:
            self._cache[split] = self._build(step, split)
        return self._cache[split]

    def _build(self, step: int, split: str):
        o = self.options
        options = dict(bn=o.bn, batch_size=o.batch_size, params=param_patterns(o.params), dtype=self.dtype,
                       device=self.device)
        if split == "test":
            return self.run.objective(step, split="test", **options)
        return self.run.objective(step, subset=shard(self.indices, self.ctx), all_reduce=all_reduce_sum(self.ctx),
                                  **options)


def subset_indices(run, subset: int | None) -> np.ndarray:
    """Indices of the training examples used: the run's fixed seeded subset of ``subset``, or all."""
    N = int(run.dataset.num_train)
    if subset is None:
        return np.arange(N, dtype=np.int64)
    if subset < 1 or subset > N:
        raise InputError(f"--subset {subset}: choose 1 ≤ N ≤ {N} (the run has {N} training examples)")
    return run.subset(subset).cpu().numpy().astype(np.int64)


@contextlib.contextmanager
def open_run_inputs(path: str, steps: str, *, device: str, options: ObjectiveOptions = ObjectiveOptions(),
                    ctx: DistContext = SINGLE) -> Iterator[RunInputs]:
    """Open the run file ``path`` read-only and resolve the ``--steps`` spec against its saved steps.

    Raises:
        FileFormatError/CheckpointCorruptError: a missing, damaged or incomplete run file.
        InputError: a step that is not saved (the message lists those that are).
    """
    from checkpoints.replay import open_run

    device = check_device(device)
    with open_run(path, device=device) as run:
        yield RunInputs(run, parse_steps(steps, run.saved_steps), device, options, ctx)


def open_results(path: str, inputs: RunInputs):
    """The results file ``path`` (mode ``"a"``), bound to the run (another run's file is refused)."""
    from landscape.io import ResultsFile

    return ResultsFile(path, "a", run_id=inputs.run_id)
