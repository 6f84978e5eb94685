"""Crash safety: SIGKILL at chosen points (mid-snapshot too) or SIGTERM, then resume → bitwise equal.

The child runs the ``landscape train`` command module (conftest.CHILD). The trainer's test hook
``$LANDSCAPE_TRAIN_TEST_PAUSE=snapshot:s`` pauses after the rows of snapshot s are written
and before they are committed; ``step:s`` pauses right after update s−1. The test kills the
child when it prints the pause marker, so the kill points are exact. The reference is the same
configuration trained without interruption (in this process, one thread like the child).
"""

import random
import signal
import time

import numpy as np
import pytest
from trainer_helpers import TINY, assert_runs_equal, cli_args, train_subprocess

from checkpoints import TrainConfig, resume, train
from checkpoints.train import PAUSE_ENV
from landscape.io import RunFile

CHILD_TIMEOUT_S = 120  # generous: the child imports torch and h5py on a loaded 2-core machine


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    train(TrainConfig(**TINY), path, progress=False)
    return path


def start_child(out, pause: str | None = None, pause_s: float = 60.0):
    env = {PAUSE_ENV: pause, PAUSE_ENV + "_SECONDS": str(pause_s)} if pause else {}
    return train_subprocess([*cli_args(), "--out", str(out), "--no-progress"], env=env)


def wait_for_marker(proc, marker: str) -> None:
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    for line in proc.stdout:
        if line.startswith(marker):
            return
        assert time.monotonic() < deadline, f"no {marker!r} from the child in {CHILD_TIMEOUT_S} s"
    raise AssertionError(f"the child ended without printing {marker!r}: {proc.stderr.read()[-2000:]}")


def kill_at(out, pause: str) -> None:
    proc = start_child(out, pause)
    try:
        wait_for_marker(proc, "PAUSED")
    finally:
        proc.kill()
        proc.wait(CHILD_TIMEOUT_S)


def resume_and_compare(out, reference, expect_last_snapshot=None) -> None:
    with RunFile(out) as f:  # the killed file opens; only committed rows are visible
        assert f.status == "running"
        if expect_last_snapshot is not None:
            assert f.saved_steps[-1:].tolist() == [expect_last_snapshot]
    result = resume(out, progress=False)
    assert result.status == "complete" and result.step == TINY["steps"]
    assert_runs_equal(reference, out)


def test_sigkill_mid_snapshot_then_resume_is_bitwise(reference, tmp_path):
    out = tmp_path / "killed.h5"
    kill_at(out, "snapshot:20")
    resume_and_compare(out, reference, expect_last_snapshot=10)


def test_sigterm_stops_at_a_step_boundary_and_exits_0(reference, tmp_path):
    out = tmp_path / "term.h5"
    proc = start_child(out, "step:15", pause_s=2.0)
    wait_for_marker(proc, "PAUSED")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    assert proc.returncode == 0, err[-2000:]
    with RunFile(out) as f:
        assert f.status == "stopped" and "SIGTERM" in f.status_message
        assert f.num_steps == 15 and f.saved_steps[-1] == 15  # stopped at the boundary, state saved
    resume(out, progress=False)
    with RunFile(reference) as ref:
        assert_runs_equal(reference, out, only_steps=ref.saved_steps)


@pytest.mark.slow
@pytest.mark.parametrize("pause", ["snapshot:0", "step:5", "step:12", "snapshot:10", "step:29", "snapshot:30"])
def test_sigkill_at_many_points(reference, tmp_path, pause):
    out = tmp_path / "killed.h5"
    kill_at(out, pause)
    resume_and_compare(out, reference)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_sigkill_at_random_times(reference, tmp_path, seed):
    """Kills at random moments (also during start-up): the file, if any, opens and resumes bitwise."""
    out = tmp_path / "killed.h5"
    proc = start_child(out)
    time.sleep(random.Random(seed).uniform(2.0, 8.0))
    proc.kill()
    proc.wait(CHILD_TIMEOUT_S)
    if not out.exists():  # killed before the run file was published: nothing to resume
        train(TrainConfig(**TINY), out, progress=False)
    else:
        resume(out, progress=False)
    assert_runs_equal(reference, out)
    assert np.array_equal(RunFile(out).saved_steps, RunFile(reference).saved_steps)
