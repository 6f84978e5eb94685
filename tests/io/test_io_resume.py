"""RunWriter modes: create refuses, resume truncates and checks the config, overwrite is safe."""

import os

import h5py
import numpy as np
import pytest
from io_synthetic import BATCH, B, P, make_meta

from landscape.errors import ConfigMismatchError, FileFormatError, OutputExistsError
from landscape.io import ResultsFile, RunFile, RunWriter


def test_create_refuses_an_existing_file_and_leaves_it_byte_identical(writer_factory, synth, tmp_path):
    path = tmp_path / "run.h5"
    with writer_factory() as w:
        synth.run(w, 0, 5)
    before, stat = path.read_bytes(), os.stat(path)
    with pytest.raises(OutputExistsError, match=f"{path} exists; pass --resume .* or --overwrite"):
        writer_factory()
    assert path.read_bytes() == before and os.stat(path).st_mtime_ns == stat.st_mtime_ns
    other = tmp_path / "notes.txt"
    other.write_text("not a run")
    with pytest.raises(OutputExistsError):
        writer_factory(name="notes.txt")
    assert other.read_text() == "not a run" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "run.h5"]


def test_resume_truncates_uncommitted_rows_and_rolls_back_to_the_last_snapshot(writer_factory, synth, tmp_path):
    path = tmp_path / "run.h5"
    w = writer_factory()
    synth.run(w, 0, 10)        # snapshots 0, 4, 8; steps 0..9 committed; evals at 0, 4, 8
    synth.steps(w, 10, 12)     # uncommitted
    synth.snapshot(w, 12)
    w.close()
    with writer_factory(mode="resume") as w:
        assert (w.last_snapshot_step, w.committed_steps) == (8, 8)
        synth.run(w, 8, 12)    # the snapshot at 8 is re-appended with identical θ: accepted, not stored twice
        synth.snapshot(w, 12)
        w.commit()
    with RunFile(path) as run:
        assert run.saved_steps.tolist() == [0, 4, 8, 12] and run.num_steps == 12
        assert run.eval_metrics()["step"].tolist() == [0, 4, 8]
        assert run.sharpness()["step"].tolist() == [0, 4, 8]
        assert np.array_equal(run.batch_indices_range(0, 12), synth.batches(0, 12))
        assert run.verify() == 4 * 3  # params, buffers, momentum of 4 snapshots
        event = run.history[-1]
        assert event["event"] == "resume" and event["dropped_rows"] == {"steps": 2, "snapshots": 0,
                                                                         "evals": 1, "sharpness": 1}
    with h5py.File(path, "r") as f:  # no orphaned rows past the counters
        assert f["steps/step"].shape == (12,) and f["snapshots/params"].shape == (4, P)


def test_resume_without_snapshot_restarts_from_step_zero(writer_factory, synth):
    w = writer_factory()
    synth.steps(w, 0, 3)
    w.commit()
    w.close()
    with writer_factory(mode="resume") as w:
        assert (w.last_snapshot_step, w.committed_steps) == (None, 0)


def test_resume_refuses_another_config_naming_the_keys(writer_factory, synth, tmp_path):
    with writer_factory() as w:
        synth.run(w, 0, 4)
    meta = make_meta(lr=0.2, model={"width": 16})
    meta["dataset_checksum"] = "cd" * 32
    before = (tmp_path / "run.h5").read_bytes()
    with pytest.raises(ConfigMismatchError) as err:
        writer_factory(mode="resume", meta=meta)
    msg = str(err.value)
    for part in ("config.lr: stored 0.1, given 0.2", "config.model.width: stored 8, given 16",
                 "dataset_checksum", "--overwrite", str(tmp_path / "run.h5")):
        assert part in msg, f"{part!r} missing from: {msg}"
    assert (tmp_path / "run.h5").read_bytes() == before
    with pytest.raises(ConfigMismatchError, match="P: stored 50, given 51"):
        writer_factory(mode="resume", P=P + 1)


def test_resume_accepts_resumable_keys_and_stores_the_new_meta(writer_factory, synth, tmp_path):
    with writer_factory() as w:
        synth.run(w, 0, 4)
    sha = RunFile(tmp_path / "run.h5").file_sha256
    with writer_factory(mode="resume", meta=make_meta(total_steps=100)):
        pass
    with pytest.raises(ConfigMismatchError, match="config.lr"):
        writer_factory(mode="resume", meta=make_meta(total_steps=100, lr=1.0))
    RunWriter(tmp_path / "run.h5", mode="resume", meta=make_meta(total_steps=100, lr=1.0), P=P, B=B,
              batch_size=BATCH, resumable={"total_steps", "lr"}).close()
    run = RunFile(tmp_path / "run.h5")
    assert run.config["total_steps"] == 100 and run.config["lr"] == 1.0
    assert run.file_sha256 == sha, "the run's identity must survive a resume"


def test_resume_needs_an_existing_run_file(writer_factory, tmp_path):
    with pytest.raises(FileFormatError, match="no run file to resume at .*drop --resume"):
        writer_factory(mode="resume")


def test_overwrite_keeps_the_old_file_until_the_new_one_has_a_commit(writer_factory, synth, tmp_path):
    path = tmp_path / "run.h5"
    with writer_factory() as w:
        synth.run(w, 0, 8)
    old_sha, old_bytes = RunFile(path).file_sha256, path.read_bytes()
    w = writer_factory(mode="overwrite")
    synth.snapshot(w, 0)
    assert path.read_bytes() == old_bytes and RunFile(path).file_sha256 == old_sha
    w.commit()
    run = RunFile(path)
    assert run.file_sha256 != old_sha and run.saved_steps.tolist() == [0] and run.num_steps == 0
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"], "temp file left behind"


def test_overwrite_interrupted_before_its_first_commit_keeps_the_old_file(writer_factory, synth, tmp_path):
    path = tmp_path / "run.h5"
    with writer_factory() as w:
        synth.run(w, 0, 4)
    old_bytes = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with writer_factory(mode="overwrite") as w:
            synth.snapshot(w, 0)
            raise KeyboardInterrupt
    assert path.read_bytes() == old_bytes and [p.name for p in tmp_path.iterdir()] == ["run.h5"]
    with writer_factory(mode="overwrite"):  # a clean close publishes even without rows
        pass
    assert RunFile(path).num_steps == 0


def test_overwrite_of_a_missing_file_creates_it(writer_factory, tmp_path):
    writer_factory(mode="overwrite").close()
    assert RunFile(tmp_path / "run.h5").status == "running"


def test_stale_temp_files_of_dead_processes_are_removed(writer_factory, tmp_path):
    dead = 2**22 + 12345  # above the default pid_max of 4,194,304: no such process
    stale = tmp_path / f".run.h5.{os.uname().nodename}.{dead}.tmp"
    stale.write_bytes(b"half-written")
    foreign = tmp_path / ".run.h5.otherhost.1.tmp"
    foreign.write_bytes(b"another machine's")
    writer_factory().close()
    assert not stale.exists() and foreign.exists()


def test_missing_directories_are_created(tmp_path):
    RunWriter(tmp_path / "a" / "b" / "run.h5", mode="create", meta=make_meta(), P=P, B=B, batch_size=BATCH).close()
    ResultsFile(tmp_path / "c" / "results.h5", "a").close()
    assert RunFile(tmp_path / "a" / "b" / "run.h5").num_steps == 0
