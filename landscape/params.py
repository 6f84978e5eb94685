"""Parameters as a flat vector θ ⇄ the named tensors ``torch.func.functional_call`` takes.

A :class:`ParamSpec` fixes an order on (a subset of) a model's parameters: θ is the
concatenation of the selected tensors, flattened row-major, so parameter ``names[i]``
occupies ``theta[offsets[i] : offsets[i] + numels[i]]``. Parameters left out by
``include`` are held fixed at the model's values (a per-layer Hessian is the Hessian
over one block of θ). The model itself is never modified.

Buffers (BatchNorm running statistics) travel the same way as one float64 vector
(:func:`flatten_buffers` / :func:`unflatten_buffers`), exact for float32/float16
buffers and for integer counters below 2**53.

Example::

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    >>> spec = ParamSpec.from_module(net, include=["1.*"])
    >>> spec.names, spec.P
    (('1.weight', '1.bias'), 3)
    >>> spec.unflatten(torch.arange(3.0))["1.weight"].shape
    torch.Size([1, 2])
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from landscape.errors import InputError


@dataclass(frozen=True)
class ParamSpec:
    """The layout of θ: which parameters, in which order, with which shapes.

    Attributes:
        names: parameter names (as in ``model.named_parameters()``), in θ order.
        shapes: their shapes.
        numels: their sizes.
        offsets: start of each parameter inside θ.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    numels: tuple[int, ...]
    offsets: tuple[int, ...]

    @property
    def numel(self) -> int:
        """P, the length of θ."""
        return self.offsets[-1] + self.numels[-1] if self.names else 0

    @property
    def P(self) -> int:  # noqa: N802 — the letter of the maths
        """P, the length of θ (same as :attr:`numel`)."""
        return self.numel

    @classmethod
    def from_module(cls, model: nn.Module, include: Sequence[str] | None = None) -> ParamSpec:
        """The spec of ``model``'s trainable parameters, optionally only those matching ``include``.

        Args:
            model: the network; parameters with ``requires_grad=False`` are left out (held fixed).
            include: glob patterns on parameter names (``fnmatch``, e.g. ``["layer1.*"]``);
                ``None`` selects every trainable parameter.

        Raises:
            InputError: the model has no trainable parameters, or a pattern matches none.
        """
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if include is not None:
            named = _select(named, include)
        if not named:
            raise InputError("the model has no trainable parameters to build θ from; "
                             "pass a model with parameters that require grad")
        shapes = tuple(tuple(p.shape) for _, p in named)
        numels = tuple(p.numel() for _, p in named)
        offsets = tuple(sum(numels[:i]) for i in range(len(numels)))
        return cls(tuple(n for n, _ in named), shapes, numels, offsets)

    def flatten(self, tensors: Mapping[str, Tensor]) -> Tensor:
        """Concatenate the named tensors into θ of shape ``(P,)`` (autograd flows)."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise InputError(f"flatten: tensors for {missing} are missing; pass every name in spec.names")
        for name, shape in zip(self.names, self.shapes):
            if tuple(tensors[name].shape) != shape:
                raise InputError(f"flatten: {name} has shape {tuple(tensors[name].shape)}, expected {shape}")
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Split θ ``(P,)`` into ``{name: view of shape}`` (views: autograd and vmap flow through)."""
        if theta.ndim != 1 or theta.shape[0] != self.numel:
            raise InputError(f"θ must have shape ({self.numel},) for this model, got {tuple(theta.shape)}")
        parts = torch.split(theta, list(self.numels))
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes)}

    def slices(self) -> dict[str, slice]:
        """``{name: slice}`` locating each parameter inside θ."""
        return {n: slice(o, o + k) for n, o, k in zip(self.names, self.offsets, self.numels)}

    def name_at(self, index: int) -> str:
        """The name of the parameter that holds entry ``index`` of θ."""
        for name, sl in self.slices().items():
            if sl.start <= index < sl.stop:
                return name
        raise InputError(f"index {index} is outside θ of length {self.numel}")

    def theta_of(self, model: nn.Module) -> Tensor:
        """A detached copy of the model's current values of the selected parameters, ``(P,)``."""
        named = dict(model.named_parameters())
        return self.flatten({n: named[n].detach() for n in self.names}).clone()


def _select(named: list[tuple[str, Tensor]], include: Sequence[str]) -> list[tuple[str, Tensor]]:
    if isinstance(include, str):
        include = [include]
    for pattern in include:
        if not any(fnmatch.fnmatchcase(n, pattern) for n, _ in named):
            names = ", ".join(n for n, _ in named)
            raise InputError(f"include pattern {pattern!r} matches no trainable parameter; names are: {names}")
    return [(n, p) for n, p in named if any(fnmatch.fnmatchcase(n, pat) for pat in include)]


def flatten_buffers(model: nn.Module) -> Tensor:
    """All of the model's buffers (e.g. BN running mean/var, counters) as one float64 vector.

    The order is ``model.named_buffers()``; :func:`unflatten_buffers` inverts it exactly.
    """
    buffers = [b for _, b in model.named_buffers()]
    for name, b in model.named_buffers():
        if b.is_complex():
            raise InputError(f"buffer {name} is complex; flatten_buffers supports real buffers only")
    if not buffers:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([b.detach().reshape(-1).to(torch.float64) for b in buffers])


def unflatten_buffers(model: nn.Module, flat: Tensor) -> dict[str, Tensor]:
    """Split a :func:`flatten_buffers` vector into ``{name: tensor}`` in each buffer's dtype and device.

    The model is not modified; pass the result to ``functional_call`` or ``load_state_dict``.
    """
    named = list(model.named_buffers())
    total = sum(b.numel() for _, b in named)
    if flat.ndim != 1 or flat.shape[0] != total:
        raise InputError(f"buffer vector must have shape ({total},) for this model, got {tuple(flat.shape)}")
    out, start = {}, 0
    for name, b in named:
        out[name] = flat[start:start + b.numel()].reshape(b.shape).to(device=b.device, dtype=b.dtype)
        start += b.numel()
    return out
