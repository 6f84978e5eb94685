"""Study 4b: learning time against depth for wide deep linear nets, small random vs orthogonal init.

Saxe, McClelland & Ganguli (2014, §4–5): from small random Gaussian weights the product
W_D⋯W₁ starts with tiny, spread singular values and the time to learn grows with depth even
at the best learning rate; from orthogonal weights (every layer isometric, the product
orthogonal) the learning time, at the best learning rate (which falls ∝ 1/D), stays
about constant. For each init and depth every η of the sweep runs at once
(:func:`.wide.descend`, racing) until L − L* ≤ threshold·Σ s_α² for good (the zero map's
excess is Σ s_α²). Inits come from the ``deep_linear`` model itself
(``init="gaussian"``: N(0, scale²/fan_in); ``"orthogonal"``: scale·Q).

Once an init has not learned within ``max_steps`` at some depth, deeper nets of that init
are not run (learning time grows with depth there; they are marked ``skipped``), which
keeps the study inside its time budget.
"""

from __future__ import annotations

import numpy as np
import torch

from analyses.deeplinear import saxe as SX
from analyses.deeplinear import wide as WI
from analyses.deeplinear.data import DTYPE, WideData
from analyses.deeplinear.depth import best_rows
from analyses.deeplinear.descent import log_steps


def padded_target(data: WideData, n: int) -> torch.Tensor:
    """Σ_yx zero-padded to ``(n, n)``."""
    T = torch.zeros(n, n, dtype=DTYPE)
    T[: data.U.shape[0], : data.V.shape[0]] = data.target
    return T


def initial_layers(data: WideData, depth: int, init: str, scale: float, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own init for (depth, init, scale), padded: ``(D, n, n)`` and its mask."""
    net = SX.model(data, cfg.width, depth=depth, seed=cfg.seed, init=init, init_scale=scale)
    n = max(cfg.in_dim, cfg.out_dim, cfg.width)
    return WI.pad_layers([layer.weight.detach().to(DTYPE) for layer in net.layers], n)


def one_depth(data: WideData, depth: int, init: str, scale: float, cfg) -> dict:
    """Every η for one (depth, init): learning times ``(L,)`` and the steps run."""
    A, mask = initial_layers(data, depth, init, scale, cfg)
    lrs = torch.tensor(cfg.lrs, dtype=DTYPE)
    n = A.shape[-1]
    r = WI.descend(A[None].repeat(len(lrs), 1, 1, 1), mask, lrs, padded_target(data, n), data.yy,
                   cfg.max_steps, threshold=cfg.threshold * float((data.s ** 2).sum()),
                   loss_min=data.yy - float((data.s ** 2).sum()), record_steps=log_steps(cfg.max_steps, 2))
    return {"learning_time": r["learned_at"], "steps_run": r["steps_run"]}


def depth_study(data: WideData, cfg) -> dict:
    """Arrays over (init, depth, η) for a SaxeConfig."""
    I, D, L = len(cfg.depth_inits), len(cfg.depths), len(cfg.lrs)
    learned = np.full((I, D, L), -1, dtype=np.int64)
    skipped = np.zeros((I, D), dtype=bool)
    steps_run = np.zeros((I, D), dtype=np.int64)
    for i, (init, scale) in enumerate(cfg.depth_inits):
        for j, depth in enumerate(cfg.depths):
            if j and (learned[i, j - 1] < 0).all():
                skipped[i, j:] = True
                break
            r = one_depth(data, depth, init, scale, cfg)
            learned[i, j], steps_run[i, j] = r["learning_time"], r["steps_run"]
    best = np.stack([best_rows(learned[i]) for i in range(I)])
    pick = np.where(best >= 0, best, 0)
    best_time = np.where(best >= 0, np.take_along_axis(learned, pick[..., None], 2)[..., 0], -1)
    return {"depths": np.array(cfg.depths), "inits": np.array([f"{k} ×{s:g}" for k, s in cfg.depth_inits]),
            "init_kind": np.array([k for k, _ in cfg.depth_inits]),
            "init_scale": np.array([s for _, s in cfg.depth_inits], dtype=np.float64),
            "lrs": np.array(cfg.lrs), "learning_time": learned, "skipped": skipped, "steps_run": steps_run,
            "best_lr": np.where(best >= 0, np.asarray(cfg.lrs)[pick], np.nan), "best_time": best_time}
