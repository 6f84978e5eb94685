"""Data sets from the user's own factories: what a factory may return, turned into tensors.

A data-set factory (``--dataset package.module:factory``, ``path/to/file.py:factory`` or a
plugin in the group ``landscape.datasets``) takes JSON keyword arguments and returns one of

* a :class:`~landscape.datasets.Dataset` (its tensors are used; the spec is the factory's);
* a mapping with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (and optionally ``num_classes``);
* a tuple ``(x_train, y_train, x_test, y_test)`` or ``(…, num_classes)``;
* a pair ``(train, test)`` of map-style data sets (``len`` and ``[i] -> (x, y)``, e.g.
  ``torchvision`` data sets or ``TensorDataset``), stacked into tensors.

Inputs become float32. Integer targets are class labels (int64; the number of classes is
``num_classes`` if given, else 1 + the largest label); floating targets are a regression
(float32, ``num_classes = 0``). The factory must return the same data every time it is called
with the same arguments: run files store the data's SHA-256 and refuse data that changed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from landscape.errors import InputError

SPLITS = ("x_train", "y_train", "x_test", "y_test")


def arrays_of(value, spec: str) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """``(x_train, y_train, x_test, y_test, num_classes)`` from what a factory returned.

    Raises:
        InputError: anything else, naming the spec and the accepted forms.
    """
    x_tr, y_tr, x_te, y_te, classes = _unpack(value, spec)
    xs = [_inputs(x, spec, n) for x, n in ((x_tr, "x_train"), (x_te, "x_test"))]
    ys = [_tensor(y, spec, n) for y, n in ((y_tr, "y_train"), (y_te, "y_test"))]
    if all(not y.is_floating_point() for y in ys):
        ys = [y.to(torch.int64) for y in ys]
        classes = _num_classes(ys, classes, spec)
    elif all(y.is_floating_point() for y in ys):
        ys, classes = [y.to(torch.float32) for y in ys], 0
    else:
        raise InputError(f"dataset {spec!r}: y_train and y_test must both be labels (integers) or both "
                         "regression targets (floats)")
    return xs[0], ys[0], xs[1], ys[1], classes


def _unpack(value, spec: str):
    if all(hasattr(value, n) for n in SPLITS) and not isinstance(value, Mapping):  # a Dataset
        return (*(getattr(value, n) for n in SPLITS), getattr(value, "num_classes", None))
    if isinstance(value, Mapping):
        missing = [n for n in SPLITS if n not in value]
        if missing:
            raise InputError(f"dataset {spec!r} returned a mapping without {missing}; give {list(SPLITS)}")
        return (*(value[n] for n in SPLITS), value.get("num_classes"))
    if isinstance(value, (tuple, list)) and len(value) in (4, 5):
        return (*value[:4], value[4] if len(value) == 5 else None)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_map_style(v) for v in value):
        (x_tr, y_tr), (x_te, y_te) = (_stack(v, spec, split) for v, split in zip(value, ("train", "test")))
        return x_tr, y_tr, x_te, y_te, None
    raise InputError(f"dataset factory {spec!r} returned a {type(value).__name__}; return a landscape Dataset, "
                     f"a mapping or tuple of {', '.join(SPLITS)} [, num_classes], or a pair (train, test) of "
                     "map-style data sets whose items are (x, y)")


def _map_style(v) -> bool:
    return hasattr(v, "__len__") and hasattr(v, "__getitem__") and not isinstance(v, (Tensor, np.ndarray))


def _stack(data, spec: str, split: str) -> tuple[Tensor, Tensor]:
    items = [data[i] for i in range(len(data))]
    if not items or not all(isinstance(it, (tuple, list)) and len(it) >= 2 for it in items):
        raise InputError(f"dataset {spec!r}: the {split} data set must be non-empty with items (x, y)")
    xs = torch.stack([torch.as_tensor(np.asarray(it[0])) for it in items])
    ys = torch.as_tensor(np.asarray([np.asarray(it[1]) for it in items]))
    return xs, ys


def _tensor(a, spec: str, name: str) -> Tensor:
    try:
        t = torch.as_tensor(a).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise InputError(f"dataset {spec!r}: {name} is not an array ({type(a).__name__}: {err})") from None
    if t.ndim == 0:
        raise InputError(f"dataset {spec!r}: {name} must have one row per example, got a scalar")
    return t.contiguous()


def _inputs(x, spec: str, name: str) -> Tensor:
    t = _tensor(x, spec, name)
    if t.is_complex() or t.dtype == torch.bool:
        raise InputError(f"dataset {spec!r}: {name} must be real numbers, got {t.dtype}")
    return t.to(torch.float32)


def _num_classes(ys: list[Tensor], given, spec: str) -> int:
    top = max(int(y.max()) for y in ys) + 1 if all(len(y) for y in ys) else 0
    low = min(int(y.min()) for y in ys if len(y)) if any(len(y) for y in ys) else 0
    if low < 0:
        raise InputError(f"dataset {spec!r}: class labels must be >= 0, got {low}")
    if given is None:
        return top
    if int(given) < top:
        raise InputError(f"dataset {spec!r}: num_classes = {given} but a label is {top - 1}")
    return int(given)
