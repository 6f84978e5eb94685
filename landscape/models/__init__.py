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

Your own models (:mod:`landscape.factories`): ``build_model("mypkg.nets:make_net", width=64)``,
``build_model("path/to/nets.py:Net")`` or the name of a plugin (an entry point in the group
``landscape.models``). The factory is a class or function taking keyword arguments and
returning an ``nn.Module``. :func:`structure` and :func:`check_structure` compare a rebuilt
model with the parameter names and shapes a run file stored; :func:`fit_to_data` fills the
input size and output count of the registered models from a data set.

Example::

    >>> from landscape.models import build_model
    >>> model = build_model("resnet20", seed=0, width=1)
    >>> sum(p.numel() for p in model.parameters())
    269722
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable

import torch
from torch import nn

from landscape.errors import ConfigMismatchError, InputError
from landscape.factories import call_factory, plugin_names, resolve
from landscape.models.cifar_resnet import DEPTHS, CifarResNet, resnet, resnet_100k
from landscape.models.cnn1d import CNN1d, cnn1d
from landscape.models.deep_linear import DeepLinear, deep_linear
from landscape.models.fitting import fit_to_data
from landscape.models.mlp import MLP, mlp

__all__ = ["MODELS", "build_model", "model_names", "num_parameters", "structure", "check_structure",
           "fit_to_data", "CifarResNet", "MLP", "CNN1d", "DeepLinear"]

MAX_LISTED_DIFFERENCES = 4  # differences named in a structure-mismatch message


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
    """The registered model names and the installed plugins (group ``landscape.models``), sorted."""
    return sorted(set(MODELS) | set(plugin_names("model")))


def num_parameters(model: nn.Module) -> int:
    """P, the number of trainable parameters (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _check_kwargs(name: str, factory: Callable, kwargs: dict) -> None:
    params = _signature(factory).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p != "self"]
    bad = sorted(set(kwargs) - set(accepted))
    if bad:
        raise InputError(f"model {name!r} got unknown keyword argument(s) {bad}; it accepts {accepted}")


def _signature(factory: Callable) -> inspect.Signature:
    try:
        return inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C extension: accept any keywords
        return inspect.Signature([inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])


def build_model(name: str, *, seed: int | None = None, **kwargs) -> nn.Module:
    """Build a model from its name (or import path) and keyword arguments.

    Args:
        name: one of :func:`model_names`, a plugin name, ``"package.module:factory"`` or
            ``"path/to/file.py:factory"`` (see :mod:`landscape.factories`).
        seed: if given, the initial parameters are drawn from a CPU generator seeded with it, in a
            forked random state, so the global RNG is neither used nor advanced. If None, the
            global RNG is used as by any ``nn.Module`` constructor.
        **kwargs: the factory's keyword arguments (JSON types: lists stand for tuples).

    Returns:
        The model on the CPU, in training mode. ``model.build_spec`` holds
        ``{"name": the stored spec, "kwargs": all kwargs with defaults filled in, "origin":
        where the factory came from}`` for provenance.

    Raises:
        InputError: unknown name (the message lists the known ones), an import path that does
            not resolve, unknown keyword argument (the message lists the accepted ones), an
            invalid value, or a factory that raises or returns something else than a module.
    """
    factory, origin = resolve(name, "model", MODELS)
    _check_kwargs(origin.spec, factory, kwargs)
    if seed is None:
        model = _call(factory, origin, kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = _call(factory, origin, kwargs)
    if not isinstance(model, nn.Module):
        raise InputError(f"model factory {origin.spec!r} returned a {type(model).__name__}, not a torch.nn.Module")
    model.build_spec = {"name": origin.spec, "kwargs": _resolved(origin.spec, factory, kwargs),
                        "origin": origin.as_dict()}
    return model


def _call(factory: Callable, origin, kwargs: dict):
    if origin.kind == "registry":
        return factory(**kwargs)
    return call_factory(factory, origin.spec, "model", kwargs)


def _resolved(name: str, factory: Callable, kwargs: dict) -> dict:
    """All keyword arguments with defaults filled in, tuples as lists (JSON types only)."""
    sig = _signature(factory)
    try:
        bound = sig.bind(**kwargs)
    except TypeError as err:
        raise InputError(f"model {name!r} cannot be called with {kwargs} ({err}); pass its arguments in "
                         "--model-kwargs") from None
    bound.apply_defaults()
    out = {}
    for k, v in bound.arguments.items():
        out.update(v if sig.parameters[k].kind == inspect.Parameter.VAR_KEYWORD else {k: v})
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    return {k: v for k, v in out.items() if k in kwargs or _jsonable(v)}


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def structure(model: nn.Module) -> dict:
    """Names and shapes of θ's parameters (``requires_grad``, in order) and of the buffers."""
    params = [(n, list(p.shape)) for n, p in model.named_parameters() if p.requires_grad]
    buffers = [(n, list(b.shape)) for n, b in model.named_buffers()]
    return {"param_names": [n for n, _ in params], "param_shapes": [s for _, s in params],
            "buffer_names": [n for n, _ in buffers], "buffer_shapes": [s for _, s in buffers]}


def check_structure(model: nn.Module, stored: dict, *, name: str, kwargs: dict, origin: dict | None = None,
                    what: str = "the run") -> None:
    """Refuse a rebuilt model whose parameters or buffers differ from ``stored``.

    Args:
        model: the model rebuilt from ``name`` and ``kwargs``.
        stored: ``param_names``, ``param_shapes`` (and optionally ``buffer_names``,
            ``buffer_shapes``) as a run file's meta holds them.
        origin: the stored :class:`landscape.factories.Origin` dict (its file is named in the error).
        what: what the stored structure belongs to, for the message.

    Raises:
        ConfigMismatchError: one line with the import path, where it was loaded from, and the
            first few differences (parameter count, names, shapes).
    """
    now = structure(model)
    diff = _differences(now, stored)
    if not diff:
        return
    where = f" (loaded from {origin['file']} when the run was written)" if origin and origin.get("file") else ""
    raise ConfigMismatchError(
        f"model {name!r} with {kwargs} no longer builds the network of {what}{where}: {'; '.join(diff)}; "
        "restore the factory (or its file) as it was, or give the arguments it was built with")


def _differences(now: dict, stored: dict) -> list[str]:
    diff = []
    for kind in ("param", "buffer"):
        if f"{kind}_names" not in stored:
            continue
        before = len(diff)
        a = dict(zip(stored[f"{kind}_names"], map(tuple, stored[f"{kind}_shapes"])))
        b = dict(zip(now[f"{kind}_names"], map(tuple, now[f"{kind}_shapes"])))
        if kind == "param":
            pa, pb = (sum(math.prod(s) for s in d.values()) for d in (a, b))
            if pa != pb:
                diff.append(f"P = {pb:,} now vs {pa:,} stored")
        diff += [f"{kind} {n} missing now" for n in a if n not in b]
        diff += [f"{kind} {n} {list(b[n])} is new" for n in b if n not in a]
        diff += [f"{kind} {n} is {list(b[n])} now vs {list(a[n])} stored" for n in a if n in b and a[n] != b[n]]
        if len(diff) == before and list(a) != list(b):
            diff.append(f"{kind}s are in another order")
    if len(diff) > MAX_LISTED_DIFFERENCES:
        diff = diff[:MAX_LISTED_DIFFERENCES] + [f"… {len(diff) - MAX_LISTED_DIFFERENCES} more"]
    return diff
