"""Data sets as tensors on a device: CIFAR-10, MNIST-1D and a synthetic teacher task.

``load_dataset(name, device=..., **kwargs)`` returns a frozen :class:`Dataset` holding
``x_train, y_train, x_test, y_test`` on the device, a JSON-able ``spec`` that
:func:`load_dataset_from_spec` turns back into the same tensors (bitwise), and a ``checksum``
(SHA-256) that run files store to verify data identity.

* ``cifar10`` — Krizhevsky (2009). Read from a ``cifar-10-batches-py`` directory or the official
  ``cifar-10-python.tar.gz`` (MD5-checked); downloaded only when ``download=True``. The batch files
  are Python pickles; they are decoded by :class:`_PickleReader`, a reader of the few pickle
  opcodes those files use that never imports a module or calls a function from the file (the
  project reads no pickle with :mod:`pickle`). Images are NCHW float32, normalized with the
  per-channel mean and std of the training set.
* ``mnist1d`` — Greydanus (2020), "Scaling down deep learning". Generated offline with the
  ``mnist1d`` package (its download path is never used), 40 features, standardized.
* ``synthetic`` — Gaussian inputs of any shape labelled by a fixed random linear teacher
  (classification: argmax of W x; regression: W x / sqrt(D) + noise), learnable by construction.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import os
import random
import re
import struct
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from landscape.errors import (CheckpointCorruptError, ConfigMismatchError, FileFormatError, InputError,
                              UnsafeFileError)

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


# ----------------------------------------------------------------------------- the Dataset


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


def _json_value(v):
    if isinstance(v, (tuple, list)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return str(v) if isinstance(v, Path) else v


def _resolved_kwargs(fn, name: str, kwargs: dict) -> dict:
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
    return _json_value(out)


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
    resolved = _resolved_kwargs(loader, name, kwargs)
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


# ----------------------------------------------------------------------------- synthetic


def _generator(seed: int, stream: int) -> torch.Generator:
    """An independent CPU generator per (seed, stream), so sizes of one split never move another."""
    state = np.random.SeedSequence([int(seed), stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def synthetic(num_train: int = 1000, num_test: int = 200, input_shape=(3, 32, 32), num_classes: int = 10,
              seed: int = 0, task: str = "classification", out_dim: int = 1, noise: float = 0.0):
    """Gaussian inputs x ~ N(0, I_D) labelled by a random linear teacher W (rows ~ N(0, I_D)).

    Classification: y = argmax(W x) with W of shape (num_classes, D). Regression
    (``task="regression"``): y = W x / sqrt(D) + noise · ε, W of shape (out_dim, D), ε ~ N(0, 1).
    Teacher, train inputs, test inputs and noise come from separate seeded streams.
    """
    input_shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    _check_seed("synthetic", seed)
    _check_positive(synthetic=dict(num_train=num_train, num_test=num_test, num_classes=num_classes,
                                   out_dim=out_dim, **{f"input_shape[{i}]": s for i, s in enumerate(input_shape)}))
    if task not in ("classification", "regression"):
        raise InputError(f"synthetic task must be 'classification' or 'regression', got {task!r}")
    D, K = math.prod(input_shape), num_classes if task == "classification" else out_dim
    W = torch.randn(K, D, generator=_generator(seed, 0))
    xs = [torch.randn(n, D, generator=_generator(seed, s)) for n, s in ((num_train, 1), (num_test, 2))]
    if task == "classification":
        ys = [(x @ W.T).argmax(1) for x in xs]
    else:
        ys = [x @ W.T / math.sqrt(D) + noise * torch.randn(len(x), K, generator=_generator(seed, s))
              for x, s in zip(xs, (3, 4))]
    xs = [x.reshape(len(x), *input_shape) for x in xs]
    return xs[0], ys[0], xs[1], ys[1], num_classes if task == "classification" else 0


def _check_positive(**groups) -> None:
    for loader, values in groups.items():
        for k, v in values.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{loader} {k} must be a positive integer, got {v!r}")


def _check_seed(loader: str, seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InputError(f"{loader} seed must be an integer in [0, 2**32), got {seed!r}")


# ----------------------------------------------------------------------------- MNIST-1D

MNIST1D_FIXED = ("num_samples", "train_split", "seed", "url")  # set by the loader, not by overrides


@functools.lru_cache(maxsize=8)
def _mnist1d_arrays(seed: int, num_samples: int, overrides: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Generate (x, y) once per process and arguments; the global random/NumPy states are restored."""
    from mnist1d.data import get_dataset_args, make_dataset  # heavy import (matplotlib), done lazily

    args = get_dataset_args()
    for k, v in dict(overrides, seed=seed, num_samples=num_samples, train_split=1.0).items():
        setattr(args, k, list(v) if isinstance(v, tuple) else v)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def mnist1d(seed: int = 42, num_train: int = 4000, num_test: int = 1000, **generator_args):
    """MNIST-1D generated by ``mnist1d.data.make_dataset`` (never downloaded).

    The package generates ``num_train + num_test`` examples (10 classes, equal counts) from its
    arguments with ``seed``; the first ``num_train`` are the training set. The defaults reproduce
    the package's defaults (seed 42, 4000 + 1000, 40 features). Inputs are then standardized with
    the scalar mean and std of the training inputs; shape (N, 40) float32, labels int64.

    Args:
        seed: generator seed (the package seeds ``random`` and NumPy; their states are restored).
        num_train, num_test: split sizes; their sum must be a multiple of 10.
        **generator_args: overrides of ``mnist1d.data.get_dataset_args()`` (e.g. ``iid_noise_scale``,
            ``shuffle_seq``, ``final_seq_length``).
    """
    _check_positive(mnist1d=dict(num_train=num_train, num_test=num_test))
    _check_seed("mnist1d", seed)
    from mnist1d.data import get_dataset_args

    known = sorted(set(get_dataset_args(as_dict=True)) - set(MNIST1D_FIXED))
    bad = sorted(set(generator_args) - set(known))
    if bad:
        raise InputError(f"mnist1d got unknown generator argument(s) {bad}; it accepts {known}")
    if (num_train + num_test) % 10:
        raise InputError(f"mnist1d makes equal counts of 10 classes: num_train + num_test "
                         f"({num_train + num_test}) must be a multiple of 10")
    frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in generator_args.items()))
    x, y = _mnist1d_arrays(seed, num_train + num_test, frozen)
    mean, std = x[:num_train].mean(), x[:num_train].std()
    x = (x - mean) / std
    return x[:num_train], y[:num_train].copy(), x[num_train:], y[num_train:].copy(), 10


# ----------------------------------------------------------------------------- CIFAR-10


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
            _check_positive(cifar10={k: v})
    files = _cifar_files(Path(data_dir).expanduser(), download, tar_md5)
    train = [_parse_batch(files[b], b) for b in CIFAR10_TRAIN_BATCHES]
    x_train = np.concatenate([d for d, _ in train])[:num_train]
    y_train = np.concatenate([y for _, y in train])[:num_train]
    x_test, y_test = _parse_batch(files[CIFAR10_TEST_BATCH], CIFAR10_TEST_BATCH)
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
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def _parse_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(data (n, 3072) uint8, labels (n,) int64) of one batch file, validated."""
    try:
        batch = _PickleReader(raw).load()
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


# ----------------------------------------------------------------------------- pickle opcodes


class _Stub:
    """A NumPy dtype or array announced by REDUCE and filled in by BUILD (``value``)."""

    def __init__(self, kind: str, arg=None):
        self.kind, self.arg, self.value = kind, arg, None


def _resolve(x):
    if isinstance(x, _Stub):
        if x.value is None:
            raise ValueError(f"numpy {x.kind} was never given its state")
        return x.value
    if isinstance(x, dict):
        return {_resolve(k): _resolve(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_resolve(v) for v in x)
    return x


_ALLOWED_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
_DTYPE = re.compile(r"[biuf][1248]")


class _PickleReader:
    """Decode the pickle subset of the CIFAR batch files without :mod:`pickle`.

    The official batches are Python 2 ``cPickle`` protocol-2 streams of a dict whose values are
    byte strings, lists of ints and bytes, and one NumPy array (``numpy.core.multiarray._reconstruct``
    then ``BUILD`` with (version, shape, dtype, fortran, raw bytes)). Python 3 writes the same
    structure with ``_codecs.encode`` for bytes and, at protocol 4, frames and ``STACK_GLOBAL``.
    This reader runs those opcodes on a stack. A global is accepted only if it is one of
    :data:`_ALLOWED_GLOBALS`, and it is never imported or called: array and dtype are rebuilt with
    ``np.frombuffer`` from a plain numeric dtype code. Any other opcode or global raises.
    Strings of the Python 2 dialect stay ``bytes`` (like ``pickle.load(f, encoding="bytes")``).
    """

    def __init__(self, raw: bytes):
        self.raw, self.pos = memoryview(raw), 0
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}

    def load(self):
        while True:
            op = self._take(1)
            if op == b".":
                return _resolve(self.stack.pop())
            handler = self._OPS.get(op)
            if handler is None:
                raise ValueError(f"unsupported pickle opcode {op!r} at byte {self.pos - 1}")
            handler(self)

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.raw):
            raise ValueError("truncated pickle stream")
        self.pos += n
        return self.raw[self.pos - n:self.pos].tobytes()

    def _line(self) -> str:
        end = bytes(self.raw[self.pos:self.pos + 256]).find(b"\n")
        if end < 0:
            raise ValueError("unterminated GLOBAL")
        return self._take(end + 1)[:-1].decode("ascii")

    def _pop_mark(self) -> list:
        start = self.marks.pop()
        items, self.stack[start:] = self.stack[start:], []
        return items

    def _global(self, module: str, name: str) -> None:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafeFileError(f"pickle refers to {module}.{name}; a CIFAR batch may only rebuild NumPy "
                                  "arrays, so this file is not read (it is not an official batch)")
        self.stack.append(("global", module, name))

    def _reduce(self) -> None:
        args, fn = self.stack.pop(), self.stack.pop()
        if not (isinstance(fn, tuple) and fn[:1] == ("global",)):
            raise ValueError("REDUCE on something that is not an allowed global")
        name = fn[2]
        if name == "encode":  # Python 3 writes bytes b as _codecs.encode(str, "latin1")
            text, encoding = args
            if encoding not in ("latin1", "latin-1"):
                raise ValueError(f"_codecs.encode with encoding {encoding!r}")
            self.stack.append(text.encode("latin1"))
        elif name == "dtype":
            self.stack.append(_Stub("dtype", _text(args[0])))
        elif name == "_reconstruct":
            self.stack.append(_Stub("array"))
        else:
            raise ValueError(f"REDUCE of {name} is not supported")

    def _build(self) -> None:
        state, obj = self.stack.pop(), self.stack[-1]
        if not isinstance(obj, _Stub) or obj.value is not None:
            raise ValueError("BUILD on something that is not a NumPy dtype or array")
        obj.value = _make_dtype(obj.arg, state) if obj.kind == "dtype" else _make_array(state)

    def _push(self, item) -> None:
        self.stack.append(item)

    def _pop(self, n: int) -> list:
        if len(self.stack) < n:
            raise ValueError("pickle stack underflow")
        items, self.stack[len(self.stack) - n:] = self.stack[len(self.stack) - n:], []
        return items

    def _extend(self, items: list) -> None:
        self.stack[-1].extend(items)

    def _setitems(self, items: list) -> None:
        self.stack[-1].update(zip(items[::2], items[1::2]))

    def _stack_global(self) -> None:
        name, module = self.stack.pop(), self.stack.pop()
        self._global(module, name)

    def _int(self, n: int, signed: bool = False) -> int:
        return int.from_bytes(self._take(n), "little", signed=signed)

    # opcode → action; names as in the standard library's pickletools.
    _OPS = {
        b"\x80": lambda r: r._take(1),  # PROTO
        b"\x95": lambda r: r._take(8),  # FRAME
        b"(": lambda r: r.marks.append(len(r.stack)),  # MARK
        b"}": lambda r: r._push({}),  # EMPTY_DICT
        b"]": lambda r: r._push([]),  # EMPTY_LIST
        b")": lambda r: r._push(()),  # EMPTY_TUPLE
        b"N": lambda r: r._push(None),  # NONE
        b"\x88": lambda r: r._push(True),  # NEWTRUE
        b"\x89": lambda r: r._push(False),  # NEWFALSE
        b"K": lambda r: r._push(r._int(1)),  # BININT1
        b"M": lambda r: r._push(r._int(2)),  # BININT2
        b"J": lambda r: r._push(r._int(4, signed=True)),  # BININT
        b"\x8a": lambda r: r._push(r._int(r._int(1), signed=True)),  # LONG1
        b"G": lambda r: r._push(struct.unpack(">d", r._take(8))[0]),  # BINFLOAT
        b"U": lambda r: r._push(r._take(r._int(1))),  # SHORT_BINSTRING (Python 2 str)
        b"T": lambda r: r._push(r._take(r._int(4))),  # BINSTRING (Python 2 str)
        b"C": lambda r: r._push(r._take(r._int(1))),  # SHORT_BINBYTES
        b"B": lambda r: r._push(r._take(r._int(4))),  # BINBYTES
        b"\x8e": lambda r: r._push(r._take(r._int(8))),  # BINBYTES8
        b"\x8c": lambda r: r._push(r._take(r._int(1)).decode()),  # SHORT_BINUNICODE
        b"X": lambda r: r._push(r._take(r._int(4)).decode()),  # BINUNICODE
        b"\x8d": lambda r: r._push(r._take(r._int(8)).decode()),  # BINUNICODE8
        b"t": lambda r: r._push(tuple(r._pop_mark())),  # TUPLE
        b"\x85": lambda r: r._push(tuple(r._pop(1))),  # TUPLE1
        b"\x86": lambda r: r._push(tuple(r._pop(2))),  # TUPLE2
        b"\x87": lambda r: r._push(tuple(r._pop(3))),  # TUPLE3
        b"a": lambda r: r._extend(r._pop(1)),  # APPEND
        b"e": lambda r: r._extend(r._pop_mark()),  # APPENDS
        b"s": lambda r: r._setitems(r._pop(2)),  # SETITEM
        b"u": lambda r: r._setitems(r._pop_mark()),  # SETITEMS
        b"q": lambda r: r.memo.__setitem__(r._int(1), r.stack[-1]),  # BINPUT
        b"r": lambda r: r.memo.__setitem__(r._int(4), r.stack[-1]),  # LONG_BINPUT
        b"\x94": lambda r: r.memo.__setitem__(len(r.memo), r.stack[-1]),  # MEMOIZE
        b"h": lambda r: r._push(r.memo[r._int(1)]),  # BINGET
        b"j": lambda r: r._push(r.memo[r._int(4)]),  # LONG_BINGET
        b"c": lambda r: r._global(r._line(), r._line()),  # GLOBAL
        b"\x93": _stack_global,  # STACK_GLOBAL
        b"R": _reduce,  # REDUCE
        b"b": _build,  # BUILD
    }


def _text(s) -> str:
    return s.decode("latin1") if isinstance(s, bytes) else str(s)


def _make_dtype(code: str, state) -> np.dtype:
    order = _text(state[1]) if isinstance(state, tuple) and len(state) > 1 else "|"
    if not _DTYPE.fullmatch(code) or order not in ("|", "<", ">", "="):
        raise ValueError(f"only plain numeric dtypes are read, got {code!r} (byte order {order!r})")
    return np.dtype(code).newbyteorder(order) if order in "<>" else np.dtype(code)


def _make_array(state) -> np.ndarray:
    _, shape, dtype, fortran, raw = state
    dtype = _resolve(dtype)
    if not isinstance(dtype, np.dtype) or not isinstance(raw, bytes):
        raise ValueError("array state must hold a dtype and raw bytes")
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise ValueError(f"array of shape {shape} and dtype {dtype} needs {math.prod(shape) * dtype.itemsize} "
                         f"bytes, the file holds {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")


DATASETS = {"cifar10": cifar10, "mnist1d": mnist1d, "synthetic": synthetic}
