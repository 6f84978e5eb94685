"""Hyperparameters as named groups of tensors, and what each group does to training.

A hyperparameter set ``h`` is a ``dict[str, Tensor]``; every key is one of :data:`GROUPS`.
A group that is absent takes the problem's fixed value (``problem.lr``, ``problem.momentum``,
``problem.weight_decay``, scale 1, the model's own initial values, the stored training
inputs), so ``{}`` is the plain training run. Shapes (T: steps of the run, L: parameter
tensors of the model in ``spec.names`` order — a weight and its bias are two layers, as in
Maclaurin et al. 2015 — P: parameters, K: quantile knots)::

    log_lr          ()  (T,1)  (1,L)  (T,L)     η_t = exp(log_lr[t])   per step and/or per layer
    momentum        ()  (T,)                    β_t (heavy ball), used as the nearest multiple of 2^-16
    log_init_scale  ()  (L,)                    θ_0 = exp(s_l) · θ_base
    init_quantiles  (L, K)                      θ_base of layer l = Q_l(u_i): a piecewise-linear quantile
                                                function through K knots at levels 0, 1/(K−1), …, 1
    log_l2          ()  (L,)  (P,)              λ = exp(log_l2): coupled L2, d = g + λ ⊙ θ
    train_inputs    x_train.shape               the training inputs themselves (distilled data)

Per-step groups may have more than T rows (the first T are used); a group with one row
applies to every step. Momentum is rounded to a multiple of 2^-16 in every route (with a
straight-through derivative; 0.9 → 0.899993896484375, exact in float32, so the trainer given
that number runs the same β): the reversible route then multiplies by β = n/2^16 exactly, and
its fixed-point trajectory stays within ≈ 2^-36 per step of the float one (HIPS/hypergrad's
choice; with 2^-24 the gap grew to 2^-28 per step and the routes agreed to only ~1e-7).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from landscape.errors import InputError

GROUPS = ("log_lr", "momentum", "log_init_scale", "init_quantiles", "log_l2", "train_inputs")
MOMENTUM_BITS = 16  # β is used as round(β·2^16)/2^16 in every route (as HIPS/hypergrad): exact n/d for reversal


def check_hyper(problem, hyper: Mapping[str, Tensor], T: int) -> None:
    """Refuse unknown group names, wrong shapes, non-finite values and T outside the batch plan.

    Raises:
        InputError: naming the group, the shape it has and the shapes it may have.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T <= 0:
        raise InputError(f"the number of training steps T must be a positive integer, got {T!r}")
    problem.check_steps(T)
    unknown = sorted(set(hyper) - set(GROUPS))
    if unknown:
        raise InputError(f"unknown hyperparameter group(s) {unknown}; known groups: {', '.join(GROUPS)}")
    for name, value in hyper.items():
        if not isinstance(value, Tensor):
            raise InputError(f"hyperparameter {name} must be a tensor, got {type(value).__name__}")
        if not torch.isfinite(value.detach()).all():
            raise InputError(f"hyperparameter {name} has non-finite entries; give finite values")
        allowed = allowed_shapes(problem, name, T)
        if not any(_fits(tuple(value.shape), s) for s in allowed):
            raise InputError(f"hyperparameter {name} has shape {tuple(value.shape)}; allowed: "
                             + ", ".join(_show(s) for s in allowed))
    _check_momentum(problem, hyper)


def check_wrt(hyper, wrt: Sequence[str]) -> None:
    missing = [name for name in wrt if name not in hyper]
    if missing:
        raise InputError(f"cannot differentiate {missing}: not among the hyperparameters ({', '.join(hyper)}); "
                         "add them to hyper (landscape.hyper.default_hyper gives the problem's values)")
    if not wrt:
        raise InputError("name at least one hyperparameter group to differentiate (wrt)")


def allowed_shapes(problem, name: str, T: int) -> list[tuple]:
    """Shapes a group may have (``"T+"``: at least T rows)."""
    L, P = len(problem.spec.names), problem.spec.P
    return {"log_lr": [(), (1, 1), ("T+", 1), (1, L), ("T+", L)],
            "momentum": [(), (1,), ("T+",)],
            "log_init_scale": [(), (L,)],
            "init_quantiles": [(L, "K")],
            "log_l2": [(), (L,), (P,)],
            "train_inputs": [tuple(problem.x_train.shape)]}[name] if name in GROUPS else []


def _fits(shape: tuple, pattern: tuple) -> bool:
    if len(shape) != len(pattern):
        return False
    return all(p == "K" and s >= 2 or p == "T+" and s >= 1 or p == s for s, p in zip(shape, pattern))


def _show(pattern: tuple) -> str:
    return "(" + ", ".join(str(p) for p in pattern) + ("," if len(pattern) == 1 else "") + ")"


def _check_momentum(problem, hyper) -> None:
    beta = hyper.get("momentum")
    values = beta.detach() if beta is not None else torch.tensor(float(problem.momentum))
    if (values < 0).any() or (values >= 1).any():
        raise InputError(f"momentum must lie in [0, 1), got values in [{float(values.min())}, "
                         f"{float(values.max())}]")
    if problem.nesterov and (values == 0).any():
        raise InputError("Nesterov momentum needs momentum > 0 at every step")


def _row(value: Tensor, t: int) -> Tensor:
    """Row t of a per-step group (its only row when it has one)."""
    return value[t] if value.shape[0] > 1 else value[0]


def per_layer(problem, values: Tensor) -> Tensor:
    """Per-layer values ``(L,)`` expanded to one per parameter ``(P,)`` (autograd flows)."""
    return values[problem.layer_index]


def lr_at(problem, hyper: Mapping[str, Tensor], t: int):
    """η_t: a float (the problem's), a 0-d tensor, or ``(P,)`` per-layer rates."""
    value = hyper.get("log_lr")
    if value is None:
        return float(problem.lr)
    if value.ndim == 0:
        return value.exp()
    row = _row(value, t).exp()
    return row[0] if row.shape[0] == 1 else per_layer(problem, row)


def momentum_at(problem, hyper: Mapping[str, Tensor], t: int):
    """β_t rounded to a multiple of 2^-16 (straight-through derivative); a float when fixed."""
    value = hyper.get("momentum")
    if value is None:
        return quantize_momentum(float(problem.momentum))
    beta = value if value.ndim == 0 else _row(value, t)
    return beta + (torch.round(beta.detach() * 2 ** MOMENTUM_BITS) / 2 ** MOMENTUM_BITS - beta.detach())


def quantize_momentum(beta: float) -> float:
    """``round(β·2^16)/2^16`` (exact in float32 and float64)."""
    return round(float(beta) * 2 ** MOMENTUM_BITS) / 2 ** MOMENTUM_BITS


def momentum_ratio(problem, hyper: Mapping[str, Tensor], t: int) -> int:
    """n_t with β_t = n_t / 2^16 exactly (for the reversible route)."""
    beta = momentum_at(problem, hyper, t)
    return int(round(float(beta) * 2 ** MOMENTUM_BITS))


def weight_decay(problem, hyper: Mapping[str, Tensor]):
    """λ: a float (the problem's), a 0-d tensor or ``(P,)``."""
    value = hyper.get("log_l2")
    if value is None:
        return float(problem.weight_decay)
    if value.ndim == 0 or value.shape[0] == problem.spec.P and value.shape[0] != len(problem.spec.names):
        return value.exp()
    return per_layer(problem, value.exp())


def train_inputs(problem, hyper: Mapping[str, Tensor]) -> Tensor:
    """The training inputs the steps see (the group's tensor, or the stored ones)."""
    return hyper.get("train_inputs", problem.x_train)


def initial_theta(problem, hyper: Mapping[str, Tensor]) -> Tensor:
    """θ_0 = exp(s)_layer ⊙ base, base = the model's init or the quantile functions at u."""
    base = problem.theta_base
    if "init_quantiles" in hyper:
        base = quantile_values(hyper["init_quantiles"], problem.init_levels, problem.layer_index)
    scale = hyper.get("log_init_scale")
    if scale is None:
        return base
    return base * (scale.exp() if scale.ndim == 0 else per_layer(problem, scale.exp()))


def quantile_values(knots: Tensor, levels: Tensor, layer_index: Tensor) -> Tensor:
    """Q_l(u_i) for every parameter i of layer l: linear interpolation between knots.

    Knot k of layer l sits at quantile level k/(K−1); ``levels`` ``(P,)`` are the u_i in [0, 1].
    """
    K = knots.shape[1]
    pos = levels * (K - 1)
    k = pos.floor().clamp(max=K - 2).long()
    w = (pos - k).to(knots.dtype)
    lo, hi = knots[layer_index, k], knots[layer_index, k + 1]
    return lo + w * (hi - lo)


def quantile_knots(problem, K: int) -> Tensor:
    """``(L, K)`` knots that reproduce each layer's initial values (its empirical quantiles)."""
    if K < 2:
        raise InputError(f"a quantile function needs at least 2 knots, got K={K}")
    q = torch.linspace(0, 1, K, dtype=torch.float64)
    rows = [torch.quantile(problem.theta_base[sl].double(), q) for sl in problem.spec.slices().values()]
    return torch.stack(rows).to(problem.dtype)


def uniform_levels(theta: Tensor, spec) -> Tensor:
    """u_i = rank of θ_i within its layer / (n_layer − 1): the level at which the layer's empirical
    quantile function (``torch.quantile``'s, linear between order statistics) equals θ_i."""
    levels = torch.empty_like(theta, dtype=torch.float64)
    for sl in spec.slices().values():
        n = sl.stop - sl.start
        ranks = torch.empty(n, dtype=torch.float64)
        ranks[torch.argsort(theta[sl], stable=True)] = torch.arange(n, dtype=torch.float64)
        levels[sl] = ranks / (n - 1) if n > 1 else 0.5
    return levels


def default_hyper(problem, names, T: int) -> dict[str, Tensor]:
    """A hyperparameter set equal to the problem's fixed values, for the groups ``names``.

    ``log_lr`` and ``momentum`` are scalars, ``log_init_scale`` is 0 (scale 1), ``log_l2``
    is log λ (λ must be > 0), ``init_quantiles`` has 16 knots per layer, ``train_inputs`` a copy.
    """
    makers = {"log_lr": lambda: math.log(problem.lr), "momentum": lambda: problem.momentum,
              "log_init_scale": lambda: 0.0, "log_l2": lambda: _log_positive(problem.weight_decay)}
    out = {}
    for name in names:
        if name not in GROUPS:
            raise InputError(f"unknown hyperparameter group {name!r}; known groups: {', '.join(GROUPS)}")
        if name in makers:
            out[name] = torch.tensor(float(makers[name]()), dtype=problem.dtype, device=problem.device)
        elif name == "init_quantiles":
            out[name] = quantile_knots(problem, 16)
        else:
            out[name] = problem.x_train.clone()
    check_hyper(problem, out, T)
    return out


def _log_positive(value: float) -> float:
    if value <= 0:
        raise InputError(f"log_l2 needs a positive weight decay to start from, got {value}; "
                         "give the problem weight_decay > 0 or pass log_l2 yourself")
    return math.log(value)
