"""One training step as a pure function of the training state, and full-dataset evaluation.

The training state at step t is S_t = (θ_t, m_t, v_t, b_t): parameters, momentum buffer
(AdamW: first moment), AdamW's second moment (None for SGD) and BatchNorm buffers (running
statistics, updated in train mode). Update t maps S_t to S_{t+1} using the batch I_t, the
augmentation seed a_t and the learning rate η_t only; for SGD:

    g   = ∇_θ (1/B) Σ_{i∈I_t} ℓ(f(aug(x_i; a_t); θ_t, b_t), y_i)    (BN in train mode)
    d   = g + λ θ_t                                                (weight decay λ)
    m'  = β m_t + d                                                (m_0 = 0, so m_1 = d)
    d   = d + β m'   (Nesterov)   or   d = m'   (heavy ball)
    θ'  = θ_t − η_t d

which is ``torch.optim.SGD`` (dampening 0) written on the flat θ: the one update rule of
:func:`landscape.optim.sgd_update`, shared with the differentiable loop of
:mod:`landscape.hyper` and the interventions. AdamW is :func:`landscape.optim.adamw_update`
(``torch.optim.AdamW``), its bias corrections counting update t as the (t + 1)-th (plus
``Stepper.update_offset`` for a recorded run whose optimizer had stepped before recording). Nothing else is read: no global RNG, no hidden optimizer state, so the
same inputs give bitwise the same outputs on the CPU, and a step can be replayed from a
snapshot of S_t.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from checkpoints.augment import augment
from landscape.errors import InputError
from landscape.losses import num_correct, resolve_loss
from landscape.optim import adamw_update, sgd_update
from landscape.params import ParamSpec, flatten_buffers, unflatten_buffers


@dataclass
class TrainState:
    """S_t: ``step`` t, θ_t ``(P,)``, momentum m_t ``(P,)`` or None, BN buffers ``{name: tensor}``,
    and AdamW's second moment v_t ``(P,)`` (None for SGD)."""

    step: int
    theta: Tensor
    momentum: Tensor | None
    buffers: dict
    second_moment: Tensor | None = None

    def flat_buffers(self, model) -> Tensor:
        """The buffers as one float64 vector (``landscape.params.flatten_buffers`` order)."""
        if not self.buffers:
            return torch.zeros(0, dtype=torch.float64)
        return torch.cat([self.buffers[n].detach().reshape(-1).to("cpu", torch.float64)
                          for n, _ in model.named_buffers()])


class Stepper:
    """The training step and the evaluation of one model on one dataset.

    Args:
        model: the network (put in train mode here; its parameters are never read again).
        dataset: a :class:`landscape.datasets.Dataset` (tensors on the device).
        cfg: the :class:`~checkpoints.config.TrainConfig` (optimiser, loss, augmentation).
        shaper: None (plain SGD, the trainer's rule), or ``shaper(state, stepper) ->
            SubspaceShape | None`` called before each update to reshape it in a subspace
            (:class:`landscape.optim.SubspaceShape`; continued training, :mod:`checkpoints.continuation`).
    """

    def __init__(self, model, dataset, cfg, shaper=None):
        self.shaper = shaper
        self.model = model.to(dataset.x_train.device).train()
        self.spec = ParamSpec.from_module(self.model)
        self.cfg, self.data = cfg, dataset
        self.loss_fn = resolve_loss(cfg.loss)
        self.y_train = self._targets(dataset.y_train)
        self.y_test = self._targets(dataset.y_test)
        self.update_offset = 0  # AdamW updates done before step 0 of the run (a recorded run)

    def _targets(self, y: Tensor) -> Tensor:
        if self.cfg.loss == "mse" and not y.is_floating_point():
            return F.one_hot(y, self.data.num_classes).to(self.data.x_train.dtype)
        return y

    def initial_state(self, theta: Tensor | None = None, flat_buffers: Tensor | None = None) -> TrainState:
        """S_0 from the model (or from given θ_0 and buffers, e.g. another run's step 0)."""
        dev = self.data.x_train.device
        theta = self.spec.theta_of(self.model) if theta is None else theta
        theta = theta.to(dev, torch.float32).clone()
        m = torch.zeros_like(theta) if self.uses_momentum else None
        v = torch.zeros_like(theta) if self.cfg.optimizer == "adamw" else None
        return self.state(0, theta, m, flat_buffers, v)

    @property
    def uses_momentum(self) -> bool:
        """Whether the optimizer keeps a momentum (AdamW: first-moment) buffer."""
        return self.cfg.optimizer == "adamw" or bool(self.cfg.momentum)

    def state(self, step: int, theta: Tensor, momentum: Tensor | None, flat_buffers: Tensor | None,
              second_moment: Tensor | None = None) -> TrainState:
        """A state from stored arrays (buffers as a flat vector; None keeps the model's own)."""
        dev = self.data.x_train.device
        flat = flatten_buffers(self.model) if flat_buffers is None else torch.as_tensor(flat_buffers)
        buffers = {k: v.clone() for k, v in unflatten_buffers(self.model, flat.to(torch.float64)).items()}
        m, v = (None if a is None else torch.as_tensor(a).to(dev, torch.float32).clone() for a in (momentum, second_moment))
        return TrainState(int(step), torch.as_tensor(theta).to(dev, torch.float32).clone(), m, buffers, v)

    def batch(self, idx: Tensor | None, aug_seed: int) -> tuple[Tensor, Tensor]:
        """The (augmented) inputs and the targets of a batch of indices (None: all of them)."""
        if idx is None:
            x, y = self.data.x_train, self.y_train
        else:
            idx = idx.to(self.data.x_train.device)
            x, y = self.data.x_train[idx], self.y_train[idx]
        return (augment(x, aug_seed) if self.cfg.augment else x), y

    def step(self, state: TrainState, idx: Tensor | None, aug_seed: int, lr: float) -> tuple[TrainState, Tensor]:
        """S_{t+1} and the batch loss at θ_t (a 0-dim tensor, not synchronised)."""
        x, y = self.batch(idx, aug_seed)
        theta = state.theta.detach().requires_grad_(True)
        buffers = {k: v.clone() for k, v in state.buffers.items()}  # updated in place by BN
        out = functional_call(self.model, {**self.spec.unflatten(theta), **buffers}, (x,))
        loss = self.loss_fn(out, y).mean()
        (g,) = torch.autograd.grad(loss, theta)
        return self.update(state, theta.detach(), g, lr, buffers), loss.detach()

    def update(self, state: TrainState, theta: Tensor, g: Tensor, lr: float, buffers: dict) -> TrainState:
        """S_{t+1} from θ_t, the gradient and the new BN buffers: the run's update rule."""
        c = self.cfg
        if c.optimizer == "adamw":
            if self.shaper is not None:
                raise InputError("shaping the update in a subspace is defined for SGD (landscape.optim.sgd_update); "
                                 "this run trains with AdamW: continue it without a shaper")
            t = state.step + 1 + self.update_offset
            theta_new, m, v = adamw_update(theta, g, state.momentum, state.second_moment, t, lr, c.betas, c.eps,
                                           c.weight_decay)
            return TrainState(state.step + 1, theta_new, m, buffers, v)
        shape = None if self.shaper is None else self.shaper(state, self)
        theta_new, m = sgd_update(theta, g, state.momentum, lr, c.momentum, c.nesterov, c.weight_decay, shape)
        return TrainState(state.step + 1, theta_new, m, buffers)

    @torch.no_grad()
    def evaluate(self, state: TrainState, split: str) -> tuple[float, float]:
        """(mean loss, accuracy) on the whole ``split`` ("train" or "test"), BN in eval mode."""
        x = self.data.x_train if split == "train" else self.data.x_test
        y = self.y_train if split == "train" else self.y_test
        params = self.spec.unflatten(state.theta)
        self.model.eval()
        try:
            total, correct = 0.0, 0.0
            for a in range(0, len(x), self.cfg.eval_batch_size):
                xb, yb = x[a:a + self.cfg.eval_batch_size], y[a:a + self.cfg.eval_batch_size]
                out = functional_call(self.model, {**params, **state.buffers}, (xb,))
                total += float(self.loss_fn(out, yb).double().sum())
                correct += float(num_correct(out, yb))
        finally:
            self.model.train()
        return total / len(x), correct / len(x)


def set_deterministic(mode: bool) -> None:
    """``torch.use_deterministic_algorithms(mode)`` without importing Inductor when it is not loaded.

    The public function also sets ``torch._inductor.config.deterministic``, which imports
    torch._dynamo/_inductor (seconds of start-up); that setting only matters to
    ``torch.compile``, which the trainer does not use, so it is set only if Inductor is loaded.
    """
    if mode == torch.are_deterministic_algorithms_enabled():
        return
    if "torch._inductor.config" in sys.modules or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(mode)
    else:
        torch._C._set_deterministic_algorithms(mode)


class deterministic_mode:
    """Deterministic algorithms (and cuDNN/cuBLAS settings on CUDA) while training; restored after."""

    def __init__(self, cfg):
        self.on = cfg.deterministic if cfg.deterministic is not None else cfg.device == "cpu"
        self.cuda = str(cfg.device).startswith("cuda")

    def __enter__(self):
        self.old = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
        if self.on:
            if self.cuda:
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.benchmark = False
            set_deterministic(True)
        return self

    def __exit__(self, *exc):
        set_deterministic(self.old[0])
        torch.backends.cudnn.benchmark = self.old[1]
        return False
