"""Provenance: what produced a file (software, hardware, command, source tree, time).

Stored as JSON with every run file and every results item, so a number can be traced to
the code and machine that computed it (docs/file-formats.md).
"""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

GIT_TIMEOUT_S = 2.0  # best effort: never let provenance hold a job up
_PACKAGES = ("landscape", "torch", "numpy", "scipy", "h5py")


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string with seconds, e.g. ``2025-01-31T12:00:00Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def provenance(device=None) -> dict:
    """Describe the software, machine and command producing a result.

    Args:
        device: the torch device (or its name) the work ran on; adds the GPU name when it
            is a CUDA device.

    Returns:
        JSON-able dict: ``versions`` (landscape, torch, numpy, scipy, h5py, python, hdf5),
        ``torch`` (CUDA and cuDNN versions, deterministic-algorithms flag, cudnn.benchmark;
        present only if torch is imported in this process), ``device``, ``gpu``, ``hostname``,
        ``platform``, ``time`` (UTC ISO), ``argv`` and ``git`` (commit and dirty flag of the
        source tree of ``landscape``, or None outside a git checkout).
    """
    out = dict(_static())
    out["time"] = utc_now()
    out["device"] = None if device is None else str(device)
    out["torch"] = _torch_state()
    out["gpu"] = _gpu_name(device)
    return out


@functools.lru_cache(maxsize=1)
def _static() -> dict:
    """The parts that cannot change during a process (cached: git runs once)."""
    return {"versions": _versions(), "hostname": socket.gethostname(),
            "platform": platform.platform(), "argv": list(sys.argv), "git": _git_state()}


def _versions() -> dict:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    import h5py
    found["hdf5"] = h5py.version.hdf5_version
    return found


def _torch_state() -> dict | None:
    """CUDA/cuDNN versions and determinism flags, if torch is already imported.

    Importing torch just for provenance would cost seconds in processes that never use it,
    and a process that did not import torch cannot have been affected by its settings.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    cudnn = torch.backends.cudnn
    return {"version": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": cudnn.version() if cudnn.is_available() else None,
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "cudnn_benchmark": bool(cudnn.benchmark)}


def _gpu_name(device) -> str | None:
    torch = sys.modules.get("torch")
    if torch is None or device is None or not str(device).startswith("cuda"):
        return None
    try:
        return torch.cuda.get_device_name(torch.device(device))
    except (RuntimeError, AssertionError, ValueError):
        return None


def _git_state() -> dict | None:
    """Commit and dirty flag of the checkout holding this package (None if not in git)."""
    root = Path(__file__).resolve().parents[2]
    if not any((p / ".git").exists() for p in (root, *root.parents)):
        return None
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args],
                              capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
