"""Online sharpness: the logged top eigenvalues are those of the dense Hessian of the subset loss."""

import numpy as np
import torch

from analyses.cli import main
from checkpoints import open_run
from landscape.curvature import dense_hessian
from landscape.io import RunFile

EIGSH_TOL = 1e-5  # eigsh's residual target ‖Hv − λv‖ / ‖H‖ for the logged measurements
# A Ritz value with residual r lies within ‖r‖ of an eigenvalue (Bauer–Fike for symmetric H), so
# |λ_logged − λ_dense| ≤ EIGSH_TOL·‖H‖ ≈ EIGSH_TOL·λ_max, plus the float32 HVP rounding (~1e-6 relative).
SHARPNESS_RTOL = EIGSH_TOL + 1e-5

ARGS = ["--dataset", "mnist1d", "--dataset-kwargs", '{"num_train": 128, "num_test": 32}', "--model", "mlp",
        "--model-kwargs", '{"in_dim": 40, "hidden": [4]}', "--lr", "0.5", "--steps", "10", "--save-every", "5",
        "--full-batch", "--sharpness-every", "10", "--sharpness-k", "2", "--sharpness-subset", "64",
        "--sharpness-tol", str(EIGSH_TOL), "--device", "cpu", "--no-progress"]


def test_sharpness_matches_the_dense_hessian(tmp_path):
    """The CLI example ``--full-batch --sharpness-every k --sharpness-k 2`` against a dense oracle."""
    out = tmp_path / "eos.h5"
    assert main(["train", *ARGS, "--out", str(out)]) == 0
    with RunFile(out) as f:
        s = f.sharpness()
        assert s["step"].tolist() == [0, 10] and s["eigenvalues"].shape == (2, 2)
        assert s["lr"].tolist() == [0.5] * 2 and f.batch_size == 128 and f.full_batch
    with open_run(out) as run:
        for row, step in ((0, 0), (1, 10)):  # a cold start and a warm-started measurement
            obj = run.objective(step, subset=64, bn=run.config.sharpness_bn)
            dense = torch.linalg.eigvalsh(dense_hessian(obj, obj.theta).double()).flip(0)[:2].numpy()
            logged = s["eigenvalues"][row]
            err = np.abs(logged - dense) / np.abs(dense[0])
            assert (err <= SHARPNESS_RTOL).all(), f"step {step}: logged {logged}, dense {dense}, rel err {err}"
