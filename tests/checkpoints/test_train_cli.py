"""``landscape train`` and ``landscape info`` end to end, and every bad input as one clear line."""

import errno
import json

import numpy as np
import pytest
from data_utils import make_cifar_batches, write_cifar_dir
from trainer_helpers import cli_args

from analyses.cli import main
from landscape.io import RunFile, sha256_array

MNIST = ["--dataset", "mnist1d", "--dataset-kwargs", '{"num_train": 128, "num_test": 32}', "--model", "cnn1d",
         "--model-kwargs", '{"channels": [8, 8]}', "--lr", "0.05", "--momentum", "0.9", "--batch-size", "32",
         "--device", "cpu", "--no-progress"]


def cli(argv, capsys):
    """(exit code, stdout, stderr) of ``landscape ARGV``."""
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *needles, code=None):
    assert rc != 0 and (code is None or rc == code), f"exit code {rc}"
    lines = [line for line in err.splitlines() if line.startswith("landscape ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("cli") / "run.h5"
    rc = main(["train", *MNIST, "--epochs", "2", "--save-every", "5", "--eval-every", "5", "--out", str(out)])
    assert rc == 0
    return out


def test_mnist1d_run_end_to_end(mnist_run):
    with RunFile(mnist_run) as f:  # 128 // 32 = 4 steps per epoch, 2 epochs
        assert f.status == "complete" and f.num_steps == 8
        assert f.saved_steps.tolist() == [0, 5, 8]
        assert f.config["augment"] is False and f.model_kwargs == {"channels": [8, 8]}
        assert f.eval_metrics()["step"].tolist() == [0, 5, 8]


def test_info_json_has_the_parameter_checksums(mnist_run, capsys):
    rc, out, _ = cli(["info", str(mnist_run), "--json"], capsys)
    assert rc == 0
    info = json.loads(out)
    assert info["kind"] == "run" and info["complete"] and info["steps_logged"] == 8
    with RunFile(mnist_run) as f:
        assert info["param_sha256"] == {str(s): sha256_array(f.params(s)) for s in f.saved_steps}
    rc, out, _ = cli(["info", str(mnist_run)], capsys)
    assert rc == 0 and "cnn1d" in out and "complete" in out and "last eval" in out


def test_info_on_a_results_file(tmp_path, capsys):
    from landscape.io import ResultsFile

    path = tmp_path / "results.h5"
    with ResultsFile(path, "a", run_id={"path": "run.h5", "run_sha256": "0" * 64}) as r:
        r.write_item("hessian/step_00000010/eigen", {"eigenvalues": np.arange(3.0)}, {"step": 10, "k": 3})
        r.write_item("hessian/step_00000010/trace", {"value": np.float64(12.5), "stderr": np.float64(0.25)},
                     {"step": 10})
    rc, out, _ = cli(["info", str(path), "--json"], capsys)
    info = json.loads(out)
    assert rc == 0 and info["kind"] == "results"
    assert info["items"]["hessian/step_00000010/eigen"]["step"] == 10
    assert info["items"]["hessian/step_00000010/eigen"]["arrays"] == {"eigenvalues": [3]}
    assert info["items"]["hessian/step_00000010/trace"]["values"] == {"value": 12.5, "stderr": 0.25}
    rc, out, _ = cli(["info", str(path)], capsys)  # scalars inline in the text summary
    assert rc == 0 and "value=12.5" in out and "stderr=0.25" in out and "eigenvalues(3,)" in out


def test_cifar_format_run_end_to_end(tmp_path, capsys):
    data = write_cifar_dir(tmp_path, make_cifar_batches(n_per_batch=4, seed=0))
    out = tmp_path / "cifar.h5"
    rc, _, err = cli(["train", "--dataset", "cifar10", "--data-dir", str(data), "--model", "resnet8",
                      "--model-kwargs", '{"width": 0.25}', "--batch-size", "8", "--steps", "4", "--schedule", "step",
                      "--milestones", "2", "--gamma", "0.1", "--momentum", "0.9", "--save-every", "2",
                      "--device", "cpu", "--no-progress", "--out", str(out)], capsys)
    assert rc == 0, err
    with RunFile(out) as f:
        assert f.status == "complete" and f.config["augment"] is True and f.saved_steps.tolist() == [0, 2, 4]
        assert f.step_metrics()["lr"].tolist() == [0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1]


def test_sibling_from_the_cli_inherits_the_parent(mnist_run, tmp_path, capsys):
    sib = tmp_path / "sibling.h5"
    rc, _, err = cli(["train", "--init-from", str(mnist_run), "--batches-from", str(mnist_run), "--schedule",
                      "constant", "--lr", "0.01", "--no-progress", "--out", str(sib)], capsys)
    assert rc == 0, err
    with RunFile(mnist_run) as p, RunFile(sib) as s:
        assert np.array_equal(p.params(0), s.params(0))
        assert np.array_equal(p.batch_indices_range(0, 8), s.batch_indices_range(0, 8))
        assert s.config["lr"] == 0.01 and s.config["model_kwargs"] == p.config["model_kwargs"]


def test_resume_of_a_complete_run_is_a_no_op(mnist_run, capsys):
    before = RunFile(mnist_run).param_sha256(8)
    rc, out, _ = cli(["train", "--resume", "--out", str(mnist_run), "--no-progress"], capsys)
    assert rc == 0 and "complete at step 8/8" in out
    assert RunFile(mnist_run).param_sha256(8) == before


def tiny_args(**extra):
    return ["train", *cli_args(), "--no-progress", *sum(([f"--{k}", str(v)] for k, v in extra.items()), [])]


BAD_INPUTS = [  # (argv, substrings of the one error line)
    (["train", *MNIST, "--model", "resnet1000", "--steps", "2"], ["unknown model 'resnet1000'"]),
    (["train", *MNIST, "--dataset", "imagenet", "--steps", "2"], ["unknown dataset 'imagenet'"]),
    (["train", *MNIST, "--dataset", "cifar10", "--data-dir", "/nonexistent/cifar", "--steps", "2",
      "--dataset-kwargs", "{}"], ["CIFAR-10"]),
    (["train", *MNIST], ["--steps N or --epochs N"]),
    (["train", *MNIST, "--steps", "2", "--momentum", "0", "--nesterov"], ["nesterov needs momentum"]),
    (["train", *MNIST, "--steps", "2", "--schedule", "step"], ["needs milestones"]),
]


@pytest.mark.parametrize("argv,needles", BAD_INPUTS, ids=["model", "dataset", "cifar-files", "length",
                                                         "nesterov", "milestones"])
def test_bad_input_is_one_clear_line(argv, needles, tmp_path, capsys):
    rc, _, err = cli([*argv, "--out", str(tmp_path / "x.h5")], capsys)
    assert_one_line_error(rc, err, *needles)
    assert not (tmp_path / "x.h5").exists()


def test_existing_output_is_refused(tmp_path, capsys):
    out = tmp_path / "run.h5"
    out.write_bytes(b"keep me")
    rc, _, err = cli([*tiny_args(), "--out", str(out)], capsys)
    assert_one_line_error(rc, err, "exists", "--overwrite")
    assert out.read_bytes() == b"keep me"


def test_resume_with_another_config_is_refused(mnist_run, capsys):
    rc, _, err = cli(["train", "--resume", "--out", str(mnist_run), "--lr", "0.3", "--no-progress"], capsys)
    assert_one_line_error(rc, err, "another configuration", "lr")


def test_resume_of_a_missing_file(tmp_path, capsys):
    rc, _, err = cli(["train", "--resume", "--out", str(tmp_path / "none.h5")], capsys)
    assert_one_line_error(rc, err, "none.h5")


def test_diverging_lr_exits_non_zero_naming_the_step(tmp_path, capsys):
    out = tmp_path / "div.h5"
    rc, _, err = cli([*tiny_args(), "--lr", "1e6", "--momentum", "0", "--steps", "200", "--out", str(out)], capsys)
    assert_one_line_error(rc, err, "diverged", "at step", code=3)
    with RunFile(out) as f:
        assert f.status == "diverged" and f"at step {f.num_steps}" in err


def test_full_disk_is_one_clear_line(tmp_path, capsys, monkeypatch):
    from landscape.io import RunWriter

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunWriter, "append_steps", full)
    rc, _, err = cli([*tiny_args(), "--out", str(tmp_path / "full.h5")], capsys)
    assert_one_line_error(rc, err, "no space left", "--resume")


def test_sibling_with_another_model_is_refused(mnist_run, tmp_path, capsys):
    rc, _, err = cli(["train", "--init-from", str(mnist_run), "--model-kwargs", '{"channels": [4, 4]}',
                      "--no-progress", "--out", str(tmp_path / "sib.h5")], capsys)
    assert_one_line_error(rc, err, "model")
