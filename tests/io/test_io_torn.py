"""A writer killed while HDF5 rewrites the chunk at the commit frontier (landscape.io._frontier).

The SIGKILL test (test_io_kill.py) met this state by chance in CI: the kernel stopped the
in-place write of a ``steps/batch_indices`` chunk between pages, so the chunk held new
bytes up to the tear and old bytes (with the old fletcher32 checksum) after it, and the
committed rows in it — identical in both versions — could not be read. Here the tear is
made on purpose: the old chunk's bytes from an offset past the committed rows are written
over the new chunk, exactly what an interrupted in-place write leaves. Exact comparisons.
"""

import json

import h5py
import numpy as np
import pytest

from landscape.errors import CheckpointCorruptError
from landscape.io import RunFile, RunWriter
from landscape.io._frontier import fletcher32
from io_synthetic import P, make_meta

TORN = ("steps/batch_indices", "steps/loss", "snapshots/step", "snapshots/params_sha256",
        "evals/train_loss", "sharpness/eigenvalues")


def tear(path, name: str, committed: int, extra_rows: int = 3) -> None:
    """Append ``extra_rows`` uncommitted rows to ``name`` and tear the frontier chunk's write."""
    with h5py.File(path, "r") as f:
        ds = f[name]
        offset = (committed - committed % ds.chunks[0],) + (0,) * (ds.ndim - 1)
        _, old = ds.id.read_direct_chunk(offset)
        row_bytes = int(np.prod(ds.chunks[1:], dtype=int)) * ds.dtype.itemsize
        cut = (committed % ds.chunks[0]) * row_bytes + row_bytes // 2  # inside the first new row
    with h5py.File(path, "r+") as f:
        ds = f[name]
        ds.resize(committed + extra_rows, axis=0)
        ds[committed:] = ds[committed - 1] if ds.dtype.kind == "S" else np.full_like(ds[committed:], 7.3)  # bytes unlike the fill
        f.flush()
        where = ds.id.get_chunk_info_by_coord(offset).byte_offset
    with open(path, "r+b") as fh:  # the tear: the write stopped at `cut`
        fh.seek(where + cut)
        fh.write(old[cut:])


def committed_counts(path) -> dict:
    with h5py.File(path, "r") as f:
        return dict(zip(("steps", "snapshots", "evals", "sharpness"), f["committed"][:].tolist()))


@pytest.fixture
def torn_run(writer_factory, synth, tmp_path):
    with writer_factory() as w:
        synth.run(w, 0, 11)
    path = tmp_path / "run.h5"
    counts = committed_counts(path)
    for name in TORN:
        tear(path, name, counts[name.split("/")[0]])
    return path


def test_the_torn_chunk_fails_its_checksum_through_plain_hdf5(torn_run):
    with h5py.File(torn_run, "r") as f:
        with pytest.raises(OSError, match="filter returned failure"):
            f["steps/batch_indices"][:3]


def test_committed_rows_of_a_torn_frontier_chunk_are_read_exactly(torn_run, synth):
    with RunFile(torn_run) as run:
        assert run.num_steps == 11 and run.saved_steps.tolist() == [0, 4, 8]
        assert np.array_equal(run.batch_indices_range(0, 11), synth.batches(0, 11))
        assert np.array_equal(run.step_metrics()["loss"], np.arange(11) * 0.25)
        assert np.array_equal(run.eval_metrics()["train_loss"], 1.0 / np.array([1, 5, 9]))
        assert np.array_equal(run.sharpness()["eigenvalues"][:, 0], [3.0, 7.0, 11.0])
        assert run.verify() == 9
        assert np.array_equal(run.params(8), synth.theta(8))


def test_resume_reseals_the_torn_chunks_and_the_log_continues(torn_run, synth):
    with RunWriter(torn_run, mode="resume", meta=make_meta(), P=P, B=4, batch_size=6) as w:
        assert w.committed_steps == 8
        synth.run(w, 8, 20)
    with h5py.File(torn_run, "r") as f:  # every chunk passes its checksum again
        for name in TORN:
            f[name][:]
        resume = [e for e in json.loads(f.attrs["history"]) if e["event"] == "resume"]
    assert len(resume) == 1
    assert sorted(resume[0]["resealed_chunks"]) == sorted("/" + n for n in TORN)
    with RunFile(torn_run) as run:
        assert np.array_equal(run.batch_indices_range(0, 20), synth.batches(0, 20))
        assert run.saved_steps.tolist() == [0, 4, 8, 12, 16]


def test_damage_below_the_frontier_block_is_still_refused(writer_factory, synth, tmp_path):
    with writer_factory() as w:  # 1030 committed steps: block 0 (rows 0-1023) is below the frontier
        synth.snapshot(w, 0)
        synth.steps(w, 0, 1030)
        w.commit()
    path = tmp_path / "run.h5"
    tear(path, "steps/loss", 1030)
    with h5py.File(path, "r") as f:
        where = f["steps/loss"].id.get_chunk_info_by_coord((0,)).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(where + 80)
        byte = fh.read(1)[0]
        fh.seek(where + 80)
        fh.write(bytes([byte ^ 0x10]))
    with RunFile(path) as run:
        with pytest.raises(CheckpointCorruptError, match="fletcher32.*steps/loss"):
            run.step_metrics()
        assert np.array_equal(run.aug_seeds(1000, 1030), np.arange(1000, 1030) + 100), "torn block read"


@pytest.mark.parametrize("dtype", ["int32", "float64", "S64", "uint8"])
@pytest.mark.parametrize("rows", [1, 7, 256, 1031])
def test_fletcher32_matches_hdf5(tmp_path, dtype, rows):
    """Our checksum equals the one HDF5 stores (random data, all-zero and all-one bytes)."""
    rng = np.random.default_rng(rows)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        for i, fill in enumerate((None, 0x00, 0xFF)):
            raw = rng.integers(0, 256, rows * np.dtype(dtype).itemsize, dtype=np.uint8)
            raw[:] = raw if fill is None else fill
            data = np.frombuffer(raw.tobytes(), dtype)
            ds = f.create_dataset(f"d{i}", data=data, chunks=(rows,), fletcher32=True)
            _, stored = ds.id.read_direct_chunk((0,))
            assert int.from_bytes(stored[-4:], "little") == fletcher32(stored[:-4])


def flip_committed_byte(path, name: str) -> None:
    """Flip one bit of the first committed row of ``name``'s first chunk (bit rot, not a tear)."""
    with h5py.File(path, "r") as f:
        where = f[name].id.get_chunk_info_by_coord((0,) * f[name].ndim).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(where + 1)
        byte = fh.read(1)[0]
        fh.seek(where + 1)
        fh.write(bytes([byte ^ 0x01]))


def test_damage_inside_a_torn_block_is_refused_by_its_frontier_record(torn_run):
    tear(torn_run, "steps/aug_seed", 11)
    flip_committed_byte(torn_run, "steps/aug_seed")
    with RunFile(torn_run) as run:
        with pytest.raises(CheckpointCorruptError, match="aug_seed.*do not match their /frontier record"):
            run.aug_seeds(0, 11)
        assert np.array_equal(run.step_metrics()["loss"], np.arange(11) * 0.25), "the other logs read"
    with pytest.raises(CheckpointCorruptError, match="aug_seed"):  # never resealed over
        RunWriter(torn_run, mode="resume", meta=make_meta(), P=P, B=4, batch_size=6)


def test_a_file_without_frontier_records_reads_its_torn_rows_with_a_warning(torn_run, synth):
    with h5py.File(torn_run, "r+") as f:  # as written before /frontier existed
        del f["frontier"]
    with pytest.warns(RuntimeWarning, match="snapshots/.* were read without a checksum"):
        run = RunFile(torn_run)
    with run, pytest.warns(RuntimeWarning, match="batch_indices were read without a checksum"):
        assert np.array_equal(run.batch_indices_range(0, 11), synth.batches(0, 11))
    with pytest.warns(RuntimeWarning):
        w = RunWriter(torn_run, mode="resume", meta=make_meta(), P=P, B=4, batch_size=6)
    with w:
        synth.run(w, 8, 12)
    with h5py.File(torn_run, "r") as f:
        assert "frontier" in f and f["frontier"][()].shape == (len(json.loads(f["frontier"].attrs["datasets"])), 2)
    with RunFile(torn_run) as run:
        assert np.array_equal(run.batch_indices_range(0, 12), synth.batches(0, 12))
