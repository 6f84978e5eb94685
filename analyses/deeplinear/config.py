"""Frozen configurations of the deep-linear studies, with their checks.

Units: learning rates η are per gradient step on our loss (mean over the N examples of
‖f(x) − y‖², no ½: :mod:`landscape.losses`); times are in gradient steps; loss thresholds
are in the loss's own units (the *excess* loss L − L*, L* its exact minimum).

Every check raises :class:`~landscape.errors.InputError` with one line naming the field
and the fix; the command line turns it into a non-zero exit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from landscape.errors import InputError


def _name(field: str) -> str:
    return "--" + field.replace("_", "-")


def check_positive(field: str, value, *, allow_zero: bool = False) -> float:
    """``value`` as a float that is finite and > 0 (≥ 0 with ``allow_zero``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise InputError(f"{_name(field)} must be a finite number {bound}, got {value!r}")
    return float(value)


def check_count(field: str, value, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{_name(field)} must be an integer ≥ {minimum}, got {value!r}")
    return value


def check_values(field: str, values, *, allow_zero: bool = False) -> tuple[float, ...]:
    """A non-empty grid of finite numbers > 0 (≥ 0 with ``allow_zero``)."""
    values = tuple(values)
    if not values:
        raise InputError(f"{_name(field)} is an empty grid; give at least one value")
    return tuple(check_positive(field, v, allow_zero=allow_zero) for v in values)


def check_depths(field: str, depths) -> tuple[int, ...]:
    """A non-empty grid of depths, each an integer ≥ 1."""
    depths = tuple(depths)
    if not depths:
        raise InputError(f"{_name(field)} is an empty grid; give at least one depth")
    for d in depths:
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise InputError(f"{_name(field)}: depth must be an integer ≥ 1, got {d!r}")
    return depths


def log_grid(lo: float, hi: float, num: int) -> tuple[float, ...]:
    """``num`` log-spaced values from ``lo`` to ``hi`` (rounded to 4 significant digits)."""
    if num == 1:
        return (float(lo),)
    step = (math.log(hi) - math.log(lo)) / (num - 1)
    return tuple(float(f"{math.exp(math.log(lo) + i * step):.4g}") for i in range(num))


class Config:
    """Mixin: ``as_dict()`` (JSON types) and ``validate()`` run by ``__post_init__``."""

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:  # pragma: no cover - overridden
        pass

    def as_dict(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "as_dict"):
        return v.as_dict()
    return v


@dataclass(frozen=True)
class DataConfig(Config):
    """The generated data set y = a·x + ε of the narrow nets."""

    slope: float = 2.0        # a (NMA's tutorial: 2)
    noise: float = 0.2        # std of ε ~ N(0, noise²) (NMA: 0.2)
    num_points: int = 73      # N (NMA: 73)
    x_std: float = 1.0        # x ~ N(0, x_std²)
    seed: int = 0             # draws x and ε

    def validate(self):
        if not (isinstance(self.slope, (int, float)) and math.isfinite(self.slope)):
            raise InputError(f"--slope must be a finite number, got {self.slope!r}")
        check_positive("noise", self.noise, allow_zero=True)
        check_count("num_points", self.num_points)
        check_positive("x_std", self.x_std, allow_zero=True)   # 0 is refused later: zero variance


@dataclass(frozen=True)
class NarrowConfig(Config):
    """Study 1: the two-layer scalar net y = x·w₁·w₂ through the Objective."""

    grid: int = 101                  # loss-grid points per axis
    span: float = 3.0                # the grid covers [−span, span]²
    field: int = 17                  # gradient-field arrows per axis
    lr: float = 0.02                 # η of the trajectories (NMA: 0.02)
    steps: int = 300                 # gradient steps per trajectory
    starts: tuple = ((1.4, -1.6), (1.0, -0.97), (-2.0, 0.3), (0.4, 2.6))   # (w₁, w₂); 2nd near the saddle's stable manifold
    newton_grid: int = 5             # Newton starts per axis (a grid over ±0.8·span)
    newton_iters: int = 60           # most Newton steps per start
    newton_tol: float = 1e-11        # stop at ‖∇L‖ ≤ newton_tol (float64)

    def validate(self):
        check_count("grid", self.grid, 2)
        check_positive("span", self.span)
        check_count("field", self.field, 2)
        check_positive("lr", self.lr)
        check_count("steps", self.steps)
        if not self.starts or any(len(s) != 2 or not all(math.isfinite(float(c)) for c in s) for s in self.starts):
            raise InputError(f"--starts must be one or more finite points W1,W2; got {self.starts!r}")
        check_count("newton_grid", self.newton_grid)
        check_count("newton_iters", self.newton_iters)
        check_positive("newton_tol", self.newton_tol)


@dataclass(frozen=True)
class RegimesConfig(Config):
    """Study 2: error curves for a sweep of η from one start of the two-layer net."""

    start: tuple = (1.4, -1.6)       # (w₁, w₂)
    lrs: tuple = ()                  # η values; empty: lr_factors × 2/λ_max(start)
    lr_factors: tuple = (0.0005, 0.02, 0.12, 0.4, 0.85, 1.3, 2.0, 2.6)   # the default sweep, in units of 2/λ_max(start)
    steps: int = 200                 # gradient steps per curve

    def validate(self):
        if len(self.start) != 2 or not all(math.isfinite(float(c)) for c in self.start):
            raise InputError(f"--start must be a finite point W1,W2; got {self.start!r}")
        if self.lrs:
            check_values("lrs", self.lrs)
        check_values("lr_factors", self.lr_factors)
        check_count("steps", self.steps)


@dataclass(frozen=True)
class DepthConfig(Config):
    """Study 3: narrow deep nets y = (Π wᵢ)·x — best η and learning time per depth; inits."""

    depths: tuple = (1, 2, 3, 5, 10, 20, 30, 50, 75, 100)
    inits: tuple = (0.9, 1.0)        # wᵢ = c for the depth sweep (0.9: NMA's; 1: isometric)
    lrs: tuple = log_grid(1e-4, 3.0, 31)   # the η sweep
    threshold: float = 1e-2          # learned when L − L* ≤ threshold (NMA: loss < 1e-2)
    max_steps: int = 100_000         # a run that has not learned by then is censored
    init_depth: int = 15             # depth of the initialisation sweep (NMA: 15)
    init_cs: tuple = (0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15)   # wᵢ = c
    init_sigmas: tuple = (0.25, 0.5, 1.0)   # small random inits wᵢ ~ N(0, σ²)
    init_seeds: int = 3              # random draws per σ
    init_max_steps: int = 20_000     # horizon of the initialisation sweep
    curve_points: int = 120          # stored loss-curve samples (log-spaced steps)

    def validate(self):
        check_depths("depths", self.depths)
        check_values("inits", self.inits)
        check_values("lrs", self.lrs)
        check_positive("threshold", self.threshold)
        check_count("max_steps", self.max_steps)
        check_depths("init_depth", (self.init_depth,))
        check_values("init_cs", self.init_cs)
        check_values("init_sigmas", self.init_sigmas)
        check_count("init_seeds", self.init_seeds)
        check_count("init_max_steps", self.init_max_steps)
        check_count("curve_points", self.curve_points, 2)


@dataclass(frozen=True)
class SaxeConfig(Config):
    """Study 4: wide deep linear nets against the exact solution of Saxe et al. (2014)."""

    singular_values: tuple = (3.0, 2.0, 1.0, 0.5)   # s_α of the target map Σ_yx
    in_dim: int = 8                  # N_1
    out_dim: int = 8                 # N_3
    hidden: int = 8                  # N_2 (≥ number of modes)
    num_examples: int = 64           # N; inputs whitened exactly (Σ_xx = I)
    u0: float = 1e-3                 # initial mode strength of the balanced init
    lr: float = 0.002                # η; τ = 1/(2η) steps (see saxe.py)
    steps: int = 4000                # steps of the two-layer simulation
    init_scale: float = 0.03         # std·√fan_in of the small random init (the comparison run)
    depths: tuple = (2, 3, 4, 6, 8, 12, 16, 24, 32)   # depth study
    width: int = 8                   # hidden width of the depth study
    depth_inits: tuple = (("gaussian", 0.5), ("gaussian", 1.0), ("orthogonal", 1.0))   # (init, scale)
    lrs: tuple = log_grid(1e-3, 0.3, 16)   # η sweep of the depth study
    threshold: float = 1e-2          # learned when L − L* ≤ threshold · Σ s_α² (the zero map's excess)
    max_steps: int = 5_000           # depth-study horizon (steps)
    seed: int = 0

    def validate(self):
        check_values("singular_values", self.singular_values)
        for f in ("in_dim", "out_dim", "hidden", "num_examples", "width", "steps", "max_steps"):
            check_count(f, getattr(self, f))
        rank = len(self.singular_values)
        if rank > min(self.in_dim, self.out_dim, self.hidden, self.width):
            raise InputError(f"--singular-values: {rank} modes need in-dim, out-dim, hidden and width ≥ {rank}")
        if self.num_examples < self.in_dim:
            raise InputError(f"--num-examples must be ≥ in-dim ({self.in_dim}) so the inputs can be whitened")
        check_positive("u0", self.u0)
        if self.u0 >= min(self.singular_values):
            raise InputError(f"--u0 must be below the smallest singular value {min(self.singular_values)}")
        check_positive("lr", self.lr)
        check_positive("init_scale", self.init_scale)
        check_depths("depths", self.depths)
        for init, scale in self.depth_inits:
            if init not in ("gaussian", "orthogonal"):
                raise InputError(f"--depth-inits: init must be gaussian or orthogonal, got {init!r}")
            check_positive("depth_inits", scale)
        check_values("lrs", self.lrs)
        check_positive("threshold", self.threshold)


@dataclass(frozen=True)
class PageConfig(Config):
    """The precomputed grid behind the interactive page: depth × η × c."""

    depths: tuple = (1, 2, 3, 5, 10, 20, 50, 100)
    lrs: tuple = log_grid(3e-4, 1.0, 16)
    inits: tuple = (0.6, 0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1)   # wᵢ = c
    steps: int = 1000                # horizon of every curve
    curve_points: int = 100          # stored samples per curve (log-spaced steps)
    trajectory_steps: int = 300      # D = 2 trajectories stored step by step up to here
    grid: int = 81                   # landscape points per axis
    span: float = 3.0                # landscape covers [−span, span]²
    curvature_points: int = 24       # steps (log-spaced) where λ_max is computed for the label
    threshold: float = 1e-2          # learned when L − L* ≤ threshold (as DepthConfig)

    def validate(self):
        check_depths("depths", self.depths)
        check_values("lrs", self.lrs)
        check_values("inits", self.inits)
        check_positive("threshold", self.threshold)
        for f in ("steps", "curve_points", "trajectory_steps", "curvature_points"):
            check_count(f, getattr(self, f))
        check_count("grid", self.grid, 2)
        check_positive("span", self.span)


STUDIES = ("narrow", "regimes", "depth", "saxe", "page")


@dataclass(frozen=True)
class StudyConfig(Config):
    """Everything one ``landscape deeplinear`` call computes (stored with every item)."""

    data: DataConfig = DataConfig()
    narrow: NarrowConfig = NarrowConfig()
    regimes: RegimesConfig = RegimesConfig()
    depth: DepthConfig = DepthConfig()
    saxe: SaxeConfig = SaxeConfig()
    page: PageConfig = PageConfig()

    def item_config(self, study: str) -> dict:
        """The part an item of ``study`` depends on: its own fields and the data's (JSON)."""
        d = {"study": study, study: getattr(self, study).as_dict()}
        if study != "saxe":
            d["data"] = self.data.as_dict()
        return d


def as_json(cfg) -> dict:
    """A frozen dataclass as JSON types (tuples → lists)."""
    return {k: _jsonable(v) for k, v in asdict(cfg).items()}
