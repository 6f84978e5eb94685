"""Issue 13.7 and 13.13: registered models fit the data; a batch size that leaves examples out says so."""

import warnings

import pytest
import torch

from analyses.cli import main
from analyses.cli.info import format_info, run_info
from checkpoints import TrainConfig, open_run, train
from landscape.datasets import load_dataset
from landscape.errors import InputError
from landscape.io import RunFile
from landscape.models import build_model, fit_to_data, num_parameters

MNIST_SMALL = '{"num_train": 120, "num_test": 40}'


def test_mlp_trains_on_mnist1d_without_model_kwargs(tmp_path, capsys):
    """13.7: failed with 'mlp needs exactly one of in_dim … or input_shape' before."""
    out = tmp_path / "mlp.h5"
    rc = main(["train", "--model", "mlp", "--dataset", "mnist1d", "--dataset-kwargs", MNIST_SMALL, "--steps", "3",
               "--batch-size", "40", "--device", "cpu", "--no-progress", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    with RunFile(out) as f:
        assert f.model_kwargs == {} and f.meta["model_data_kwargs"] == {"input_shape": [40], "num_classes": 10}
        assert f.P == 40 * 128 + 128 + 128 * 10 + 10
    with open_run(out) as run:  # every later command rebuilds the same network
        assert num_parameters(run.model) == 40 * 128 + 128 + 128 * 10 + 10


FITS = [  # (model, dataset kwargs, expected kwargs taken from the data)
    ("mlp", dict(name="mnist1d"), {"input_shape": [40], "num_classes": 10}),
    ("cnn1d", dict(name="synthetic", input_shape=[2, 16], num_classes=4), {"input_length": 16, "in_channels": 2,
                                                                           "num_classes": 4}),
    ("deep_linear", dict(name="synthetic", input_shape=[6], task="regression", out_dim=2), {"in_dim": 6, "out_dim": 2}),
    ("resnet8", dict(name="synthetic", input_shape=[1, 8, 8], num_classes=3), {"in_channels": 1, "num_classes": 3}),
    ("resnet_100k", dict(name="synthetic", input_shape=[3, 8, 8], num_classes=5), {"in_channels": 3, "num_classes": 5}),
]


@pytest.mark.parametrize("model,spec,expected", FITS, ids=[f[0] for f in FITS])
def test_every_registered_model_takes_its_sizes_from_the_data(model, spec, expected):
    spec = dict(spec)
    data = load_dataset(spec.pop("name"), num_train=8, num_test=2, **spec)
    kwargs = fit_to_data(model, {}, data.input_shape, data.num_outputs)
    assert kwargs == expected
    net = build_model(model, seed=0, **kwargs).eval()
    out = net(data.x_train)
    assert out.shape == (8, data.num_outputs)


def test_given_arguments_are_never_overridden():
    assert fit_to_data("mlp", {"in_dim": 40, "out_dim": 3}, (40,), 10) == {"in_dim": 40, "out_dim": 3}
    assert fit_to_data("mynets:Net", {"width": 3}, (40,), 10) == {"width": 3}  # user factories untouched


@pytest.mark.parametrize("argv,needles", [
    (["--model", "resnet8", "--dataset", "mnist1d"], ["resnet8 takes images", "--model", "--dataset"]),
    (["--model", "mlp", "--model-kwargs", '{"in_dim": 40, "input_shape": [40]}', "--dataset", "mnist1d"],
     ["exactly one of in_dim", "--model-kwargs"]),
], ids=["resnet-on-vectors", "mlp-both-sizes"])
def test_remaining_model_errors_name_the_flag(argv, needles, tmp_path, capsys):
    rc = main(["train", *argv, "--dataset-kwargs", MNIST_SMALL, "--steps", "2", "--batch-size", "40",
               "--device", "cpu", "--no-progress", "--out", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("landscape ")]
    assert rc != 0 and len(lines) == 1, err
    assert all(n in lines[0] for n in needles), lines[0]
    assert not (tmp_path / "x.h5").exists()


def _cfg(batch_size: int) -> TrainConfig:
    return TrainConfig(dataset="mnist1d", dataset_kwargs={"num_train": 4000, "num_test": 10}, model="mlp",
                       model_kwargs={"hidden": [4]}, batch_size=batch_size, steps=1, save_every=0)


def test_a_batch_size_that_drops_a_quarter_warns_and_info_says_so(tmp_path):
    """13.13: batch 1024 on MNIST-1D's 4,000 examples leaves out 928 (23 %) each epoch, silently before."""
    torch.set_num_threads(1)
    with pytest.warns(UserWarning, match=r"leaves out 928 of them \(23.2 %"):
        train(_cfg(1024), tmp_path / "r.h5", progress=False)
    info = run_info(tmp_path / "r.h5")
    assert info["dropped_per_epoch"] == {"examples": 928, "fraction": 0.232}
    assert "each epoch leaves out 928 examples (23.2 %" in format_info(info)


def test_a_batch_size_that_drops_little_does_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(_cfg(1000), tmp_path / "a.h5", progress=False)   # divides: nothing left out
        train(_cfg(999), tmp_path / "b.h5", progress=False)    # 4 of 4,000 (0.1 %): below the threshold
    assert run_info(tmp_path / "b.h5")["dropped_per_epoch"]["examples"] == 4


def test_fit_refuses_a_cnn1d_on_images():
    with pytest.raises(InputError, match="cnn1d takes 1-D signals"):
        fit_to_data("cnn1d", {}, (3, 8, 8), 10)
