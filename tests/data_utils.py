"""Write tiny data sets in the official CIFAR-10 python format, for tests.

The official batch files are Python 2 ``cPickle`` protocol-2 streams. :func:`py2_dumps` writes
that dialect opcode by opcode (byte strings as SHORT_BINSTRING/BINSTRING, memo numbered from 1,
APPENDS/SETITEMS in batches of 1000, NumPy arrays as ``numpy.core.multiarray._reconstruct`` +
BUILD). It reproduces the official ``batches.meta`` byte for byte (:data:`OFFICIAL_META`), and the
standard library reads what it writes (both checked in ``tests/test_datasets.py``).
``dialect="py3"`` uses the standard library's ``pickle.dumps`` instead (tests may import pickle;
the package may not).

Usage::

    batches = make_cifar_batches(n_per_batch=4, seed=0)
    directory = write_cifar_dir(tmp_path, batches)            # tmp_path/cifar-10-batches-py/
    tarball, md5 = write_cifar_tarball(tmp_path, batches)     # tmp_path/cifar-10-python.tar.gz
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

BATCH_NAMES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]

# The official batches.meta of cifar-10-python.tar.gz (158 bytes, MD5 5ff9c542aee3614f3951f8cda6e48888).
OFFICIAL_META = bytes.fromhex(
    "80027d71012855136e756d5f63617365735f7065725f626174636871024d1027550b6c6162656c5f6e616d6573"
    "71035d7104285508616972706c616e657105550a6175746f6d6f62696c657106550462697264710755036361"
    "74710855046465657271095503646f67710a550466726f67710b5505686f727365710c550473686970710d55"
    "05747275636b710e6555076e756d5f766973710f4d000c752e")
OFFICIAL_META_MD5 = "5ff9c542aee3614f3951f8cda6e48888"
OFFICIAL_META_DICT = {b"num_cases_per_batch": 10000, b"label_names": LABEL_NAMES, b"num_vis": 3072}


class _Py2Pickler:
    """The opcodes Python 2's cPickle emits at protocol 2 for dicts, lists, str, int and arrays."""

    def __init__(self):
        self.out, self.memo = io.BytesIO(), 0

    def put(self) -> None:
        self.memo += 1
        self.out.write(b"q" + bytes([self.memo]) if self.memo < 256 else b"r" + struct.pack("<I", self.memo))

    def dump(self, obj) -> bytes:
        self.out.write(b"\x80\x02")
        self.save(obj)
        self.out.write(b".")
        return self.out.getvalue()

    def save(self, obj) -> None:
        if isinstance(obj, np.ndarray):
            return self.save_array(obj)
        if isinstance(obj, dict):
            return self.save_items(b"}", b"u", [x for kv in obj.items() for x in kv], 2)
        if isinstance(obj, list):
            return self.save_items(b"]", b"e", obj, 1)
        if isinstance(obj, bytes):
            return self.save_str(obj)
        if isinstance(obj, int):
            return self.save_int(obj)
        if obj is None:
            return self.out.write(b"N")
        raise TypeError(type(obj))

    def save_items(self, empty: bytes, op: bytes, items: list, stride: int) -> None:
        self.out.write(empty)
        self.put()
        per_batch = 1000 * stride
        for start in range(0, len(items), per_batch):
            self.out.write(b"(")
            for x in items[start:start + per_batch]:
                self.save(x)
            self.out.write(op)

    def save_str(self, s: bytes) -> None:
        head = b"U" + bytes([len(s)]) if len(s) < 256 else b"T" + struct.pack("<I", len(s))
        self.out.write(head + s)
        self.put()

    def save_int(self, i: int) -> None:
        if 0 <= i < 256:
            self.out.write(b"K" + bytes([i]))
        elif 0 <= i < 65536:
            self.out.write(b"M" + struct.pack("<H", i))
        else:
            self.out.write(b"J" + struct.pack("<i", i))

    def save_global(self, module: str, name: str) -> None:
        self.out.write(f"c{module}\n{name}\n".encode())
        self.put()

    def save_array(self, a: np.ndarray) -> None:
        assert a.dtype == np.uint8 and a.flags.c_contiguous
        self.save_global("numpy.core.multiarray", "_reconstruct")
        self.save_global("numpy", "ndarray")
        self.out.write(b"K\x00\x85"), self.put()  # (0,)
        self.save_str(b"b")
        self.out.write(b"\x87"), self.put(), self.out.write(b"R"), self.put()
        self.out.write(b"(K\x01")  # state: (1, shape, dtype, False, raw)
        for s in a.shape:
            self.save_int(s)
        self.out.write(b"\x86" if a.ndim == 2 else b"\x85"), self.put()
        self.save_global("numpy", "dtype")
        self.save_str(b"u1")
        self.out.write(b"K\x00K\x01\x87"), self.put(), self.out.write(b"R"), self.put()
        self.out.write(b"(K\x03"), self.save_str(b"|")
        self.out.write(b"NNN" + b"J\xff\xff\xff\xff" * 2 + b"K\x00t"), self.put(), self.out.write(b"b")
        self.out.write(b"\x89"), self.save_str(a.tobytes())
        self.out.write(b"t"), self.put(), self.out.write(b"b")


def py2_dumps(obj) -> bytes:
    """``obj`` pickled the way Python 2's ``cPickle.dump(obj, f, 2)`` wrote the CIFAR-10 files."""
    return _Py2Pickler().dump(obj)


def make_cifar_batches(n_per_batch: int = 4, n_test: int | None = None, seed: int = 0) -> dict[str, dict]:
    """Random batches ``{name: {b"data": (n, 3072) uint8, b"labels": [...], ...}}`` for the six files."""
    rng = np.random.default_rng(seed)
    out = {}
    for i, name in enumerate(BATCH_NAMES):
        n = n_test if (name == "test_batch" and n_test is not None) else n_per_batch
        out[name] = {
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
            b"batch_label": f"batch {i + 1}".encode(),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        }
    return out


def dumps(batch: dict, dialect: str = "py2") -> bytes:
    """One batch in the official dialect (``"py2"``) or with ``pickle.dumps`` (``"py3"``, ``"py3-4"``)."""
    if dialect == "py2":
        return py2_dumps(batch)
    return pickle.dumps(batch, protocol=4 if dialect == "py3-4" else 2)


def write_cifar_dir(root: Path, batches: dict[str, dict], dialect: str = "py2") -> Path:
    """Write ``root/cifar-10-batches-py/`` with the six batches and the official batches.meta."""
    directory = Path(root) / "cifar-10-batches-py"
    directory.mkdir(parents=True, exist_ok=True)
    for name, batch in batches.items():
        (directory / name).write_bytes(dumps(batch, dialect))
    (directory / "batches.meta").write_bytes(OFFICIAL_META)
    return directory


def write_cifar_tarball(root: Path, batches: dict[str, dict], dialect: str = "py2") -> tuple[Path, str]:
    """Write ``root/cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/…``; return (path, MD5)."""
    path = Path(root) / "cifar-10-python.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        files = {name: dumps(b, dialect) for name, b in batches.items()} | {"batches.meta": OFFICIAL_META}
        for name, raw in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path, hashlib.md5(path.read_bytes()).hexdigest()
