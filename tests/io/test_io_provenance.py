"""provenance(): versions, machine, command, source tree and time, and where it is stored."""

import importlib
import json
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np
import torch

from landscape.io import ResultsFile, RunFile, provenance

provenance_module = importlib.import_module("landscape.io.provenance")  # the module (its cache)

CLOCK_SLACK_S = 120  # "time" is the wall clock at the call; generous for a loaded CI machine


def test_provenance_contents():
    prov = provenance("cpu")
    json.dumps(prov)  # JSON-able
    versions = prov["versions"]
    for name in ("numpy", "scipy", "h5py", "torch", "landscape"):
        assert versions[name] == metadata.version(name), name
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions["hdf5"] == h5py.version.hdf5_version
    assert prov["torch"]["version"] == torch.__version__  # torch is imported in this process
    assert prov["torch"]["deterministic"] == torch.are_deterministic_algorithms_enabled()
    assert prov["device"] == "cpu" and prov["gpu"] is None
    assert prov["argv"] == sys.argv and prov["hostname"] and prov["platform"]
    when = datetime.strptime(prov["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < CLOCK_SLACK_S


def test_provenance_git_commit_matches_the_checkout():
    """The git state is cached per process; others may commit meanwhile, so read HEAD around it."""
    root = Path(__file__).resolve().parents[2]

    def head():
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    provenance_module._static.cache_clear()
    before, git, after = head(), provenance()["git"], head()
    if before is None:
        assert git is None
    else:
        assert git["commit"] in (before, after) and isinstance(git["dirty"], bool)


def test_provenance_without_torch_does_not_import_it():
    code = ("import sys, json; from landscape.io import provenance; p = provenance(); "
            "print(json.dumps([p['torch'], 'torch' in sys.modules, p['versions']['torch']]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    state, imported, version = json.loads(out.stdout)
    assert state is None and not imported and version == metadata.version("torch")


def test_provenance_is_stored_in_run_and_results_files(writer_factory, tmp_path):
    writer_factory().close()
    assert RunFile(tmp_path / "run.h5").provenance["versions"]["h5py"] == h5py.__version__
    with ResultsFile(tmp_path / "results.h5", "a") as r:
        r.write_item("a/b", {"x": np.ones(1)})
        assert r.read_item("a/b")[1]["provenance"]["versions"]["numpy"] == np.__version__
    with h5py.File(tmp_path / "results.h5", "r") as f:
        assert "hostname" in json.loads(f.attrs["provenance"])
