"""The :class:`Dataset` container and the helpers every loader shares (spec, argument checks)."""

from __future__ import annotations

import functools
import hashlib
import inspect
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from landscape.errors import InputError

@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test tensors on one device, with the spec that rebuilds them.

    Attributes:
        x_train, x_test: inputs (N, *input_shape), float32.
        y_train, y_test: int64 labels (N,), or float32 targets (N, out_dim) for regression.
        num_classes: number of classes (0 for a regression task).
        spec: JSON-able ``{"name": ..., **kwargs}``; ``load_dataset_from_spec(spec)`` rebuilds the data.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    spec: dict

    def __post_init__(self):
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if len(x) == 0:
                raise InputError(f"the {self.spec.get('name')} {split} split is empty; ask for at least one example")
            if len(x) != len(y):
                raise InputError(f"{split} inputs ({len(x)}) and targets ({len(y)}) differ in length")

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_outputs(self) -> int:
        """Outputs a model needs: the classes, or the targets per example of a regression."""
        if self.num_classes:
            return int(self.num_classes)
        return int(self.y_train.shape[1]) if self.y_train.ndim == 2 else 1

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    @property
    def num_test(self) -> int:
        return len(self.x_test)

    @functools.cached_property
    def checksum(self) -> str:
        """SHA-256 (hex) over x_train, y_train, x_test, y_test, in that order.

        Each tensor contributes a header ``"<dtype> <shape>\\n"`` and then its bytes (CPU,
        contiguous, native byte order), so a reshape or a cast changes the checksum too.
        """
        h = hashlib.sha256()
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype} {tuple(t.shape)}\n".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
        return h.hexdigest()

    def to(self, device: str | torch.device) -> Dataset:
        """The same data on another device."""
        ts = [t.to(device) for t in (self.x_train, self.y_train, self.x_test, self.y_test)]
        return Dataset(*ts, num_classes=self.num_classes, spec=self.spec)


def json_value(v):
    if isinstance(v, (tuple, list)):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    return str(v) if isinstance(v, Path) else v


def resolved_kwargs(fn, name: str, kwargs: dict) -> dict:
    """All arguments of loader ``fn`` with defaults filled in (the dataset's spec)."""
    sig = inspect.signature(fn)
    accepted = [p for p, q in sig.parameters.items() if q.kind != q.VAR_KEYWORD]
    try:
        bound = sig.bind(**kwargs)
    except TypeError:
        bad = sorted(set(kwargs) - set(accepted))
        raise InputError(f"dataset {name!r} got unknown keyword argument(s) {bad}; it accepts {accepted}") from None
    bound.apply_defaults()
    out = {}
    for k, v in bound.arguments.items():
        out.update(v if sig.parameters[k].kind == inspect.Parameter.VAR_KEYWORD else {k: v})
    return json_value(out)



def check_positive(**groups) -> None:
    for loader, values in groups.items():
        for k, v in values.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{loader} {k} must be a positive integer, got {v!r}")


def check_seed(loader: str, seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InputError(f"{loader} seed must be an integer in [0, 2**32), got {seed!r}")

