"""Argument checks and option resolution for :class:`~landscape.objective.Objective`.

Each check raises an :class:`~landscape.errors.InputError` (or ``NonFiniteError``) whose
message names the problem and the fix, before any pass over the data starts.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from landscape._batching import IterableBatches, TensorBatches
from landscape._reduce import first_nonfinite, first_true
from landscape.errors import InputError, NonFiniteError
from landscape.params import ParamSpec

HVP_METHODS = ("auto", "measure", "forward_over_reverse", "double_backward")
# Two forward passes on the same batch must agree to this relative level (max |a − b| /
# max |a|): far above rounding of a deterministic forward (cuDNN algorithm choice moves
# float32 results by ~1e-7), far below what dropout or random layers do (order 1).
DETERMINISM_RTOL = 1e-5


def _got(t) -> object:
    return tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__


def check_theta(theta: Tensor, spec: ParamSpec, device: torch.device, dtype: torch.dtype) -> Tensor:
    """θ ``(P,)``, finite, detached, in the objective's dtype and device."""
    if not isinstance(theta, Tensor) or theta.shape != (spec.numel,) or not theta.is_floating_point():
        raise InputError(f"θ must be a float tensor of shape ({spec.numel},) for this objective, got {_got(theta)}")
    bad = first_nonfinite(theta)
    if bad is not None:
        raise NonFiniteError(f"θ is not finite: entry {bad} (parameter {spec.name_at(bad)!r}) is "
                             f"{theta[bad].item()}; check the checkpoint or direction that produced θ")
    return theta.detach().to(device, dtype)


def check_thetas(thetas: Tensor, spec: ParamSpec, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A block ``(m, P)`` of finite parameter vectors, m ≥ 1 (one host sync)."""
    if not isinstance(thetas, Tensor) or thetas.ndim != 2 or thetas.shape[0] == 0 \
            or thetas.shape[1] != spec.numel or not thetas.is_floating_point():
        raise InputError(f"thetas must be a float (m, {spec.numel}) block of parameter vectors, m ≥ 1; "
                         f"got {_got(thetas)}")
    row = first_true(~thetas.isfinite().all(dim=1))
    if row is not None:
        try:
            check_theta(thetas[row], spec, device, dtype)
        except NonFiniteError as err:
            raise NonFiniteError(f"row {row} of thetas: {err}") from None
    return thetas.detach().to(device, dtype)


def check_vectors(v: Tensor, P: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(P,)`` or ``(k, P)`` finite vectors, returned as a ``(k, P)`` block."""
    if not isinstance(v, Tensor) or v.ndim not in (1, 2) or v.shape[-1] != P or v.numel() == 0:
        raise InputError(f"vectors must have shape ({P},) or (k, {P}) with k ≥ 1, got {_got(v)}")
    if first_nonfinite(v.reshape(-1)) is not None:
        raise NonFiniteError("the vector(s) multiplied by the Hessian contain NaN or inf; check how they were made")
    return v.detach().to(device, dtype).reshape(-1, P)


def check_deterministic(a: Tensor, b: Tensor) -> None:
    """Refuse a model whose two forward passes on the same batch differ (random layers)."""
    finite = torch.isfinite(a)
    a, b = a[finite], torch.where(torch.isfinite(b), b, torch.inf)[finite]  # non-finite in b only: a mismatch
    scale = a.abs().max().clamp_min(torch.finfo(a.dtype).tiny) if a.numel() else a.new_ones(())
    diff = (a - b).abs().max() if a.numel() else a.new_zeros(())
    if not diff <= DETERMINISM_RTOL * scale:
        raise InputError(f"the model is not deterministic: two forward passes on the same batch differ by "
                         f"{diff.item():.3g} (relative {(diff / scale).item():.3g}); remove random layers "
                         "(dropout, stochastic depth, noise) from forward or make them respect eval()")


def check_options(batch_size: int, hvp_method: str, vmap_chunk: int | None) -> None:
    """Batch size, HVP method and vmap chunk are usable."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if hvp_method not in HVP_METHODS:
        raise InputError(f"hvp_method must be one of {HVP_METHODS}, got {hvp_method!r}")
    if vmap_chunk is not None and (not isinstance(vmap_chunk, int) or vmap_chunk < 1):
        raise InputError(f"vmap_chunk must be a positive integer or None, got {vmap_chunk!r}")


def device_and_dtype(model: nn.Module, device, dtype) -> tuple[torch.device, torch.dtype]:
    """The computation's device and dtype: as given, else the model's first floating parameter's."""
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    if first is None:
        raise InputError("the model has no floating-point parameters; an objective needs some")
    dtype = dtype or first.dtype
    if not dtype.is_floating_point:
        raise InputError(f"dtype must be a floating dtype (torch.float32 or torch.float64), got {dtype}")
    return torch.device(device) if device is not None else first.device, dtype


def param_spec(model: nn.Module, params: ParamSpec | list[str] | None) -> ParamSpec:
    """A given :class:`ParamSpec`, or one built from include patterns (None: all trainable)."""
    return params if isinstance(params, ParamSpec) else ParamSpec.from_module(model, include=params)


def batch_source(inputs, targets, data, batch_size, dtype, device, num_examples):
    """Tensor batches, or an iterable of batches (exactly one of the two)."""
    if data is not None:
        if inputs is not None or targets is not None:
            raise InputError("give either inputs and targets tensors or data=<iterable of batches>, not both")
        return IterableBatches(data, dtype, device, num_examples)
    return TensorBatches.create(inputs, targets, batch_size, dtype, device)
