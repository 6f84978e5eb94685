"""Encoding of one results item: arrays as datasets, attributes as HDF5 attributes or JSON.

* ``np.ndarray`` with ``ndim >= 1`` → a chunked dataset with the fletcher32 checksum;
  numeric scalars and 0-d arrays → 0-d datasets, read back as Python scalars;
  ``str`` → a 0-d UTF-8 string dataset; arrays of ``str`` → 1-d string datasets.
* attributes that are ``bool``, ``int``, ``float`` or ``str`` are stored as they are;
  anything else (dicts, lists, None, arrays) as a JSON string, its name listed in the
  item attribute ``_json`` so that a reader knows to decode it.
"""

from __future__ import annotations

import json
import re

import h5py
import numpy as np

from landscape.errors import InputError
from landscape.io import _h5, schema

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


def check_name(name: str, what: str) -> None:
    """Names of keys' parts and arrays: letters, digits and ``_.+=-``, not starting with ``_``."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise InputError(f"{what} {name!r} is not a valid name: use letters, digits and _.+=- "
                         "(not starting with _ or .)")


def check_key(key: str) -> None:
    """Keys are ``/``-separated names, e.g. ``"hessian/step_00000100/eigen"``."""
    if not isinstance(key, str) or not key:
        raise InputError(f"item key must be a non-empty string like 'hessian/step_00000100/eigen', got {key!r}")
    for part in key.split("/"):
        check_name(part, f"part of key {key!r}")


def prepare_arrays(arrays: dict) -> dict:
    """Check names and dtypes before anything is written: ``str`` or ndarray per name."""
    out = {}
    for name, value in arrays.items():
        check_name(name, "array name")
        a = value if isinstance(value, str) else np.asarray(value)
        if not isinstance(a, str) and a.dtype.kind not in "biufU":
            raise InputError(f"array {name!r} has dtype {a.dtype}; store numbers, booleans or strings")
        out[name] = a
    return out


def check_attrs(attrs: dict) -> None:
    """Refuse reserved or invalid attribute names, and values that are not JSON-able."""
    for name, value in attrs.items():
        if not isinstance(name, str) or name in schema.RESERVED_ATTRS or name.startswith("_"):
            raise InputError(f"attribute name {name!r} is reserved or invalid; rename it")
        _h5.json_dumps(value)


def write_arrays(g: h5py.Group, arrays: dict) -> None:
    """Create one dataset per entry of ``prepare_arrays(arrays)``."""
    for name, a in arrays.items():
        if name in g:
            raise InputError(f"array {name!r} of item {g.name} is already stored (a block dataset); "
                             "leave it out of arrays")
        if isinstance(a, str) or a.dtype.kind == "U":
            data = a if isinstance(a, str) else a.astype(object)
            g.create_dataset(name, data=data, dtype=h5py.string_dtype())
        elif a.ndim == 0 or a.size == 0:
            g.create_dataset(name, data=a)
        else:
            g.create_dataset(name, data=a, chunks=True, fletcher32=True)


def read_arrays(g: h5py.Group) -> dict:
    """Every public dataset of the item: arrays as ndarrays, 0-d datasets as Python scalars."""
    out = {}
    for name, ds in g.items():
        if name.startswith("_") or not isinstance(ds, h5py.Dataset):
            continue
        text = h5py.check_string_dtype(ds.dtype) is not None
        if ds.ndim == 0:
            out[name] = ds.asstr()[()] if text else ds[()].item()
        else:
            out[name] = ds.asstr()[...].astype(str) if text else ds[...]
    return out


def write_attrs(g: h5py.Group, attrs: dict) -> None:
    """Store plain scalars as attributes and everything else as JSON (listed in ``_json``).

    ``attrs`` must have passed :func:`check_attrs`.
    """
    coded = []
    for name, value in attrs.items():
        if isinstance(value, (bool, int, float, str, np.bool_, np.integer, np.floating)):
            g.attrs[name] = value
        else:
            _h5.write_json_attr(g, name, value)
            coded.append(name)
    g.attrs[schema.JSON_ATTRS] = _h5.json_dumps(sorted(coded))


def read_attrs(g: h5py.Group) -> dict:
    """The item's attributes, JSON ones decoded, reserved ones left out."""
    coded = set(json.loads(g.attrs.get(schema.JSON_ATTRS, "[]")))
    out = {}
    for name, value in g.attrs.items():
        if name.startswith("_") or name == schema.COMPLETE:
            continue
        if name in coded:
            out[name] = json.loads(value)
        else:
            out[name] = value.decode() if isinstance(value, bytes) else (
                value.item() if isinstance(value, np.generic) else value)
    return out


def item_keys(f: h5py.File, complete_only: bool) -> list[str]:
    """Keys of the item groups (complete ones only if asked), by a low-level object visit.

    H5Ovisit plus attribute probes avoid building an h5py object per dataset: listing a
    file of thousands of items stays well under a second.
    """
    groups: list[bytes] = []

    def on_object(name: bytes, info) -> None:
        if info.type == h5py.h5o.TYPE_GROUP:
            groups.append(name)

    h5py.h5o.visit(f.id, on_object, info=True)
    mark, done = schema.ITEM_MARK.encode(), schema.COMPLETE.encode()
    keys = []
    for name in groups:
        if not h5py.h5a.exists(f.id, mark, obj_name=name):
            continue
        if complete_only and not _true_attr(f, name, done):
            continue
        keys.append(name.decode())
    return keys


def _true_attr(f: h5py.File, obj: bytes, attr: bytes) -> bool:
    if not h5py.h5a.exists(f.id, attr, obj_name=obj):
        return False
    a = h5py.h5a.open(f.id, attr, obj_name=obj)
    value = np.zeros((), dtype=a.dtype)
    a.read(value)
    return bool(value)
