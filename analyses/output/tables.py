"""Per-step tables from stored files, as lists of rows (dicts): for ``landscape export`` (CSV, one row
per observation, ready for ``pandas.read_csv``), ``landscape info`` and the report.

Every table of a results file starts with the ``step`` column; indices of eigenpairs start at 1
(λ₁ ≥ λ₂ ≥ … for ``which=LA``), as in every figure.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

SCALAR_KINDS = "biuf"


def eigenvalues(results) -> list[dict]:
    """``step, i, eigenvalue, residual, relative_residual, converged`` for every stored eigenpair."""
    rows = []
    for step, key in results.items("hessian", "eigen"):
        a = results.read_item(key)[0]
        rel = a.get("relative_residuals", np.full(len(a["eigenvalues"]), np.nan))
        res = a.get("residuals", np.full(len(a["eigenvalues"]), np.nan))
        rows += [{"step": step, "i": i + 1, "eigenvalue": float(lam), "residual": float(r),
                  "relative_residual": float(q), "converged": int(a.get("converged", 0))}
                 for i, (lam, r, q) in enumerate(zip(a["eigenvalues"], res, rel))]
    return rows


def traces(results) -> list[dict]:
    """``step, trace, stderr, method, num_matvecs``."""
    rows = []
    for step, key in results.items("hessian", "trace"):
        a, attrs = results.read_item(key)
        rows.append({"step": step, "trace": float(a["value"]), "stderr": float(a["stderr"]),
                     "method": attrs.get("method", ""), "num_matvecs": int(a["num_matvecs"])})
    return rows


def line_search_fits(results) -> list[dict]:
    """``step, i, eigenvalue, fitted_curvature, curvature_ratio, departure_neg, departure_pos``."""
    rows = []
    for step, key in results.items("linesearch", "fits"):
        a = results.read_item(key)[0]
        for j, d in enumerate(a["directions"]):
            rows.append({"step": step, "i": int(d) + 1, "eigenvalue": float(a["eigenvalues"][j]),
                         "fitted_curvature": float(a["fitted_curvature"][j]),
                         "curvature_ratio": float(a["curvature_ratio"][j]),
                         "departure_neg": float(a["departure_t"][j][0]), "departure_pos": float(a["departure_t"][j][1])})
    return rows


def sharpness(results) -> list[dict]:
    """One row per step: losses, gaps and every sharpness measure stored (probes per radius, worst case, λ_max, trace)."""
    rows = []
    for step, quantities in results.by_step("sharpness").items():
        row = {"step": step}
        for q, key in sorted(quantities.items()):
            a = results.read_item(key)[0]
            row.update({k: a[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc", "gap_loss", "gap_error")})
            row.update(_measures(q, a))
        rows.append(row)
    return rows


def _measures(quantity: str, a: dict) -> dict:
    if quantity.startswith("probes_"):
        kind = quantity.removeprefix("probes_")
        return {f"{kind}_mean_r{r:g}": float(m) for r, m in zip(a["radii"], a["mean"])}
    if quantity.startswith("worst_"):
        box = quantity.removeprefix("worst_")
        return {f"worst_{box}_keskar_eps{r:g}": float(k) for r, k in zip(a["radii"], a["keskar"])}
    if quantity == "curvature":
        return {"lambda_max": float(a["lambda_max"]), "trace": float(a["trace"]), "trace_stderr": float(a["trace_stderr"])}
    return {}


def scalars(results) -> list[dict]:
    """``analysis, step, quantity, name, value`` for every 0-d number of every per-step item."""
    rows = []
    for analysis in sorted({k.split("/", 1)[0] for k in results.keys()}):
        for step, quantities in results.by_step(analysis).items():
            for q, key in sorted(quantities.items()):
                for name, v in sorted(results.read_item(key)[0].items()):
                    a = np.asarray(v)
                    if a.ndim == 0 and a.dtype.kind in SCALAR_KINDS:
                        rows.append({"analysis": analysis, "step": step, "quantity": q, "name": name,
                                     "value": a.item()})
    return rows


def training_steps(run) -> list[dict]:
    """``step, loss, lr`` of every logged step of a run file."""
    m = run.step_metrics()
    return [{"step": int(s), "loss": float(loss), "lr": float(lr)} for s, loss, lr in zip(m["step"], m["loss"], m["lr"])]


def evaluations(run) -> list[dict]:
    """``step, train_loss, train_acc, test_loss, test_acc`` of every full evaluation."""
    m = run.eval_metrics()
    return [{k: (int(m[k][i]) if k == "step" else float(m[k][i])) for k in m} for i in range(len(m["step"]))]


def online_sharpness(run) -> list[dict]:
    """``step, i, eigenvalue, lr`` of the trainer's online top eigenvalues."""
    m = run.sharpness()
    lam = np.atleast_2d(m["eigenvalues"]) if len(m["step"]) else np.zeros((0, 0))
    return [{"step": int(s), "i": i + 1, "eigenvalue": float(v), "lr": float(lr)}
            for s, row, lr in zip(m["step"], lam, m["lr"]) for i, v in enumerate(row)]


RESULTS_TABLES: dict[str, Callable] = {"eigenvalues": eigenvalues, "traces": traces, "line_search_fits": line_search_fits,
                                       "sharpness": sharpness, "scalars": scalars}
RUN_TABLES: dict[str, Callable] = {"steps": training_steps, "evaluations": evaluations, "online_sharpness": online_sharpness}


def write_csv(rows: list[dict], path: Path) -> None:
    """Write rows as CSV (columns: the union of the rows' keys, in order of appearance)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    tmp = Path(path).with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
