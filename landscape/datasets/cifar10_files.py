"""``cifar10``: Krizhevsky (2009), read from local files (MD5-checked), downloaded only when asked.

Read from a ``cifar-10-batches-py`` directory or the official ``cifar-10-python.tar.gz``.
The batch files are Python pickles; they are decoded by
:class:`landscape.datasets.safe_pickle.PickleReader`, which never imports a module or calls a
function from the file. Images are NCHW float32, normalized with the per-channel mean and std
of the training set.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from landscape.datasets.base import check_positive
from landscape.datasets.safe_pickle import PickleReader
from landscape.errors import CheckpointCorruptError, FileFormatError, UnsafeFileError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_TAR = "cifar-10-python.tar.gz"
CIFAR10_TAR_MD5 = "c58f30108f718f92721af3b95e74349a"  # official, from the CIFAR page
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
# Per-channel mean and std of the 50,000 training images, pixels scaled to [0, 1].
CIFAR10_MEAN = (0.49139968, 0.48215841, 0.44653091)
CIFAR10_STD = (0.24703223, 0.24348513, 0.26158784)
DEFAULT_DATA_DIR = os.environ.get("LANDSCAPE_DATA", "data")


def cifar10(data_dir: str | Path = DEFAULT_DATA_DIR, download: bool = False, num_train: int | None = None,
            num_test: int | None = None, normalize: bool = True, tar_md5: str = CIFAR10_TAR_MD5):
    """CIFAR-10 from ``data_dir``: a ``cifar-10-batches-py`` directory or ``cifar-10-python.tar.gz``.

    Looked for, in order: ``data_dir`` itself if it is a file (a tarball) or holds the batch
    files, ``data_dir/cifar-10-batches-py/``, ``data_dir/cifar-10-python.tar.gz``. A tarball must
    have MD5 ``tar_md5`` (the official one by default); directory batches are checked by parsing
    them and checking their shapes and labels. ``download=True`` fetches the tarball from
    :data:`CIFAR10_URL` into ``data_dir`` when nothing is found (and checks its MD5).

    Args:
        data_dir: where to look (default: ``$LANDSCAPE_DATA`` or ``./data``).
        download: download the official tarball if no local copy is found.
        num_train, num_test: keep only the first examples of each split (None: all 50,000/10,000).
        normalize: subtract :data:`CIFAR10_MEAN` and divide by :data:`CIFAR10_STD` per channel;
            otherwise pixels are scaled to [0, 1].
        tar_md5: expected MD5 of the tarball.

    Returns:
        x (N, 3, 32, 32) float32 and y (N,) int64 for train and test, and 10 classes.

    Raises:
        FileFormatError: nothing found (the message lists the paths tried and how to get the
            data), a file that does not parse, or a failed download.
        CheckpointCorruptError: the tarball's MD5 differs from ``tar_md5``.
        UnsafeFileError: a batch file asks to import or call anything but NumPy array rebuilding.
    """
    for k, v in {"num_train": num_train, "num_test": num_test}.items():
        if v is not None:
            check_positive(cifar10={k: v})
    files = _cifar_files(Path(data_dir).expanduser(), download, tar_md5)
    train = [parse_batch(files[b], b) for b in CIFAR10_TRAIN_BATCHES]
    x_train = np.concatenate([d for d, _ in train])[:num_train]
    y_train = np.concatenate([y for _, y in train])[:num_train]
    x_test, y_test = parse_batch(files[CIFAR10_TEST_BATCH], CIFAR10_TEST_BATCH)
    return _images(x_train, normalize), y_train, _images(x_test[:num_test], normalize), y_test[:num_test], 10


def _images(data: np.ndarray, normalize: bool) -> Tensor:
    """uint8 rows (N, 3072) → float32 (N, 3, 32, 32): (pixel − 255·mean) / (255·std), or pixel / 255."""
    x = torch.from_numpy(np.require(data, requirements=("C", "W"))).view(-1, 3, 32, 32).float()  # in place after
    if not normalize:
        return x.div_(255.0)
    mean, std = (255.0 * torch.tensor(v).view(1, 3, 1, 1) for v in (CIFAR10_MEAN, CIFAR10_STD))
    return x.sub_(mean).div_(std)


def _cifar_files(root: Path, download: bool, tar_md5: str) -> dict[str, bytes]:
    """Raw bytes of the six batch files, from a directory or a checked tarball."""
    if root.is_file():
        return _read_tarball(root, tar_md5)
    for directory in (root, root / CIFAR10_DIR):
        if (directory / CIFAR10_TRAIN_BATCHES[0]).is_file():
            return _read_directory(directory)
    tarball = root / CIFAR10_TAR
    if not tarball.is_file():
        if not download:
            raise FileFormatError(
                f"CIFAR-10 not found; looked for {root / CIFAR10_TRAIN_BATCHES[0]}, "
                f"{root / CIFAR10_DIR / CIFAR10_TRAIN_BATCHES[0]} and {tarball}. Download {CIFAR10_URL} "
                f"into {root} (or pass download=True / --download), or point data_dir at your copy")
        _download(CIFAR10_URL, tarball, tar_md5)
    return _read_tarball(tarball, tar_md5)


def _read_directory(directory: Path) -> dict[str, bytes]:
    names = (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)
    missing = [str(directory / n) for n in names if not (directory / n).is_file()]
    if missing:
        raise FileFormatError(f"CIFAR-10 directory {directory} is incomplete: missing {missing}; "
                              f"re-extract {CIFAR10_TAR} there")
    return {n: (directory / n).read_bytes() for n in names}


def _md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _read_tarball(path: Path, tar_md5: str) -> dict[str, bytes]:
    """Batch files read from the tarball in memory (nothing is extracted to disk)."""
    actual = _md5(path)
    if actual != tar_md5:
        raise CheckpointCorruptError(f"{path} has MD5 {actual}, expected {tar_md5}: the file is corrupt or not "
                                     f"the official archive; delete it and download {CIFAR10_URL} again")
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for name in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH):
                member = tar.getmember(f"{CIFAR10_DIR}/{name}")
                if not member.isfile():
                    raise KeyError(name)
                out[name] = tar.extractfile(member).read()
    except (KeyError, tarfile.TarError, OSError, EOFError) as e:
        raise FileFormatError(f"{path} is not a CIFAR-10 python archive ({type(e).__name__}: {e}); "
                              f"it must hold {CIFAR10_DIR}/data_batch_1..5 and test_batch") from None
    return out


def _download(url: str, dest: Path, md5: str) -> None:
    """Fetch ``url`` to ``dest`` (via ``dest.part``) and check its MD5."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as f:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                f.write(chunk)
    except (urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        raise FileFormatError(f"could not download {url} ({e}); download it by hand into {dest} "
                              "(or point data_dir at an existing copy)") from None
    if _md5(part) != md5:
        part.unlink()
        raise CheckpointCorruptError(f"downloaded {url} failed its MD5 check ({md5}); try again")
    part.replace(dest)


def parse_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(data (n, 3072) uint8, labels (n,) int64) of one batch file, validated."""
    try:
        batch = PickleReader(raw).load()
        batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data, labels = batch["data"], np.asarray(batch["labels"], dtype=np.int64)
    except UnsafeFileError:
        raise
    except (KeyError, AttributeError, TypeError, ValueError, IndexError, struct.error) as e:
        raise FileFormatError(f"CIFAR-10 batch {name} does not parse ({type(e).__name__}: {e})") from None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        raise FileFormatError(f"CIFAR-10 batch {name}: 'data' must be a uint8 array (n, 3072), "
                              f"got {getattr(data, 'dtype', type(data))} {getattr(data, 'shape', '')}")
    if labels.shape != (len(data),) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise FileFormatError(f"CIFAR-10 batch {name}: 'labels' must be {len(data)} integers in 0..9, "
                              f"got shape {labels.shape}")
    return data, labels

