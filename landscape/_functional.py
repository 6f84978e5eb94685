"""A network run as a pure function f(θ, x) of the flat parameters, never mutating the model.

:class:`FunctionalModel` keeps a *structural* copy of the user's module (a deep copy
whose parameter and buffer tensors are shared, not duplicated) on which it sets the
modes it needs — dropout off, BatchNorm per ``bn`` — and calls it with
``torch.func.functional_call`` on tensors it owns: θ for the selected parameters,
detached copies for the fixed ones and for the buffers. The user's module, its
``training`` flags, parameters and buffers are never touched.

BatchNorm modes (docs/contracts.md, landscape.objective):
    * ``"eval"``: running statistics — BN is a fixed affine map and the loss is a fixed
      function of θ, independent of batching.
    * ``"train"``: batch statistics of each batch of the (fixed) batch plan. The copy's BN
      layers get ``track_running_stats=False`` and no running buffers, so no forward can
      update running statistics (the functorch "patching batch norm" recipe).
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from landscape.errors import InputError
from landscape.params import ParamSpec

BN_MODES = ("eval", "train")


class FunctionalModel:
    """f(θ, x) for a module, with every tensor cast to one dtype and device.

    Attributes:
        spec: the layout of θ.
        theta0: the model's own θ, ``(P,)``, in ``dtype`` on ``device``.
        dtype, device: of θ, the fixed parameters and the floating buffers.
    """

    def __init__(self, model: nn.Module, spec: ParamSpec, bn: str, dtype: torch.dtype, device: torch.device):
        if bn not in BN_MODES:
            raise InputError(f"bn must be one of {BN_MODES}, got {bn!r}")
        self.spec, self.dtype, self.device, self.bn = spec, dtype, device, bn
        self.module = _structural_copy(model)
        _set_modes(self.module, bn)
        named = dict(model.named_parameters())
        self.theta0 = spec.flatten({n: named[n].detach() for n in spec.names}).to(device, dtype).clone()
        self.fixed = {n: _cast(p, dtype, device) for n, p in named.items() if n not in set(spec.names)}
        self.buffers = {n: _cast(b, dtype, device) for n, b in self.module.named_buffers()}

    def __call__(self, theta: Tensor, x: Tensor) -> Tensor:
        """The network's outputs f(θ, x) for a batch of inputs ``x``."""
        params = {**self.fixed, **self.spec.unflatten(theta)}
        return functional_call(self.module, (params, self.buffers), (x,))


def _cast(t: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
    t = t.detach()
    return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device=device)


def _structural_copy(model: nn.Module) -> nn.Module:
    """A deep copy of the module tree that shares (does not copy) parameter and buffer tensors."""
    memo = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    try:
        return copy.deepcopy(model, memo)
    except Exception as err:  # noqa: BLE001 — any failure means the same thing to the user
        raise InputError(f"the model cannot be copied ({err}); the objective needs copy.deepcopy(model) "
                         "to set its modes without modifying your model") from err


def _set_modes(module: nn.Module, bn: str) -> None:
    """Dropout off everywhere; BatchNorm layers per ``bn`` (on the private copy only)."""
    module.eval()
    for name, m in module.named_modules():
        if not isinstance(m, _BatchNorm):
            continue
        if bn == "train":
            m.train()
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
        elif m.running_mean is None or m.running_var is None:
            raise InputError(f"BatchNorm layer {name!r} has no running statistics, so bn='eval' would "
                             "still normalise by batch statistics; use bn='train'")
