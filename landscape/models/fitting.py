"""Fit a registered model to a data set: its input size and output count come from the data.

``landscape train --model mlp --dataset mnist1d`` should not need ``--model-kwargs
'{"in_dim": 40}'``: :func:`fit_to_data` fills the keyword arguments a registered model takes
for its input and output sizes from the data set's input shape and number of outputs (classes,
or regression targets), unless they are given. Arguments given explicitly are never changed;
user factories (import paths, plugins) are left as they are. A data set a model cannot take at
all (images for a ResNet) is an :class:`~landscape.errors.InputError` naming the flags to change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from landscape.errors import InputError

RESNETS = ("resnet", "resnet8", "resnet14", "resnet20", "resnet32", "resnet56", "resnet_100k")


def fit_to_data(name: str, kwargs: dict, input_shape: Sequence[int], num_outputs: int) -> dict:
    """``kwargs`` with the input/output sizes of model ``name`` filled from the data.

    Args:
        name: the model's name; names that are not registered are returned unchanged.
        kwargs: the keyword arguments given (never overridden).
        input_shape: the shape of one input example, e.g. ``(40,)`` or ``(3, 32, 32)``.
        num_outputs: classes of a classification task, or targets per example of a regression.

    Returns:
        A new dict: ``kwargs`` plus the filled arguments.

    Raises:
        InputError: the model cannot take inputs of this shape (the message names ``--model``
            and ``--dataset``).
    """
    shape, out = [int(s) for s in input_shape], int(num_outputs)
    if name == "mlp":
        return _mlp(kwargs, shape, out)
    if name == "cnn1d":
        return _cnn1d(kwargs, shape, out)
    if name == "deep_linear":
        return {"in_dim": math.prod(shape), "out_dim": out, **kwargs}
    if name in RESNETS:
        return _resnet(name, kwargs, shape, out)
    return dict(kwargs)


def _mlp(kwargs: dict, shape: list[int], out: int) -> dict:
    filled = dict(kwargs)
    if "in_dim" not in kwargs and "input_shape" not in kwargs:
        filled["input_shape"] = shape
    if "num_classes" not in kwargs and "out_dim" not in kwargs:
        filled["num_classes"] = out
    return filled


def _cnn1d(kwargs: dict, shape: list[int], out: int) -> dict:
    if len(shape) not in (1, 2):
        raise InputError(f"cnn1d takes 1-D signals (N, T) or (N, C, T), the data set's inputs are {tuple(shape)}; "
                         "choose another --model (mlp, resnet…) or a 1-D --dataset (mnist1d)")
    return {"input_length": shape[-1], "in_channels": shape[0] if len(shape) == 2 else 1,
            "num_classes": out, **kwargs}


def _resnet(name: str, kwargs: dict, shape: list[int], out: int) -> dict:
    if len(shape) != 3:
        raise InputError(f"{name} takes images (N, C, H, W), the data set's inputs are {tuple(shape)}; "
                         "choose --model mlp or cnn1d for vectors and signals, or an image --dataset "
                         "(cifar10, synthetic with input_shape [3, 32, 32])")
    return {"in_channels": shape[0], "num_classes": out, **kwargs}
