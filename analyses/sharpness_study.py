"""Which sharpness measure predicts the generalization gap across a zoo of runs?

Design after Jiang et al. 2020, "Fantastic Generalization Measures and Where to
Find Them" (ICLR): for every measure μ, rank correlations between μ(run) and the
generalization gap over runs of one model trained with different seeds, batch
sizes, learning rates, ...:

* Kendall's τ_b = Σ_{i<j} sgn(μ_i−μ_j) sgn(g_i−g_j) / √(n₀−n₁)(n₀−n₂) (ties handled);
* Spearman's ρ = Pearson correlation of the (average) ranks;
* percentile-bootstrap confidence intervals of both (runs resampled with replacement);
* the granulated τ of Jiang et al. eq. (4): for each hyperparameter axis i, ψ_i is
  the mean τ over groups of runs that differ only in that axis; Ψ = mean_i ψ_i.

Runs are sorted by label before anything is drawn, so every number — bootstrap
intervals included — is invariant to the order in which runs are given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from landscape.errors import ConfigMismatchError, InputError, NonFiniteError

BOOTSTRAP_CHUNK = 64  # resamples per vectorized block: keeps the (chunk, n, n) sign arrays small

# Run-config fields that do not change the trained network (excluded from the granulated τ).
BOOKKEEPING = ("device", "deterministic", "save_every", "save_steps", "save_log", "eval_every", "eval_batch_size",
               "sharpness_every", "sharpness_k", "sharpness_subset", "sharpness_bn", "sharpness_tol",
               "sharpness_max_matvecs", "init_from", "batches_from", "model", "model_kwargs", "dataset_kwargs")


@dataclass(frozen=True)
class RunMeasures:
    """One run of the zoo: its measures at one step and its generalization gap.

    Attributes:
        label: a unique name of the run (its path or checksum); runs are sorted by it.
        model: the model signature (name, kwargs, dataset); all runs must share it.
        gap: the generalization gap (test − train loss, or test − train error).
        measures: measure name → value.
        hparams: hyperparameters of the run (for the granulated τ).
    """

    label: str
    model: str
    gap: float
    measures: dict
    hparams: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StudyConfig:
    """Bootstrap settings."""

    num_bootstrap: int = 1000   # resamples of the runs
    confidence: float = 0.95    # two-sided level of the percentile intervals
    seed: int = 0               # seed of the resampling


def kendall_tau(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ_b of the rows of ``x`` and ``y`` (shape ``(..., n)``); NaN where a row is constant."""
    sx = np.sign(x[..., :, None] - x[..., None, :])
    sy = np.sign(y[..., :, None] - y[..., None, :])
    num = (sx * sy).sum(axis=(-1, -2))
    den = np.sqrt((sx * sx).sum(axis=(-1, -2)) * (sy * sy).sum(axis=(-1, -2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ of the rows of ``x`` and ``y`` (average ranks for ties); NaN where constant."""
    rx = stats.rankdata(x, axis=-1)
    ry = stats.rankdata(y, axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(-1) / np.where(den > 0, den, 1), np.nan)


def bootstrap_indices(n: int, config: StudyConfig) -> np.ndarray:
    """``(num_bootstrap, n)`` resampling indices from ``config.seed``."""
    rng = np.random.default_rng(config.seed)
    return rng.integers(0, n, size=(config.num_bootstrap, n))


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(finite, [alpha, 100 - alpha])
    return float(lo), float(hi)


def bootstrap_ci(x: np.ndarray, y: np.ndarray, idx: np.ndarray, confidence: float) -> dict:
    """Percentile intervals of τ and ρ over the resamples ``idx`` ``(B, n)``."""
    taus, rhos = [], []
    for start in range(0, idx.shape[0], BOOTSTRAP_CHUNK):
        block = idx[start:start + BOOTSTRAP_CHUNK]
        taus.append(kendall_tau(x[block], y[block]))
        rhos.append(spearman_rho(x[block], y[block]))
    tau_lo, tau_hi = _interval(np.concatenate(taus), confidence)
    rho_lo, rho_hi = _interval(np.concatenate(rhos), confidence)
    return {"tau_lo": tau_lo, "tau_hi": tau_hi, "rho_lo": rho_lo, "rho_hi": rho_hi}


def varying_axes(runs: Sequence[RunMeasures]) -> list[str]:
    """Hyperparameter names that take more than one value across the runs."""
    names = sorted({k for r in runs for k in r.hparams})
    return [k for k in names if len({json.dumps(r.hparams.get(k), sort_keys=True) for r in runs}) > 1]


def granulated_tau(x: np.ndarray, y: np.ndarray, runs: Sequence[RunMeasures], axes: list[str]) -> np.ndarray:
    """ψ_i for each axis: mean τ over groups of runs equal in every other axis (NaN if no group ≥ 2)."""
    psi = np.full(len(axes), np.nan)
    for a, axis in enumerate(axes):
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(runs):
            rest = {k: r.hparams.get(k) for k in axes if k != axis}
            groups.setdefault(json.dumps(rest, sort_keys=True, default=str), []).append(i)
        taus = [kendall_tau(x[g], y[g]) for g in groups.values() if len(g) >= 2]
        taus = [t for t in taus if np.isfinite(t)]
        psi[a] = np.mean(taus) if taus else np.nan
    return psi


def check_runs(runs: Sequence[RunMeasures]) -> list[RunMeasures]:
    """Validate the zoo and return it sorted by label (the order-invariance of the study)."""
    if len(runs) < 3:
        raise InputError(f"a sharpness study needs at least 3 runs, got {len(runs)}")
    runs = sorted(runs, key=lambda r: r.label)
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise InputError(f"the same run appears twice in the study: {', '.join(dup)}")
    for r in runs[1:]:
        if r.model != runs[0].model:
            raise ConfigMismatchError(f"runs of different models in one study: {runs[0].label} is "
                                      f"{runs[0].model} but {r.label} is {r.model}; study one model at a time")
    return runs


def measure_matrix(runs: Sequence[RunMeasures]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Measure names common to all runs, values ``(R, M)`` and gaps ``(R,)``; refuses non-finite values."""
    names = sorted(set.intersection(*(set(r.measures) for r in runs)))
    if not names:
        raise InputError("the runs share no measure; compute the same measures (same radii) for every run")
    values = np.array([[float(r.measures[m]) for m in names] for r in runs])
    gaps = np.array([float(r.gap) for r in runs])
    bad = [(r.label, m) for i, r in enumerate(runs) for j, m in enumerate(names) if not np.isfinite(values[i, j])]
    bad += [(r.label, "gap") for r in runs if not np.isfinite(r.gap)]
    if bad:
        raise NonFiniteError(f"non-finite values in the study: {bad[:5]}; leave out those runs or measures")
    return names, values, gaps


PROBE_AGGREGATES = ("sum_abs", "mean_sq", "max", "mean")
GAP_KINDS = ("loss", "error")


def measures_from_items(items: dict) -> dict[str, float]:
    """Flatten one step's stored sharpness items into ``{measure name: value}``.

    ``items`` maps the quantity (``probes_gaussian``, ``worst_box``, ``curvature``, ...)
    to its arrays. Names: ``probe:<kind>:<aggregate>:r=<r>``, ``worst:<set>:delta:eps=<ε>``,
    ``worst:<set>:keskar:eps=<ε>``, ``lambda_max``, ``trace``.
    """
    out = {}
    for quantity, arrays in sorted(items.items()):
        if quantity.startswith("probes_"):
            kind = quantity.removeprefix("probes_")
            for agg in PROBE_AGGREGATES:
                out.update({f"probe:{kind}:{agg}:r={r:g}": float(v) for r, v in zip(arrays["radii"], arrays[agg])})
        elif quantity.startswith("worst_"):
            box = quantity.removeprefix("worst_")
            for name, key in (("delta", "max_delta"), ("keskar", "keskar")):
                out.update({f"worst:{box}:{name}:eps={r:g}": float(v) for r, v in zip(arrays["radii"], arrays[key])})
        elif quantity == "curvature":
            out.update({"lambda_max": float(arrays["lambda_max"]), "trace": float(arrays["trace"])})
    return out


def gap_from_items(items: dict, kind: str = "loss") -> float:
    """The generalization gap stored with the items: test − train loss, or train − test accuracy."""
    if kind not in GAP_KINDS:
        raise InputError(f"unknown gap {kind!r}; use 'loss' (test − train loss) or 'error' (test − train error)")
    for arrays in items.values():
        if f"gap_{kind}" in arrays:
            return float(arrays[f"gap_{kind}"])
    raise InputError("the sharpness results hold no train/test losses; rerun `landscape sharpness` on this run")


def study(runs: Sequence[RunMeasures], config: StudyConfig = StudyConfig()) -> dict:
    """Rank correlations of every measure with the generalization gap.

    Returns:
        A dict of arrays: ``measures`` (names, list), ``labels`` (sorted run labels),
        ``values (R, M)``, ``gap (R,)``, and per measure ``(M,)``: ``tau``, ``tau_lo``,
        ``tau_hi``, ``tau_pvalue``, ``rho``, ``rho_lo``, ``rho_hi``, ``rho_pvalue``,
        ``Psi`` (granulated τ); ``psi (M, A)`` per axis and ``axes`` (names).
    """
    runs = check_runs(runs)
    names, values, gaps = measure_matrix(runs)
    idx, axes = bootstrap_indices(len(runs), config), varying_axes(runs)
    rows = []
    for j in range(len(names)):
        x = values[:, j]
        psi = granulated_tau(x, gaps, runs, axes)
        rows.append({"tau": float(kendall_tau(x, gaps)), "rho": float(spearman_rho(x, gaps)),
                     "tau_pvalue": float(stats.kendalltau(x, gaps).pvalue),
                     "rho_pvalue": float(stats.spearmanr(x, gaps).pvalue),
                     **bootstrap_ci(x, gaps, idx, config.confidence), "psi": psi,
                     "Psi": float(np.nanmean(psi)) if np.isfinite(psi).any() else math.nan})
    table = {key: np.array([row[key] for row in rows]) for key in rows[0]}
    table["psi"] = table["psi"].reshape(len(names), len(axes))
    return {**table, "measures": names, "labels": [r.label for r in runs], "axes": axes,
            "values": values, "gap": gaps}


def run_measures(items: dict, attrs: dict, label: str, gap: str = "loss") -> RunMeasures:
    """One run's measures, gap, model signature and hyperparameters from its stored sharpness items.

    Args:
        items: quantity → arrays of the run's ``sharpness/step_S/*`` items at one step.
        attrs: the attributes of one of them (``model``, ``run_config``).
        label: how the run is named in the table.
        gap: ``"loss"`` or ``"error"``.
    """
    config = attrs.get("run_config", {})
    return RunMeasures(label=label, model=json.dumps(attrs.get("model", {}), sort_keys=True),
                       gap=gap_from_items(items, gap), measures=measures_from_items(items),
                       hparams={k: v for k, v in config.items() if k not in BOOKKEEPING})


def select_hparams(runs: list[RunMeasures], spec: str | None) -> list[RunMeasures]:
    """Keep the named hyperparameters (all varying ones when ``spec`` is None)."""
    import dataclasses

    names = varying_axes(runs) if spec is None else [s.strip() for s in spec.split(",") if s.strip()]
    missing = [n for n in names if not any(n in r.hparams for r in runs)]
    if missing:
        raise InputError(f"--hparams: {', '.join(missing)} not in the runs' configs")
    return [dataclasses.replace(r, hparams={n: r.hparams.get(n) for n in names}) for r in runs]
