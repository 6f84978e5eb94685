"""ResultsFile: items round-trip, interrupted items are redone, blocks resume, runs are bound."""

import json

import h5py
import numpy as np
import pytest

from landscape.errors import ConfigMismatchError, FileFormatError, InputError, OutputExistsError
from landscape.io import ResultsFile, RunFile, _items, file_kind

RUN_A = {"path": "a/run.h5", "run_sha256": "a" * 64}
RUN_B = {"path": "b/run.h5", "run_sha256": "b" * 64}
KEY = "hessian/step_00000100/eigen"


@pytest.fixture
def results(tmp_path):
    with ResultsFile(tmp_path / "results.h5", "a", run_id=RUN_A) as r:
        yield r


def test_item_round_trip(results, tmp_path):
    lam = np.array([3.0, 2.0, 1.0])
    V = np.random.default_rng(0).standard_normal((3, 40)).astype(np.float32)
    arrays = {"eigenvalues": lam, "eigenvectors": V, "converged": True, "num_matvecs": 57,
              "tol": 1e-6, "which": "LA", "labels": np.array(["a", "bc"]), "empty": np.zeros((0, 3))}
    attrs = {"step": 100, "bn": "eval", "seed": 0, "config": {"k": 3, "tol": 1e-6},
             "steps": [1, 2], "note": None, "wall_time_s": 1.5}
    assert not results.is_complete(KEY)
    results.write_item(KEY, arrays, attrs)
    assert results.is_complete(KEY) and results.keys() == [KEY] and results.keys("hessian/") == [KEY]
    assert results.keys("linesearch/") == []
    got, got_attrs = results.read_item(KEY)
    assert set(got) == set(arrays)
    assert np.array_equal(got["eigenvalues"], lam) and np.array_equal(got["eigenvectors"], V)
    assert got["eigenvectors"].dtype == np.float32 and got["empty"].shape == (0, 3)
    assert (got["converged"], got["num_matvecs"], got["tol"], got["which"]) == (True, 57, 1e-6, "LA")
    assert got["labels"].tolist() == ["a", "bc"]
    prov = got_attrs.pop("provenance")
    assert got_attrs == attrs and {"versions", "time", "hostname", "git"} <= set(prov)
    assert file_kind(tmp_path / "results.h5") == "results"


def test_read_only_view_and_plain_h5py(results, tmp_path):
    results.write_item(KEY, {"eigenvalues": np.ones(2)}, {"provenance": {"mine": 1}})
    with ResultsFile(tmp_path / "results.h5", "r") as r:  # while the writer holds it open
        arrays, attrs = r.read_item(KEY)
        assert attrs["provenance"] == {"mine": 1}, "a caller's provenance is kept"
        assert r.run_id == RUN_A
        with pytest.raises(InputError, match="read-only"):
            r.write_item("x", {})
    results.close()
    with h5py.File(tmp_path / "results.h5", "r", locking=False) as f:  # docs/file-formats.md
        g = f[KEY]
        assert g.attrs.get("complete", False) and g["eigenvalues"][:].tolist() == [1.0, 1.0]
        coded = set(json.loads(g.attrs["_json"]))
        attrs = {k: json.loads(v) if k in coded else v for k, v in g.attrs.items() if not k.startswith("_")}
        assert attrs["provenance"] == {"mine": 1}


def test_bad_input_is_refused_before_anything_is_written(results):
    with pytest.raises(InputError, match="dtype object"):
        results.write_item(KEY, {"x": np.arange(5), "bad": np.array([object()])})
    with pytest.raises(InputError, match="not JSON-able"):
        results.write_item(KEY, {"x": np.arange(5)}, {"f": object()})
    assert results.keys(complete_only=False) == []


def test_interrupted_item_is_redone_and_complete_items_are_kept(results, monkeypatch):
    results.write_item("a/done", {"x": np.arange(3)})

    def killed(*args):
        raise KeyboardInterrupt  # the job dies after the arrays, before the completion mark

    with monkeypatch.context() as m:
        m.setattr(_items, "write_attrs", killed)
        with pytest.raises(KeyboardInterrupt):
            results.write_item(KEY, {"x": np.arange(5)}, {"old": 1})
    assert not results.is_complete(KEY)
    assert results.keys() == ["a/done"] and results.keys(complete_only=False) == ["a/done", KEY]
    with pytest.raises(FileFormatError, match="is incomplete .*rerun"):
        results.read_item(KEY)
    results.write_item(KEY, {"y": np.ones(2)}, {"new": 2})
    arrays, attrs = results.read_item(KEY)
    assert set(arrays) == {"y"} and "old" not in attrs and attrs["new"] == 2
    with pytest.raises(OutputExistsError, match="is complete; pass --overwrite"):
        results.write_item("a/done", {"x": np.zeros(1)})
    assert results.read_item("a/done")[0]["x"].tolist() == [0, 1, 2]
    results.write_item("a/done", {"z": np.zeros(1)}, overwrite=True)
    assert set(results.read_item("a/done")[0]) == {"z"}


def test_run_binding(tmp_path):
    path = tmp_path / "results.h5"
    ResultsFile(path, "a", run_id=RUN_A).close()
    with pytest.raises(ConfigMismatchError) as err:
        ResultsFile(path, "a", run_id=RUN_B)
    msg = str(err.value)
    for part in (str(path), "a/run.h5", "aaaaaaaaaaaa", "b/run.h5", "bbbbbbbbbbbb", "use another --out"):
        assert part in msg, f"{part!r} missing from: {msg}"
    with pytest.raises(ConfigMismatchError):
        ResultsFile(path, "r", run_id=RUN_B)
    ResultsFile(path, "a", run_id=RUN_A).close()
    ResultsFile(path, "a").close()  # no run_id given: no check


def test_run_binding_uses_the_run_file_identity(writer_factory, synth, tmp_path):
    with writer_factory() as w:
        synth.run(w, 0, 4)
    run = RunFile(tmp_path / "run.h5")
    run_id = {"path": run.path, "run_sha256": run.file_sha256}
    ResultsFile(tmp_path / "results.h5", "a", run_id=run_id).close()
    writer_factory(mode="overwrite").close()  # a new run at the same path
    fresh = RunFile(tmp_path / "run.h5")
    with pytest.raises(ConfigMismatchError):
        ResultsFile(tmp_path / "results.h5", "a", run_id={"path": fresh.path, "run_sha256": fresh.file_sha256})


def test_block_dataset_resumes_with_only_the_missing_blocks(tmp_path):
    path, n, rows = tmp_path / "results.h5", 10, 4
    H = np.arange(n * n, dtype=np.float64).reshape(n, n)
    fingerprint = {"bn": "eval", "batch_size": 100}
    with ResultsFile(path, "a", run_id=RUN_A) as r:
        r.create_block_dataset("dense/step_0", "H", (n, n), "float64", rows, attrs=fingerprint)
        r.write_block("dense/step_0", "H", 4, H[4:8])
        with pytest.raises(InputError, match="misses blocks \\[0, 2\\]"):
            r.write_item("dense/step_0", {"lam": np.ones(2)})
    # "killed": reopen and continue
    with ResultsFile(path, "a", run_id=RUN_A) as r:
        r.create_block_dataset("dense/step_0", "H", (n, n), "float64", rows, attrs=fingerprint)
        done = r.blocks_done("dense/step_0", "H")
        assert done.tolist() == [False, True, False]
        written = []
        for b in np.flatnonzero(~done):
            r.write_block("dense/step_0", "H", b * rows, H[b * rows:(b + 1) * rows])
            written.append(int(b))
        assert written == [0, 2]
        r.write_item("dense/step_0", {"lam": np.ones(2)}, {"step": 0})
        arrays, attrs = r.read_item("dense/step_0")
        assert np.array_equal(arrays["H"], H) and set(arrays) == {"H", "lam"} and attrs["step"] == 0


def test_block_dataset_restarts_when_its_fingerprint_changes(results):
    results.create_block_dataset("d/s", "H", (6, 3), "float32", 3, attrs={"bn": "eval"})
    results.write_block("d/s", "H", 0, np.ones((3, 3)))
    results.create_block_dataset("d/s", "H", (6, 3), "float32", 3, attrs={"bn": "train"})
    assert results.blocks_done("d/s", "H").tolist() == [False, False]


@pytest.mark.parametrize("call,match", [
    (lambda r: r.write_block("d/s", "H", 1, np.ones((3, 3))), "multiple of block_rows=3"),
    (lambda r: r.write_block("d/s", "H", 0, np.ones((2, 3))), r"must have shape \(3, 3\)"),
    (lambda r: r.write_block("d/s", "G", 0, np.ones((3, 3))), "not a block dataset"),
    (lambda r: r.blocks_done("d/t", "H"), "no block dataset"),
    (lambda r: r.create_block_dataset("d/s", "G", (0, 3), "f4", 3), "non-empty shape"),
    (lambda r: r.write_item("d/s/inner", {}), "cannot nest"),
    (lambda r: r.write_item("d", {}), "group of other items"),
    (lambda r: r.write_item("bad key", {}), "not a valid name"),
    (lambda r: r.write_item("k", {"_x": 1}), "not a valid name"),
    (lambda r: r.write_item("k", {}, {"complete": 1}), "reserved"),
], ids=["start", "rows", "not-block", "no-block", "empty", "nest", "prefix", "key", "array-name", "attr"])
def test_bad_results_calls(results, call, match):
    results.create_block_dataset("d/s", "H", (5, 3), "float32", 3)
    with pytest.raises(InputError, match=match):
        call(results)


def test_read_item_of_a_missing_key_lists_what_exists(results):
    results.write_item("hessian/step_00000001/eigen", {"x": 1})
    with pytest.raises(FileFormatError, match=r"does not exist; complete items here: \['hessian/step_00000001/eigen'\]"):
        results.read_item(KEY)


def test_results_and_run_files_are_not_confused(writer_factory, tmp_path):
    writer_factory().close()
    with pytest.raises(FileFormatError, match="is a run file, not a results file"):
        ResultsFile(tmp_path / "run.h5", "a")
    ResultsFile(tmp_path / "results.h5", "a").close()
    with pytest.raises(FileFormatError, match="is a results file, not a run file"):
        RunFile(tmp_path / "results.h5")
