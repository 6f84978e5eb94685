"""Damaged and unsafe files: typed errors that name the file, never wrong data or a crash.

Damage kinds follow reliability.md §5.2 (empty, truncated, random bytes, flipped bits);
unsafe kinds follow R8 (external link, soft link, external storage, virtual dataset,
plugin filter). Exact comparisons only: there are no tolerances here.
"""

import h5py
import numpy as np
import pytest

from landscape.errors import CheckpointCorruptError, FileFormatError, UnsafeFileError
from landscape.io import ResultsFile, RunFile, RunWriter, file_kind
from io_synthetic import BATCH, B, P, make_meta

OPENERS = {"RunFile": RunFile, "ResultsFile": lambda p: ResultsFile(p, "r"), "file_kind": file_kind}


@pytest.fixture
def run_path(writer_factory, synth, tmp_path):
    with writer_factory() as w:
        synth.run(w, 0, 9)
    return tmp_path / "run.h5"


def flip_bit(path, dataset: str, row: int, byte: int = 17) -> None:
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        offset = ds.id.get_chunk_info_by_coord((row,) + (0,) * (ds.ndim - 1)).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + byte)
        value = fh.read(1)[0]
        fh.seek(offset + byte)
        fh.write(bytes([value ^ 0x04]))


@pytest.mark.parametrize("dataset,read", [
    ("snapshots/params", lambda run: run.params(4)),
    ("snapshots/momentum", lambda run: run.momentum(4)),
    ("steps/batch_indices", lambda run: run.batch_indices(3)),
])
def test_flipped_bit_in_stored_data_raises_checkpoint_corrupt(run_path, dataset, read):
    flip_bit(run_path, dataset, row=1 if dataset.startswith("snap") else 0)
    with RunFile(run_path) as run:
        with pytest.raises(CheckpointCorruptError, match=f"fletcher32.*{run_path}.*{dataset}"):
            read(run)
        assert run.params(0).shape == (P,), "undamaged rows stay readable"


def test_sha256_mismatch_raises_checkpoint_corrupt(run_path, synth):
    with h5py.File(run_path, "r+") as f:
        f["snapshots/params_sha256"][1] = b"0" * 64
    with RunFile(run_path) as run:
        with pytest.raises(CheckpointCorruptError, match=r"sha256 mismatch .*snapshots/params\[1\] \(step 4\)"):
            run.params(4)
        with pytest.raises(CheckpointCorruptError):
            run.verify()
        assert np.array_equal(run.params(8), synth.theta(8))


def _truncate_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _cut_tail(path):
    path.write_bytes(path.read_bytes()[:-4096])


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())


def _empty(path):
    path.write_bytes(b"")


def _flip_superblock(path):
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {"half": _truncate_half, "tail": _cut_tail, "random": _random_bytes, "empty": _empty,
          "superblock": _flip_superblock}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_files_raise_file_format_error_naming_the_path(run_path, damage):
    DAMAGE[damage](run_path)
    for name, opener in OPENERS.items():
        with pytest.raises(FileFormatError, match=str(run_path)):
            opener(run_path)
            pytest.fail(f"{name} accepted a file damaged by {damage}")


def test_resume_of_a_damaged_file_is_refused(run_path):
    _truncate_half(run_path)
    with pytest.raises(FileFormatError, match=str(run_path)):
        RunWriter(run_path, mode="resume", meta=make_meta(), P=P, B=B, batch_size=BATCH)


@pytest.mark.parametrize("opener", OPENERS, ids=list(OPENERS))
def test_missing_file_and_directory(tmp_path, opener):
    with pytest.raises(FileFormatError, match=f"no such file: {tmp_path / 'nope.h5'}"):
        OPENERS[opener](tmp_path / "nope.h5")
    with pytest.raises(FileFormatError, match=f"{tmp_path} is a directory"):
        OPENERS[opener](tmp_path)


def _external_link(f, tmp_path):
    f["snapshots/extra"] = h5py.ExternalLink(str(tmp_path / "secret.h5"), "/data")


def _soft_link(f, tmp_path):
    f["alias"] = h5py.SoftLink("/snapshots/params")


def _external_storage(f, tmp_path):
    f.create_dataset("ext", shape=(4,), dtype="f4", external=[(str(tmp_path / "secret.bin"), 0, 16)])


def _virtual(f, tmp_path):
    layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
    layout[:] = h5py.VirtualSource(str(tmp_path / "secret.h5"), "/data", shape=(4,))
    f.create_virtual_dataset("vds", layout)


def _plugin_filter(f, tmp_path):
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((4,))
    dcpl.set_filter(32001, h5py.h5z.FLAG_OPTIONAL, ())
    h5py.h5d.create(f.id, b"plugin", h5py.h5t.NATIVE_FLOAT, h5py.h5s.create_simple((8,)), dcpl=dcpl)


UNSAFE = {"external-link": (_external_link, "ExternalLink"), "soft-link": (_soft_link, "SoftLink"),
          "external-storage": (_external_storage, "external storage"),
          "virtual": (_virtual, "virtual dataset"), "plugin": (_plugin_filter, "filter 32001")}


@pytest.mark.parametrize("kind", UNSAFE, ids=list(UNSAFE))
@pytest.mark.parametrize("target_exists", [False, True], ids=["no-target", "target"])
def test_unsafe_files_are_refused_without_reading_the_target(run_path, tmp_path, kind, target_exists):
    """With no target, any dereference would fail differently; with one, it must stay unread."""
    add, what = UNSAFE[kind]
    if target_exists:
        with h5py.File(tmp_path / "secret.h5", "w") as s:
            s["data"] = np.arange(4, dtype="f4")
        (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    results = tmp_path / "results.h5"
    ResultsFile(results, "a").close()
    for path in (run_path, results):
        with h5py.File(path, "a") as f:
            add(f, tmp_path)
    cases = [(RunFile, run_path), (lambda p: ResultsFile(p, "r"), results), (file_kind, run_path),
             (file_kind, results)]
    for opener, path in cases:
        with pytest.raises(UnsafeFileError, match=f"{path}.*{what}"):
            opener(path)


def test_resume_and_results_append_refuse_unsafe_files(run_path, tmp_path):
    with h5py.File(run_path, "a") as f:
        _soft_link(f, tmp_path)
    before = run_path.read_bytes()
    with pytest.raises(UnsafeFileError):
        RunWriter(run_path, mode="resume", meta=make_meta(), P=P, B=B, batch_size=BATCH)
    assert run_path.read_bytes() == before, "the unsafe file was opened for writing"
    results = tmp_path / "results.h5"
    ResultsFile(results, "a").close()
    with h5py.File(results, "a") as f:
        _external_link(f, tmp_path)
    with pytest.raises(UnsafeFileError):
        ResultsFile(results, "a")
