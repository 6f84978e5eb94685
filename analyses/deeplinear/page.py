"""The precomputed grid behind the interactive page: depth × η × init c, plus the D = 2 landscape.

For every depth D, η and constant init wᵢ = c of a :class:`~.config.PageConfig`, gradient
descent runs a fixed number of steps (no racing: every curve is complete) and stores

* the loss at log-spaced steps (the page's loss curve, L − L* on a log axis);
* λ_max of the exact Hessian at log-spaced steps and the regime label of :mod:`.regimes`;
* the learning time (:mod:`.tracker`) within the horizon;
* for D = 2, every iterate up to ``trajectory_steps`` (the path drawn on the landscape).

The landscape itself — L(w₁, w₂) on a grid — is evaluated through the Objective
(:func:`.narrow.surface`), like study 1.
"""

from __future__ import annotations

import numpy as np
import torch

from analyses.deeplinear import narrow as NA
from analyses.deeplinear import regimes as RG
from analyses.deeplinear.data import DTYPE, ScalarData
from analyses.deeplinear.descent import descend, log_steps


def depth_block(D: int, m, cfg) -> dict:
    """All (c, η) runs of one depth: arrays indexed (init, η, ...)."""
    C, L = len(cfg.inits), len(cfg.lrs)
    W0 = torch.tensor(cfg.inits, dtype=DTYPE).repeat_interleave(L)[:, None].repeat(1, D)
    eta = torch.tensor(cfg.lrs, dtype=DTYPE).repeat(C)
    curv = log_steps(cfg.steps, cfg.curvature_points)
    r = descend(W0, eta, m, cfg.steps, threshold=cfg.threshold,
                record_steps=log_steps(cfg.steps, cfg.curve_points), curvature_steps=curv, keep_path=(D == 2))
    labels = RG.labels(eta.numpy(), r.lam, r.loss, r.diverged_at >= 0, cfg.steps)
    rho_max, _ = RG.rho_summary(eta.numpy(), r.lam)
    out = {"loss": r.loss.reshape(C, L, -1), "label": np.array([RG.REGIMES.index(s) for s in labels]).reshape(C, L),
           "rho_max": rho_max.reshape(C, L), "learning_time": r.learned_at.reshape(C, L)}
    if D == 2:
        out["path"] = r.path[:, : cfg.trajectory_steps + 1].reshape(C, L, -1, 2)
    return out


def page_grid(data: ScalarData, cfg) -> dict:
    """Everything the page shows (a PageConfig): arrays indexed (depth, init, η, ...)."""
    m = data.moments
    blocks = [depth_block(D, m, cfg) for D in cfg.depths]
    out = {k: np.stack([b[k] for b in blocks]) for k in ("loss", "label", "rho_max", "learning_time")}
    if 2 in cfg.depths:
        out["path"] = blocks[cfg.depths.index(2)]["path"]
    xs = NA.grid_points(cfg.span, cfg.grid)
    out.update(depths=np.array(cfg.depths), lrs=np.array(cfg.lrs), inits=np.array(cfg.inits),
               curve_steps=log_steps(cfg.steps, cfg.curve_points), grid=xs,
               surface=NA.surface(NA.objective(data), xs, xs), regimes=np.array(RG.REGIMES),
               loss_min=m.loss_min, a_hat=m.a_hat)
    return out
