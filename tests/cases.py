"""Small test problems as data, and the independent oracles they are checked against.

A :class:`Case` is a seed, a readable id, a factory ``build(generator) -> (model, x, y)``
(float64), the loss (a name or a per-example callable) and, where one exists, the
closed-form Hessian of the full-dataset mean loss. Tests parametrize over :data:`CASES`
(``ids=case_ids``) and call :func:`make`.

The oracles here never go through ``landscape.objective``: they evaluate the mean loss on
the whole dataset in one ``functional_call`` of an eval-mode copy of the model and
differentiate it with ``torch.func`` (dense ``torch.func.hessian`` in float64).

MSE convention (as in ``landscape.losses``): ℓ_i = ‖f(x_i) − y_i‖², no factor 1/2, so
linear regression has H = (2/N) XᵀX.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

DTYPE = torch.float64


def bce_per_example(outputs: Tensor, targets: Tensor) -> Tensor:
    """Logistic-regression loss ℓ_i = log(1 + e^{z_i}) − y_i z_i for one logit per example."""
    return F.binary_cross_entropy_with_logits(outputs.squeeze(-1), targets, reduction="none")


PER_EXAMPLE = {"cross_entropy": lambda z, y: F.cross_entropy(z, y, reduction="none"),
               "mse": lambda z, y: (z - y.reshape(z.shape)).reshape(z.shape[0], -1).square().sum(1)}


@dataclass(frozen=True)
class Case:
    """One test problem.

    Attributes:
        id: readable name (the pytest id).
        seed: seed of the generator handed to ``build``.
        build: ``generator -> (model, x, y)``, float64, model in eval mode.
        loss: a loss name for ``Objective`` or a per-example callable.
        closed_form: ``(model, x, y) -> H (P, P)`` where the Hessian is known in closed form.
        linear_in_theta: the network output is linear in θ (then GGN = Hessian).
    """

    id: str
    seed: int
    build: Callable[[torch.Generator], tuple[nn.Module, Tensor, Tensor]]
    loss: str | Callable[[Tensor, Tensor], Tensor]
    closed_form: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None
    linear_in_theta: bool = False

    def per_example_loss(self, z: Tensor, y: Tensor) -> Tensor:
        return PER_EXAMPLE[self.loss](z, y) if isinstance(self.loss, str) else self.loss(z, y)


def make(case: Case) -> tuple[nn.Module, Tensor, Tensor]:
    """Build the case's model and data from its seed."""
    return case.build(torch.Generator().manual_seed(case.seed))


def _randn(g: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return scale * torch.randn(*shape, generator=g, dtype=DTYPE)


def _init(model: nn.Module, g: torch.Generator, scale: float = 0.5) -> nn.Module:
    """Draw every parameter from N(0, scale²) with the case's generator."""
    model = model.to(DTYPE)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(_randn(g, *p.shape, scale=scale))
    return model.eval()


# ---- the cases ---------------------------------------------------------------------------
def _linreg(g):
    X = _randn(g, 40, 4)
    return _init(nn.Linear(4, 1, bias=False), g), X, X @ _randn(g, 4) + 0.1 * _randn(g, 40)


def _linreg_hessian(model, X, y):
    return 2 * X.T @ X / X.shape[0]


def _logreg(g):
    X = _randn(g, 40, 3)
    y = (torch.rand(40, generator=g, dtype=DTYPE) < torch.sigmoid(X @ _randn(g, 3))).to(DTYPE)
    return _init(nn.Linear(3, 1, bias=False), g), X, y


def _logreg_hessian(model, X, y):
    s = torch.sigmoid(X @ model.weight.detach()[0])
    return X.T @ (X * (s * (1 - s))[:, None]) / X.shape[0]


def _scalar_net(g):
    x = _randn(g, 30, 1)
    return _init(nn.Sequential(nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)), g, 1.0), x, \
        1.5 * x[:, 0] + 0.1 * _randn(g, 30)


def _scalar_net_hessian(model, x, y):
    """L = a w1²w2² − 2b w1w2 + c with a = mean x², b = mean xy."""
    w1, w2 = model[0].weight.detach()[0, 0], model[1].weight.detach()[0, 0]
    a, b = (x[:, 0] ** 2).mean(), (x[:, 0] * y).mean()
    off = 4 * a * w1 * w2 - 2 * b
    return torch.stack([torch.stack([2 * a * w2**2, off]), torch.stack([off, 2 * a * w1**2])])


def _mlp(g):
    model = _init(nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)), g)
    return model, _randn(g, 37, 5), torch.randint(0, 3, (37,), generator=g)


def _cnn_bn(g):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(),
                          nn.Linear(3 * 5 * 5, 3))
    model = _init(model, g)
    with torch.no_grad():  # non-trivial running statistics, as after training
        model[1].running_mean.copy_(_randn(g, 3, scale=0.3))
        model[1].running_var.copy_(0.5 + torch.rand(3, generator=g, dtype=DTYPE))
        model[1].num_batches_tracked.fill_(7)
    return model, _randn(g, 33, 2, 5, 5), torch.randint(0, 3, (33,), generator=g)


CASES = [
    Case("linreg", 0, _linreg, "mse", _linreg_hessian, linear_in_theta=True),
    Case("logreg", 1, _logreg, bce_per_example, _logreg_hessian, linear_in_theta=True),
    Case("scalar_linear_net", 2, _scalar_net, "mse", _scalar_net_hessian),
    Case("mlp", 3, _mlp, "cross_entropy"),
    Case("cnn_bn_eval", 4, _cnn_bn, "cross_entropy"),
]
CASES_BY_ID = {c.id: c for c in CASES}
case_ids = [c.id for c in CASES]


# ---- oracles (independent of landscape.objective) ------------------------------------------
def named_params(model: nn.Module) -> list[tuple[str, Tensor]]:
    return [(n, p.detach()) for n, p in model.named_parameters()]


def theta_of(model: nn.Module) -> Tensor:
    return torch.cat([p.reshape(-1) for _, p in named_params(model)])


def param_dict(model: nn.Module, theta: Tensor) -> dict[str, Tensor]:
    out, start = {}, 0
    for name, p in named_params(model):
        out[name] = theta[start:start + p.numel()].reshape(p.shape)
        start += p.numel()
    return out


def reference_loss(case: Case, model: nn.Module, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
    """θ -> mean loss over all of (x, y) in one forward of an eval-mode copy of the model."""
    net = copy.deepcopy(model).eval()
    buffers = {n: b.detach() for n, b in net.named_buffers()}
    return lambda th: case.per_example_loss(functional_call(net, (param_dict(net, th), buffers), (x,)), y).mean()


def reference_hessian(case: Case, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Dense float64 ``torch.func.hessian`` of the full-dataset mean loss."""
    return torch.func.hessian(reference_loss(case, model, x, y))(theta_of(model))


@functools.cache
def _oracle_hessian(case_id: str) -> Tensor:
    case = CASES_BY_ID[case_id]
    return reference_hessian(case, *make(case))


def oracle_hessian(case: Case) -> Tensor:
    """:func:`reference_hessian` at the case's own θ, computed once per session (a copy)."""
    return _oracle_hessian(case.id).clone()


def reference_per_example_grads(case: Case, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """``(N, P)`` per-example gradients, one example at a time (eval mode)."""
    net = copy.deepcopy(model).eval()
    buffers = {n: b.detach() for n, b in net.named_buffers()}

    def one(th, xi, yi):
        return case.per_example_loss(functional_call(net, (param_dict(net, th), buffers), (xi[None],)), yi[None])[0]

    th = theta_of(model)
    return torch.stack([torch.func.grad(one)(th, x[i], y[i]) for i in range(x.shape[0])])


def model_digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer (values, requires_grad, .grad set or not) and the training flags."""
    h = hashlib.sha256()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        h.update(bytes([t.requires_grad, t.grad is None]))
    h.update(bytes([m.training for m in model.modules()]))
    return h.hexdigest()


def rel_err(actual: Tensor, expected: Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖ (Frobenius; absolute where expected is 0)."""
    diff = (actual.double() - expected.double()).norm()
    scale = expected.double().norm()
    return float(diff / scale) if scale > 0 else float(diff)


def assert_close(actual: Tensor, expected: Tensor, rtol: float, what: str) -> None:
    """Shapes equal and relative error ≤ rtol; the message says what differed and by how much."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    err = rel_err(actual, expected)
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.1e}"
