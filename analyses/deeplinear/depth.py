"""Study 3: narrow deep nets y = (Π wᵢ)·x — the best η and the learning time per depth, and inits.

For each depth D and each constant init wᵢ = c, every η of the sweep runs at once
(:func:`.descent.descend`, racing): the **best η** is the one with the shortest learning
time (steps until L − L* ≤ threshold for good, :mod:`.tracker`), ties going to the larger η
(the lecture's "aim for the maximum stable learning rate"). Two lessons of the lecture
(Saxe, Neuromatch Academy W1D2) show up:

* with wᵢ = c < 1 the initial product c^D vanishes with depth, so the escape from the
  saddle near w = 0 takes longer and longer: **learning time grows with depth**;
* the sharpness at the balanced minimum is λ = 2⟨x²⟩·D·|â|^{2−2/D} (:func:`.product.balanced_sharpness`),
  so a stable η must be below 2/λ ∝ 1/D: **the best η falls with depth**.

The initialisation sweep at one depth runs wᵢ = c over a range around 1 (vanishing products
for c < 1, exploding ones for c > 1, the isometric init c = 1 in between) and small random
inits wᵢ ~ N(0, σ²), each with its own best η.
"""

from __future__ import annotations

import numpy as np
import torch

from analyses.deeplinear import product as PR
from analyses.deeplinear.data import DTYPE, Moments
from analyses.deeplinear.descent import descend, log_steps


def best_rows(learned: np.ndarray) -> np.ndarray:
    """Per row of ``learned (G, L)``: the column with the smallest learning time ≥ 0, ties to
    the last (larger η: the sweep is ascending); −1 where no column learned."""
    t = np.where(learned >= 0, learned, np.iinfo(np.int64).max)
    best = t.shape[1] - 1 - np.argmin(t[:, ::-1], axis=1)
    return np.where((learned >= 0).any(1), best, -1)


def sweep(W0: torch.Tensor, lrs: tuple, m: Moments, steps: int, threshold: float, curve_points: int) -> dict:
    """Every init row of ``W0 (G, D)`` × every η, racing per init: arrays indexed (G, L)."""
    G, L = W0.shape[0], len(lrs)
    W = W0.to(DTYPE).repeat_interleave(L, 0)
    eta = torch.tensor(lrs, dtype=DTYPE).repeat(G)
    groups = torch.arange(G).repeat_interleave(L)
    r = descend(W, eta, m, steps, threshold=threshold, record_steps=log_steps(steps, curve_points),
                groups=groups, race=True)
    learned = r.learned_at.reshape(G, L)
    best = best_rows(learned)
    curves = r.loss.reshape(G, L, -1)
    pick = np.where(best >= 0, best, 0)
    return {"learning_time": learned, "stopped_at": r.stopped_at.reshape(G, L),
            "diverged_at": r.diverged_at.reshape(G, L), "best_index": best,
            "best_lr": np.where(best >= 0, np.asarray(lrs)[pick], np.nan),
            "best_time": np.where(best >= 0, learned[np.arange(G), pick], -1),
            "best_curve": np.where((best >= 0)[:, None], curves[np.arange(G), pick], np.nan),
            "curve_steps": r.record_steps, "steps_run": r.steps_run}


def depth_sweep(m: Moments, cfg) -> dict:
    """The depth study (a DepthConfig): arrays over (depth, init c, η)."""
    parts = [sweep(torch.tensor(cfg.inits, dtype=DTYPE)[:, None].repeat(1, D), cfg.lrs, m, cfg.max_steps,
                   cfg.threshold, cfg.curve_points) for D in cfg.depths]
    out = {k: np.stack([p[k] for p in parts]) for k in parts[0] if k not in ("curve_steps", "steps_run")}
    out["curve_steps"] = log_steps(cfg.max_steps, cfg.curve_points)
    out["steps_run"] = np.array([p["steps_run"] for p in parts])
    out["critical_lr"] = np.array([2 / PR.balanced_sharpness(D, m) for D in cfg.depths])
    out.update(depths=np.array(cfg.depths), inits=np.array(cfg.inits), lrs=np.array(cfg.lrs))
    return out


def init_rows(cfg) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    """The inits of the sweep: ``W0 (G, D)``, kind (0: wᵢ = c, 1: wᵢ ~ N(0, σ²)), value, seed."""
    D = cfg.init_depth
    rows = [torch.full((D,), c, dtype=DTYPE) for c in cfg.init_cs]
    kind, value, seed = [0] * len(cfg.init_cs), list(cfg.init_cs), [-1] * len(cfg.init_cs)
    for sigma in cfg.init_sigmas:
        for s in range(cfg.init_seeds):
            g = torch.Generator().manual_seed(s)
            rows.append(sigma * torch.randn(D, generator=g, dtype=DTYPE))
            kind.append(1), value.append(sigma), seed.append(s)
    return torch.stack(rows), np.array(kind), np.array(value), np.array(seed)


def init_sweep(m: Moments, cfg) -> dict:
    """The initialisation study at ``cfg.init_depth`` (a DepthConfig)."""
    W0, kind, value, seed = init_rows(cfg)
    out = sweep(W0, cfg.lrs, m, cfg.init_max_steps, cfg.threshold, cfg.curve_points)
    out.update(init_kind=kind, init_value=value, init_seed=seed, lrs=np.array(cfg.lrs),
               product0=W0.prod(1).numpy(), grad_norm0=PR.grad(W0, m).norm(dim=1).numpy(),
               init_depth=cfg.init_depth, critical_lr=2 / PR.balanced_sharpness(cfg.init_depth, m))
    depths = np.arange(1, max(max(cfg.depths), cfg.init_depth) + 1)
    out["product_depths"] = depths
    out["product_table"] = np.asarray(cfg.init_cs)[:, None] ** depths[None, :]   # c^D: vanishing / exploding
    return out
