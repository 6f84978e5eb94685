"""The meta-loss landscape over one hyperparameter: loss, hypergradient and chaos diagnostics.

On a log-spaced grid of one scalar hyperparameter x (learning rate, init scale or L2), for
several horizons T and seeds, each grid point records the meta-loss L_val(θ_T(x)) and the
hypergradient dL_val/d ln x (one forward-mode pass serves every T), and beside them:

* ``fd_slope`` — the central difference (L(ln x + δ) − L(ln x − δ)) / 2δ, and
  ``fd_disagreement`` = |g − fd| / (|g| + |fd|) ∈ [0, 1]: 0 where the meta-loss is smooth on
  the scale δ, near 1 where it wiggles faster than δ (chaos);
* the stability of the training map (:func:`landscape.hyper.chaos.step_stability`): ρ of
  step t's Jacobian (``rho``; ``rho_top`` from the top of the spectrum alone) and b_max = η λ_max
  of its minibatch Hessian at t = 0 and t = T − 1, and η λ_max of the full training loss (the
  trainer's online sharpness), for the first ``jacobian_seeds`` seeds;
* ``tangent_norms`` — ‖dS_t/d ln x‖ along the run (forward route): its growth rate is a
  finite-time Lyapunov exponent of training.

Across the grid (:func:`summarize`, once every point is done): the seed mean and spread of
the hypergradient, sign changes of the hypergradient per unit of ln x, the slope of the
seed-mean meta-loss between neighbouring points, and the **transition**: the first grid value
from which, at :data:`CHAOS_RUN` consecutive points, the hypergradient disagrees (more than
:data:`CHAOS_DISAGREEMENT`) both with the local central difference (median over seeds) and with
the slope of the seed-mean meta-loss across the grid — the seed's "the loss looks smooth but the
gradient goes crazy". Requiring both keeps isolated ReLU kinks (a non-smooth but not chaotic
meta-loss: the local difference straddles a kink) from counting. Beside it, b_max and η λ_max
there (expected near 2 for GD, 2(1 + β) with momentum: Metz et al. 2021). The seeds' figure is
Maclaurin et al. 2015, Fig. 6.

Nothing here opens a file: ``make_problem(seed)`` (from the command) gives the
:class:`landscape.hyper.TrainingProblem` of each seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from analyses.driver.records import Record
from landscape.errors import InputError

SCAN_HYPERS = {"lr": "log_lr", "init_scale": "log_init_scale", "l2": "log_l2"}
SCAN_ROUTES = ("forward", "checkpointed", "reversible")
CHAOS_DISAGREEMENT = 0.5   # median |g − fd|/(|g| + |fd|) above this: the loss is rough on the scale δ
CHAOS_RUN = 2              # consecutive rough points that mark the transition
SIGN_WINDOW = 5            # grid points in the window that counts sign changes


@dataclass(frozen=True)
class ScanConfig:
    """One scan (units in comments)."""

    hyper: str = "lr"                    # lr | init_scale | l2 (the value itself, scanned log-spaced)
    lo: float = 0.01                     # smallest value of the hyperparameter
    hi: float = 1.0                      # largest value
    num: int = 40                        # grid points (log-spaced, ends included)
    horizons: tuple = (10, 50, 200)      # T: training steps at which the meta-loss is read
    seeds: tuple = (0, 1, 2)             # init and batch-plan seeds
    route: str = "forward"               # forward | checkpointed | reversible
    fd_step: float = 1e-3                # δ: central-difference step in ln x
    jacobian_seeds: int = 1              # seeds whose step maps get the spectral radius (the first ones)
    eig_tol: float = 1e-3                # relative residual of the stability eigenvalues

    def __post_init__(self):
        object.__setattr__(self, "horizons", tuple(sorted({int(t) for t in self.horizons})))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        check_config(self)

    @property
    def group(self) -> str:
        """The hyperparameter group that x drives (``log_lr`` …)."""
        return SCAN_HYPERS[self.hyper]

    def as_dict(self) -> dict:
        return json_normal(asdict(self))


def json_normal(d: dict) -> dict:
    """Tuples as lists (what a JSON round trip gives)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def check_config(cfg: ScanConfig) -> None:
    """Refuse an unknown hyperparameter, an empty or non-finite grid, T ≤ 0, no seeds."""
    if cfg.hyper not in SCAN_HYPERS:
        raise InputError(f"unknown hyperparameter {cfg.hyper!r} to scan; choose one of {', '.join(SCAN_HYPERS)}")
    if not (math.isfinite(cfg.lo) and math.isfinite(cfg.hi)) or cfg.lo <= 0 or cfg.hi <= 0:
        raise InputError(f"the grid bounds must be finite and positive (log-spaced), got [{cfg.lo}, {cfg.hi}]")
    if cfg.num < 1 or (cfg.num > 1 and cfg.hi <= cfg.lo):
        raise InputError(f"the grid has no points: num = {cfg.num}, [{cfg.lo}, {cfg.hi}]; give num ≥ 1 and lo < hi")
    if not cfg.horizons or min(cfg.horizons) <= 0:
        raise InputError(f"horizons T must be positive integers, got {list(cfg.horizons)}")
    if not cfg.seeds:
        raise InputError("give at least one seed")
    if cfg.route not in SCAN_ROUTES:
        raise InputError(f"unknown route {cfg.route!r}; choose one of {', '.join(SCAN_ROUTES)}")
    if not cfg.fd_step > 0:
        raise InputError(f"fd_step must be > 0, got {cfg.fd_step}")


def grid(cfg: ScanConfig) -> np.ndarray:
    """The G values of x, log-spaced from lo to hi."""
    return np.geomspace(cfg.lo, cfg.hi, cfg.num) if cfg.num > 1 else np.array([cfg.lo])


def point_key(cfg: ScanConfig, index: int) -> str:
    return f"hyper_scan/{cfg.hyper}/point_{int(index):05d}"


def summary_key(cfg: ScanConfig) -> str:
    return f"hyper_scan/{cfg.hyper}/summary"


def parse_points(spec: str | None, num: int) -> list[int]:
    """``None``/"all" → every index; ``"3:7"`` → 3…6; ``"1,4,5"`` → those (job-array chunks)."""
    if spec in (None, "", "all"):
        return list(range(num))
    try:
        if ":" in spec:
            a, b = (int(s) if s else d for s, d in zip(spec.split(":", 1), (0, num)))
            chosen = list(range(a, b))
        else:
            chosen = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--points {spec!r}: give 'all', a range a:b or indices 1,4,5") from None
    bad = [i for i in chosen if not 0 <= i < num]
    if bad or not chosen:
        raise InputError(f"--points {spec!r} selects no grid point or points outside 0…{num - 1}")
    return chosen


def scan_point(cfg: ScanConfig, index: int, make_problem: Callable[[int], object]) -> Record:
    """All seeds and horizons at grid point ``index`` (one results item)."""
    value = float(grid(cfg)[index])
    per_seed = [_seed_point(cfg, value, s, make_problem(s), j < cfg.jacobian_seeds)
                for j, s in enumerate(cfg.seeds)]
    arrays = {k: np.stack([p[k] for p in per_seed]) for k in per_seed[0] if k not in _STAB_KEYS}
    stab = [p for p in per_seed if "rho" in p]
    arrays.update({k: np.stack([p[k] for p in stab]) for k in _STAB_KEYS if stab})
    arrays.update(value=value, log_value=math.log(value), horizons=np.asarray(cfg.horizons),
                  seeds=np.asarray(cfg.seeds), stability_steps=_stability_steps(cfg))
    return Record(arrays, {"index": int(index), "value": value, "hyper": cfg.hyper, "group": cfg.group,
                           "route": cfg.route})


_STAB_KEYS = ("rho", "rho_top", "b_max", "b_min", "lambda_max_step", "lambda_max_full", "eta_lambda_max_full", "beta")


def _stability_steps(cfg: ScanConfig) -> np.ndarray:
    return np.asarray(sorted({0, *(T - 1 for T in cfg.horizons)}))


def _hyper(prob, cfg: ScanConfig, log_value: float) -> dict:
    return {cfg.group: torch.tensor(log_value, dtype=prob.dtype, device=prob.device)}


def _seed_point(cfg: ScanConfig, value: float, seed: int, prob, stability: bool) -> dict:
    from landscape.hyper import directional, hypergradient

    h = _hyper(prob, cfg, math.log(value))
    T_max = cfg.horizons[-1]
    norms = np.full(T_max + 1, np.nan)
    if cfg.route == "forward":
        d = directional(prob, h, {cfg.group: torch.ones((), dtype=prob.dtype)}, cfg.horizons)
        loss, acc, grad, norms = d.meta_loss, d.val_accuracy, d.derivative, np.asarray(d.tangent_norms)
    else:
        outs = [hypergradient(prob, h, T, [cfg.group], route=cfg.route) for T in cfg.horizons]
        loss, acc, grad = [o.meta_loss for o in outs], [o.val_accuracy for o in outs], \
            [float(o.grads[cfg.group]) for o in outs]
    fd = _fd_slope(prob, cfg, value)
    grad = np.asarray(grad)
    out = {"meta_loss": np.asarray(loss), "val_accuracy": np.asarray(acc), "hypergrad": grad, "fd_slope": fd,
           "fd_disagreement": disagreement(grad, fd), "tangent_norms": norms}
    if stability:
        out.update(_stability(prob, cfg, h, seed))
    return out


def disagreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| / (|a| + |b|) ∈ [0, 1] (0 where both are 0)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    den = np.abs(a) + np.abs(b)
    return np.divide(np.abs(a - b), den, out=np.zeros_like(den), where=den > 0)


def _fd_slope(prob, cfg: ScanConfig, value: float) -> np.ndarray:
    """Central differences of the meta-loss in ln x at every horizon (two training runs)."""
    from landscape.hyper import train
    from landscape.hyper.problem import check_finite_meta

    runs = [train(prob, _hyper(prob, cfg, math.log(value) + s * cfg.fd_step), cfg.horizons[-1],
                  horizons=cfg.horizons)["metrics"] for s in (1, -1)]
    for metrics in runs:
        for loss, _ in metrics.values():
            check_finite_meta(loss)
    return np.asarray([(runs[0][T][0] - runs[1][T][0]) / (2 * cfg.fd_step) for T in cfg.horizons])


def _stability(prob, cfg: ScanConfig, h: dict, seed: int) -> dict:
    """ρ, b_max of the step maps and η λ_max of the full training loss at the stability steps."""
    from landscape.hyper import train
    from landscape.hyper.chaos import full_batch_sharpness, step_stability
    from landscape.hyper.loop import initial_state

    steps = _stability_steps(cfg)
    states = {0: initial_state(prob, h)[0]}
    train(prob, h, int(steps[-1]), callback=lambda t, th, m: states.__setitem__(t, th) if t in steps else None)
    rows = []
    for t in steps:
        st = step_stability(prob, h, int(t), states[int(t)], seed=seed, tol=cfg.eig_tol)
        full = full_batch_sharpness(prob, h, states[int(t)], seed=seed, tol=cfg.eig_tol)
        rows.append((st.rho, st.rho_top, st.b_max, st.b_min, st.lambda_max, full, full * _eta(prob, h), st.beta))
    cols = np.asarray(rows).T
    return dict(zip(_STAB_KEYS, cols))


def _eta(prob, h) -> float:
    from landscape.hyper.hyperparams import lr_at

    lr = lr_at(prob, h, 0)
    return float(lr) if not isinstance(lr, torch.Tensor) or lr.ndim == 0 else math.nan


def summarize(cfg: ScanConfig, points: list[dict]) -> Record:
    """Diagnostics across the grid from the stored points (ordered by index); numpy only."""
    x = np.asarray([float(p["value"]) for p in points])
    lx = np.log(x)
    g = np.stack([p["hypergrad"] for p in points])               # (G, S, n_T)
    loss = np.stack([p["meta_loss"] for p in points])
    fd_dis = np.median(np.stack([p["fd_disagreement"] for p in points]), axis=1)   # (G, n_T)
    mean_loss = loss.mean(axis=1)
    secant = _secant(lx, mean_loss)
    out = {"values": x, "horizons": np.asarray(cfg.horizons), "meta_loss_mean": mean_loss,
           "meta_loss_std": loss.std(axis=1), "hypergrad_mean": g.mean(axis=1), "hypergrad_std": g.std(axis=1),
           "hypergrad_cv": g.std(axis=1) / np.maximum(np.abs(g.mean(axis=1)), 1e-300),
           "fd_disagreement": fd_dis, "secant_slope": secant,
           "secant_disagreement": disagreement(g.mean(axis=1), secant),
           "sign_changes_per_unit": sign_change_rate(lx, g), "growth_rate": _growth(cfg, points)}
    out.update(_stability_summary(points))
    out.update(transitions(cfg, out))
    return Record(out, {"hyper": cfg.hyper, "group": cfg.group, "num_points": len(points),
                        "chaos_disagreement": CHAOS_DISAGREEMENT, "chaos_run": CHAOS_RUN,
                        "sign_window": SIGN_WINDOW})


def _secant(lx: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy/d ln x between neighbouring grid points (one-sided at the ends), per column."""
    if len(lx) < 2:
        return np.full_like(y, np.nan)
    return np.gradient(y, lx, axis=0)


def sign_change_rate(lx: np.ndarray, g: np.ndarray, window: int = SIGN_WINDOW) -> np.ndarray:
    """Sign changes of the hypergradient per unit of ln x in a centred window, averaged over seeds.

    Args:
        lx: ``(G,)`` ln x; g: ``(G, S, n_T)`` hypergradients. Returns ``(G, n_T)``.
    """
    G = len(lx)
    flips = (np.sign(g[1:]) != np.sign(g[:-1])).astype(float)          # (G−1, S, n_T): between i and i+1
    out = np.full((G, g.shape[2]), np.nan)
    half = window // 2
    for i in range(G):
        a, b = max(0, i - half), min(G - 1, i + half)
        if b > a:
            out[i] = flips[a:b].sum(axis=0).mean(axis=0) / (lx[b] - lx[a])
    return out


def _growth(cfg: ScanConfig, points: list[dict]) -> np.ndarray:
    """(1/(T−1)) ln(‖Ż_T‖ / ‖Ż_1‖), seed median, per horizon (NaN without forward tangents)."""
    norms = np.stack([p["tangent_norms"] for p in points])           # (G, S, T_max + 1)
    out = np.full((len(points), len(cfg.horizons)), np.nan)
    for j, T in enumerate(cfg.horizons):
        if T >= 2:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, j] = np.median(np.log(norms[:, :, T] / norms[:, :, 1]) / (T - 1), axis=1)
    return out


def _stability_summary(points: list[dict]) -> dict:
    if "rho" not in points[0]:
        return {}
    return {k: np.stack([np.asarray(p[k]).mean(axis=0) for p in points]) for k in _STAB_KEYS}


def transitions(cfg: ScanConfig, s: dict) -> dict:
    """Per horizon: the first grid index of CHAOS_RUN consecutive rough points, its value, b_max there."""
    rough = (s["fd_disagreement"] > CHAOS_DISAGREEMENT) & (s["secant_disagreement"] > CHAOS_DISAGREEMENT)
    idx = np.full(len(cfg.horizons), -1)
    for j in range(len(cfg.horizons)):
        for i in range(len(rough) - CHAOS_RUN + 1):
            if rough[i:i + CHAOS_RUN, j].all():
                idx[j] = i
                break
    out = {"transition_index": idx, "transition_value": np.where(idx >= 0, s["values"][idx], np.nan)}
    if "b_max" in s:
        steps = _stability_steps(cfg)
        cols = [int(np.searchsorted(steps, T - 1)) for T in cfg.horizons]
        for name in ("b_max", "eta_lambda_max_full", "rho_top"):
            at = np.asarray([s[name][i, c] if i >= 0 else np.nan for i, c in zip(idx, cols)])
            out[f"transition_{name}"] = at
            out[f"transition_{name}_at_init"] = np.asarray([s[name][i, 0] if i >= 0 else np.nan for i in idx])
            out[f"transition_{name}_path_max"] = np.asarray([np.nanmax(s[name][i, :c + 1]) if i >= 0 else np.nan
                                                             for i, c in zip(idx, cols)])
        out["first_unstable_value"] = np.asarray([_first(s["values"], s["rho_top"][:, c] > 1) for c in cols])
    return out


def describe(cfg: ScanConfig, s: dict) -> list[str]:
    """One line per horizon: where the transition sits, against η λ_max and 2(1 + β)."""
    lines = []
    for j, T in enumerate(cfg.horizons):
        x = float(s["transition_value"][j])
        if not np.isfinite(x):
            lines.append(f"T = {T}: no transition on this grid (hypergradient agrees with the local slope)")
            continue
        text = f"T = {T}: transition at {cfg.hyper} = {x:.4g}"
        if "transition_b_max" in s and "beta" in s:
            beta = float(np.nanmean(s["beta"]))
            text += (f"; there η·λ_max = {float(s['transition_b_max'][j]):.3g} (step map at t = T − 1), "
                     f"{float(s['transition_eta_lambda_max_full'][j]):.3g} (full batch at T − 1), "
                     f"{float(s['transition_b_max_at_init'][j]):.3g} (step map at t = 0), "
                     f"{float(s['transition_b_max_path_max'][j]):.3g} (largest step map sampled up to T − 1); "
                     f"2(1 + β) = {2 * (1 + beta):.3g}")
        lines.append(text)
    return lines


def _first(values: np.ndarray, mask: np.ndarray) -> float:
    hits = np.flatnonzero(mask)
    return float(values[hits[0]]) if len(hits) else math.nan
