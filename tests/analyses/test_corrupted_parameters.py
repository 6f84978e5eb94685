"""θ read for an analysis is verified against the SHA-256 stored with its snapshot (issue: a run
file whose saved θ was rewritten through h5py must not be analysed as if it were the trained θ)."""

import shutil

import h5py
import pytest

from analyses.cli import main
from landscape.io import ResultsFile


@pytest.fixture
def corrupted(tiny_run, tmp_path):
    """A copy of the tiny run whose θ at step 10 has one entry changed by +1.0 (fletcher32 rewritten too)."""
    path = tmp_path / "corrupted.h5"
    shutil.copy(tiny_run.path, path)
    with h5py.File(path, "r+") as f:
        params = f["snapshots/params"]
        row = params[1]
        row[0] += 1.0
        params[1] = row
    return path


@pytest.mark.parametrize("command", [
    ["hessian", "--k", "2", "--subset", "50"],
    ["sharpness", "--directions", "2", "--radii", "0.01", "--worst", "none", "--no-curvature"],
    ["surface", "--grid", "3", "--directions", "gaussian"],
])
def test_an_analysis_refuses_a_rewritten_snapshot_naming_the_step(corrupted, tmp_path, capsys, command):
    out = tmp_path / "res.h5"
    rc = main([command[0], str(corrupted), "--steps", "10", "--out", str(out), *command[1:]])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.count("\n") == 0, err
    assert "sha256 mismatch" in err and "step 10" in err, err
    if out.exists():
        with ResultsFile(out, "r") as res:
            assert res.keys() == [], "an item was written from a corrupted θ"


def test_the_other_snapshots_still_work(corrupted, tmp_path):
    assert main(["hessian", str(corrupted), "--steps", "20", "--k", "2", "--subset", "50",
                 "--out", str(tmp_path / "res.h5")]) == 0


def test_trajectory_refuses_a_rewritten_snapshot(corrupted, tmp_path, capsys):
    out = tmp_path / "res.h5"
    assert main(["hessian", str(corrupted), "--steps", "30", "--k", "2", "--subset", "50", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["trajectory", str(corrupted), "--out", str(out), "--ref-step", "30"]) != 0
    assert "step 10" in capsys.readouterr().err
