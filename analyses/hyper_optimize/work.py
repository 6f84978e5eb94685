"""The meta-loop: one meta-iteration per call, its state stored with it so that a killed run resumes.

Meta-iteration k (see :mod:`landscape.hyper.meta` for the maths):

1. h = h(φ_k); for each of the iteration's seeds s (init and batch plan; new seeds every iteration with
   ``init="random"``, the same with ``"fixed"``): the hypergradient dL_val(θ_T(h; s))/dh by the route
   chosen for the problem (:func:`choose_route`), and θ_T's training, validation and test loss;
2. ḡ_h = the mean over seeds; g_φ = (∂h/∂φ)ᵀ ḡ_h; ĝ = g_φ normalised per block;
3. φ_{k+1} = the meta-optimiser's step (Adam or SGD, :mod:`landscape.optim`).

The item of meta-iteration k holds φ_k, h_k, the raw hypergradients (ḡ_h and g_φ), the per-block RMS
of g_φ, the normalised step direction, the curves' points at h_k (per seed), and φ_{k+1} with the
optimiser's moments: everything needed to continue from it (:meth:`OptimizeWork.restore`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from analyses.driver.records import Record
from analyses.hyper_optimize.config import OptimizeConfig
from landscape.errors import InputError, NonFiniteError
from landscape.hyper import hypergradient, quantile_knots
from landscape.hyper.meta import MetaOptimizer, Parameterization, layer_blocks, normalize
from landscape.hyper.reverse import segment_length, stored_states
from landscape.hyper.reversible import check_reversible
from landscape.losses import num_correct

FORWARD_MAX_SCALARS = 2    # auto route: forward mode (one pass per scalar) up to this many hyperparameters
LONG_T = 100               # auto route: reversible from this T on (no recomputation, ~log2(1/β) bits/weight/step)
EVAL_SEED_BASE = 1_000_000  # evaluation seeds start here: disjoint from the meta-training seeds
METRIC_BATCH = 4096        # examples per forward pass in the metrics
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ProblemData:
    """What the command hands the analysis: the problem of a seed, and the three splits.

    Attributes:
        make_problem: ``make_problem(seed, train=None)`` → :class:`landscape.hyper.TrainingProblem`
            (``train=(x, y)`` trains on other examples, e.g. a distilled set).
        train, val, test: ``(x, y)`` label tensors of the training split, the validation set (the
            meta-loss) and the test split (reported, never optimised).
        targets: labels → the loss's targets (one-hot for mse).
        num_classes: C.
    """

    make_problem: Callable
    train: tuple
    val: tuple
    test: tuple
    targets: Callable
    num_classes: int


@dataclass
class MetaState:
    """Where the meta-loop stands: the next meta-iteration, φ and the optimiser's state."""

    iteration: int
    phi: dict[str, Tensor]
    opt: dict[str, Tensor]


def iteration_key(cfg: OptimizeConfig, k: int) -> str:
    return f"hyperopt/{cfg.recipe}/iter_{int(k):05d}"


def evaluation_key(cfg: OptimizeConfig) -> str:
    return f"hyperopt/{cfg.recipe}/evaluation"


def iteration_seeds(cfg: OptimizeConfig, k: int) -> list[int]:
    """The seeds of meta-iteration k: new ones every iteration (random) or always the first S (fixed)."""
    first = cfg.seed + (k * cfg.seeds_per_iter if cfg.init == "random" else 0)
    return list(range(first, first + cfg.seeds_per_iter))


def eval_seeds(cfg: OptimizeConfig) -> list[int]:
    """Held-out seeds of the evaluation (never seen by the meta-optimisation)."""
    return [EVAL_SEED_BASE + cfg.seed * 1000 + j for j in range(cfg.eval_seeds)]


def metrics(problem, theta: Tensor, x: Tensor, y: Tensor) -> tuple[float, float]:
    """(mean loss, accuracy) of θ on (x, y), without gradient."""
    total, correct = 0.0, 0.0
    with torch.no_grad():
        for a in range(0, len(x), METRIC_BATCH):
            out = problem.forward(theta, x[a:a + METRIC_BATCH])
            total += float(problem.loss_fn(out, y[a:a + METRIC_BATCH]).sum())
            correct += float(num_correct(out, y[a:a + METRIC_BATCH]))
    return total / len(x), correct / len(x)


class OptimizeWork:
    """The meta-loop of one config: :meth:`iteration` computes meta-iteration k from the state after k − 1.

    Args:
        cfg: the optimisation.
        data: the problems and splits (:class:`ProblemData`).
    """

    def __init__(self, cfg: OptimizeConfig, data: ProblemData):
        self.cfg, self.data, self._cache = cfg, data, {}
        self.distilled = _distill_start(cfg, data) if "train_inputs" in cfg.groups else None
        first = self.problem(cfg.seed)
        self.dtype, self.device = first.dtype, first.device
        h0 = initial_hyper(cfg, first)
        self.params = {g: parameterization(cfg, g, h0[g]) for g in cfg.groups}
        self.phi0 = {g: self.params[g].from_hyper(h0[g], _knots(cfg, g)) for g in cfg.groups}
        self.blocks = {g: layer_blocks(first, g, tuple(self.phi0[g].shape)) for g in cfg.groups}
        self._names = first.spec.names
        self.route, self.route_reason = choose_route(cfg, first, h0)
        self.optimizer = MetaOptimizer(cfg.meta_optimizer, cfg.group_lr(), momentum=cfg.meta_momentum)
        self.state = MetaState(0, self.phi0, self.optimizer.init_state(self.phi0))
        self.splits = {name: self._tensors(getattr(data, name)) for name in ("val", "test")}

    def _tensors(self, pair) -> tuple[Tensor, Tensor]:
        x, y = pair
        y = self.data.targets(y)
        return x.to(self.device, self.dtype), y.to(self.device, self.dtype if y.is_floating_point() else y.dtype)

    def problem(self, seed: int):
        """The training problem of ``seed`` (on the distilled set when its inputs are optimised)."""
        if seed not in self._cache:
            train = None if self.distilled is None else self.distilled
            prob = self.data.make_problem(seed, train=train)
            if self.cfg.init == "fixed":
                self._cache[seed] = prob
            return prob
        return self._cache[seed]

    def hyper(self, phi: dict[str, Tensor]) -> dict[str, Tensor]:
        """h(φ), detached."""
        with torch.no_grad():
            return {g: self.params[g].to_hyper(v) for g, v in phi.items()}

    def restore(self, arrays: dict) -> None:
        """Continue after a stored meta-iteration (its ``next.*`` and ``opt.*`` arrays)."""
        k = int(arrays["iteration"]) + 1
        phi = {g: self._load(arrays[f"next.{g}"]) for g in self.cfg.groups}
        opt = {name[4:]: torch.as_tensor(v).to(self.device) for name, v in arrays.items() if name.startswith("opt.")}
        opt = {name: (v.long() if name == "t" else v.to(self.dtype)) for name, v in opt.items()}
        self.state = MetaState(k, phi, opt)

    def _load(self, a) -> Tensor:
        return torch.as_tensor(np.asarray(a)).to(self.device, self.dtype)

    def iteration(self, k: int) -> Record:
        """Meta-iteration k (one results item); the state then stands after it.

        Raises:
            NonFiniteError: a diverged training run or a NaN meta-gradient (saying at which meta-iteration);
                the state is left after k − 1.
        """
        if k != self.state.iteration:
            raise InputError(f"meta-iteration {k} asked, but the optimisation stands after {self.state.iteration - 1}")
        phi, h = self.state.phi, self.hyper(self.state.phi)
        seeds = iteration_seeds(self.cfg, k)
        runs = [self._seed_run(k, s, h) for s in seeds]
        grad_h = {g: torch.stack([r["grads"][g] for r in runs]).mean(0) for g in self.cfg.groups}
        _check_finite(k, grad_h, "meta-gradient")
        grad_phi = {g: self.params[g].pull(phi[g], grad_h[g]) for g in self.cfg.groups}
        normed = {g: normalize(grad_phi[g], self.blocks[g], self.cfg.normalize) for g in self.cfg.groups}
        new_phi, new_opt = self.optimizer.step(phi, {g: v[0] for g, v in normed.items()}, self.state.opt)
        _check_finite(k, new_phi, "meta-step")
        record = self._record(k, seeds, runs, phi, h, grad_h, grad_phi, normed, new_phi, new_opt)
        self.state = MetaState(k + 1, new_phi, new_opt)
        return record

    def _seed_run(self, k: int, seed: int, h: dict) -> dict:
        prob = self.problem(seed)
        try:
            res = hypergradient(prob, h, self.cfg.steps, list(self.cfg.groups), route=self.route)
        except NonFiniteError as err:
            raise NonFiniteError(f"meta-iteration {k} (seed {seed}): {err}") from None
        out = {"grads": res.grads, "val": (res.meta_loss, res.val_accuracy)}
        out["train"] = metrics(prob, res.theta, prob.x_train if self.distilled is None else h.get(
            "train_inputs", prob.x_train), prob.y_train)
        out["test"] = metrics(prob, res.theta, *self.splits["test"])
        return out

    def _record(self, k, seeds, runs, phi, h, grad_h, grad_phi, normed, new_phi, new_opt) -> Record:
        a = {"iteration": k, "seeds": np.asarray(seeds)}
        for split in SPLITS:
            a[f"{split}_loss"] = np.asarray([r[split][0] for r in runs])
            a[f"{split}_acc"] = np.asarray([r[split][1] for r in runs])
        for g in self.cfg.groups:
            a[f"phi.{g}"], a[f"grad.{g}"], a[f"grad_phi.{g}"] = _np(phi[g]), _np(grad_h[g]), _np(grad_phi[g])
            a[f"step.{g}"], a[f"rms.{g}"], a[f"next.{g}"] = _np(normed[g][0]), _np(normed[g][1]), _np(new_phi[g])
            if self.params[g].kind != "identity":
                a[f"hyper.{g}"] = _np(h[g])
        a.update({f"opt.{name}": _np(v) for name, v in new_opt.items()})
        val, test = a["val_loss"].mean(), a["test_loss"].mean()
        return Record(a, {"kind": "iteration", "iteration": k, "recipe": self.cfg.recipe, "route": self.route,
                          "groups": list(self.cfg.groups), "layer_names": list(self._names)},
                      summary=f"validation loss {val:.4f} (acc {a['val_acc'].mean():.3f}), test {test:.4f} "
                              f"(acc {a['test_acc'].mean():.3f})")


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _check_finite(k: int, tensors: dict, what: str) -> None:
    for g, v in tensors.items():
        if not bool(torch.isfinite(v).all()):
            raise NonFiniteError(f"meta-iteration {k}: the {what} of {g} is not finite (NaN or infinite); the "
                                 f"meta-iterations before it are kept: lower the meta-learning rate or the "
                                 f"training's learning rate")


def parameterization(cfg: OptimizeConfig, group: str, h0: Tensor) -> Parameterization:
    """φ → h of a group: monotone quantile knots (in units of each layer's starting range), knots of a
    schedule, logit momentum, else identity."""
    if group == "init_quantiles":
        return Parameterization.scaled(h0)
    if group == "momentum":
        return Parameterization("logit")
    if group == "log_lr" and cfg.lr_knots and cfg.lr_shape in ("step", "step_layer"):
        return Parameterization("knots", steps=cfg.steps)
    return Parameterization("identity")


def _knots(cfg: OptimizeConfig, group: str) -> int | None:
    return cfg.lr_knots if group == "log_lr" and cfg.lr_knots else None


def initial_hyper(cfg: OptimizeConfig, problem) -> dict[str, Tensor]:
    """h_0 of each optimised group, from the config (the problem gives L, P and the initial weights)."""
    L, P, T = len(problem.spec.names), problem.P, cfg.steps
    def full(shape, value):
        return torch.full(shape, float(value), dtype=problem.dtype, device=problem.device)

    lr_shapes = {"scalar": (), "step": (T, 1), "layer": (1, L), "step_layer": (T, L)}
    l2_shapes = {"scalar": (), "layer": (L,), "weight": (P,)}
    makers = {"log_lr": lambda: full(lr_shapes[cfg.lr_shape], math.log(cfg.lr)),
              "momentum": lambda: full((), cfg.momentum if cfg.momentum > 0 else 0.5),
              "log_init_scale": lambda: full((L,), 0.0),
              "init_quantiles": lambda: quantile_knots(problem, cfg.quantile_knots),
              "log_l2": lambda: full(l2_shapes[cfg.l2_shape], math.log(cfg.l2_init)),
              "train_inputs": lambda: problem.x_train.clone()}
    return {g: makers[g]() for g in cfg.groups}


def _distill_start(cfg: OptimizeConfig, data: ProblemData) -> tuple[Tensor, Tensor]:
    """The distilled set's starting inputs and its labels (per_class examples of each class)."""
    C, x_train, y_train = data.num_classes, data.train[0], data.train[1]
    labels = torch.arange(C, device=y_train.device).repeat_interleave(cfg.per_class)
    g = torch.Generator().manual_seed(cfg.seed)
    shape = (len(labels), *x_train.shape[1:])
    if cfg.distill_start == "noise":
        return torch.randn(shape, generator=g, dtype=torch.float64).to(x_train), labels
    if cfg.distill_start == "zeros":
        return torch.zeros(shape, dtype=x_train.dtype, device=x_train.device), labels
    return real_examples(x_train, y_train, C, cfg.per_class, g), labels


def real_examples(x: Tensor, y: Tensor, C: int, per_class: int, generator) -> Tensor:
    """``per_class`` examples of each class, drawn without replacement (class-major order)."""
    rows = []
    for c in range(C):
        idx = torch.nonzero(y.cpu() == c).flatten()
        if len(idx) < per_class:
            raise InputError(f"the training split has {len(idx)} examples of class {c}, fewer than per_class = "
                             f"{per_class}")
        rows.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
    return x[torch.cat(rows).to(x.device)].clone()


def choose_route(cfg: OptimizeConfig, problem, h: dict) -> tuple[str, str]:
    """The hypergradient route for this problem, and why (stored with every item).

    ``auto``: forward mode for at most :data:`FORWARD_MAX_SCALARS` scalars (one pass each, memory
    independent of T); reversible learning from T ≥ :data:`LONG_T` where it applies (heavy-ball momentum
    with β ∈ (0, 1) at every step: no stored states and no recomputation); else checkpointed (≈ 2√T
    stored states, one extra forward pass).

    Raises:
        InputError: an asked route that cannot run this problem (e.g. reversible without momentum).
    """
    T, n = cfg.steps, sum(v.numel() for v in h.values())
    if cfg.route != "auto":
        if cfg.route == "reversible":
            check_reversible(problem, h, T)
        if cfg.route == "forward" and n > 256:
            raise InputError(f"forward mode needs one pass per scalar hyperparameter ({n} here); use "
                             "--route checkpointed or reversible (or auto)")
        return cfg.route, "asked (--route)"
    if n <= FORWARD_MAX_SCALARS:
        return "forward", f"{n} scalar hyperparameter(s): one forward pass each, memory independent of T"
    why_not = _reversible_refusal(problem, h, T)
    if T >= LONG_T and why_not is None:
        return "reversible", (f"{n} hyperparameters, T = {T} ≥ {LONG_T} with heavy-ball momentum: exact reversal, "
                              "no stored states, no recomputation")
    k = segment_length(T)
    reason = f"{n} hyperparameters, T = {T}: {stored_states(T, k)} stored states (segments of {k} steps)"
    return "checkpointed", reason + (f"; not reversible: {why_not}" if why_not and T >= LONG_T else "")


def _reversible_refusal(problem, h: dict, T: int) -> str | None:
    try:
        check_reversible(problem, h, T)
    except InputError as err:
        return str(err).split(";")[0]
    return None
