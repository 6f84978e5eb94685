"""The configuration of a hyperparameter optimisation, and the four recipes of the lab notes (seeds 000, 001).

:class:`OptimizeConfig` fixes everything a run of ``landscape hyper optimize`` depends on: the training
problem (the inner loop: model, data, optimiser, T), the hyperparameter groups and their shapes, the
meta-optimisation (optimiser, meta-learning rate, normalisation, seeds per meta-iteration, route) and
the evaluation (held-out seeds, the grid of the constant baseline). :data:`RECIPES` holds one config
per study; the command line takes a recipe by name and overrides single fields.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field

from landscape.errors import InputError
from landscape.hyper import GROUPS
from landscape.hyper.meta import META_OPTIMIZERS, NORMALIZATIONS, check_meta_lr

LR_SHAPES = ("scalar", "step", "layer", "step_layer")   # log_lr: (), (T,1), (1,L), (T,L)
L2_SHAPES = ("scalar", "layer", "weight")               # log_l2: (), (L,), (P,)
INIT_MODES = ("random", "fixed")                        # seeds per meta-iteration: fresh each time, or the same
ROUTE_CHOICES = ("auto", "forward", "checkpointed", "reversible")
DISTILL_STARTS = ("noise", "zeros", "real")
MAIN_GROUP = {"schedule": "log_lr", "init": "init_quantiles", "ard": "log_l2", "distill": "train_inputs",
              "distill_fixed": "train_inputs"}
# The fields that decide the meta-iterates; the others (iterations, evaluation) may change on resume.
RESUMABLE_FIELDS = ("iterations", "eval_seeds", "const_lo", "const_hi", "const_num", "curve_points")

MLP_TANH = {"in_dim": 40, "hidden": [100, 50], "activation": "tanh"}
MNIST1D_3K = {"num_train": 3000, "num_test": 1000}


@dataclass(frozen=True)
class OptimizeConfig:
    """One hyperparameter optimisation (units in comments)."""

    recipe: str = "schedule"             # schedule | init | ard | distill | distill_fixed (its evaluation)
    groups: tuple = ("log_lr",)          # groups optimised, comma-separated: log_lr, momentum, log_init_scale, init_quantiles, log_l2, train_inputs
    # the training problem (inner loop); validation = the last num_val training examples, test = test split
    model: str = "mlp"                   # model name (landscape.models), no BatchNorm
    model_kwargs: dict = field(default_factory=lambda: dict(MLP_TANH))      # JSON
    dataset: str = "mnist1d"             # dataset name
    dataset_kwargs: dict = field(default_factory=lambda: dict(MNIST1D_3K))  # JSON
    num_val: int = 1000                  # training examples held out as the validation set (the meta-loss)
    loss: str = "cross_entropy"          # cross_entropy | mse
    lr: float = 0.1                      # η where log_lr is not optimised, and its starting value
    momentum: float = 0.9                # heavy-ball β
    weight_decay: float = 0.0            # L2 λ where log_l2 is not optimised
    batch_size: int = 100                # examples per step
    full_batch: bool = False             # gradient descent on the whole training set
    steps: int = 200                     # T: training steps of the inner loop
    # the hyperparameters
    lr_shape: str = "step"               # scalar | step | layer | step_layer (per step and per parameter tensor)
    lr_knots: int = 0                    # 0: one log η per step; n: piecewise linear through n knots (smooth)
    l2_shape: str = "weight"             # scalar | layer | weight (ARD)
    l2_init: float = 1e-3                # starting λ of log_l2
    quantile_knots: int = 16             # K: knots of each layer's initial quantile function
    per_class: int = 1                   # distilled examples per class
    distill_start: str = "noise"         # noise (N(0, 1)) | zeros | real (a random training example per class)
    # the meta-optimisation
    iterations: int = 50                 # meta-iterations
    meta_optimizer: str = "adam"         # adam | sgd (heavy ball, meta_momentum)
    meta_lr: float = 0.05                # meta-learning rate (units of φ per meta-step with Adam)
    meta_lr_groups: tuple = ()           # ((group, meta-lr), ...): per-group overrides
    meta_momentum: float = 0.9           # sgd only
    normalize: str = "layer"             # none | group | layer: meta-gradient / its RMS per block
    seeds_per_iter: int = 4              # init + batch-plan seeds averaged per meta-iteration
    init: str = "random"                 # random: new seeds every meta-iteration | fixed: the same seeds
    seed: int = 0                        # first seed (and the seed of the starting values)
    route: str = "auto"                  # auto | forward | checkpointed | reversible
    # the evaluation (held-out seeds)
    eval_seeds: int = 5                  # seeds of the evaluation, disjoint from the meta-training seeds
    const_lo: float = 0.003              # the constant baseline's grid (η, or λ for ard), log-spaced
    const_hi: float = 3.0                # largest value of that grid
    const_num: int = 13                  # points of that grid
    curve_points: int = 41               # evaluation steps of the learning curves

    def __post_init__(self):
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "meta_lr_groups", tuple((str(g), float(v)) for g, v in self.meta_lr_groups))
        check_config(self)

    def as_dict(self) -> dict:
        """JSON-normal fields (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    def iterate_settings(self) -> dict:
        """The fields that decide the meta-iterates (a resumed run must match them)."""
        return {k: v for k, v in self.as_dict().items() if k not in RESUMABLE_FIELDS}

    def group_lr(self) -> dict[str, float]:
        """The meta-learning rate of each group."""
        over = dict(self.meta_lr_groups)
        return {g: over.get(g, self.meta_lr) for g in self.groups}

    def replace(self, **changes) -> OptimizeConfig:
        return dataclasses.replace(self, **changes)


def check_config(c: OptimizeConfig) -> None:
    """Refuse unknown names and out-of-range numbers (one line each, naming the fix)."""
    _choice("recipe", c.recipe, RECIPE_NAMES)
    if not c.groups:
        raise InputError("give at least one hyperparameter group to optimise")
    unknown = [g for g in c.groups if g not in GROUPS]
    if unknown or len(set(c.groups)) != len(c.groups):
        raise InputError(f"unknown or repeated hyperparameter group(s) {unknown or list(c.groups)}; "
                         f"known groups: {', '.join(GROUPS)}")
    if MAIN_GROUP[c.recipe] not in c.groups:
        raise InputError(f"the {c.recipe} recipe optimises {MAIN_GROUP[c.recipe]}; keep it among --groups")
    for name, value in c.meta_lr_groups:
        if name not in c.groups:
            raise InputError(f"a meta-learning rate is given for {name!r}, which is not optimised "
                             f"(groups: {', '.join(c.groups)})")
        check_meta_lr(value, name)
    check_meta_lr(c.meta_lr)
    for name, value, choices in (("lr_shape", c.lr_shape, LR_SHAPES), ("l2_shape", c.l2_shape, L2_SHAPES),
                                 ("init", c.init, INIT_MODES), ("route", c.route, ROUTE_CHOICES),
                                 ("normalize", c.normalize, NORMALIZATIONS),
                                 ("meta_optimizer", c.meta_optimizer, META_OPTIMIZERS),
                                 ("distill_start", c.distill_start, DISTILL_STARTS)):
        _choice(name, value, choices)
    _check_numbers(c)


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _check_numbers(c: OptimizeConfig) -> None:
    positive_ints = {"steps": c.steps, "iterations": c.iterations, "seeds_per_iter": c.seeds_per_iter,
                     "eval_seeds": c.eval_seeds, "num_val": c.num_val, "quantile_knots": c.quantile_knots - 1,
                     "per_class": c.per_class, "batch_size": c.batch_size, "const_num": c.const_num,
                     "curve_points": c.curve_points - 1}
    bad = [k for k, v in positive_ints.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1]
    if bad:
        raise InputError(f"{bad[0]} must be a positive integer (quantile_knots and curve_points ≥ 2); "
                         f"got {getattr(c, bad[0])!r}")
    if not 0 <= c.lr_knots <= c.steps:
        raise InputError(f"lr_knots must lie in [0, steps = {c.steps}] (0: one value per step), got {c.lr_knots}")
    for name in ("lr", "l2_init", "const_lo", "const_hi"):
        value = getattr(c, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a finite number > 0, got {value!r}")
    if c.const_hi < c.const_lo:
        raise InputError(f"the baseline grid is empty: const_lo = {c.const_lo} > const_hi = {c.const_hi}")
    for name in ("momentum", "meta_momentum"):
        if not 0 <= getattr(c, name) < 1:
            raise InputError(f"{name} must lie in [0, 1), got {getattr(c, name)}")


RECIPE_NAMES = tuple(MAIN_GROUP)
DISTILL = dict(groups=("train_inputs", "log_lr"), model_kwargs={"in_dim": 40, "hidden": [100], "activation": "tanh"},
               dataset_kwargs={"num_train": 4000, "num_test": 1000}, num_val=3500, lr=0.1, momentum=0.0,
               full_batch=True, steps=10, lr_shape="step", distill_start="zeros", iterations=1000, meta_lr=0.02,
               eval_seeds=10, const_lo=0.01, const_hi=10.0)

# Each recipe at its default size runs in ≤ 10 minutes on 2 CPU cores (bench/hyperopt.py).
RECIPES = {
    # A learning-rate schedule: one log η per step (optionally per layer: lr_shape=step_layer), from a
    # small constant rate; compared with the best constant rate on the same T.
    "schedule": dict(groups=("log_lr",), lr=0.03, lr_shape="step", iterations=60, meta_lr=0.05, const_num=25),
    # Per-layer initial weight distributions: a monotone quantile function of K knots per parameter tensor.
    "init": dict(groups=("init_quantiles",), lr=0.1, iterations=60, meta_lr=0.02),
    # Per-weight L2 penalties (automatic relevance determination) on logistic regression.
    "ard": dict(groups=("log_l2",), model_kwargs={"in_dim": 40, "hidden": []},
                dataset_kwargs={"num_train": 1300, "num_test": 1000}, lr=0.5, batch_size=100, steps=300,
                l2_init=1e-3, iterations=80, meta_lr=0.1, const_lo=1e-5, const_hi=10.0, const_num=13),
    # A distilled training set: one example per class (and a per-step learning rate) such that a freshly
    # initialised net trained on them alone does best on validation data; a new init every meta-iteration.
    # The training split is only the pool of the random real examples: most of it is the validation set.
    "distill": dict(DISTILL, seeds_per_iter=4),
    # The same with one fixed initialisation (Wang et al. 2018's "fixed init" setting).
    "distill_fixed": dict(DISTILL, seeds_per_iter=1, init="fixed"),
}


def recipe(name: str, **overrides) -> OptimizeConfig:
    """The config of a recipe, with fields overridden.

    Raises:
        InputError: unknown recipe or field, or an invalid value.
    """
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPE_NAMES)}")
    fields = {f.name for f in dataclasses.fields(OptimizeConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise InputError(f"unknown setting(s) {unknown}; settable: {', '.join(sorted(fields - {'recipe'}))}")
    return OptimizeConfig(recipe=name, **{**RECIPES[name], **overrides})


def field_help() -> dict[str, str]:
    """Each field's comment in :class:`OptimizeConfig` (the command line's help: one source of truth)."""
    import inspect
    import re

    pattern = re.compile(r"^\s+(\w+): [^=]+=.*?#\s*(.+)$")
    return {m.group(1): m.group(2).strip() for line in inspect.getsource(OptimizeConfig).splitlines()
            if (m := pattern.match(line))}
