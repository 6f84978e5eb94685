"""``landscape linesearch RUN.h5 --steps SPEC --out RESULTS.h5``: loss along Hessian eigenvectors.

Per step, items ``linesearch/step_XXXXXXXX/<quantity>``:

* ``curves`` — L and accuracy at θ ± t v_i on the t-grid, g·v_i, λ_i; with
  ``--minibatch-size`` also the minibatch curves (from the same forward passes) and the
  distribution of their minimum locations and curvatures;
* ``fits`` — small-t quadratic (curvature vs λ_i), quadratic and quartic fits, an optional
  ``--form`` expression, the relative distance from λt²/2 and where it exceeds ``--departure-tol``;
* ``zoom`` (``--zoom N``) — thousands of points around the first N curves' minima and their
  roughness across scales (float32, and float64 with ``--zoom-float64``);
* ``quadratic_check`` (``--random-directions N``) — random directions: truth vs the uᵀHu quadratic
  vs the sum of eigendirection line searches.

The eigenvectors come from ``--eigen`` (default: ``--out``), written by ``landscape hessian``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch

from analyses.commands._common import (add_device_args, add_objective_args, add_run_args, objective_at,
                                       open_inputs, subset_indices)
from analyses.commands._eigen_inputs import (check_compatible, check_eigen_steps, open_eigen_and_out,
                                             read_eigen)
from analyses.eigen_fits import FunctionalForm, fit_curves
from analyses.eigen_linesearch import (TGrid, along, curve_minima, minibatch_statistics, minibatches,
                                       select_directions)
from analyses.eigen_zoom import zoom, zoom_offsets
from analyses.quadratic_check import quadratic_check, random_unit_directions
from analyses.runner import Item, Record, run_items, step_key
from landscape.errors import InputError

NAME = "linesearch"
HELP = "loss along Hessian eigenvectors: full-data and minibatch curves, fits, dense zoom, random-direction check"

FORM_FUNCS = {name: getattr(np, name) for name in
              ("exp", "log", "sqrt", "abs", "cosh", "sinh", "tanh", "cos", "sin", "log1p", "expm1", "arctan")}
_FORM_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant, ast.Add,
               ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)
# Options whose change makes a stored item incomparable with a new one (refused, not mixed).
CURVE_FIELDS = ("directions", "t_max", "num_t", "spacing", "t_min", "minibatch_size", "num_minibatches", "seed",
                "bn", "subset", "params", "dtype")
ITEM_FIELDS = {"curves": CURVE_FIELDS,
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_args(p, steps="last")
    p.add_argument("--eigen", default=None, metavar="RESULTS.h5",
                   help="results file with the eigenvectors (from `landscape hessian`); default: --out")
    add_objective_args(p)
    add_device_args(p)
    g = p.add_argument_group("directions and t-grid (θ + t v_i, ‖v_i‖ = 1)")
    g.add_argument("--directions", default="all", help="top:n, bottom:n, all, or stored row indices 0,3,7")
    g.add_argument("--t-max", type=float, default=1.0, help="largest |t|; default 1")
    g.add_argument("--num-t", type=int, default=41, help="grid points; default 41")
    g.add_argument("--spacing", choices=("linear", "log"), default="linear", help="grid spacing; default linear")
    g.add_argument("--t-min", type=float, default=1e-3, help="smallest |t| > 0 of a log grid; default 1e-3")
    g.add_argument("--chunk", type=int, default=32, help="parameter vectors per forward call; default 32")
    m = p.add_argument_group("minibatch curves (from the same forward passes)")
    m.add_argument("--minibatch-size", type=int, default=0, metavar="B", help="0: none (default)")
    m.add_argument("--num-minibatches", type=int, default=None, metavar="N", help="default: all N // B disjoint ones")
    m.add_argument("--seed", type=int, default=0, help="seed of the minibatch partition and random directions")
    f = p.add_argument_group("fits")
    f.add_argument("--fit-window", type=float, default=None, help="|t| range of the small-t quadratic; default t_max/4")
    f.add_argument("--form", default="", metavar="EXPR",
                   help="a form to fit, in t and named parameters, e.g. 'a + b*t**2 + c*abs(t)**p'")
    f.add_argument("--form-p0", default="", metavar="a=1,p=3", help="initial parameter values (default 1)")
    f.add_argument("--departure-tol", type=float, default=0.1, help="relative deviation from λt²/2 reported; default 0.1")
    z = p.add_argument_group("dense zoom around the minimum")
    z.add_argument("--zoom", type=int, default=0, metavar="N", help="zoom into the first N directions; default 0")
    z.add_argument("--zoom-points", type=int, default=2001, help="points per zoom; default 2001")
    z.add_argument("--zoom-width", type=float, default=None, help="half-width of the zoom; default 1e-3 t_max")
    z.add_argument("--zoom-float64", action="store_true", help="also evaluate the zoom in float64")
    q = p.add_argument_group("quadratic-independence check in random directions")
    q.add_argument("--random-directions", type=int, default=0, metavar="N", help="default 0 (none)")
    q.add_argument("--parting-rtol", type=float, default=0.1, help="relative error where predictions part")


def config_from_args(args) -> LineSearchConfig:
    names = {f.name for f in dataclasses.fields(LineSearchConfig)}
    cfg = LineSearchConfig(**{n: getattr(args, n) for n in names if hasattr(args, n)})
    cfg.check()
    return cfg


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


def run(args) -> int:
    cfg = config_from_args(args)
    form = parse_form(cfg.form, cfg.form_p0) if cfg.form else None
    with open_inputs(args) as inp:
        run_id = {"path": inp.run.file.path, "run_sha256": inp.run.file.file_sha256}
        with open_eigen_and_out(args.eigen, args.out, run_id) as (eig_file, out):
            check_eigen_steps(eig_file, inp.steps)
            works = [StepWork(inp, args, cfg, read_eigen(eig_file, s), out, form) for s in inp.steps]
            for w, (quantity, fields) in ((w, qf) for w in works for qf in ITEM_FIELDS.items()):
                check_compatible(out, w.key(quantity), asdict(w.cfg), fields)
            items = [item for w in works for item in w.items()]
            source = {**inp.source, "eigen": eig_file.path}
            summary = run_items(out, items, config=asdict(works[0].cfg), source=source, device=inp.device)
    print(f"{len(summary.computed)} item(s) computed, {len(summary.skipped)} already complete; results in {args.out}")
    return 0


class StepWork:
    """The items of one step; the objective is built only if an item needs computing."""

    def __init__(self, inp, args, cfg: LineSearchConfig, eig, out, form: FunctionalForm | None):
        params = cfg.params if cfg.params is not None else eig.config.get("params")
        self.cfg, self.inp, self.eig, self.out, self.form, self.step = \
            dataclasses.replace(cfg, params=params), inp, eig, out, form, eig.step
        self.args = argparse.Namespace(**{**vars(args), "params": params})
        self.idx = select_directions(cfg.directions, eig.eigenvalues)
        self._obj, self._curves = None, None

    def key(self, quantity: str) -> str:
        return step_key(NAME, self.step, quantity)

    def items(self) -> list[Item]:
        wanted = [("curves", True), ("fits", True), ("zoom", self.cfg.zoom > 0),
                  ("quadratic_check", self.cfg.random_directions > 0)]
        return [Item(self.key(q), partial(getattr(self, q)), label=self.key(q)) for q, on in wanted if on]

    # --- inputs ---------------------------------------------------------------------------
    def objective(self):
        if self._obj is None:
            self._obj = objective_at(self.inp, self.step, self.args, indices=self.indices())
            P = self._obj.spec.numel
            if self.eig.eigenvectors.shape[1] != P:
                raise InputError(f"the eigenvectors of step {self.step} have length {self.eig.eigenvectors.shape[1]}, "
                                 f"the objective has P = {P}; pass the --params the Hessian was computed with")
        return self._obj

    def objective64(self):
        inp = dataclasses.replace(self.inp, dtype=torch.float64)
        return objective_at(inp, self.step, self.args, indices=self.indices())

    def indices(self) -> np.ndarray:
        return subset_indices(self.inp, self.cfg.subset)

    def vectors(self, obj, rows=None) -> torch.Tensor:
        rows = self.idx if rows is None else rows
        return torch.as_tensor(self.eig.eigenvectors[rows], device=obj.device, dtype=obj.dtype)

    def curve_arrays(self) -> dict:
        if self._curves is None:
            self._curves = self.out.read_item(self.key("curves"))[0]
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
        return Record(arrays, {"step": self.step, "eigen_config": self.eig.config})

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


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()
