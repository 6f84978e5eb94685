"""Data sets: the safe CIFAR pickle reader, CIFAR-10 from a directory/tarball, MNIST-1D, synthetic."""

import hashlib
import io
import json
import os
import pickle
import random
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from data_utils import (OFFICIAL_META, OFFICIAL_META_DICT, OFFICIAL_META_MD5, dumps, make_cifar_batches,
                        py2_dumps, write_cifar_dir, write_cifar_tarball)
from landscape import datasets
from landscape.datasets import (CIFAR10_MEAN, CIFAR10_STD, CIFAR10_URL, Dataset, _PickleReader,
                                load_dataset, load_dataset_from_spec)
from landscape.errors import (CheckpointCorruptError, ConfigMismatchError, FileFormatError, InputError,
                              UnsafeFileError)

# Normalized pixels (p − 255·m)/(255·s) in float32, undone in float32: |error| ≲ 1e-7 · 255/0.24 ≈ 1e-4.
PIXEL_ATOL = 1e-3
# Standardized MNIST-1D: train mean 0 and std 1 up to float32 accumulation over 160k values.
STANDARDIZE_ATOL = 1e-4
# A linear least-squares classifier on a noise-free linear teacher (D = 20, N = 2000) reaches ≈ 0.85;
# chance is 0.1. 0.7 separates "learnable" from "broken labels" with a wide margin.
SYNTHETIC_MIN_ACCURACY = 0.7
# Separation 8 puts class means 8 noise standard deviations apart: pairwise Bayes error Φ(−4) ≈ 3e-5, so the
# nearest-mean rule with means estimated from 100 examples per class is essentially always right.
MIXTURE_MIN_ACCURACY = 0.98
# Least squares recovers a noise-free linear teacher up to float32 rounding of the solve.
TEACHER_ATOL = 1e-3


def assert_same_data(a: Dataset, b: Dataset) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test"):
        ta, tb = getattr(a, name), getattr(b, name)
        assert ta.shape == tb.shape and ta.dtype == tb.dtype, f"{name}: {ta.shape}/{ta.dtype} vs {tb.shape}/{tb.dtype}"
        assert torch.equal(ta, tb), f"{name} differs in {(ta != tb).sum().item()} entries"
    assert a.checksum == b.checksum


# ----------------------------------------------------------------------------- pickle reader


def test_reader_parses_the_official_batches_meta():
    assert hashlib.md5(OFFICIAL_META).hexdigest() == OFFICIAL_META_MD5
    assert _PickleReader(OFFICIAL_META).load() == OFFICIAL_META_DICT


def test_helper_writes_the_official_dialect_byte_for_byte():
    assert py2_dumps(OFFICIAL_META_DICT) == OFFICIAL_META


@pytest.mark.parametrize("dialect", ["py2", "py3", "py3-4"])
def test_reader_agrees_with_the_standard_library(dialect):
    batch = make_cifar_batches(n_per_batch=300, seed=1)["data_batch_1"]  # > 256 memo entries: LONG_BINPUT
    raw = dumps(batch, dialect)
    ours, ref = _PickleReader(raw).load(), pickle.loads(raw, encoding="bytes")
    assert sorted(ours) == sorted(ref)
    assert ours[b"data"].dtype == np.uint8 and np.array_equal(ours[b"data"], ref[b"data"])
    assert ours[b"labels"] == ref[b"labels"] and ours[b"filenames"] == ref[b"filenames"]


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_reader_refuses_code_and_never_runs_it(tmp_path, protocol):
    marker = tmp_path / "pwned"
    raw = pickle.dumps({b"data": _Exploit(marker), b"labels": []}, protocol=protocol)
    with pytest.raises(UnsafeFileError, match="system"):
        datasets._parse_batch(raw, "data_batch_1")
    assert not marker.exists()


@pytest.mark.parametrize("raw,match", [
    (b"\x80\x02}q\x01(U\x04data", "truncated"),
    (b"\x80\x02}q\x01.", "KeyError"),
    (pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}, protocol=2), "3072"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, protocol=2), "0..9"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.float64), b"labels": [0, 1]}, protocol=2), "uint8"),
    (b"\x80\x02I1\n.", "opcode"),
])
def test_malformed_batches_raise_file_format_error(raw, match):
    with pytest.raises(FileFormatError, match=match):
        datasets._parse_batch(raw, "data_batch_1")


# ----------------------------------------------------------------------------- CIFAR-10


@pytest.fixture(scope="module")
def batches():
    return make_cifar_batches(n_per_batch=4, n_test=6, seed=0)


def expected_arrays(batches):
    names = [f"data_batch_{i}" for i in range(1, 6)]
    data = np.concatenate([batches[n][b"data"] for n in names])
    labels = np.concatenate([batches[n][b"labels"] for n in names])
    return data, labels, batches["test_batch"][b"data"], np.array(batches["test_batch"][b"labels"])


@pytest.mark.parametrize("dialect", ["py2", "py3"])
def test_cifar10_from_directory(tmp_path, batches, dialect):
    write_cifar_dir(tmp_path, batches, dialect)
    data = load_dataset("cifar10", data_dir=tmp_path)
    x, y, x_test, y_test = expected_arrays(batches)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (6, 3, 32, 32)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert np.array_equal(data.y_train.numpy(), y) and np.array_equal(data.y_test.numpy(), y_test)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (CIFAR10_MEAN, CIFAR10_STD))
    pixels = (data.x_train * std + mean) * 255  # rows are R (1024), G, B, each row-major 32×32
    err = (pixels.reshape(20, 3072) - torch.from_numpy(x).float()).abs().max().item()
    assert err < PIXEL_ATOL, f"normalized pixels undo to the raw bytes within {err}"
    assert data.num_classes == 10 and data.input_shape == (3, 32, 32)


def test_cifar10_directory_variants_give_the_same_data(tmp_path, batches):
    directory = write_cifar_dir(tmp_path, batches)
    a, b = load_dataset("cifar10", data_dir=tmp_path), load_dataset("cifar10", data_dir=directory)
    assert_same_data(a, b)
    raw = load_dataset("cifar10", data_dir=tmp_path, normalize=False, num_train=7, num_test=2)
    x, y, _, _ = expected_arrays(batches)
    assert raw.x_train.shape == (7, 3, 32, 32) and raw.x_test.shape == (2, 3, 32, 32)
    err = (raw.x_train.reshape(7, 3072) * 255 - torch.from_numpy(x[:7]).float()).abs().max().item()
    assert err < PIXEL_ATOL and np.array_equal(raw.y_train.numpy(), y[:7])


def test_cifar10_tarball_matches_directory_and_checks_md5(tmp_path, batches):
    write_cifar_dir(tmp_path / "dir", batches)
    tarball, md5 = write_cifar_tarball(tmp_path / "tar", batches)
    from_dir = load_dataset("cifar10", data_dir=tmp_path / "dir")
    assert_same_data(from_dir, load_dataset("cifar10", data_dir=tmp_path / "tar", tar_md5=md5))
    assert_same_data(from_dir, load_dataset("cifar10", data_dir=tarball, tar_md5=md5))
    with pytest.raises(CheckpointCorruptError, match=f"{md5}.*expected c58f30108f718f92721af3b95e74349a"):
        load_dataset("cifar10", data_dir=tarball)


def test_cifar10_missing_data_names_the_paths_tried(tmp_path):
    with pytest.raises(FileFormatError) as info:
        load_dataset("cifar10", data_dir=tmp_path / "nowhere")
    message = str(info.value)
    print(message)
    for part in ("nowhere/data_batch_1", "nowhere/cifar-10-batches-py/data_batch_1",
                 "nowhere/cifar-10-python.tar.gz", CIFAR10_URL, "download=True"):
        assert part in message, f"{part!r} missing from: {message}"


def test_cifar10_incomplete_directory_names_the_missing_file(tmp_path, batches):
    directory = write_cifar_dir(tmp_path, batches)
    (directory / "test_batch").unlink()
    with pytest.raises(FileFormatError, match="missing.*test_batch"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar10_offline_download_is_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileFormatError, match=f"could not download {CIFAR10_URL}.*no network"):
        load_dataset("cifar10", data_dir=tmp_path, download=True)
    assert list(tmp_path.iterdir()) == [], "a failed download must leave no partial file"


def test_cifar10_download_writes_checks_and_loads_the_tarball(tmp_path, batches, monkeypatch):
    """The download path end to end, with urlopen serving a local tarball instead of the network."""
    tarball, md5 = write_cifar_tarball(tmp_path / "server", batches)
    served = []

    def serve(url, timeout=None):
        served.append(url)
        return io.BytesIO(tarball.read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    data = load_dataset("cifar10", data_dir=tmp_path / "data", download=True, tar_md5=md5)
    assert served == [CIFAR10_URL] and (tmp_path / "data" / "cifar-10-python.tar.gz").is_file()
    assert "download" not in data.spec
    with pytest.raises(CheckpointCorruptError, match="MD5"):
        load_dataset("cifar10", data_dir=tmp_path / "data2", download=True)
    assert not (tmp_path / "data2" / "cifar-10-python.tar.gz").exists()


def test_cifar10_spec_round_trip(tmp_path, batches, monkeypatch):
    write_cifar_dir(tmp_path, batches)
    data = load_dataset("cifar10", data_dir=tmp_path, num_train=9)
    monkeypatch.chdir("/")  # the spec holds an absolute path
    assert_same_data(data, load_dataset_from_spec(json.loads(json.dumps(data.spec))))


# ----------------------------------------------------------------------------- MNIST-1D


def _refuse_network(*args, **kwargs):
    raise AssertionError("MNIST-1D generation tried to use the network")


@pytest.fixture(scope="module")
def mnist1d_default():
    """The package-default MNIST-1D (4000 + 1000), generated once with the network switched off."""
    datasets._mnist1d_arrays.cache_clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse_network)
        mp.setattr(urllib.request, "urlopen", _refuse_network)
        return load_dataset("mnist1d")


def test_mnist1d_defaults(mnist1d_default):
    d = mnist1d_default
    assert d.x_train.shape == (4000, 40) and d.x_test.shape == (1000, 40) and d.num_classes == 10
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert abs(d.x_train.mean().item()) < STANDARDIZE_ATOL and abs(d.x_train.std().item() - 1) < STANDARDIZE_ATOL
    counts = torch.bincount(torch.cat([d.y_train, d.y_test]), minlength=10)
    assert counts.tolist() == [500] * 10, counts
    assert d.spec == {"name": "mnist1d", "seed": 42, "num_train": 4000, "num_test": 1000}


def test_mnist1d_is_deterministic_without_touching_global_rngs(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _refuse_network)
    random.seed(7), np.random.seed(7)
    states = random.getstate(), np.random.get_state()[1].copy()
    datasets._mnist1d_arrays.cache_clear()
    a = load_dataset("mnist1d", num_train=80, num_test=20, seed=3)
    datasets._mnist1d_arrays.cache_clear()
    b = load_dataset("mnist1d", num_train=80, num_test=20, seed=3)
    assert_same_data(a, b)
    assert random.getstate() == states[0] and np.array_equal(np.random.get_state()[1], states[1])
    c = load_dataset("mnist1d", num_train=80, num_test=20, seed=4)
    assert not torch.equal(a.x_train, c.x_train)


def test_mnist1d_generator_args_and_spec_round_trip():
    d = load_dataset("mnist1d", num_train=40, num_test=10, iid_noise_scale=0.1, final_seq_length=30)
    assert d.x_train.shape == (40, 30)
    assert d.spec["iid_noise_scale"] == 0.1
    assert_same_data(d, load_dataset_from_spec(json.loads(json.dumps(d.spec))))


@pytest.mark.parametrize("kwargs,match", [
    ({"num_train": 45, "num_test": 10}, "multiple of 10"),
    ({"num_train": 0}, "positive integer"),
    ({"url": "http://example.com"}, "unknown generator argument"),
    ({"seed": -1}, "seed must be an integer"),
])
def test_mnist1d_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        load_dataset("mnist1d", **kwargs)


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_shapes_determinism_and_independent_splits():
    a = load_dataset("synthetic", num_train=64, num_test=16, input_shape=(3, 8, 8), num_classes=5, seed=1)
    assert a.x_train.shape == (64, 3, 8, 8) and a.y_train.shape == (64,) and a.num_classes == 5
    assert_same_data(a, load_dataset_from_spec(json.loads(json.dumps(a.spec))))
    more_test = load_dataset("synthetic", num_train=64, num_test=40, input_shape=(3, 8, 8), num_classes=5, seed=1)
    assert torch.equal(a.x_train, more_test.x_train) and torch.equal(a.x_test, more_test.x_test[:16])
    other = load_dataset("synthetic", num_train=64, num_test=16, input_shape=(3, 8, 8), num_classes=5, seed=2)
    assert not torch.equal(a.x_train, other.x_train)


def test_synthetic_classification_is_learnable():
    d = load_dataset("synthetic", num_train=2000, num_test=500, input_shape=(20,), num_classes=10, seed=0)
    Y = torch.nn.functional.one_hot(d.y_train, 10).float()
    W = torch.linalg.lstsq(d.x_train, Y).solution
    accuracy = ((d.x_test @ W).argmax(1) == d.y_test).float().mean().item()
    print("least-squares test accuracy:", accuracy)
    assert accuracy > SYNTHETIC_MIN_ACCURACY
    assert torch.bincount(d.y_train, minlength=10).min() > 0


def test_synthetic_regression_recovers_the_teacher():
    d = load_dataset("synthetic", num_train=200, num_test=50, input_shape=8, task="regression", out_dim=3)
    assert d.y_train.shape == (200, 3) and d.y_train.dtype == torch.float32 and d.num_classes == 0
    W = torch.linalg.lstsq(d.x_train, d.y_train).solution
    err = (d.x_test @ W - d.y_test).abs().max().item()
    assert err < TEACHER_ATOL, f"least squares misses the noise-free teacher by {err}"


# ----------------------------------------------------------------------------- Dataset


def test_checksum_is_sha256_of_headers_and_bytes():
    d = load_dataset("synthetic", num_train=3, num_test=2, input_shape=(2,), num_classes=2)
    h = hashlib.sha256()
    for t in (d.x_train, d.y_train, d.x_test, d.y_test):
        h.update(f"{t.dtype} {tuple(t.shape)}\n".encode() + t.numpy().tobytes())
    assert d.checksum == h.hexdigest()
    assert d.to("cpu").checksum == d.checksum
    changed = Dataset(d.x_train + 1, d.y_train, d.x_test, d.y_test, num_classes=2, spec=d.spec)
    assert changed.checksum != d.checksum


def test_spec_with_wrong_checksum_is_refused():
    d = load_dataset("synthetic", num_train=4, num_test=2, input_shape=(3,))
    assert load_dataset_from_spec(d.spec, checksum=d.checksum).checksum == d.checksum
    with pytest.raises(ConfigMismatchError, match="expected 0000"):
        load_dataset_from_spec(d.spec, checksum="0000")


def test_empty_and_unknown_inputs_raise_input_error():
    with pytest.raises(InputError, match="test split is empty"):
        Dataset(torch.zeros(2, 3), torch.zeros(2), torch.zeros(0, 3), torch.zeros(0), num_classes=2,
                spec={"name": "x"})
    with pytest.raises(InputError, match="num_train must be a positive integer"):
        load_dataset("synthetic", num_train=0)
    with pytest.raises(InputError, match="seed must be an integer"):
        load_dataset("synthetic", seed=1.5)
    with pytest.raises(InputError, match="unknown dataset 'cifar100'.*mnist1d"):
        load_dataset("cifar100")
    with pytest.raises(InputError, match=r"\['num_samples'\].*accepts"):
        load_dataset("synthetic", num_samples=3)


def test_synthetic_mixture_is_balanced_and_separated():
    d = load_dataset("synthetic", num_train=403, num_test=100, input_shape=(16,), num_classes=4, task="mixture",
                     separation=8.0, seed=3)
    counts = torch.bincount(d.y_train, minlength=4)
    assert counts.max() - counts.min() <= 1 and d.num_classes == 4
    means = torch.stack([d.x_train[d.y_train == c].mean(0) for c in range(4)])
    nearest = torch.cdist(d.x_test, means).argmin(1)          # the nearest class mean: near Bayes-optimal
    assert (nearest == d.y_test).float().mean() > MIXTURE_MIN_ACCURACY
    assert_same_data(d, load_dataset_from_spec(json.loads(json.dumps(d.spec))))
    with pytest.raises(InputError, match="separation"):
        load_dataset("synthetic", task="mixture", separation=-1.0)
