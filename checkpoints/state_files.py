"""Read a ``state_dict`` saved elsewhere: a ``.pt`` file (``torch.load(weights_only=True)``) or ``.safetensors``.

Nothing here runs code from the file: ``.pt`` files go through ``torch.load`` with
``weights_only=True`` (PyTorch's restricted unpickler: tensors, containers and numbers only),
and ``.safetensors`` files are parsed here (an 8-byte little-endian header length, a JSON
header ``{name: {dtype, shape, data_offsets}}``, then the raw little-endian bytes), so the
``safetensors`` package is not needed.

A ``.pt`` file may hold the state dict itself or a training checkpoint around it:
:func:`find_state_dict` takes the entry named by ``key``, or the one entry among
:data:`KNOWN_KEYS` that is a dict of tensors (PyTorch Lightning writes ``state_dict``).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from landscape.errors import FileFormatError, InputError

KNOWN_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "params")
MAX_HEADER_BYTES = 100 * 2**20  # a safetensors JSON header larger than this is not a real file
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                      "U8": torch.uint8, "BOOL": torch.bool}


def read_state_dict(path, key: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, info)`` from a ``.pt``/``.pth``/``.ckpt`` or ``.safetensors`` file.

    Args:
        path: the file.
        key: the entry of a ``.pt`` checkpoint that holds the state dict (dots descend:
            ``"ema.state_dict"``); None: the file itself or the one known entry.

    Returns:
        Tensors by name (CPU) and ``{"file", "format", "key", "sha256"}``.

    Raises:
        FileFormatError: a missing or unreadable file (also one ``torch.load`` refuses to unpickle).
        InputError: no state dict found where ``key`` (or the known keys) point.
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"no such checkpoint file: {path}")
    if path.suffix == ".safetensors":
        state, fmt = read_safetensors(path), "safetensors"
        if key:
            raise InputError(f"--key selects an entry of a .pt checkpoint; {path} is a safetensors file")
    else:
        state, key, fmt = *find_state_dict(_torch_load(path), key, path), "pt"
    return state, {"file": os.fspath(path.absolute()), "format": fmt, "key": key, "sha256": _sha256(path)}


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError … for bad files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileFormatError(f"{path} cannot be read with torch.load(weights_only=True) ({first}); save the "
                              "model's state_dict() with torch.save, or as .safetensors") from None


def find_state_dict(obj, key: str | None, path) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict inside a loaded checkpoint object (see the module docstring)."""
    if key:
        for part in key.split("."):
            if not isinstance(obj, Mapping) or part not in obj:
                keys = sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__
                raise InputError(f"{path} has no entry {key!r} (at {part!r}: {keys}); pass --key with one of them")
            obj = obj[part]
        if not _is_state_dict(obj):
            raise InputError(f"entry {key!r} of {path} is not a dict of tensors")
        return dict(obj), key
    if _is_state_dict(obj):
        return dict(obj), None
    found = [k for k in KNOWN_KEYS if isinstance(obj, Mapping) and _is_state_dict(obj.get(k))]
    if len(found) == 1:
        return dict(obj[found[0]]), found[0]
    keys = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
    raise InputError(f"{path} holds no state dict at its top level (entries: {keys}); pass --key NAME for the "
                     "entry that holds it (e.g. state_dict)")


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def read_safetensors(path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file (format: module docstring), checked against the file size."""
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise FileFormatError(f"{path} is too short to be a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > min(MAX_HEADER_BYTES, len(raw) - 8):
        raise FileFormatError(f"{path}: safetensors header length {n} does not fit the file; it is damaged or "
                              "not a safetensors file")
    try:
        header = json.loads(raw[8:8 + n])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FileFormatError(f"{path}: the safetensors header is not JSON ({err})") from None
    body = memoryview(raw)[8 + n:]
    return {name: _tensor(name, entry, body, path) for name, entry in header.items() if name != "__metadata__"}


def _tensor(name: str, entry, body: memoryview, path) -> torch.Tensor:
    try:
        dtype, shape, (a, b) = SAFETENSORS_DTYPES[entry["dtype"]], [int(s) for s in entry["shape"]], entry["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise FileFormatError(f"{path}: tensor {name!r} has an unreadable header entry {entry!r} (dtypes read: "
                              f"{sorted(SAFETENSORS_DTYPES)})") from None
    itemsize = torch.empty((), dtype=dtype).element_size()
    if not 0 <= a <= b <= len(body) or b - a != int(np.prod(shape, dtype=np.int64)) * itemsize:
        raise FileFormatError(f"{path}: tensor {name!r} ({entry['dtype']} {shape}) has data offsets [{a}, {b}) "
                              f"that do not fit; the file is damaged")
    flat = torch.frombuffer(bytearray(body[a:b]), dtype=torch.uint8) if b > a else torch.zeros(0, dtype=torch.uint8)
    return flat.view(dtype).reshape(shape).clone()


def _sha256(path: Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
