"""Loading a data set by name, and rebuilding one from the spec a run file stores."""

from __future__ import annotations

from pathlib import Path

import torch

from landscape.datasets.base import Dataset, resolved_kwargs
from landscape.datasets.cifar10_files import cifar10
from landscape.datasets.mnist1d_data import mnist1d
from landscape.datasets.synthetic_task import synthetic
from landscape.errors import ConfigMismatchError, InputError

DATASETS = {"cifar10": cifar10, "mnist1d": mnist1d, "synthetic": synthetic}


def load_dataset(name: str, *, device: str | torch.device = "cpu", **kwargs) -> Dataset:
    """Load a named data set onto ``device``.

    Args:
        name: ``"cifar10"``, ``"mnist1d"`` or ``"synthetic"``.
        device: where the tensors live.
        **kwargs: the loader's arguments (see :func:`cifar10`, :func:`mnist1d`, :func:`synthetic`).

    Raises:
        InputError: unknown name or keyword argument, bad value, or an empty split.
        FileFormatError: CIFAR-10 files missing, unreadable or failing their MD5.
    """
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; known data sets: {sorted(DATASETS)}")
    loader = DATASETS[name]
    resolved = resolved_kwargs(loader, name, kwargs)
    x_train, y_train, x_test, y_test, num_classes = loader(**kwargs)
    spec = {"name": name, **{k: v for k, v in resolved.items() if k != "download"}}
    if "data_dir" in spec:  # a spec must not depend on the working directory
        spec["data_dir"] = str(Path(spec["data_dir"]).expanduser().absolute())
    ts = [torch.as_tensor(a).to(device) for a in (x_train, y_train, x_test, y_test)]
    return Dataset(*ts, num_classes=num_classes, spec=spec)


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
                                  "the files or the generator differ from those of the run")
    return data
