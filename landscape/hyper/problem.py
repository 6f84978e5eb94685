"""The training problem whose hyperparameters we differentiate: model, data, batch plan, optimiser.

A :class:`TrainingProblem` holds everything that decides the training trajectory except the
hyperparameters being differentiated: the model's structure (never mutated: every forward
pass is ``torch.func.functional_call`` on a flat θ), the training and validation tensors,
the batch plan as an index tensor ``(T, B)`` (``None``: full-batch gradient descent), and
the fixed optimiser settings (η, β, λ, Nesterov) that a hyperparameter group overrides.

The minibatch loss of step t is ``L_t(θ; x) = (1/B) Σ_{i∈I_t} ℓ(f(x_i; θ), y_i)`` and the
meta-loss is the full validation loss ``L_val(θ_T) = (1/N_val) Σ ℓ(f(x_i; θ_T), y_i)``.

BatchNorm is refused: its running statistics are a second, decaying state (a reversible
route would need them in exact arithmetic too). Use models with ``norm="none"``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from landscape.errors import InputError, NonFiniteError
from landscape.hyper.hyperparams import uniform_levels
from landscape.losses import num_correct, resolve_loss
from landscape.params import ParamSpec

VAL_BATCH = 4096  # validation examples per forward pass (the meta-loss does not depend on it)


class TrainingProblem:
    """Model + data + batch plan + fixed optimiser settings.

    Args:
        model: the network (its parameters give θ_base, the initial values before any
            init hyperparameter; it is never modified). Models with buffers (BatchNorm) are refused.
        x_train, y_train: training tensors (N, ...) and (N,) labels (or (N, C) targets).
        x_val, y_val: validation tensors: the meta-loss is their mean loss after T steps.
        batches: ``(T_plan, B)`` int64 indices into the training set, step t uses row t;
            ``None`` for full-batch gradient descent (any T).
        loss: a name of :data:`landscape.losses.LOSSES` (or a per-example callable).
        lr, momentum, weight_decay, nesterov: the optimiser (``torch.optim.SGD`` semantics,
            dampening 0), used where no hyperparameter group overrides them.
        dtype: dtype of θ and the data (default: the model's); device: default the data's.

    Raises:
        InputError: BatchNorm/buffers, mismatched shapes, batch indices out of range.
    """

    def __init__(self, model: nn.Module, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor, *,
                 batches: Tensor | None, loss="cross_entropy", lr: float = 0.1, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, dtype=None, device=None):
        _refuse_buffers(model)
        self.spec = ParamSpec.from_module(model)
        self.dtype = dtype or next(model.parameters()).dtype
        self.device = torch.device(device) if device is not None else x_train.device
        self.model = model
        self.theta_base = self.spec.theta_of(model).to(self.device, self.dtype)
        self.x_train, self.y_train = self._data(x_train, y_train, "training")
        self.x_val, self.y_val = self._data(x_val, y_val, "validation")
        self.batches = None if batches is None else self._batches(batches)
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "callable")
        self.loss_fn = resolve_loss(loss)
        self.lr, self.momentum, self.weight_decay, self.nesterov = float(lr), float(momentum), \
            float(weight_decay), bool(nesterov)
        self.layer_index = torch.repeat_interleave(torch.arange(len(self.spec.names), device=self.device),
                                                   torch.tensor(self.spec.numels, device=self.device))
        self._levels = None

    def _data(self, x: Tensor, y: Tensor, what: str) -> tuple[Tensor, Tensor]:
        if len(x) != len(y) or len(x) == 0:
            raise InputError(f"{what} inputs ({len(x)}) and targets ({len(y)}) must be non-empty and equal in number")
        x = x.to(self.device, self.dtype)
        y = y.to(self.device, self.dtype if y.is_floating_point() else y.dtype)
        return x, y

    def _batches(self, batches: Tensor) -> Tensor:
        batches = torch.as_tensor(batches).to(self.device, torch.int64)
        if batches.ndim != 2 or batches.shape[1] == 0:
            raise InputError(f"batches must be a (T, B) index tensor, got shape {tuple(batches.shape)}")
        if batches.min() < 0 or batches.max() >= len(self.x_train):
            raise InputError(f"batch indices must lie in [0, {len(self.x_train)}) (the training set), "
                             f"got [{int(batches.min())}, {int(batches.max())}]")
        return batches

    @property
    def P(self) -> int:  # noqa: N802 — the letter of the maths
        """Number of parameters."""
        return self.spec.P

    @property
    def plan_steps(self) -> int | None:
        """Steps the batch plan covers (None: full batch, unbounded)."""
        return None if self.batches is None else int(self.batches.shape[0])

    @property
    def init_levels(self) -> Tensor:
        """u_i ∈ (0, 1): the rank of θ_base,i within its layer (for ``init_quantiles``)."""
        if self._levels is None:
            self._levels = uniform_levels(self.theta_base.cpu(), self.spec).to(self.device)
        return self._levels

    def check_steps(self, T: int) -> None:
        """Refuse a horizon the batch plan does not cover."""
        if self.batches is not None and T > self.batches.shape[0]:
            raise InputError(f"the batch plan covers {self.batches.shape[0]} steps but T = {T} were asked; "
                             "use a run or plan with at least T logged steps, or a smaller T")

    def batch(self, t: int, x_train: Tensor) -> tuple[Tensor, Tensor]:
        """Inputs and targets of step t (``x_train`` may be a hyperparameter)."""
        if self.batches is None:
            return x_train, self.y_train
        idx = self.batches[t]
        return x_train[idx], self.y_train[idx]

    def forward(self, theta: Tensor, x: Tensor) -> Tensor:
        """f(x; θ) without touching the model."""
        return functional_call(self.model, self.spec.unflatten(theta), (x,))

    def batch_loss(self, theta: Tensor, t: int, x_train: Tensor) -> Tensor:
        """L_t(θ; x): the mean loss of step t's minibatch."""
        x, y = self.batch(t, x_train)
        return self.loss_fn(self.forward(theta, x), y).mean()

    def val_loss(self, theta: Tensor) -> tuple[Tensor, float]:
        """(L_val(θ) with autograd, validation accuracy) over the whole validation set."""
        total, correct, n = 0.0, 0.0, len(self.x_val)
        for a in range(0, n, VAL_BATCH):
            out = self.forward(theta, self.x_val[a:a + VAL_BATCH])
            total = total + self.loss_fn(out, self.y_val[a:a + VAL_BATCH]).sum()
            correct += float(num_correct(out.detach(), self.y_val[a:a + VAL_BATCH]))
        return total / n, correct / n

    def val_loss_and_grad(self, theta: Tensor) -> tuple[float, float, Tensor]:
        """(L_val(θ), accuracy, ∇_θ L_val(θ)); NonFiniteError for a NaN/Inf meta-loss."""
        leaf = theta.detach().requires_grad_(True)
        with torch.enable_grad():
            loss, acc = self.val_loss(leaf)
            (g,) = torch.autograd.grad(loss, leaf)
        value = float(loss.detach())
        check_finite_meta(value)
        return value, acc, g

    def val_metrics(self, theta: Tensor) -> tuple[float, float]:
        """(L_val(θ), accuracy) without gradient."""
        with torch.no_grad():
            loss, acc = self.val_loss(theta)
        return float(loss), acc


def check_finite_meta(loss: float) -> None:
    """NonFiniteError when the meta-loss is NaN or infinite (training diverged)."""
    if not torch.isfinite(torch.tensor(loss)):
        raise NonFiniteError(f"the meta-loss (validation loss after training) is {loss}: training diverged; "
                             "use a smaller learning rate or init scale, or fewer steps")


def _refuse_buffers(model: nn.Module) -> None:
    names = [n for n, _ in model.named_buffers()]
    if names:
        raise InputError(f"landscape.hyper does not differentiate through models with buffers (BatchNorm "
                         f"running statistics: {', '.join(names[:3])}…); use a model without them, "
                         "e.g. norm='none'")
