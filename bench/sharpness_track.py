"""Online sharpness along a training run (the trainer's λ_max, edge-of-stability tracking): HVPs and
seconds for the top-k (k = 1, 2) to ``ACCURACY`` at every checkpoint, ours cold, ours warm-started
from the previous checkpoint's eigenvectors (with the probe's guarantee, and without it —
``verify=False``, like PyHessian), and PyHessian's power iteration.

The model (cnn1d on MNIST-1D, as in topk.py) is trained on with SGD and momentum; every
``EVERY`` steps the Hessian of the full-data loss is a new operator. Per checkpoint: a reference
(eigsh at residual 1e-6), then each solver once, in a fixed order. A warm start uses the vectors
the same solver returned at the previous checkpoint (the first checkpoint starts cold), as the
trainer's ``SharpnessMonitor`` does. PyHessian runs at the tolerance that reaches ACCURACY
(``PYHESSIAN_TOL``; its error is reported, so a miss would show).

Usage: ``python bench/sharpness_track.py [--quick|--tiny] [--device cpu] [--json OUT]``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
from common import bench_main, log, machine_info, markdown_table, setup_torch  # noqa: E402
from problems import EIGEN_PROBLEMS, PRESETS, build_problem, size_of  # noqa: E402

import landscape as ls  # noqa: E402

ACCURACY = 1e-3
PYHESSIAN_TOL = 1e-4  # the rung of PyHessian's ladder that reaches 1e-3 for top-1/2 here (bench/topk.py)
LR, MOMENTUM = 0.05, 0.9  # SGD, as the problems' preparation
SIZES = {"full": (10, 10), "quick": (8, 10), "tiny": (3, 2)}  # (checkpoints, SGD steps between them)
PROBLEM = {"full": EIGEN_PROBLEMS["cnn1d"], "quick": EIGEN_PROBLEMS["cnn1d"], "tiny": PRESETS["tiny"]}
KS = (1, 2)


def _train(problem, steps: int, gen: torch.Generator, opt) -> None:
    model = problem.model
    model.train()
    for _ in range(steps):
        x, y = problem.batches[int(torch.randint(len(problem.batches), (1,), generator=gen))]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    model.eval()


def _ours(H, k: int, v0, seed: int, verify: bool = True) -> tuple[dict, torch.Tensor]:
    start = time.perf_counter()
    res = ls.eigsh(H, k=k, tol=ACCURACY, criterion="eigenvalue", seed=seed, v0=v0, verify=verify)
    return dict(hvps=res.num_matvecs, probe=res.probe_matvecs, seconds=time.perf_counter() - start,
                values=res.eigenvalues.tolist(), margin=res.miss_margin), res.eigenvectors


def _pyhessian(problem, k: int, seed: int) -> dict:
    run = peers.pyhessian_eigenvalues(problem, k, tol=PYHESSIAN_TOL, max_iter=300, seed=seed)
    return dict(hvps=run.num_hvps, seconds=run.seconds, values=run.eigenvalues)


def _error(values, ref: np.ndarray) -> float:
    found = np.sort(np.asarray(values, dtype=np.float64))[::-1][: len(ref)]
    return float(np.max(np.abs(found - ref) / np.abs(ref)))


def checkpoint(problem, k: int, warm_v0, bare_v0, seed: int) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Reference and every solver at the current θ; returns the rows and the warm runs' vectors."""
    obj = problem.objective()
    H = obj.hessian(obj.theta)
    ref = ls.eigsh(H, k=k + 2, tol=1e-6, seed=seed + 1000).eigenvalues.numpy()[:k]
    cold, _ = _ours(H, k, None, seed)
    warm, vectors = _ours(H, k, warm_v0, seed)
    bare, bare_vectors = _ours(H, k, bare_v0, seed, verify=False)
    rows = {"ours, cold": cold, "ours, warm": warm, "ours, warm, no probe": bare}
    if peers.available("pyhessian"):
        rows["PyHessian power"] = _pyhessian(problem, k, seed)
    for r in rows.values():
        r["error"] = _error(r["values"], ref)
    return dict(reference=ref.tolist(), rows=rows), vectors, bare_vectors


def run(args) -> dict:
    device, size = setup_torch(args.device, args.threads), size_of(args)
    count, every = SIZES[size]
    out = dict(benchmark="sharpness_track", machine=machine_info(device), accuracy=ACCURACY, every=every, per_k={})
    for k in KS:
        problem = build_problem(**PROBLEM[size], device=device)
        gen = torch.Generator().manual_seed(1)
        opt = torch.optim.SGD(problem.model.parameters(), lr=LR, momentum=MOMENTUM)
        points, v0, bare_v0 = [], None, None
        for c in range(count):
            if c:
                _train(problem, every, gen, opt)
            point, v0, bare_v0 = checkpoint(problem, k, v0, bare_v0, args.seed + c)
            points.append(point)
            log(f"top-{k}: checkpoint {c + 1}/{count}")
        out["per_k"][k] = points
    out["problem"] = problem.describe()
    out["machine_after"] = machine_info(device)["load_average_1_5_15"]
    return out


def report(result: dict) -> str:
    head = (f"Problem: {result['problem']}, trained on with SGD (lr {LR}, momentum {MOMENTUM}), a checkpoint "
            f"every {result['every']} steps. Accuracy: every eigenvalue within {result['accuracy']:g} relative. "
            f"Load average before {result['machine']['load_average_1_5_15']}, after {result['machine_after']}.")
    lines = [head, ""]
    for k, points in result["per_k"].items():
        tools = list(points[0]["rows"])
        body = []
        for c, p in enumerate(points):
            body.append([c + 1, ", ".join(f"{v:.4g}" for v in p["reference"])] +
                        [f"{p['rows'][t]['hvps']} ({p['rows'][t]['error']:.0e})" for t in tools])
        later = points[1:] or points
        totals = {t: (sum(p["rows"][t]["hvps"] for p in later), sum(p["rows"][t]["seconds"] for p in later),
                      max(p["rows"][t]["error"] for p in later)) for t in tools}
        body.append(["Σ after the first", ""] + [f"{h} HVPs, {s:.3g} s (max error {e:.0e})"
                                                 for h, s, e in totals.values()])
        lines += [f"**top-{k}**: HVPs (max rel. error) per checkpoint", "",
                  markdown_table(["checkpoint", "λ (reference)"] + tools, body), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    def extra_args(parser) -> None:
        parser.add_argument("--seed", type=int, default=0, help="seed of the solvers' random vectors")

    return bench_main(__doc__, run, report, argv, extra_args)


if __name__ == "__main__":
    raise SystemExit(main())
