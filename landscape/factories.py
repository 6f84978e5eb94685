"""Factories named by the user: registered names, plugins and import paths.

A model or data set is rebuilt from a *spec* string and JSON keyword arguments, so a run
file can name it and every later command can build it again. A spec is one of

* a registered name (``"resnet20"``, ``"mnist1d"``);
* the name of a plugin: an entry point in the group ``landscape.models`` or
  ``landscape.datasets`` of an installed package (``[project.entry-points."landscape.models"]
  mynet = "mypkg.models:make_net"``);
* an import path ``"package.module:factory"`` (``factory`` may be dotted: ``"pkg.mod:Net.small"``),
  tried first as is and then with the working directory on ``sys.path`` (as ``python -m``
  would see it);
* a file path ``"path/to/file.py:factory"``, stored with the absolute path.

:func:`resolve` returns the callable and its :class:`Origin` (where it came from: kind,
module, file and the file's SHA-256), which run files record so that a factory that can no
longer be imported, or whose file changed, is reported with the path it was loaded from.
Every failure is an :class:`~landscape.errors.InputError` with one line naming the spec, what
went wrong and the fix.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from landscape.errors import InputError, LandscapeError

ENTRY_POINT_GROUPS = {"model": "landscape.models", "dataset": "landscape.datasets"}


@dataclass(frozen=True)
class Origin:
    """Where a factory came from (JSON-able with :meth:`as_dict`).

    Attributes:
        spec: the spec as it is stored (file paths made absolute).
        kind: ``"registry"``, ``"entry_point"``, ``"module"`` or ``"file"``.
        module: the module that defines the factory ("" for the registry).
        file: the module's source file ("" when unknown).
        sha256: SHA-256 of that file ("" when unknown).
    """

    spec: str
    kind: str
    module: str = ""
    file: str = ""
    sha256: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def is_import_path(spec: str) -> bool:
    """Whether ``spec`` names a factory by ``module:attr`` or ``file.py:attr``."""
    return isinstance(spec, str) and ":" in spec


def resolve(spec: str, kind: str, registry: dict[str, Callable]) -> tuple[Callable, Origin]:
    """The factory named by ``spec`` and its origin.

    Args:
        spec: a registered name, a plugin name, ``"package.module:factory"`` or
            ``"path/to/file.py:factory"``.
        kind: ``"model"`` or ``"dataset"`` (picks the entry-point group and words the errors).
        registry: the built-in factories by name.

    Raises:
        InputError: nothing of that name, a module that does not import (or raises while
            importing), a missing attribute, or an attribute that is not callable.
    """
    if not isinstance(spec, str) or not spec:
        raise InputError(f"a {kind} is named by a string, got {spec!r}")
    if spec in registry:
        return registry[spec], Origin(spec, "registry")
    if is_import_path(spec):
        return _from_import_path(spec, kind)
    plugin = _entry_point(spec, kind)
    if plugin is not None:
        return plugin
    known = sorted(registry) + plugin_names(kind)
    raise InputError(f"unknown {kind} {spec!r}; known {kind}s: {known}; or give your own as "
                     f"'package.module:factory' or 'path/to/file.py:factory'")


def plugin_names(kind: str) -> list[str]:
    """Names of the installed plugins of ``kind`` (entry points of its group), sorted."""
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUPS[kind])})


def canonical(spec: str) -> str:
    """The spec as a run file stores it: a file path made absolute, anything else unchanged."""
    if not is_import_path(spec):
        return spec
    target, _, attr = spec.rpartition(":")
    return f"{Path(target).expanduser().absolute()}:{attr}" if _is_file(target) else spec


def call_factory(factory: Callable, spec: str, kind: str, kwargs: dict):
    """``factory(**kwargs)``, a failure of user code turned into one :class:`InputError` line."""
    try:
        return factory(**kwargs)
    except LandscapeError:
        raise
    except Exception as err:  # the user's code: report it as bad input, in one line
        flag = "--model-kwargs" if kind == "model" else "--dataset-kwargs"
        raise InputError(f"{kind} factory {spec!r} raised {type(err).__name__}: {_first_line(err)} "
                         f"(called with {kwargs}; fix the factory or the arguments, {flag})") from err


# --- import paths ----------------------------------------------------------------------------

def _is_file(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or "/" in target


def _from_import_path(spec: str, kind: str) -> tuple[Callable, Origin]:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise InputError(f"{kind} {spec!r}: an import path is 'package.module:factory' or 'path/to/file.py:factory'")
    if _is_file(target):
        module, origin_kind, spec = _load_file(target, spec, kind), "file", canonical(spec)
    else:
        module, origin_kind = _import_module(target, spec, kind), "module"
    factory = _attribute(module, attr, spec, kind)
    file = getattr(module, "__file__", None) or ""
    return factory, Origin(spec, origin_kind, module.__name__, str(file), _sha256(file))


def _import_module(name: str, spec: str, kind: str):
    try:
        return _import(name, spec, kind)
    except ModuleNotFoundError as err:
        if not _is_missing(err, name) or os.getcwd() in sys.path or "" in sys.path:
            raise _import_error(name, spec, kind, err) from err
    sys.path.insert(0, os.getcwd())  # as `python -m` sees it: modules in the working directory
    try:
        return _import(name, spec, kind)
    except ModuleNotFoundError as err:
        raise _import_error(name, spec, kind, err) from err


def _import(name: str, spec: str, kind: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        raise
    except LandscapeError:
        raise
    except Exception as err:
        raise InputError(f"importing module {name!r} (for {kind} {spec!r}) raised {type(err).__name__}: "
                         f"{_first_line(err)}") from err


def _is_missing(err: ModuleNotFoundError, name: str) -> bool:
    """Whether the module itself (or a package above it) is missing, not one of its imports."""
    missing = err.name or ""
    return name == missing or name.startswith(missing + ".")


def _import_error(name: str, spec: str, kind: str, err: ModuleNotFoundError) -> InputError:
    if not _is_missing(err, name):
        return InputError(f"module {name!r} of {kind} {spec!r} imports {err.name!r}, which is not installed; "
                          f"install it in this environment")
    return InputError(f"cannot import module {name!r} for {kind} {spec!r} (no module named {err.name!r}); run "
                      f"from the directory that holds it, add that directory to PYTHONPATH, or give a file "
                      f"path 'path/to/{name.replace('.', '/')}.py:{spec.rpartition(':')[2]}'")


def _load_file(target: str, spec: str, kind: str):
    path = Path(target).expanduser().absolute()
    if not path.is_file():
        raise InputError(f"{kind} {spec!r}: no such file {path}; give an existing .py file or "
                         "'package.module:factory'")
    name = "landscape_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    if name in sys.modules:  # one module per file, so classes stay the same objects
        return sys.modules[name]
    loader_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except LandscapeError:
        del sys.modules[name]
        raise
    except Exception as err:
        del sys.modules[name]
        raise InputError(f"running {path} (for {kind} {spec!r}) raised {type(err).__name__}: "
                         f"{_first_line(err)}") from err
    return module


def _attribute(module, attr: str, spec: str, kind: str) -> Callable:
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise InputError(f"{kind} {spec!r}: module {module.__name__!r} "
                             f"({getattr(module, '__file__', '?')}) has no attribute {attr!r}; it defines {defined}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"{kind} {spec!r} names a {type(obj).__name__}, not a factory; give a class or "
                         "a function that returns one")
    return obj


# --- entry points ----------------------------------------------------------------------------

def _entry_point(name: str, kind: str) -> tuple[Callable, Origin] | None:
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUPS[kind]) if ep.name == name]
    if not found:
        return None
    ep = found[0]
    try:
        factory = ep.load()
    except Exception as err:
        dist = getattr(getattr(ep, "dist", None), "name", "?")
        raise InputError(f"plugin {kind} {name!r} (entry point {ep.value!r} of package {dist}) failed to load: "
                         f"{type(err).__name__}: {_first_line(err)}") from err
    module = sys.modules.get(ep.module)
    file = str(getattr(module, "__file__", "") or "")
    return factory, Origin(name, "entry_point", ep.module, file, _sha256(file))


# --- helpers ---------------------------------------------------------------------------------

def _sha256(file: str) -> str:
    try:
        return hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else ""
    except OSError:
        return ""


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else "(no message)"
