"""Line searches along stored Hessian eigenvectors: curves, fits, dense zooms, the quadratic check.

Items per step (``linesearch/step_XXXXXXXX/<quantity>``), computed by :class:`LineSearchWork`:

* ``curves`` — L and accuracy at θ ± t v_i on the t-grid, g·v_i, λ_i, and with minibatches
  the minibatch curves from the same forward passes (:mod:`analyses.linesearch.curves`);
* ``fits`` — small-t quadratic, quadratic and quartic fits, an optional user form
  (:mod:`analyses.linesearch.fits`);
* ``zoom`` — thousands of points around the minima and their roughness across scales
  (:mod:`analyses.linesearch.zoom`);
* ``quadratic_check`` — random directions: truth vs the uᵀHu quadratic vs the sum of
  eigendirection line searches (:mod:`analyses.linesearch.quadratic_check`).

User guide: ``docs/analyses-eigen.md``.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from analyses.driver.records import Item, Record
from analyses.linesearch.curves import (TGrid, along, check_fit_grid, curve_minima, minibatch_statistics,
                                        minibatches, select_directions)
from analyses.linesearch.fits import FunctionalForm, fit_curves
from analyses.linesearch.quadratic_check import quadratic_check, random_unit_directions
from analyses.linesearch.zoom import zoom, zoom_offsets
from landscape.errors import InputError
from landscape.io import step_key

NAME = "linesearch"

FORM_FUNCS = {name: getattr(np, name) for name in
              ("exp", "log", "sqrt", "abs", "cosh", "sinh", "tanh", "cos", "sin", "log1p", "expm1", "arctan")}
_FORM_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant, ast.Add,
               ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)
# Options whose change makes a stored item incomparable with a new one (refused, not mixed).
CURVE_FIELDS = ("directions", "t_max", "num_t", "spacing", "t_min", "minibatch_size", "num_minibatches", "seed",
                "bn", "subset", "params", "dtype")
ITEM_FIELDS = {  # quantity → the config fields its numbers depend on
"curves": CURVE_FIELDS,
               "fits": CURVE_FIELDS + ("fit_window", "form", "form_p0", "departure_tol"),
               "zoom": CURVE_FIELDS + ("zoom", "zoom_points", "zoom_width", "zoom_float64"),
               "quadratic_check": CURVE_FIELDS + ("random_directions", "parting_rtol")}


@dataclass(frozen=True)
class LineSearchConfig:
    """Everything the items depend on (stored with each)."""

    directions: str = "all"
    t_max: float = 1.0
    num_t: int = 41
    spacing: str = "linear"
    t_min: float = 1e-3
    minibatch_size: int = 0          # 0: no minibatch curves
    num_minibatches: int | None = None  # None: every disjoint minibatch (N // size)
    seed: int = 0                    # minibatch partition and random directions
    fit_window: float | None = None  # |t| of the small-t quadratic; None: t_max / 4
    form: str = ""
    form_p0: str = ""
    departure_tol: float = 0.1
    zoom: int = 0
    zoom_points: int = 2001
    zoom_width: float | None = None  # half-width; None: 1e-3 × t_max
    zoom_float64: bool = False
    random_directions: int = 0
    parting_rtol: float = 0.1
    bn: str = "eval"
    subset: int | None = None
    params: str | None = None
    dtype: str = "float32"
    batch_size: int = 1024
    chunk: int = 32

    @property
    def grid(self) -> TGrid:
        return TGrid(self.t_max, self.num_t, self.spacing, self.t_min)

    @property
    def window(self) -> float:
        return self.fit_window if self.fit_window is not None else self.t_max / 4

    @property
    def half_width(self) -> float:
        return self.zoom_width if self.zoom_width is not None else 1e-3 * self.t_max

    def check(self) -> None:
        """Refuse bad grids and options before anything is computed."""
        self.grid.check()
        if not (np.isfinite(self.window) and self.window > 0):
            raise InputError(f"--fit-window must be finite and positive, got {self.window}")
        if self.zoom:
            zoom_offsets(self.half_width, self.zoom_points)
        if min(self.zoom, self.random_directions, self.minibatch_size) < 0 or self.chunk < 1:
            raise InputError("--zoom, --random-directions and --minibatch-size must be ≥ 0, --chunk ≥ 1")
        check_fit_grid(self.grid.values(), self.window)


def parse_form(expr: str, p0: str = "") -> FunctionalForm:
    """A :class:`FunctionalForm` from an arithmetic expression in ``t`` and parameter names.

    Only numbers, names, + − × / **, unary ±, and the functions in :data:`FORM_FUNCS` are
    allowed (checked on the syntax tree before anything is evaluated).
    """
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as err:
        raise InputError(f"--form {expr!r} is not an expression: {err.msg}") from None
    for node in ast.walk(tree):
        bad = not isinstance(node, _FORM_NODES) or (isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name) or node.func.id not in FORM_FUNCS or node.keywords)) or (
            isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)))
        if bad:
            raise InputError(f"--form {expr!r}: only numbers, t, parameter names, + - * / ** and "
                             f"{', '.join(FORM_FUNCS)} are allowed (found {type(node).__name__})")
    names = list(dict.fromkeys(n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
                               and n.id not in FORM_FUNCS and n.id != "t"))
    if not names:
        raise InputError(f"--form {expr!r} has no parameters to fit")
    code = compile(tree, "<form>", "eval")

    def fn(t, *params):
        scope = {**FORM_FUNCS, "t": np.asarray(t, dtype=np.float64), **dict(zip(names, params))}
        return eval(code, {"__builtins__": {}}, scope) + 0.0 * scope["t"]  # noqa: S307 — vetted tree
    return FunctionalForm("form", fn, tuple(names), _p0(p0, names), expr)


def _p0(spec: str, names: list[str]) -> tuple[float, ...]:
    vals = dict.fromkeys(names, 1.0)
    for term in (s.strip() for s in spec.split(",") if s.strip()):
        name, _, value = term.partition("=")
        if name.strip() not in vals:
            raise InputError(f"--form-p0 {term!r}: {name.strip()!r} is not a parameter of the form ({', '.join(names)})")
        try:
            vals[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"--form-p0 {term!r}: give name=number") from None
    return tuple(vals.values())


class LineSearchWork:
    """The items of one step; the objective is built only if an item needs computing.

    Args:
        inputs: the driver's :class:`~analyses.driver.inputs.RunInputs` (objectives at the step).
        cfg: the line-search configuration.
        eig: the checked stored eigenpairs of the step (:class:`~analyses.driver.eigen.Eigen`).
        load: ``load(key)`` → the arrays of a stored item (the curves, for the later items).
        form: an optional form to fit.
    """

    def __init__(self, inputs, cfg: LineSearchConfig, eig, load, form: FunctionalForm | None = None):
        params = cfg.params if cfg.params is not None else eig.config.get("params")
        subset = same_subset(cfg.subset, eig)
        self.cfg = dataclasses.replace(cfg, params=params, subset=subset)
        self.inputs = inputs.replace(params=params, subset=subset)
        self.eig, self.load, self.form, self.step = eig, load, form, eig.step
        self.idx = select_directions(cfg.directions, eig.eigenvalues)
        self._obj, self._curves = None, None

    def key(self, quantity: str) -> str:
        return step_key(NAME, self.step, quantity)

    def settings(self, quantity: str) -> dict:
        """The config fields the numbers of ``quantity`` depend on."""
        return {f: getattr(self.cfg, f) for f in ITEM_FIELDS[quantity]}

    def items(self) -> list[Item]:
        wanted = [("curves", True), ("fits", True), ("zoom", self.cfg.zoom > 0),
                  ("quadratic_check", self.cfg.random_directions > 0)]
        return [Item(self.key(q), partial(getattr(self, q)), label=self.key(q)) for q, on in wanted if on]

    # --- inputs ---------------------------------------------------------------------------
    def objective(self):
        if self._obj is None:
            self._obj = self.inputs.objective(self.step)
            P = self._obj.spec.numel
            if self.eig.eigenvectors.shape[1] != P:
                raise InputError(f"the eigenvectors of step {self.step} have length {self.eig.eigenvectors.shape[1]}, "
                                 f"the objective has P = {P}; pass the --params the Hessian was computed with")
        return self._obj

    def objective64(self):
        return self.inputs.replace(dtype="float64").objective(self.step)

    def indices(self) -> np.ndarray:
        return self.inputs.indices

    def vectors(self, obj, rows=None) -> torch.Tensor:
        rows = self.idx if rows is None else rows
        return torch.as_tensor(self.eig.eigenvectors[rows], device=obj.device, dtype=obj.dtype)

    def curve_arrays(self) -> dict:
        if self._curves is None:
            self._curves = self.load(self.key("curves"))
        return self._curves

    # --- items ----------------------------------------------------------------------------
    def curves(self) -> Record:
        obj, ts = self.objective(), self.cfg.grid.values()
        theta, V = obj.theta, self.vectors(obj)
        batches = None
        if self.cfg.minibatch_size:
            batches = minibatches(obj.num_examples, self.cfg.minibatch_size, self.cfg.num_minibatches,
                                  seed=self.cfg.seed)
        out = along(obj, theta, V, ts, batches=batches, chunk=self.cfg.chunk)
        lam = self.eig.eigenvalues[self.idx]
        arrays = {"ts": ts, "directions": self.idx.astype(np.int64), "eigenvalues": lam,
                  "residuals": self.eig.residuals[self.idx], "slopes": _np(V @ obj.grad(theta)),
                  "loss": out["loss"], "acc": out["acc"], **curve_minima(ts, out["loss"])}
        if batches is not None:
            arrays.update(batch_loss=out["batch_loss"], batch_examples=self.indices()[batches],
                          **minibatch_statistics(ts, out["batch_loss"], lam, self.cfg.window))
        self._curves = arrays
        return Record(arrays, {**self.inputs.item_attrs(self.step), "eigen_config": self.eig.config},
                      summary=f"{len(lam)} curves × {len(ts)} points on N = {obj.num_examples}; minima at "
                              f"t* = {', '.join(f'{t:.3g}' for t in arrays['min_t'][:4])}")

    def fits(self) -> Record:
        c = self.curve_arrays()
        out = fit_curves(c["ts"], c["loss"], c["eigenvalues"], c["slopes"], window=self.cfg.window,
                         form=self.form, tol=self.cfg.departure_tol)
        attrs = {"step": self.step, "form_params": list(self.form.param_names) if self.form else []}
        return Record({"ts": c["ts"], "eigenvalues": c["eigenvalues"], "directions": c["directions"], **out}, attrs)

    def zoom(self) -> Record:
        c, n = self.curve_arrays(), min(self.cfg.zoom, len(self.idx))
        obj = self.objective()
        rows = np.asarray(c["directions"][:n])
        obj64 = self.objective64() if self.cfg.zoom_float64 else None
        out = zoom(obj, obj.theta, self.vectors(obj, rows), c["min_t"][:n], c["eigenvalues"][:n],
                   half_width=self.cfg.half_width, num=self.cfg.zoom_points, objective64=obj64, chunk=self.cfg.chunk)
        return Record({"directions": rows, "eigenvalues": c["eigenvalues"][:n], **out}, {"step": self.step})

    def quadratic_check(self) -> Record:
        obj, ts = self.objective(), self.cfg.grid.values()
        U = random_unit_directions(obj.spec.numel, self.cfg.random_directions, seed=self.cfg.seed,
                                   dtype=obj.dtype, device=obj.device)
        out = quadratic_check(obj, obj.theta, self.vectors(obj), U, ts, rtol=self.cfg.parting_rtol, chunk=self.cfg.chunk)
        return Record({"directions": self.idx.astype(np.int64), **out}, {"step": self.step})


def same_subset(asked, eig) -> int | None:
    """The training subset of the line search: the eigenpairs' own unless asked otherwise.

    Curves, fits and the quadratic check compare against λ_i, the curvature of the loss *on the
    examples the Hessian was computed on*; ``asked`` None means that subset, ``"all"`` every example.
    """
    if asked is None:
        return eig.subset
    return None if asked == "all" else int(asked)


def subset_mismatch(asked, eig) -> str | None:
    """A warning when the line search's examples are not the eigenpairs' (None when they are)."""
    used = same_subset(asked, eig)
    if used == eig.subset:
        return None
    name = lambda n: "all training examples" if n is None else f"a {n}-example subset"  # noqa: E731
    return (f"step {eig.step}: the eigenpairs were computed on {name(eig.subset)}, the line search uses "
            f"{name(used)}; curvatures are compared with λ of another loss (drop --subset to use the same)")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()
