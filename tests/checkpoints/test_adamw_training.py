"""AdamW in the trainer: state in every snapshot, bitwise replay and resume after SIGKILL, and the
preconditioned online sharpness λ_max(P⁻¹H) against a dense float64 computation."""

import numpy as np
import pytest
import torch
from trainer_helpers import TINY, assert_runs_equal, cli_args, kill_when_paused, train_subprocess

from checkpoints import TrainConfig, open_run, resume, train
from checkpoints.train import PAUSE_ENV
from landscape.curvature import dense_hessian
from landscape.io import RunFile
from landscape.optim import adam_preconditioner

CHILD_TIMEOUT_S = 120
ADAMW = dict(optimizer="adamw", lr=0.005, momentum=0.0, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
# The online value comes from eigsh (tol 1e-7) on float32 HVPs of the float32 model, the oracle from a
# dense float64 Hessian: they agree to float32 rounding of the products, ~1e-6 relative; 1e-4 leaves room.
SHARPNESS_RTOL = 1e-4


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("adamw") / "ref.h5"
    train(TrainConfig(**{**TINY, **ADAMW}), path, progress=False)
    return path


def test_adamw_snapshots_hold_both_moments_and_the_optimizer(reference):
    with RunFile(reference) as f:
        assert f.config["optimizer"] == "adamw" and f.config["betas"] == [0.9, 0.99]
        m, v = f.momentum(10), f.second_moment(10)
        assert m.shape == v.shape == (f.P,) and (v >= 0).all() and np.abs(m).max() > 0
        assert not f.has_vector("second_moment", 0) or not f.second_moment(0).any()  # v_0 = 0


def test_replay_of_an_unsaved_step_is_bitwise(reference, tmp_path):
    other = tmp_path / "saved15.h5"
    train(TrainConfig(**{**TINY, **ADAMW, "save_steps": (15,)}), other, progress=False)
    with open_run(reference) as run, RunFile(other) as f:
        assert 15 not in run.saved_steps
        assert np.array_equal(run.theta(15).numpy(), f.params(15))
        assert np.array_equal(run.state(15).second_moment.numpy(), f.second_moment(15))


def test_adamw_resumes_bitwise_after_sigkill(reference, tmp_path):
    out = tmp_path / "killed.h5"
    args = cli_args({"momentum": 0.0, "lr": ADAMW["lr"], "weight_decay": ADAMW["weight_decay"]})
    args += ["--optimizer", "adamw", "--betas", "0.9,0.99", "--out", str(out), "--no-progress"]
    proc = train_subprocess(args, env={PAUSE_ENV: "snapshot:20", PAUSE_ENV + "_SECONDS": "60"})
    kill_when_paused(proc, CHILD_TIMEOUT_S)
    with RunFile(out) as f:
        assert f.status == "running" and f.saved_steps[-1] == 10
    resume(out, progress=False)
    assert_runs_equal(reference, out)


def test_preconditioned_sharpness_matches_a_dense_computation(tmp_path):
    """λ_max(P⁻¹H) logged online = the top eigenvalue of D H D (D = P^{-1/2}) from a dense float64 H."""
    torch.set_num_threads(1)
    cfg = TrainConfig(dataset="synthetic", dataset_kwargs={"num_train": 64, "num_test": 16, "input_shape": [6],
                                                            "num_classes": 3},
                      model="mlp", model_kwargs={"hidden": [8], "activation": "tanh"}, **ADAMW, batch_size=16,
                      steps=12, save_every=6, sharpness_every=6, sharpness_k=2, sharpness_subset=64,
                      sharpness_bn="eval", sharpness_tol=1e-7, sharpness_max_matvecs=400)
    path = tmp_path / "eos.h5"
    train(cfg, path, progress=False)
    with open_run(path) as run:
        sharp = run.file.sharpness()
        assert np.isnan(sharp["eigenvalues"][0]).all()  # step 0: no second moment yet
        for row, step in enumerate(sharp["step"][1:], start=1):
            obj = run.objective(int(step), dtype=torch.float64)
            H = dense_hessian(obj, obj.theta)
            d = adam_preconditioner(torch.from_numpy(run.file.second_moment(int(step))).double(), int(step),
                                    cfg.betas, cfg.eps).rsqrt()
            top = torch.linalg.eigvalsh(d[:, None] * (H + H.T) / 2 * d[None, :]).flip(0)[:2].numpy()
            np.testing.assert_allclose(sharp["eigenvalues"][row], top, rtol=SHARPNESS_RTOL)
            assert top[0] > 10 * torch.linalg.eigvalsh((H + H.T) / 2)[-1].item()  # P⁻¹ matters: not λ_max(H)
