"""The results of the deep-linear studies as named records, one per results-file item.

``plan(cfg, study)`` lists the :class:`~analyses.driver.records.Item` s of one study; each computes a
:class:`~analyses.driver.records.Record` (arrays and attributes). Nothing here opens a file: the
command hands the items to :func:`analyses.driver.runner.run_items`. Keys (``ITEMS``)::

    deeplinear/narrow/surface          loss grid and gradient field of y = x·w₁·w₂
    deeplinear/narrow/trajectories     GD paths from the chosen starts
    deeplinear/narrow/critical_points  Newton-found critical points, Hessian eigenvalues, kinds
    deeplinear/regimes/curves          loss curves of an η sweep with λ_max along the path, labels
    deeplinear/depth/sweep             best η and learning time per depth (narrow deep nets)
    deeplinear/depth/init              the initialisation sweep at one depth
    deeplinear/saxe/modes              two-layer mode strengths: GD against Saxe et al.'s u(t)
    deeplinear/saxe/depth              learning time against depth, random vs orthogonal init
    deeplinear/page/grid               depth × η × c curves, labels and D = 2 paths for the page

Array layouts are listed in ``docs/contracts.md`` (section "deeplinear").
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from analyses.deeplinear import depth as DP
from analyses.deeplinear import narrow as NA
from analyses.deeplinear import page as PG
from analyses.deeplinear import product as PR
from analyses.deeplinear import regimes as RG
from analyses.deeplinear import saxe as SX
from analyses.deeplinear import saxe_depth as SD
from analyses.deeplinear.data import DTYPE, scalar_data, wide_data
from analyses.deeplinear.descent import descend
from analyses.driver.records import Item, Record

PREFIX = "deeplinear"
ITEMS = {
    "narrow": ("surface", "trajectories", "critical_points"),
    "regimes": ("curves",),
    "depth": ("sweep", "init"),
    "saxe": ("modes", "depth"),
    "page": ("grid",),
}


def key(study: str, name: str) -> str:
    return f"{PREFIX}/{study}/{name}"


def plan(cfg, study: str) -> list[Item]:
    """The items of ``study`` (one of ``ITEMS``) for a StudyConfig."""
    fns = {"narrow": (narrow_surface, narrow_trajectories, critical_points), "regimes": (regimes,),
           "depth": (depth_sweep, init_sweep), "saxe": (saxe_modes, saxe_depth), "page": (page_grid,)}[study]
    return [Item(key(study, name), partial(fn, cfg), label=f"{study}/{name}")
            for name, fn in zip(ITEMS[study], fns)]


def _moments_attrs(m) -> dict:
    return {"moments": m.as_dict()}


def narrow_surface(cfg) -> Record:
    """The exact loss over the (w₁, w₂) grid and ∇L on a coarser grid, through the Objective."""
    data = scalar_data(cfg.data)
    obj, c, m = NA.objective(data), cfg.narrow, data.moments
    xs, fs = NA.grid_points(c.span, c.grid), NA.grid_points(c.span, c.field)
    loss = NA.surface(obj, xs, xs)
    w1, w2 = np.meshgrid(xs, xs)
    closed = PR.loss(torch.as_tensor(np.stack([w1, w2], -1), dtype=DTYPE), m).numpy()
    return Record({"w1": xs, "w2": xs, "loss": loss, "field_w1": fs, "field_w2": fs,
                   "gradient": NA.gradient_field(obj, fs, fs),
                   "closed_form_max_abs_error": float(np.abs(loss - closed).max())}, _moments_attrs(m))


def narrow_trajectories(cfg) -> Record:
    """GD paths (the trainer's update rule on the Objective's gradient) from the chosen starts."""
    data = scalar_data(cfg.data)
    obj, c = NA.objective(data), cfg.narrow
    runs = [NA.trajectory(obj, s, c.lr, c.steps) for s in c.starts]
    return Record({"starts": np.array(c.starts, dtype=np.float64), "paths": np.stack([p for p, _ in runs]),
                   "losses": np.stack([lo for _, lo in runs]), "lr": c.lr}, _moments_attrs(data.moments))


def critical_points(cfg) -> Record:
    """Newton-found critical points, merged, with their Hessian eigenvalues and kinds."""
    data = scalar_data(cfg.data)
    found = NA.critical_points(NA.objective(data), cfg.narrow, data.moments)
    return Record(found, {**_moments_attrs(data.moments), "eig_rtol": NA.EIG_RTOL})


def regimes(cfg) -> Record:
    """Loss curves of an η sweep from one start of the two-layer net, λ_max at every step, labels."""
    m, c = scalar_data(cfg.data).moments, cfg.regimes
    W0 = torch.tensor([c.start], dtype=DTYPE)
    lam0 = float(PR.lambda_max(W0, m)[0])
    lrs = np.array(c.lrs if c.lrs else [f * 2 / lam0 for f in c.lr_factors])
    r = descend(W0.repeat(len(lrs), 1), torch.as_tensor(lrs, dtype=DTYPE), m, c.steps,
                curvature_steps=np.arange(c.steps + 1), keep_path=True)
    labels = RG.labels(lrs, r.lam, r.loss, r.diverged_at >= 0, c.steps)
    rho_max, rho_end = RG.rho_summary(lrs, r.lam)
    return Record({"lrs": lrs, "steps": r.record_steps, "loss": r.loss, "lam": r.lam, "path": r.path,
                   "label": np.array(labels, dtype=str), "label_index": np.array([RG.REGIMES.index(s) for s in labels]),
                   "rho_max": rho_max, "rho_end": rho_end, "diverged_at": r.diverged_at, "start": np.array(c.start),
                   "lam0": lam0, "loss_min": m.loss_min},
                  {**_moments_attrs(m), "rule": RG.RULE, "regimes": list(RG.REGIMES)})


def depth_sweep(cfg) -> Record:
    m = scalar_data(cfg.data).moments
    return Record(DP.depth_sweep(m, cfg.depth), {**_moments_attrs(m), "threshold": cfg.depth.threshold})


def init_sweep(cfg) -> Record:
    m = scalar_data(cfg.data).moments
    return Record(DP.init_sweep(m, cfg.depth), {**_moments_attrs(m), "threshold": cfg.depth.threshold})


def saxe_modes(cfg) -> Record:
    """Two-layer GD through the Objective from small balanced and small random inits, against u(t)."""
    c = cfg.saxe
    data = wide_data(c)
    obj = SX.objective(data, SX.model(data, c.hidden, seed=c.seed))
    u_sim, loss = SX.simulate(obj, SX.balanced_theta(obj, data, c.u0, c.seed), data, c.lr, c.steps)
    rnd = SX.objective(data, SX.model(data, c.hidden, seed=c.seed, init_scale=c.init_scale))
    u_rnd, loss_rnd = SX.simulate(rnd, rnd.theta, data, c.lr, c.steps)
    t, s, tau = np.arange(c.steps + 1), data.s.numpy(), SX.tau(c.lr)
    u_th = np.stack([SX.mode_strength(t, sa, c.u0, tau) for sa in s], 1)
    return Record({"t": t, "s": s, "u_sim": u_sim, "u_theory": u_th, "loss": loss, "u_random": u_rnd,
                   "loss_random": loss_rnd, "max_error_over_s": (np.abs(u_sim - u_th) / s).max(0),
                   "half_time_theory": np.array([SX.learning_time(sa, c.u0, sa / 2, tau) for sa in s]),
                   "half_time_sim": _half_times(u_sim, s), "half_time_random": _half_times(u_rnd, s),
                   "tau": tau, "lr": c.lr, "u0": c.u0}, {"tau_rule": "tau = 1/(2 lr) steps"})


def _half_times(u: np.ndarray, s: np.ndarray) -> np.ndarray:
    """First step at which each mode reaches s/2 (−1 if never)."""
    reached = u >= s / 2
    return np.where(reached.any(0), reached.argmax(0), -1)


def saxe_depth(cfg) -> Record:
    data = wide_data(cfg.saxe)
    return Record(SD.depth_study(data, cfg.saxe), {"threshold": cfg.saxe.threshold})


def page_grid(cfg) -> Record:
    data = scalar_data(cfg.data)
    return Record(PG.page_grid(data, cfg.page), {**_moments_attrs(data.moments), "rule": RG.RULE})
