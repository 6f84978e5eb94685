"""Sharpness against the generalization gap: the report's tables from ``landscape sharpness`` items
(one column per run, at each run's last analysed step) and from a ``sharpness-study`` table.

With a handful of runs no correlation is computed: the last column counts the pairs of runs that a
measure orders as the gap orders them (concordant pairs, the numerator of Kendall's τ) — a
description, not a test. A study's τ and ρ come with their bootstrap intervals and n.
"""

from __future__ import annotations

import itertools

import numpy as np

from analyses.output.cells import Cell, Table, num, text
from analyses.output.inputs import slug
from analyses.plots import RunView

GAPS = (("gap_loss", "gap: test − train loss"), ("gap_error", "gap: train − test error"),
        ("train_loss", "train loss"), ("test_loss", "test loss"))


def _last_items(view: RunView) -> tuple[int, dict] | None:
    res = view.results
    if res is None or not res.by_step("sharpness"):
        return None
    step, quantities = max(res.by_step("sharpness").items())
    return step, {q: res.read_item(key)[0] for q, key in sorted(quantities.items())}


def measures(items: dict) -> dict[str, float]:
    """Readable name → value of every sharpness measure in one step's items."""
    out: dict[str, float] = {}
    if "curvature" in items:
        c = items["curvature"]
        out.update({"λ_max": float(c["lambda_max"]), "tr H": float(c["trace"])})
    for q, a in items.items():
        if q.startswith("probes_"):
            kind = q.removeprefix("probes_")
            out.update({f"mean ΔL, {kind} directions, r = {r:g}": float(m) for r, m in zip(a["radii"], a["mean"])})
    for q, a in items.items():
        if q.startswith("worst_"):
            box = q.removeprefix("worst_")
            for r, d, k in zip(a["radii"], a["max_delta"], a["keskar"]):
                out[f"worst-case ΔL, {box} ε = {r:g}"] = float(d)
                out[f"Keskar sharpness (%), {box} ε = {r:g}"] = float(k)
    return out


def _gaps(items: dict) -> dict[str, float]:
    first = next(iter(items.values()))
    return {key: float(first[key]) for key, _ in GAPS if key in first}


def concordant(values: list[float], gaps: list[float]) -> tuple[int, int]:
    """Pairs of runs the measure orders as the gap does, and the pairs compared (ties in either left out)."""
    pairs = [(np.sign(a - b), np.sign(g - h)) for (a, g), (b, h) in itertools.combinations(zip(values, gaps), 2)]
    pairs = [(s, t) for s, t in pairs if s != 0 and t != 0 and np.isfinite(s) and np.isfinite(t)]
    return sum(s == t for s, t in pairs), len(pairs)


def sharpness_against_gap(views: list[RunView]) -> Table | None:
    """Rows: the gaps and losses, then every measure; columns: the runs (and concordant pairs when ≥ 2)."""
    found = [(v, *last) for v in views if (last := _last_items(v))]
    if not found:
        return None
    several = len(found) > 1
    header = ["quantity", *(f"{v.label} (step {s})" for v, s, _ in found)] + (["ordered as the gap"] if several else [])
    t = Table("tab-gap", "Sharpness against the generalization gap", header,
              note="Each run at its last step analysed by `landscape sharpness`. Probes: mean loss change over "
                   "random directions of radius r (antithetic pairs); worst case: the largest loss change found "
                   "by ascent in the ε-box, and Keskar's sharpness in %. Last column: pairs of runs this measure "
                   "orders as the loss gap (concordant pairs) — with few runs a description, not a correlation.")
    per_run = [(_gaps(items), measures(items)) for _, _, items in found]
    gap = [g.get("gap_loss", np.nan) for g, _ in per_run]
    for key, name in GAPS:
        t.rows.append([text(name), *(num(g.get(key)) for g, _ in per_run)] + ([Cell("")] if several else []))
    for name in dict.fromkeys(n for _, m in per_run for n in m):
        vals = [m.get(name, np.nan) for _, m in per_run]
        row = [text(name), *(num(x) for x in vals)]
        if several:
            hit, n = concordant(vals, gap)
            row.append(text(f"{hit} of {n}") if n else Cell("—"))
        t.rows.append(row)
    return t


def study(view: RunView) -> Table | None:
    """A sharpness study's rank correlations: τ and ρ with their bootstrap intervals, by |τ|."""
    res = view.results
    if res is None or not res.is_complete("sharpness_study/table"):
        return None
    a, attrs = res.read_item("sharpness_study/table")
    n = len(a["labels"])
    t = Table(f"tab-study-{slug(view.label)}", f"Sharpness study: rank correlation with the gap — {view.label}",
              ["measure", "Kendall τ", "95% interval", "Spearman ρ", "95% interval"],
              note=f"n = {n} runs; gap = {attrs.get('gap', 'loss')}; percentile-bootstrap intervals "
                   "(Jiang et al. 2020). Sorted by |τ|.")
    for j in np.argsort(-np.abs(np.nan_to_num(np.asarray(a["tau"], dtype=float)))):
        t.rows.append([text(a["measures"][j]), num(a["tau"][j], 3),
                       text(f"[{float(a['tau_lo'][j]):.2f}, {float(a['tau_hi'][j]):.2f}]"),
                       num(a["rho"][j], 3), text(f"[{float(a['rho_lo'][j]):.2f}, {float(a['rho_hi'][j]):.2f}]")])
    return t
