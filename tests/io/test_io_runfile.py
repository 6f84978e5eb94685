"""RunWriter → RunFile round trips, committed-counter semantics, layout invariants."""

import hashlib
import json

import h5py
import numpy as np
import pytest
from io_synthetic import B, BATCH, NUM_TRAIN, P, make_meta

from landscape.errors import FileFormatError, InputError
from landscape.io import RunFile, file_kind, sha256_array

SNAPSHOTS_FOR_R2 = 1000  # reliability.md R2: object count constant over 1,000 snapshots


def test_round_trip_of_every_writer_method(writer_factory, synth, tmp_path):
    with writer_factory() as w:
        synth.run(w, 0, 12)
        synth.snapshot(w, 12)
        w.commit(fsync=True)
        assert (w.committed_steps, w.last_snapshot_step) == (12, 12)
        w.set_status("complete", "done")
    with RunFile(tmp_path / "run.h5") as run:
        assert run.saved_steps.tolist() == [0, 4, 8, 12] and run.num_steps == 12
        for s in run.saved_steps.tolist():
            assert np.array_equal(run.params(s), synth.theta(s))
            assert np.array_equal(run.buffers(s), synth.buffers(s))
            assert np.array_equal(run.momentum(s), synth.momentum(s))
            assert run.param_sha256(s) == sha256_array(synth.theta(s))
        assert np.array_equal(run.batch_indices_range(0, 12), synth.batches(0, 12))
        assert np.array_equal(run.batch_indices(7), synth.batches(7, 8)[0])
        assert run.aug_seed(5) == 105 and run.aug_seeds(2, 4).tolist() == [102, 103]
        m = run.step_metrics()
        assert m["step"].tolist() == list(range(12)) and np.array_equal(m["loss"], np.arange(12) * 0.25)
        assert np.array_equal(m["lr"], np.full(12, 0.1))
        ev = run.eval_metrics()
        assert ev["step"].tolist() == [0, 4, 8] and np.array_equal(ev["train_loss"], 1.0 / np.array([1, 5, 9]))
        sh = run.sharpness()
        assert sh["eigenvalues"].shape == (3, 3) and sh["eigenvalues"][:, 0].tolist() == [3.0, 7.0, 11.0]
        assert (run.status, run.status_message) == ("complete", "done")
        assert run.meta == json.loads(json.dumps(make_meta()))
        assert (run.model_name, run.seed, run.batch_size, run.full_batch, run.P, run.B) == \
            ("mlp", 3, BATCH, False, P, B)
        assert run.verify() == 3 * 4
    assert file_kind(tmp_path / "run.h5") == "run"


def test_info_summarizes_the_run(writer_factory, synth, tmp_path):
    with writer_factory() as w:
        synth.run(w, 0, 8)
    info = RunFile(tmp_path / "run.h5").info()
    assert info["snapshots"] == [0, 4] and info["steps_logged"] == 8 and info["params"] == P
    assert info["final_eval"] == {"step": 4, "train_loss": 0.2, "train_acc": 0.5, "test_loss": 0.4,
                                  "test_acc": 0.25}
    assert info["param_sha256"] == {0: sha256_array(synth.theta(0)), 4: sha256_array(synth.theta(4))}
    assert info["status"] == "running" and info["final_loss"] == 7 * 0.25
    json.dumps(info)  # JSON-able


def test_snapshot_without_momentum_and_full_batch_run(writer_factory, tmp_path):
    meta = make_meta()
    meta["full_batch"] = True
    with writer_factory(meta=meta, B=0, batch_size=NUM_TRAIN) as w:
        w.append_snapshot(0, np.ones(P, np.float32), None, None)
        w.append_steps([0, 1], None, [7, 8], [1.0, 0.5], [0.1, 0.1])
        w.commit()
        with pytest.raises(InputError, match="full-batch"):
            w.append_steps([2], np.zeros((1, NUM_TRAIN), int), [9], [0.1], [0.1])
    run = RunFile(tmp_path / "run.h5")
    assert run.buffers(0).shape == (0,) and np.array_equal(run.params(0), np.ones(P, np.float32))
    with pytest.raises(InputError, match="no momentum saved at step 0"):
        run.momentum(0)
    assert np.array_equal(run.batch_indices(1), np.arange(NUM_TRAIN))
    run.close()
    assert "batch_indices" not in h5py.File(tmp_path / "run.h5", "r")["steps"]


def test_uncommitted_rows_are_invisible_to_readers(writer_factory, synth, tmp_path):
    path = tmp_path / "run.h5"
    w = writer_factory()
    synth.snapshot(w, 0)
    synth.steps(w, 0, 3)
    w.commit()
    synth.steps(w, 3, 5)
    synth.snapshot(w, 5)
    w.append_eval(5, 1.0, 1.0, 1.0, 1.0)
    run = RunFile(path)  # same process, writer still open
    assert (run.num_steps, run.saved_steps.tolist(), len(run.eval_metrics()["step"])) == (3, [0], 0)
    with pytest.raises(InputError, match="saved steps: 0"):
        run.params(5)
    with pytest.raises(InputError, match="3 committed steps"):
        run.batch_indices(3)
    w.commit()
    assert run.num_steps == 3  # a view is fixed until refresh()
    run.refresh()
    assert (run.num_steps, run.saved_steps.tolist()) == (5, [0, 5])
    synth.steps(w, 5, 7)
    w.close()  # closing does not commit
    run.refresh()
    assert run.num_steps == 5
    run.close()
    assert h5py.File(path, "r")["steps/step"].shape == (7,)


def test_commit_refuses_rows_labelled_after_the_logged_steps(writer_factory, synth):
    w = writer_factory()
    synth.steps(w, 0, 2)
    synth.snapshot(w, 4)
    with pytest.raises(InputError, match="append steps up to 3"):
        w.commit()
    w.close()


@pytest.mark.parametrize("call,match", [
    (lambda w, s: w.append_steps([1], s.batches(1, 2), [0], [0.0], [0.0]), "contiguously from step 0"),
    (lambda w, s: w.append_steps([0], np.zeros((1, BATCH + 1), int), [0], [0.0], [0.0]), "shape"),
    (lambda w, s: w.append_steps([0], np.full((1, BATCH), NUM_TRAIN), [0], [0.0], [0.0]), r"\[0, 40\)"),
    (lambda w, s: w.append_steps([0], None, [0], [0.0], [0.0]), "batch_indices is None"),
    (lambda w, s: w.append_steps([0], s.batches(0, 1), [0, 1], [0.0], [0.0]), "aug_seeds"),
    (lambda w, s: w.append_snapshot(0, np.zeros(P + 1), s.buffers(0)), "theta"),
    (lambda w, s: w.append_snapshot(0, np.zeros(P), None), "buffers"),
    (lambda w, s: w.append_snapshot(0, np.zeros(P, "U1"), s.buffers(0)), "floating point"),
    (lambda w, s: (w.append_eval(3, 0, 0, 0, 0), w.append_eval(3, 0, 0, 0, 0)), "must increase"),
    (lambda w, s: (w.append_sharpness(0, [1, 2], 0.1), w.append_sharpness(1, [1], 0.1)), "k=2"),
    (lambda w, s: w.set_status("finished"), "status must be one of"),
], ids=["gap", "batch-shape", "index-range", "no-batch", "length", "theta-size", "no-buffers",
        "theta-dtype", "eval-order", "sharpness-k", "status"])
def test_bad_appends_raise_input_error(writer_factory, synth, call, match):
    with writer_factory() as w:
        with pytest.raises(InputError, match=match):
            call(w, synth)


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "append"}, "mode must be one of"),
    ({"meta": {"model_name": "x"}}, "'config' dict"),
    ({"P": 0}, "P >= 1"),
    ({"meta": {"config": {"f": object()}}}, "not JSON-able"),
])
def test_bad_writer_arguments(writer_factory, kwargs, match):
    with pytest.raises(InputError, match=match):
        writer_factory(**kwargs)


def test_object_count_constant_while_appending_snapshots(writer_factory, tmp_path):
    def count(path):
        names = []
        with h5py.File(path, "r") as f:
            f.visit(names.append)
        return len(names)

    path = tmp_path / "run.h5"
    n = SNAPSHOTS_FOR_R2
    with writer_factory(P=16, B=2) as w:
        w.commit()
        before = count(path)
        w.append_steps(np.arange(n), np.zeros((n, BATCH), int), np.arange(n), np.zeros(n), np.ones(n))
        theta = np.zeros(16, np.float32)
        for s in range(n):
            w.append_snapshot(s, theta + s, np.zeros(2, np.float32), theta)
            if s % 100 == 0:
                w.append_eval(s, 0, 0, 0, 0)
                w.append_sharpness(s, [1.0], 0.1)
                w.commit()
        w.commit()
    assert count(path) == before, f"object count {before} → {count(path)} over {n} snapshots"
    assert len(RunFile(path).saved_steps) == n


def test_plain_h5py_reading_as_documented(writer_factory, synth, tmp_path):
    """The recipe of docs/file-formats.md: read only the committed rows, check a sha256."""
    with writer_factory() as w:
        synth.run(w, 0, 9)
        synth.steps(w, 9, 11)  # uncommitted tail
    with h5py.File(tmp_path / "run.h5", "r") as f:
        n_steps, n_snap, n_eval, n_sharp = f["committed"][:]
        assert f.attrs["schema"] == "landscape.run" and (n_steps, n_snap) == (9, 3)
        theta = f["snapshots/params"][n_snap - 1]
        assert hashlib.sha256(theta.tobytes()).hexdigest() == f["snapshots/params_sha256"][n_snap - 1].decode()
        assert json.loads(f.attrs["meta"])["seed"] == 3
        assert f["steps/batch_indices"][:n_steps].shape == (9, BATCH)


def test_sha256_array_is_the_sha_of_little_endian_bytes():
    a = np.arange(10, dtype=np.float32)
    assert sha256_array(a) == hashlib.sha256(a.tobytes()).hexdigest()
    assert sha256_array(a.astype(">f4")) == sha256_array(a)
    assert sha256_array(np.asfortranarray(np.ones((3, 2)))) == hashlib.sha256(np.ones((3, 2)).tobytes()).hexdigest()


def test_file_kind_refuses_foreign_hdf5(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.ones(3)
    with pytest.raises(FileFormatError, match=f"{path}.*not a landscape run or results file"):
        file_kind(path)
    with h5py.File(path, "a") as f:
        f.attrs["schema"], f.attrs["schema_version"] = "landscape.run", 99
    with pytest.raises(FileFormatError, match="schema_version 99.*upgrade landscape"):
        RunFile(path)
