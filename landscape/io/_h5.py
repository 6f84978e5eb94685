"""Low-level HDF5 helpers: safe opening, error wrapping, JSON attributes, checksums, durability.

Every h5py call of the package goes through these helpers, so that

* a damaged, truncated or foreign file raises :class:`FileFormatError` (and a failed
  checksum :class:`CheckpointCorruptError`) naming the file, the object and the fix,
  never a bare ``OSError``/``RuntimeError``/``KeyError`` from h5py;
* a file that would make HDF5 read other files (external links, soft links, external
  storage, virtual datasets) or run plugin code (non-built-in filters) is refused with
  :class:`UnsafeFileError` before anything is dereferenced;
* readers open with ``locking=False`` so that they work while the trainer holds the
  file open for writing (HDF5 file locks are exclusive for writers).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
from pathlib import Path

import h5py
import numpy as np

from landscape.errors import (CheckpointCorruptError, FileFormatError, InputError,
                              LandscapeError, UnsafeFileError)
from landscape.io import schema
from landscape.io._frontier import is_checksum_failure

BUILTIN_FILTERS = frozenset({1, 2, 3, 4, 5, 6})  # deflate, shuffle, fletcher32, szip, nbit, scaleoffset
LOCK_WAIT_S = 10.0  # how long a writer waits for another process to release the file lock
# A reader can catch a live file mid-flush (plain HDF5 has no reader/writer coherence):
# such reads are retried, reopening the file, READ_TRIES times with growing pauses of
# RETRY_SLEEP_S — but only for files modified within LIVE_WINDOW_S (a writer may be active).
READ_TRIES = 4
RETRY_SLEEP_S = 0.02
LIVE_WINDOW_S = 30.0
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)
_DAMAGED = "the file is truncated or damaged; restore it from a copy or recreate it"


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:300]


@contextlib.contextmanager
def h5_errors(path, obj: str = "", *, corrupt: bool = False, writing: bool = False):
    """Turn h5py exceptions raised inside the block into FileFormatError/CheckpointCorruptError.

    The original exception stays the ``__cause__`` (its errno, e.g. ENOSPC, included).
    """
    try:
        yield
    except LandscapeError:
        raise
    except _H5_ERRORS as e:
        raise _wrapped(e, path, obj, corrupt, writing) from e


def _wrapped(e: BaseException, path, obj: str, corrupt: bool, writing: bool) -> FileFormatError:
    where = f"{path} (object {obj!r})" if obj else str(path)
    if "No space left on device" in str(e) or getattr(e, "errno", None) == errno.ENOSPC:
        return FileFormatError(f"no space left on the device holding {where}; free some space "
                               "(committed rows are intact) and resume")
    if writing:
        return FileFormatError(f"cannot write {where}: {_first_line(e)}; check that the disk has "
                               "space and the file and its directory are writable")
    if is_checksum_failure(e):
        return CheckpointCorruptError(f"checksum (fletcher32) failed reading {where}: stored data "
                                      f"were altered on disk; {_DAMAGED}")
    cls = CheckpointCorruptError if corrupt else FileFormatError
    return cls(f"cannot read {where}: {_first_line(e)}; {_DAMAGED}")


# --- checksums and JSON ---------------------------------------------------------------------
def sha256_array(a: np.ndarray) -> str:
    """Hex SHA-256 of the array's bytes in C order, little-endian (dtype and shape not hashed).

    ``sha256_array(theta)`` equals ``hashlib.sha256(theta.tobytes()).hexdigest()`` for a
    contiguous little-endian array, e.g. ``theta.cpu().numpy()`` of a float32 tensor.
    """
    a = np.asarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def verify_sha256(a: np.ndarray, expected: str, path, obj: str) -> np.ndarray:
    """Return ``a`` if its SHA-256 is ``expected``; CheckpointCorruptError otherwise."""
    got = sha256_array(a)
    if got != expected:
        raise CheckpointCorruptError(
            f"sha256 mismatch in {path} (object {obj!r}): stored {expected[:16]}…, data hash to "
            f"{got[:16]}…; {_DAMAGED}")
    return a


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (Path, os.PathLike)):
        return os.fspath(x)
    raise InputError(f"{type(x).__name__} value {x!r} is not JSON-able; pass numbers, strings, "
                     "lists and dicts (convert tensors with .tolist())")


def json_dumps(value) -> str:
    """Canonical JSON (sorted keys, compact) that also takes numpy scalars and arrays."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def write_json_attr(obj, name: str, value) -> None:
    """Store ``value`` as a JSON string attribute (refusing ones beyond the header limit)."""
    text = json_dumps(value)
    if len(text.encode()) > schema.MAX_ATTR_BYTES:
        raise InputError(f"attribute {name!r} is {len(text.encode())} bytes of JSON, more than the "
                         f"{schema.MAX_ATTR_BYTES} an HDF5 attribute holds; store big data as arrays")
    obj.attrs[name] = text


def read_json_attr(obj, name: str, path, default=None):
    """Decode a JSON string attribute; ``default`` when absent; FileFormatError when malformed."""
    with h5_errors(path, f"{obj.name}@{name}"):
        if name not in obj.attrs:
            return default
        raw = obj.attrs[name]
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError as e:
        raise FileFormatError(f"attribute {name!r} of {obj.name} in {path} is not valid JSON "
                              f"({e}); {_DAMAGED}") from e


# --- opening ---------------------------------------------------------------------------
def _check_exists(path: str) -> None:
    if not os.path.exists(path):
        raise FileFormatError(f"no such file: {path}; check the path")
    if os.path.isdir(path):
        raise FileFormatError(f"{path} is a directory, not an HDF5 file; give the file inside it")
    if os.path.getsize(path) == 0:
        raise FileFormatError(f"{path} is empty (0 bytes), not an HDF5 file; delete it and "
                              "recreate it")


def _open_unlocked(path: str) -> h5py.File:
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as e:
        if "locking flag values don't match" not in str(e):  # same process has it open locked
            raise
        return h5py.File(path, "r")


def open_read(path) -> h5py.File:
    """Open an existing file read-only (without taking a lock) and check it is safe."""
    path = os.fspath(path)
    _check_exists(path)
    with h5_errors(path):
        f = _open_unlocked(path)
    try:
        check_safe(f, path)
    except BaseException:
        f.close()
        raise
    return f


def open_write(path, mode: str) -> h5py.File:
    """Open for writing (``"r+"`` existing or ``"x"`` new) with the HDF5 file lock.

    Waits up to ``LOCK_WAIT_S`` seconds while another process holds the lock.
    """
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            with h5_errors(path, writing=True):
                return h5py.File(path, mode)
        except FileFormatError as e:
            if "unable to lock file" not in str(e):
                raise
            if time.monotonic() > deadline:
                raise FileFormatError(
                    f"{path} is open for writing in another process (HDF5 file lock held for "
                    f"{LOCK_WAIT_S:.0f} s); stop that process, or on a network file system without "
                    "locks set HDF5_USE_FILE_LOCKING=BEST_EFFORT") from e
            time.sleep(0.2)


def check_safe(f: h5py.File, path) -> None:
    """Refuse links other than hard links, external storage, virtual datasets and plugins.

    Links are listed with their types (H5Lvisit) and objects are visited through hard links
    only (H5Ovisit), so no link target is opened and no data are read. Raises
    UnsafeFileError listing the offending objects.
    """
    bad: list[str] = []

    def on_link(name: bytes, info) -> None:
        if info.type != h5py.h5l.TYPE_HARD:
            kind = {h5py.h5l.TYPE_SOFT: "SoftLink", h5py.h5l.TYPE_EXTERNAL: "ExternalLink"}
            bad.append(f"{name.decode()} ({kind.get(info.type, 'user-defined link')})")

    datasets: list[bytes] = []

    def on_object(name: bytes, info) -> None:
        if info.type == h5py.h5o.TYPE_DATASET:
            datasets.append(name)

    with h5_errors(path, "(object tree)"):
        f.id.links.visit(on_link, info=True)
        h5py.h5o.visit(f.id, on_object, info=True)
        for name in datasets:
            bad.extend(f"{name.decode()} ({why})" for why in _unsafe_storage(h5py.h5d.open(f.id, name)))
    if bad:
        raise UnsafeFileError(
            f"{path} refers outside itself or needs plugins: {', '.join(bad[:5])}; landscape "
            "files never do, so it was not written by landscape — refusing to read it")


def _unsafe_storage(dsid) -> list[str]:
    dcpl = dsid.get_create_plist()
    why = []
    if dcpl.get_layout() == h5py.h5d.VIRTUAL:
        why.append("virtual dataset")
    if dcpl.get_external_count() > 0:
        why.append("external storage")
    codes = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    why += [f"filter {c} is a plugin" for c in codes if c not in BUILTIN_FILTERS]
    return why


def read_schema(f: h5py.File, path) -> str:
    """Return the root ``schema`` attribute after checking its version is one we read."""
    with h5_errors(path, "/@schema"):
        name = f.attrs.get("schema")
        version = f.attrs.get("schema_version")
    name = name.decode() if isinstance(name, bytes) else name
    if name not in schema.SCHEMA_VERSIONS:
        raise FileFormatError(f"{path} is not a landscape run or results file (root attribute "
                              f"schema={name!r}); give a file written by landscape")
    if version is None or int(version) > schema.SCHEMA_VERSIONS[name]:
        raise FileFormatError(f"{path} has {name} schema_version {version}, this landscape reads "
                              f"up to {schema.SCHEMA_VERSIONS[name]}; upgrade landscape")
    return name


def retry_live(read, path, reopen=None):
    """Call ``read()``; if it fails with a FileFormatError on a live file, reopen and retry.

    A genuinely damaged or unsafe file fails the same way every time, so the error of the
    last attempt is raised (at once for UnsafeFileError or files not recently modified).
    """
    for attempt in range(READ_TRIES):
        try:
            if attempt and reopen is not None:
                reopen()
            return read()
        except UnsafeFileError:
            raise
        except FileFormatError:
            if attempt == READ_TRIES - 1 or not _recently_modified(path):
                raise
        time.sleep(RETRY_SLEEP_S * (attempt + 1))


def _recently_modified(path) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime < LIVE_WINDOW_S
    except OSError:
        return False


# --- durability ----------------------------------------------------------------------------
def flush(f: h5py.File, *, fsync: bool = False) -> None:
    """``File.flush()`` (enough for a killed process) and optionally ``fsync`` (node crash)."""
    f.flush()
    if fsync:
        os.fsync(f.id.get_vfd_handle())
