"""Test support: a main run and a sibling run written through the real file writers, with results
files holding items in the layouts the analyses store (docs/contracts.md), filled with known numbers.

No training and no Hessian work: the report is tested for what it shows (its sections, anchors,
tables and figures) against numbers we chose, fast enough for the default suite. The numbers are
the numerics' business elsewhere; here they only have to be read back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landscape.io import ResultsFile, RunFile, RunWriter, step_key

P, BATCH, NUM_TRAIN, STEPS = 50, 4, 40, 20
EVAL_STEPS = (0, 10, 20)
HESSIAN_STEPS = (0, 10, 20)
RADII = np.array([0.01, 0.1])
K_DIRECTIONS = 3   # random directions per radius in the probes


def _meta(lr: float, schedule: str) -> dict:
    config = {"lr": lr, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "schedule": schedule,
              "milestones": [10] if schedule == "step" else [], "gamma": 0.1, "batch_size": BATCH, "seed": 0}
    return {"config": config, "model_name": "synthetic", "model_kwargs": {"P": P}, "num_train": NUM_TRAIN,
            "dataset_spec": {"name": "synthetic", "num_train": NUM_TRAIN}, "seed": 0, "full_batch": False}


def write_run(path: Path, *, lr: float, schedule: str, loss_scale: float) -> Path:
    """A 21-step run: logged steps, snapshots at 0/10/20, evaluations and online sharpness at 0/10/20."""
    lrs = np.array([lr * (0.1 if schedule == "step" and s >= 10 else 1.0) for s in range(STEPS + 1)])
    with RunWriter(path, mode="create", meta=_meta(lr, schedule), P=P, B=0, batch_size=BATCH) as w:
        for s in range(STEPS + 1):
            if s in EVAL_STEPS:
                w.append_snapshot(s, np.full(P, s, np.float32), None)
                w.append_eval(s, *eval_row(s, loss_scale))
                w.append_sharpness(s, [1.0 + s * loss_scale], lrs[s])
            w.append_steps([s], [np.arange(BATCH) + s % 10], [s], [2.0 * loss_scale / (1 + s)], [lrs[s]])
            w.commit()
    return path


def eval_row(step: int, scale: float) -> tuple[float, float, float, float]:
    """train loss, train acc, test loss, test acc at ``step`` (test a bit worse than train)."""
    return 2.0 * scale / (1 + step), 0.3 + 0.02 * step, 2.1 * scale / (1 + step) + 0.05 * scale, 0.28 + 0.015 * step


@dataclass(frozen=True)
class Stored:
    """What the results files hold, for the tests to compare against."""

    eigenvalues: dict
    residuals: dict
    traces: dict
    sharpness: dict


def _bound(results_path: Path, run_path: Path) -> ResultsFile:
    with RunFile(run_path) as run:
        rid = {"path": str(run_path), "run_sha256": run.file_sha256}
    return ResultsFile(results_path, "a", run_id=rid)


def write_hessian(res: ResultsFile, rng) -> tuple[dict, dict, dict]:
    """``hessian/step_S/{eigen,trace}`` at :data:`HESSIAN_STEPS` with random (known) numbers."""
    lam, resid, tr = {}, {}, {}
    for s in HESSIAN_STEPS:
        lam[s] = np.sort(rng.uniform(1, 30, 3))[::-1].copy()
        resid[s] = rng.uniform(1e-7, 1e-3, 3)
        res.write_item(step_key("hessian", s, "eigen"),
                       {"eigenvalues": lam[s], "residuals": resid[s], "relative_residuals": resid[s] / lam[s][0],
                        "eigenvectors": rng.standard_normal((3, P)).astype(np.float32), "converged": 1,
                        "num_matvecs": 40}, {"step": s, "which": "LA", "N": NUM_TRAIN})
        tr[s] = (float(rng.uniform(50, 100)), float(rng.uniform(1, 5)))
        res.write_item(step_key("hessian", s, "trace"),
                       {"value": tr[s][0], "stderr": tr[s][1], "samples": rng.standard_normal(4), "num_matvecs": 12},
                       {"step": s, "method": "hutch++", "N": NUM_TRAIN})
    return lam, resid, tr


def write_fits(res: ResultsFile, lam: np.ndarray, rng) -> None:
    """``linesearch/step_20/{curves,fits}`` along the top two eigenvectors."""
    ts = np.linspace(-1, 1, 11)
    k = 2
    loss = 1.0 + 0.5 * lam[:k, None] * ts**2
    res.write_item(step_key("linesearch", 20, "curves"),
                   {"ts": ts, "directions": np.arange(k), "eigenvalues": lam[:k], "residuals": np.zeros(k),
                    "slopes": np.zeros(k), "loss": loss, "acc": 0.5 - 0.1 * ts**2 * np.ones((k, 1)),
                    "min_t": rng.uniform(-.1, .1, k),
                    "min_loss": np.ones(k), "bracketed": np.ones(k, bool)}, {"step": 20})
    res.write_item(step_key("linesearch", 20, "fits"),
                   {"ts": ts, "directions": np.arange(k), "eigenvalues": lam[:k], "slopes": np.zeros(k),
                    "fitted_curvature": lam[:k] * 0.98, "curvature_ratio": np.full(k, 0.98),
                    "departure_t": np.array([[0.4, 0.6], [np.nan, 0.8]]), "deviation": 0.01 + ts**2 * np.ones((k, 1)),
                    "prediction": loss}, {"step": 20})


def write_sharpness(res: ResultsFile, step: int, scale: float, rng) -> dict:
    """``sharpness/step_S/{losses,probes_gaussian,curvature}`` with the run's final evaluation."""
    tl, ta, vl, va = eval_row(step, scale)
    common = {"train_loss": tl, "train_acc": ta, "test_loss": vl, "test_acc": va, "gap_loss": vl - tl,
              "gap_error": ta - va}
    deltas = scale * RADII[:, None, None] ** 2 * rng.uniform(1, 2, (len(RADII), K_DIRECTIONS, 2))
    per = deltas.mean(axis=2)
    probes = {"radii": RADII, "deltas": deltas, "mean": per.mean(1), "sum_abs": np.abs(per).sum(1),
              "mean_sq": (per**2).mean(1), "max": per.max(1), "std": per.std(1), "curvature_estimate": 2 * per.mean(1)
              / RADII**2, "P": P, **common}
    curvature = {"lambda_max": 10.0 * scale, "lambda_residual": 1e-4, "lambda_converged": 1, "trace": 80.0 * scale,
                 "trace_stderr": 2.0 * scale, "trace_samples": rng.standard_normal(4), "num_matvecs": 30, "P": P,
                 **common}
    attrs = {"step": step, "N": NUM_TRAIN}
    res.write_item(step_key("sharpness", step, "losses"), dict(common), attrs)
    res.write_item(step_key("sharpness", step, "probes_gaussian"), probes, attrs)
    res.write_item(step_key("sharpness", step, "curvature"), curvature, attrs)
    return {"probes": probes, "curvature": curvature, **common}


def write_study(directory: Path, seed: int = 0) -> dict:
    """Main run (step decays; Hessian, line search and sharpness results) and a sibling (constant lr;
    sharpness only). Returns the paths and the numbers stored."""
    rng = np.random.default_rng(seed)
    paths = {"run": directory / "run.h5", "res": directory / "res.h5", "sib": directory / "sib.h5",
             "sib_res": directory / "sib-res.h5"}
    write_run(paths["run"], lr=0.1, schedule="step", loss_scale=1.0)
    write_run(paths["sib"], lr=0.02, schedule="constant", loss_scale=1.3)
    with _bound(paths["res"], paths["run"]) as res:
        lam, resid, tr = write_hessian(res, rng)
        write_fits(res, lam[20], rng)
        main_sharp = write_sharpness(res, 20, 1.0, rng)
    with _bound(paths["sib_res"], paths["sib"]) as res:
        sib_sharp = write_sharpness(res, 20, 1.3, rng)
    return {**paths, "stored": Stored(lam, resid, tr, {"main": main_sharp, "sibling": sib_sharp})}
