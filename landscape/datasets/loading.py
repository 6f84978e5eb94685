"""Loading a data set by name, and rebuilding one from the spec a run file stores."""

from __future__ import annotations

from pathlib import Path

import torch

from landscape.datasets.base import Dataset, json_value, resolved_kwargs
from landscape.datasets.cifar10_files import cifar10
from landscape.datasets.mnist1d_data import mnist1d
from landscape.datasets.synthetic_task import synthetic
from landscape.datasets.user import arrays_of
from landscape.errors import ConfigMismatchError
from landscape.factories import call_factory, plugin_names, resolve

DATASETS = {"cifar10": cifar10, "mnist1d": mnist1d, "synthetic": synthetic}


def load_dataset(name: str, *, device: str | torch.device = "cpu", **kwargs) -> Dataset:
    """Load a named data set (or your own, by import path) onto ``device``.

    Args:
        name: ``"cifar10"``, ``"mnist1d"``, ``"synthetic"``, a plugin name (entry-point group
            ``landscape.datasets``), ``"package.module:factory"`` or ``"path/to/file.py:factory"``
            (what a factory may return: :mod:`landscape.datasets.user`).
        device: where the tensors live.
        **kwargs: the loader's arguments (see :func:`cifar10`, :func:`mnist1d`, :func:`synthetic`).

    Raises:
        InputError: unknown name or keyword argument, an import path that does not resolve, a
            factory that raises or returns something else than data, bad value, or an empty split.
        FileFormatError: CIFAR-10 files missing, unreadable or failing their MD5.
    """
    loader, origin = resolve(name, "dataset", DATASETS)
    resolved = resolved_kwargs(loader, origin.spec, kwargs)
    if origin.kind == "registry":
        x_train, y_train, x_test, y_test, num_classes = loader(**kwargs)
    else:
        value = call_factory(loader, origin.spec, "dataset", kwargs)
        x_train, y_train, x_test, y_test, num_classes = arrays_of(value, origin.spec)
        resolved = {k: v for k, v in resolved.items() if k in kwargs or _jsonable(v)}
    spec = {"name": origin.spec, **{k: v for k, v in resolved.items() if k != "download"}}
    if "data_dir" in spec:  # a spec must not depend on the working directory
        spec["data_dir"] = str(Path(spec["data_dir"]).expanduser().absolute())
    ts = [torch.as_tensor(a).to(device) for a in (x_train, y_train, x_test, y_test)]
    return Dataset(*ts, num_classes=num_classes, spec=spec)


def dataset_names() -> list[str]:
    """The registered data sets and the installed plugins (group ``landscape.datasets``), sorted."""
    return sorted(set(DATASETS) | set(plugin_names("dataset")))


def _jsonable(value) -> bool:
    import json

    try:
        json.dumps(json_value(value))
    except (TypeError, ValueError):
        return False
    return True


def load_dataset_from_spec(spec: dict, device: str | torch.device = "cpu", *,
                           checksum: str | None = None) -> Dataset:
    """Rebuild a data set from its ``spec``; if ``checksum`` is given, verify it.

    Raises:
        ConfigMismatchError: the rebuilt data do not have the expected checksum.
    """
    kwargs = dict(spec)
    data = load_dataset(kwargs.pop("name"), device=device, **kwargs)
    if checksum is not None and data.checksum != checksum:
        raise ConfigMismatchError(f"data set {spec} rebuilt with checksum {data.checksum}, expected {checksum}: "
                                  "the files, the generator or the factory differ from those of the run")
    return data
