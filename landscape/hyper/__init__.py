"""Hypergradients through training: a differentiable training loop and three exact routes.

The meta-loss is the full validation loss after T steps of the trainer's SGD with heavy-ball
momentum, L_val(θ_T(h)), as a function of hyperparameters h (named groups of tensors, see
:mod:`landscape.hyper.hyperparams`: per-step/per-layer log learning rates, momentum, per-layer
init scales, per-layer initial quantile functions, per-weight L2, the training inputs). Its
gradient dL_val/dh comes by one of three routes, which agree to rounding:

* ``forward`` (:mod:`~landscape.hyper.forward`, Franceschi et al. 2017): tangents through the
  loop; memory independent of T, one pass per scalar — for scans of one or two scalars;
* ``checkpointed`` (:mod:`~landscape.hyper.reverse`): reverse mode with ≈ 2√T stored states
  (or a budget) and one extra forward pass — many hyperparameters, moderate T;
* ``reversible`` (:mod:`~landscape.hyper.reversible`, Maclaurin et al. 2015): exact fixed-point
  training retraced backwards; ≈ log₂(1/β) bits per weight per step — many hyperparameters, long T;

and ``unrolled`` (``torch.func`` through the whole loop; memory grows with T) as the reference.
Chaos diagnostics (the step map's spectral radius) are in :mod:`~landscape.hyper.chaos`.

Example::

    >>> import torch, landscape.hyper as lh
    >>> from landscape.models import build_model
    >>> _ = torch.manual_seed(0); x, y = torch.randn(32, 4, dtype=torch.float64), torch.randint(0, 3, (32,))
    >>> net = build_model("mlp", seed=0, in_dim=4, hidden=[5], num_classes=3).double()
    >>> prob = lh.TrainingProblem(net, x, y, x, y, batches=torch.arange(32).reshape(4, 8).repeat(3, 1),
    ...                           lr=0.5, momentum=0.9)
    >>> h = lh.default_hyper(prob, ["log_lr"], T=10)
    >>> a = lh.hypergradient(prob, h, 10, ["log_lr"], route="forward")
    >>> b = lh.hypergradient(prob, h, 10, ["log_lr"], route="reversible")
    >>> bool(torch.allclose(a.grads["log_lr"], b.grads["log_lr"], rtol=1e-9))
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from landscape.errors import InputError
from landscape.hyper.forward import Directional, directional, hypergradient_forward
from landscape.hyper.hyperparams import GROUPS, check_hyper, default_hyper, quantile_knots
from landscape.hyper.loop import HyperGradient, train
from landscape.hyper.problem import TrainingProblem
from landscape.hyper.reverse import hypergradient_checkpointed, hypergradient_unrolled, segment_length
from landscape.hyper.reversible import ReversibilityError, hypergradient_reversible

ROUTES = ("forward", "checkpointed", "reversible", "unrolled")

__all__ = ["GROUPS", "ROUTES", "Directional", "HyperGradient", "ReversibilityError", "TrainingProblem",
           "check_hyper", "default_hyper", "directional", "hypergradient", "quantile_knots",
           "segment_length", "train"]


def hypergradient(problem: TrainingProblem, hyper: Mapping[str, Tensor], T: int, wrt: Sequence[str], *,
                  route: str = "checkpointed", budget: int | None = None) -> HyperGradient:
    """dL_val(θ_T)/dh for the groups ``wrt`` by the chosen route.

    Args:
        problem: model, data, batch plan, fixed optimiser settings.
        hyper: ``{group: tensor}`` (see :mod:`landscape.hyper.hyperparams`).
        T: training steps (≤ the batch plan's length).
        wrt: the groups to differentiate (each must be in ``hyper``).
        route: one of :data:`ROUTES`.
        budget: checkpointed route only: at most this many stored states.

    Raises:
        InputError: unknown route or group, bad shapes, T ≤ 0 or beyond the plan, a reversible
            run with β = 0 or Nesterov momentum. NonFiniteError: a NaN meta-loss.
    """
    if route not in ROUTES:
        raise InputError(f"unknown route {route!r}; choose one of {', '.join(ROUTES)}")
    if budget is not None and route != "checkpointed":
        raise InputError("budget applies to route='checkpointed' only")
    if route == "forward":
        return hypergradient_forward(problem, hyper, T, list(wrt))
    if route == "checkpointed":
        return hypergradient_checkpointed(problem, hyper, T, list(wrt), budget=budget)
    if route == "reversible":
        return hypergradient_reversible(problem, hyper, T, list(wrt))
    return hypergradient_unrolled(problem, hyper, T, list(wrt))
