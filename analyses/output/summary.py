"""The report's tables, read from the stored files: each numeric cell keeps the exact stored value
(``Cell.value``, written to the page as ``data-value``) next to its rounded text, so a reader — or a
test — can check every number against the results file.

Tables here: the runs compared (final losses, accuracies, gaps, λ_max, tr H), the certified
eigenvalues with residuals, the trace ± standard error and the line-search fits; sharpness against
the generalization gap is in :mod:`~analyses.output.gap`.
"""

from __future__ import annotations

import math

import numpy as np

from analyses.output import tables
from analyses.output.cells import Cell, Table, num, text
from analyses.output.inputs import slug
from analyses.plots import RunView


def _final_eval(run) -> dict | None:
    ev = run.eval_metrics() if run is not None else None
    if ev is None or not len(ev["step"]):
        return None
    return {k: float(v[-1]) for k, v in ev.items()}


def _last(rows: list[tuple[int, str]]):
    return rows[-1] if rows else None


def curvature(view: RunView, source: str) -> dict | None:
    """λ_max and tr H (± s.e.) of a run from one ``source``: "sharpness" (the curvature item at the last
    step), "hessian" (the last eigen and trace items) or "online" (the trainer's log)."""
    res, run = view.results, view.run
    if source == "sharpness" and res is not None and (item := _last(res.items("sharpness", "curvature"))):
        a, attrs = res.read_item(item[1])
        return {"step": item[0], "lambda": float(a["lambda_max"]), "trace": float(a["trace"]),
                "stderr": float(a["trace_stderr"]), "n": attrs.get("N")}
    if source == "hessian" and res is not None and (item := _last(res.items("hessian", "eigen"))):
        a, attrs = res.read_item(item[1])
        out = {"step": item[0], "lambda": float(np.max(a["eigenvalues"])), "n": attrs.get("N")}
        if (tr := _last(res.items("hessian", "trace"))) and tr[0] == item[0]:
            t = res.read_item(tr[1])[0]
            out.update(trace=float(t["value"]), stderr=float(t["stderr"]))
        return out
    if source == "online" and run is not None and len((s := run.sharpness())["step"]):
        lam = np.atleast_2d(s["eigenvalues"].T).T
        return {"step": int(s["step"][-1]), "lambda": float(lam[-1].max()),
                "n": run.config.get("sharpness_subset")}
    return None


SOURCES = ("sharpness", "hessian", "online")


def curvature_source(views: list[RunView]) -> dict[str, tuple[str, dict] | None]:
    """Per run, the curvature numbers and their source: the first source every run has, else each run's first."""
    found = {v.label: {s: c for s in SOURCES if (c := curvature(v, s))} for v in views}
    shared = next((s for s in SOURCES if all(s in f for f in found.values() if f)), None)
    return {label: ((shared, f[shared]) if shared in f else next(iter(f.items()), None)) if f else None
            for label, f in found.items()}


def overview(views: list[RunView]) -> Table:
    """The runs side by side: final train/test loss and accuracy, the gaps, λ_max and tr H."""
    t = Table("tab-overview", "Where each run ended", ["run", "train loss", "test loss", "gap (loss)", "train acc",
              "test acc", "gap (error)", "λ_max", "tr H", "± s.e.", "curvature from"],
              note="Losses and accuracies: the last full evaluation of each run (step in the label); gap (loss) ="
                   " test − train loss, gap (error) = train − test accuracy. λ_max and tr H come from one "
                   "source for every run where possible; N is the number of examples they were computed on.")
    sources = curvature_source(views)
    for v in views:
        ev = _final_eval(v.run)
        label = f"{v.label} (step {int(ev['step'])})" if ev else v.label
        row = [text(label)]
        if ev:
            row += [num(ev["train_loss"]), num(ev["test_loss"]), num(ev["test_loss"] - ev["train_loss"]),
                    num(ev["train_acc"]), num(ev["test_acc"]), num(ev["train_acc"] - ev["test_acc"])]
        else:
            row += [Cell("—")] * 6
        src = sources.get(v.label)
        c = src[1] if src else {}
        where = f"{src[0]}, step {c['step']}" + (f", N = {c['n']}" if c.get("n") else "") if src else "—"
        t.rows.append(row + [num(c.get("lambda")), num(c.get("trace")), num(c.get("stderr"), 2), text(where)])
    return t


def eigenvalues(view: RunView) -> Table | None:
    """Certified top eigenvalues per step (one column per index), each with its residual ‖Hv − λv‖."""
    rows = tables.eigenvalues(view.results) if view.results is not None else []
    if not rows:
        return None
    k = max(r["i"] for r in rows)
    t = Table(f"tab-eigen-{slug(view.label)}", f"Top eigenvalues with residuals — {view.label}",
              ["step", *(f"λ{_sub(i)}" for i in range(1, k + 1)), "converged"],
              labels=0, note="Each cell: λᵢ and, below, its certified residual ‖Hvᵢ − λᵢvᵢ‖ (the true "
                             "eigenvalue lies within it)." + _examples(view.results, "hessian", "eigen"))
    for step in sorted({r["step"] for r in rows}):
        at = {r["i"]: r for r in rows if r["step"] == step}
        cells = [Cell(f"{at[i]['eigenvalue']:.6g}", at[i]["eigenvalue"], f"{at[i]['residual']:.1e}",
                      at[i]["residual"]) if i in at else Cell("—") for i in range(1, k + 1)]
        conv = "yes" if all(r["converged"] for r in at.values()) else "no"
        t.rows.append([num(step), *cells, text(conv)])
    return t


def _examples(results, analysis: str, quantity: str) -> str:
    """The sentence " On N = … training examples." from the last such item's attrs ("" if not stored)."""
    found = results.items(analysis, quantity)
    n = results.read_item(found[-1][1])[1].get("N") if found else None
    return f" On N = {n} training examples." if n else ""


def _sub(i: int) -> str:
    return str(i).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def traces(view: RunView) -> Table | None:
    """tr H per step with its standard error, the estimator and its matrix-vector products."""
    rows = tables.traces(view.results) if view.results is not None else []
    if not rows:
        return None
    t = Table(f"tab-trace-{slug(view.label)}", f"Trace ± standard error — {view.label}",
              ["step", "tr H", "± s.e.", "relative s.e.", "method", "matvecs"], labels=0,
              note="Stochastic estimate of the trace with its standard error over probe vectors."
                   + _examples(view.results, "hessian", "trace"))
    for r in rows:
        rel = r["stderr"] / abs(r["trace"]) if r["trace"] else math.nan
        t.rows.append([num(r["step"]), num(r["trace"]), num(r["stderr"], 2), num(rel, 2), text(r["method"]),
                       num(r["num_matvecs"])])
    return t


def line_search_fits(view: RunView) -> Table | None:
    """Per step and eigendirection: λᵢ, the fitted curvature, their ratio, where the quadratic departs,
    and the minimum of the full-batch curve (with its spread over minibatches)."""
    rows = tables.line_search_fits(view.results) if view.results is not None else []
    if not rows:
        return None
    minima = _minima(view.results)
    t = Table(f"tab-fits-{slug(view.label)}", f"Line-search fits — {view.label}",
              ["step", "i", "λᵢ", "fitted curvature", "ratio", "departs at t <", "departs at t >", "minimum t*",
               "std t* (minibatches)"], labels=0,
              note="Fitted curvature: a₂ of the quadratic Σ aₙtⁿ/n! fitted to the loss along vᵢ near t = 0; "
                   "ratio = a₂/λᵢ (1: the eigenvalue describes the curve). Departure: the smallest |t| on each "
                   "side where the loss leaves the quadratic model by more than the relative tolerance (—: not "
                   "within the searched range). t*: the minimum of the full-batch curve."
                   + _examples(view.results, "linesearch", "curves"))
    for r in rows:
        m = minima.get((r["step"], r["i"]), {})
        t.rows.append([num(r["step"]), num(r["i"]), num(r["eigenvalue"], 6), num(r["fitted_curvature"], 6),
                       num(r["curvature_ratio"]), num(r["departure_neg"], 3), num(r["departure_pos"], 3),
                       num(m.get("min_t"), 3), num(m.get("min_t_std"), 3)])
    return t


def _minima(results) -> dict[tuple[int, int], dict]:
    out = {}
    for step, key in results.items("linesearch", "curves"):
        a = results.read_item(key)[0]
        for j, d in enumerate(a["directions"]):
            out[(step, int(d) + 1)] = {"min_t": float(a["min_t"][j]),
                                       "min_t_std": float(a["min_t_std"][j]) if "min_t_std" in a else None}
    return out
