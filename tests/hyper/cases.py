"""Small training problems for the hypergradient tests, as data (float64, seeded, tiny).

Each case builds a :class:`landscape.hyper.TrainingProblem` on MNIST-1D (a few hundred
examples) and a hyperparameter set; ``wrt`` lists the groups to differentiate. The
finite-difference step of each group is in ``fd_eps`` (momentum steps are multiples of 2^-16,
its quantisation, so the central difference sees exactly β ± ε).
"""

from __future__ import annotations

import functools
import math

import torch

import landscape.hyper as lh
from landscape.datasets import load_dataset
from landscape.models import build_model

DTYPE = torch.float64
# Routes that compute the same real number by different float64 operation orders agree to about
# T · P · eps64 relative in the smooth regime; the reversible route's fixed-point trajectory adds
# ≈ 2^-36 per step. The bar is 1e-6 relative.
ROUTE_RTOL = 1e-6
# Central differences with step ε have truncation error O(ε² L''') relative to O(1) derivatives,
# and rounding error eps64 · L / ε ≈ 1e-11 for ε = 1e-5.
FD_RTOL = 1e-5


@functools.lru_cache(maxsize=None)
def data(num_train: int = 200, num_test: int = 100):
    return load_dataset("mnist1d", num_train=num_train, num_test=num_test)


def batch_plan(num_train: int, batch_size: int, steps: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(num_train, generator=g)[:batch_size] for _ in range(steps)])


def problem(hidden=(12,), *, batch_size=25, steps=40, lr=0.1, momentum=0.9, weight_decay=0.0,
            nesterov=False, full_batch=False, num_train=200, seed=0):
    ds = data(num_train)
    net = build_model("mlp", seed=seed, in_dim=40, hidden=list(hidden), num_classes=10).to(DTYPE)
    batches = None if full_batch else batch_plan(num_train, batch_size, steps, seed)
    return lh.TrainingProblem(net, ds.x_train, ds.y_train, ds.x_test, ds.y_test, batches=batches, lr=lr,
                              momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, dtype=DTYPE)


def _scalars(prob, T):
    return lh.default_hyper(prob, ["log_lr", "momentum", "log_init_scale"], T)


def _per_layer(prob, T):
    L = len(prob.spec.names)
    g = torch.Generator().manual_seed(1)
    return {"log_lr": math.log(0.05) + 0.3 * torch.randn(T, L, generator=g, dtype=DTYPE),
            "momentum": torch.full((T,), 0.875, dtype=DTYPE),
            "log_init_scale": 0.2 * torch.randn(L, generator=g, dtype=DTYPE),
            "log_l2": math.log(1e-3) + torch.randn(prob.P, generator=g, dtype=DTYPE)}


def _data_and_quantiles(prob, T):
    return {"train_inputs": prob.x_train.clone(), "init_quantiles": lh.quantile_knots(prob, 6),
            "log_l2": torch.tensor(math.log(1e-2), dtype=DTYPE)}


CASES = [
    dict(id="scalars-sgd-momentum", make=lambda: problem(), hyper=_scalars, T=12,
         wrt=("log_lr", "momentum", "log_init_scale")),
    dict(id="per-step-per-layer-l2", make=lambda: problem(hidden=(8,), momentum=0.9), hyper=_per_layer, T=8,
         wrt=("log_lr", "momentum", "log_init_scale", "log_l2")),
    dict(id="logistic-full-batch-data", make=lambda: problem(hidden=(), full_batch=True, lr=0.5, momentum=0.5),
         hyper=_data_and_quantiles, T=6, wrt=("train_inputs", "init_quantiles", "log_l2")),
]


def case_ids(cases):
    return [c["id"] for c in cases]


def build(case):
    prob = case["make"]()
    return prob, case["hyper"](prob, case["T"])
