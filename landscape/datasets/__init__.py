"""Data sets as tensors on a device: CIFAR-10, MNIST-1D and a synthetic teacher task.

``load_dataset(name, device=..., **kwargs)`` returns a frozen :class:`Dataset` holding
``x_train, y_train, x_test, y_test`` on the device, a JSON-able ``spec`` that
:func:`load_dataset_from_spec` turns back into the same tensors (bitwise), and a ``checksum``
(SHA-256) that run files store to verify data identity.

* ``cifar10`` — Krizhevsky (2009), :mod:`landscape.datasets.cifar10_files`. Read from a
  ``cifar-10-batches-py`` directory or the official ``cifar-10-python.tar.gz`` (MD5-checked);
  downloaded only when ``download=True``. The batch files are Python pickles; they are decoded
  by :class:`~landscape.datasets.safe_pickle.PickleReader`, a reader of the few pickle opcodes
  those files use that never imports a module or calls a function from the file (the project
  reads no pickle with :mod:`pickle`). Images are NCHW float32, normalized with the per-channel
  mean and std of the training set.
* ``mnist1d`` — Greydanus (2020), "Scaling down deep learning",
  :mod:`landscape.datasets.mnist1d_data`. Generated offline with the ``mnist1d`` package (its
  download path is never used), 40 features, standardized.
* ``synthetic`` — :mod:`landscape.datasets.synthetic_task`: Gaussian inputs of any shape
  labelled by a fixed random linear teacher (classification: argmax of W x; regression:
  W x / sqrt(D) + noise), learnable by construction; or (``task="mixture"``) a well-separated
  Gaussian mixture, one component per class.

Modules: :mod:`~landscape.datasets.base` (:class:`Dataset`, argument checks),
:mod:`~landscape.datasets.loading` (the registry, :func:`load_dataset`,
:func:`load_dataset_from_spec`), one module per data set, :mod:`~landscape.datasets.safe_pickle`.
"""

from landscape.datasets.base import Dataset
from landscape.datasets.cifar10_files import (CIFAR10_DIR, CIFAR10_MEAN, CIFAR10_STD, CIFAR10_TAR, CIFAR10_TAR_MD5,
                                              CIFAR10_TEST_BATCH, CIFAR10_TRAIN_BATCHES, CIFAR10_URL,
                                              DEFAULT_DATA_DIR, cifar10)
from landscape.datasets.cifar10_files import parse_batch as _parse_batch  # noqa: F401 (the name before the split)
from landscape.datasets.loading import DATASETS, dataset_names, load_dataset, load_dataset_from_spec
from landscape.datasets.mnist1d_data import MNIST1D_FIXED, mnist1d
from landscape.datasets.mnist1d_data import mnist1d_arrays as _mnist1d_arrays  # noqa: F401 (the name before the split)
from landscape.datasets.safe_pickle import PickleReader
from landscape.datasets.synthetic_task import synthetic

_PickleReader = PickleReader  # the name before the split into a package

__all__ = ["Dataset", "DATASETS", "dataset_names", "load_dataset", "load_dataset_from_spec", "cifar10", "mnist1d", "synthetic",
           "PickleReader", "CIFAR10_URL", "CIFAR10_TAR", "CIFAR10_TAR_MD5", "CIFAR10_DIR", "CIFAR10_MEAN",
           "CIFAR10_STD", "CIFAR10_TRAIN_BATCHES", "CIFAR10_TEST_BATCH", "DEFAULT_DATA_DIR", "MNIST1D_FIXED"]
