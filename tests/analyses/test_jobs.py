"""Job arrays over steps: plans, the Slurm dry run, the local executor for real, merging."""

from __future__ import annotations

import re

import numpy as np
import pytest

from analyses.cli import main
from analyses.driver.jobs import slurm
from analyses.driver.jobs.merge import find_parts, merge_results
from landscape.errors import ConfigMismatchError, InputError, LandscapeError
from landscape.io import ResultsFile

RUN_A = {"path": "a.h5", "run_sha256": "a" * 64}
RUN_B = {"path": "b.h5", "run_sha256": "b" * 64}
# Eigenvalues from a task that started cold vs. a run that warm-started: both certified to
# tol = 1e-10 · ‖H‖ in float64, so they agree far below this (relative).
EIG_RTOL = 1e-7

CHUNK_CASES = [
    dict(id="one-per-task", steps=[0, 10, 20], per=1, want=[[0], [10], [20]]),
    dict(id="pairs", steps=[0, 10, 20, 30, 40], per=2, want=[[0, 10], [20, 30], [40]]),
    dict(id="all-in-one", steps=[5, 6], per=10, want=[[5, 6]]),
]


@pytest.mark.parametrize("case", CHUNK_CASES, ids=[c["id"] for c in CHUNK_CASES])
def test_chunk_steps(case):
    assert slurm.chunk_steps(case["steps"], case["per"]) == case["want"]


def test_chunk_steps_refuses_zero():
    with pytest.raises(InputError, match="steps-per-task"):
        slurm.chunk_steps([1, 2], 0)


def test_plan_tasks_overrides_steps_and_out(tmp_path):
    out = tmp_path / "res.h5"
    plans = slurm.plan_tasks(["run.h5", "--steps", "all", "--out", "x.h5", "--k", "3"], [0, 10, 20], out, 2)
    assert [p.steps for p in plans] == [(0, 10), (20,)]
    assert [p.out for p in plans] == [str(tmp_path / "res.part0.h5"), str(tmp_path / "res.part1.h5")]
    # argparse keeps the last value: the task's own --steps and --out come last
    assert plans[1].argv[-4:] == ("--steps", "20", "--out", str(tmp_path / "res.part1.h5"))
    assert "torch.distributed.run" in plans[0].command_line(nproc_per_node=2)


def _write(path, run_id, keys):
    with ResultsFile(path, "a", run_id=run_id) as r:
        for key in keys:
            r.write_item(key, {"x": np.arange(3.0) + len(key)}, {"config": {"k": 1}})


def test_merge_copies_new_items_once_and_keeps_provenance(tmp_path):
    out = tmp_path / "res.h5"
    _write(slurm.part_path(out, 0), RUN_A, ["hessian/step_00000000/eigen"])
    _write(slurm.part_path(out, 1), RUN_A, ["hessian/step_00000010/eigen", "hessian/step_00000010/trace"])
    assert find_parts(out) == [str(slurm.part_path(out, 0)), str(slurm.part_path(out, 1))]
    first = merge_results(out, log=lambda _: None)
    assert len(first.copied) == 3 and not first.present
    again = merge_results(out, remove_parts=True, log=lambda _: None)
    assert not again.copied and len(again.present) == 3 and len(again.removed) == 2
    with ResultsFile(out, "r") as r:
        arrays, attrs = r.read_item("hessian/step_00000010/trace")
        assert np.array_equal(arrays["x"], np.arange(3.0) + len("hessian/step_00000010/trace"))
        assert attrs["config"] == {"k": 1} and "hostname" in attrs["provenance"]
        assert r.run_id["run_sha256"] == RUN_A["run_sha256"]


def test_merge_refuses_parts_of_another_run(tmp_path):
    out = tmp_path / "res.h5"
    _write(slurm.part_path(out, 0), RUN_A, ["hessian/step_00000000/eigen"])
    _write(slurm.part_path(out, 1), RUN_B, ["hessian/step_00000010/eigen"])
    with pytest.raises(ConfigMismatchError, match="part1"):
        merge_results(out, log=lambda _: None)


def test_merge_without_parts_is_an_error(tmp_path, capsys):
    assert main(["jobs", "merge", str(tmp_path / "res.h5")]) == 2
    assert "no part files" in capsys.readouterr().err


def test_dry_run_prints_correct_scripts_and_writes_nothing(tiny_run, tmp_path, capsys):
    out, folder = tmp_path / "res.h5", tmp_path / "jobs"
    rc = main(["jobs", "submit", "--dry-run", "--folder", str(folder), "--partition", "gpu", "--gpus-per-node", "2",
               "--nproc-per-node", "2", "--time-min", "90", "--array-parallelism", "1", "--steps-per-task", "2",
               "--setup", "source .venv/bin/activate",
               str(tiny_run.path), "--steps", "all", "--out", str(out), "--k", "3", "--device", "cpu"])
    text = capsys.readouterr().out
    assert rc == 0
    array, merge = text.split("# ---- sbatch script of the merge job")
    for line in ["#SBATCH --array=0-1%1", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --time=90", "source .venv/bin/activate", "-m submitit.core._submit " + str(folder)]:
        assert line in array, f"{line!r} missing from the array script:\n{array}"
    assert re.search(r"steps 0,10\n.*torch\.distributed\.run .*--nproc-per-node=2 -m landscape hessian .*"
                     r"--steps 0,10 --out \S*res\.part0\.h5", array)
    assert "--steps 20,30 --out " + str(tmp_path / "res.part1.h5") in array
    assert "#SBATCH --dependency=afterany:<ARRAY_JOB_ID>" in merge.replace("'", "")
    assert "--gpus-per-node" not in merge and "--array" not in merge
    assert not folder.exists() and not out.exists()


def test_submit_on_a_machine_without_slurm_says_what_to_do(tiny_run, tmp_path, capsys):
    rc = main(["jobs", "submit", str(tiny_run.path), "--steps", "last", "--out", str(tmp_path / "r.h5")])
    err = capsys.readouterr().err
    if rc == 0:  # a real Slurm cluster: nothing more to check here
        pytest.skip("srun is available: this machine is a Slurm cluster")
    assert rc == 2 and "--dry-run" in err and "--executor local" in err


def test_local_executor_runs_tasks_reports_failures_and_merges(tmp_path):
    """submitit's local executor for real, with cheap tasks (`landscape info`): one succeeds, one fails."""
    out = tmp_path / "res.h5"
    parts = [slurm.part_path(out, i) for i in range(2)]
    _write(parts[0], RUN_A, ["hessian/step_00000000/eigen"])
    _write(parts[1], RUN_A, ["hessian/step_00000010/eigen"])
    plans = [slurm.TaskPlan(0, (0,), str(parts[0]), ("info", str(parts[0]))),
             slurm.TaskPlan(1, (10,), str(parts[1]), ("info", str(tmp_path / "missing.h5")))]
    opts = slurm.SlurmOptions(time_min=5)
    executor = slurm.make_executor("local", tmp_path / "jobs", opts)
    with pytest.raises(LandscapeError, match=r"1 of 2 task\(s\) failed .*exited with status 2"):
        slurm.submit(plans, executor, str(out), opts, wait=True)
    with ResultsFile(out, "r") as r:  # the finished items were merged all the same
        assert r.keys() == ["hessian/step_00000000/eigen", "hessian/step_00000010/eigen"]
    logs = "".join(p.read_text() for p in (tmp_path / "jobs").glob("*_log.*"))
    assert "step_00000000/eigen" in logs and "missing.h5" in logs


@pytest.mark.slow
def test_local_executor_runs_the_hessian_array_and_merges(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two tasks share the 2 cores
    out, direct = tmp_path / "res.h5", tmp_path / "direct.h5"
    common = ["--k", "2", "--tol", "1e-10", "--dtype", "float64", "--device", "cpu", "--subset", "64"]
    rc = main(["jobs", "submit", "--executor", "local", "--folder", str(tmp_path / "jobs"), "--steps-per-task", "2",
               str(tiny_run.path), "--steps", "10:30", "--out", str(out), *common])
    assert rc == 0, capsys.readouterr().err
    assert main(["hessian", str(tiny_run.path), "--steps", "10:30", "--out", str(direct), *common]) == 0
    with ResultsFile(out, "r") as merged, ResultsFile(direct, "r") as ref:
        assert merged.keys() == ref.keys() == [f"hessian/step_{s:08d}/eigen" for s in (10, 20, 30)]
        for key in ref.keys():
            a, b = merged.read_item(key)[0]["eigenvalues"], ref.read_item(key)[0]["eigenvalues"]
            assert np.allclose(a, b, rtol=EIG_RTOL, atol=0), f"{key}: {a} vs {b}"
        assert merged.read_item("hessian/step_00000020/eigen")[1]["warm_start_step"] == 10
    # a second submission finds everything complete and submits nothing
    assert main(["jobs", "submit", "--executor", "local", str(tiny_run.path), "--steps", "10:30",
                 "--out", str(out), *common]) == 0
    assert "nothing to submit" in capsys.readouterr().out
