"""Model registry: a model is rebuilt from its name and JSON keyword arguments.

``build_model(name, seed=s, **kwargs)`` with the same arguments gives the same module with the
same initial parameters, and leaves the global random state untouched; a run file stores
``name`` and ``kwargs`` (JSON) so that analyses rebuild the architecture.

Names (``model_names()``):

* ``resnet`` (depth ∈ {8, 14, 20, 32, 56}, width, num_classes, in_channels, norm, shortcut) and
  the aliases ``resnet8`` … ``resnet56`` (fixed depth) and ``resnet_100k`` (ResNet-20 at width
  0.625, 105,940 parameters) — :mod:`landscape.models.cifar_resnet`;
* ``mlp`` — :mod:`landscape.models.mlp`; ``cnn1d`` (MNIST-1D) — :mod:`landscape.models.cnn1d`;
* ``deep_linear`` — :mod:`landscape.models.deep_linear`.

Example::

    >>> from landscape.models import build_model
    >>> model = build_model("resnet20", seed=0, width=1)
    >>> sum(p.numel() for p in model.parameters())
    269722
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from landscape.errors import InputError
from landscape.models.cifar_resnet import DEPTHS, CifarResNet, resnet, resnet_100k
from landscape.models.cnn1d import CNN1d, cnn1d
from landscape.models.deep_linear import DeepLinear, deep_linear
from landscape.models.mlp import MLP, mlp

__all__ = ["MODELS", "build_model", "model_names", "num_parameters",
           "CifarResNet", "MLP", "CNN1d", "DeepLinear"]


def _fixed_depth(depth: int) -> Callable[..., CifarResNet]:
    """``resnet`` with ``depth`` fixed; its signature (for kwarg checks) omits ``depth``."""
    def factory(**kwargs) -> CifarResNet:
        return resnet(depth=depth, **kwargs)
    params = [p for p in inspect.signature(resnet).parameters.values() if p.name != "depth"]
    factory.__signature__ = inspect.Signature([p.replace(kind=p.KEYWORD_ONLY) for p in params])
    factory.__name__ = factory.__qualname__ = f"resnet{depth}"
    factory.__doc__ = f"ResNet-{depth} (see :func:`landscape.models.cifar_resnet.resnet`)."
    return factory


MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet": resnet,
    **{f"resnet{d}": _fixed_depth(d) for d in DEPTHS},
    "resnet_100k": resnet_100k,
    "mlp": mlp,
    "cnn1d": cnn1d,
    "deep_linear": deep_linear,
}


def model_names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(MODELS)


def num_parameters(model: nn.Module) -> int:
    """P, the number of trainable parameters (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _check_kwargs(name: str, factory: Callable, kwargs: dict) -> None:
    accepted = [p for p in inspect.signature(factory).parameters if p != "self"]
    bad = sorted(set(kwargs) - set(accepted))
    if bad:
        raise InputError(f"model {name!r} got unknown keyword argument(s) {bad}; it accepts {accepted}")


def build_model(name: str, *, seed: int | None = None, **kwargs) -> nn.Module:
    """Build a registered model from its name and keyword arguments.

    Args:
        name: one of :func:`model_names`.
        seed: if given, the initial parameters are drawn from a CPU generator seeded with it, in a
            forked random state, so the global RNG is neither used nor advanced. If None, the
            global RNG is used as by any ``nn.Module`` constructor.
        **kwargs: the factory's keyword arguments (JSON types: lists stand for tuples).

    Returns:
        The model on the CPU, in training mode. ``model.build_spec`` holds
        ``{"name": name, "kwargs": all kwargs with defaults filled in}`` for provenance.

    Raises:
        InputError: unknown name (the message lists the known ones), unknown keyword argument
            (the message lists the accepted ones), or an invalid value.
    """
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; known models: {model_names()}")
    factory = MODELS[name]
    _check_kwargs(name, factory, kwargs)
    if seed is None:
        model = factory(**kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = factory(**kwargs)
    model.build_spec = {"name": name, "kwargs": _resolved(factory, kwargs)}
    return model


def _resolved(factory: Callable, kwargs: dict) -> dict:
    """All keyword arguments with defaults filled in, tuples as lists (JSON types)."""
    bound = inspect.signature(factory).bind(**kwargs)
    bound.apply_defaults()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in bound.arguments.items()}
