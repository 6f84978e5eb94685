"""Dense line searches near a minimum and their roughness across scales: is the loss smooth,
rough (fractal) or rounding noise at small scales? (docs/analyses-eigen.md)

Along v_i the loss is sampled at Z evenly spaced points t = c_i + s, |s| ≤ w, around
the curve's minimum c_i, in the objective's precision (float32) and, when a float64
objective is given, in float64 — the same θ, data and model, so their difference is
the rounding error of the float32 evaluation.

**Roughness measure.** The second-order structure function at lag h (in grid steps
2^j, j = 0, 1, …),

    D₂(h) = mean_t [f(t + h) − 2 f(t) + f(t − h)]²,

removes constants and linear trends and scales as D₂ ∝ h^{2α} for a curve that is
Hölder-α rough (0 < α < 1: fractal, e.g. Brownian α = ½); a smooth (C²) curve gives
D₂ = (f'' h²)² ∝ h⁴ (the quadratic model predicts exactly (λ h²)²), and white
rounding noise of standard deviation σ gives the flat D₂ = 6σ². The local log-log
slope of D₂ between successive lags therefore reads 4 for smooth, 2α for fractal
and 0 for noise. ``noise_sigma`` = √(D₂(h_min)/6) is the noise level the finest lag
would imply; compare it with the measured float32 − float64 difference.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analyses.linesearch.curves import along
from landscape.errors import InputError


def zoom_offsets(half_width: float, num: int) -> np.ndarray:
    """Z evenly spaced offsets s ∈ [−w, w] (float64)."""
    if not (np.isfinite(half_width) and half_width > 0):
        raise InputError(f"the zoom half-width must be finite and positive, got {half_width}")
    if num < 8:
        raise InputError(f"a dense zoom needs at least 8 points (--zoom-points), got {num}")
    return np.linspace(-half_width, half_width, num)


def structure_function(Y: np.ndarray, h: float, levels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lags ``h·2^j`` ``(J,)`` and D₂ ``(..., J)`` of curves ``Y (..., Z)`` sampled with spacing h."""
    Y = np.asarray(Y, dtype=np.float64)
    Z = Y.shape[-1]
    most = int(np.floor(np.log2((Z - 1) / 4))) + 1  # the largest lag keeps ≥ Z/2 second differences
    J = most if levels is None else min(levels, most)
    lags = 2 ** np.arange(J)
    d2 = np.stack([np.mean((Y[..., 2 * m:] - 2 * Y[..., m:-m] + Y[..., :-2 * m]) ** 2, axis=-1) for m in lags], -1)
    return h * lags, d2


def roughness(Y: np.ndarray, h: float, eigenvalues: np.ndarray | None = None) -> dict:
    """D₂ across lags, its local log-log exponents and the implied noise level, per curve ``(k, Z)``.

    Returns:
        ``lags (J,)``, ``d2 (k, J)``, ``exponent (k, J−1)`` (slope of log D₂ between successive
        lags), ``noise_sigma (k,)`` and, with eigenvalues, ``quadratic_d2 (k, J)`` = (λ h²)².
    """
    lags, d2 = structure_function(Y, h)
    with np.errstate(divide="ignore", invalid="ignore"):
        expo = np.diff(np.log(d2), axis=-1) / np.diff(np.log(lags))
    out = {"lags": lags, "d2": d2, "exponent": expo, "noise_sigma": np.sqrt(d2[..., 0] / 6.0)}
    if eigenvalues is not None:
        out["quadratic_d2"] = (np.asarray(eigenvalues, dtype=np.float64)[:, None] * lags[None] ** 2) ** 2
    return out


def dense_curves(objective, theta: Tensor, V: Tensor, centres: np.ndarray, offsets: np.ndarray, *,
                 chunk: int = 64) -> np.ndarray:
    """L(θ + (c_i + s) v_i) ``(k, Z)`` in the objective's precision.

    The points are formed in float64 and rounded once to the objective's dtype, so the
    float32 curve differs from the float64 one only by float32 rounding of θ + t v and
    of the forward pass — not by rounding t itself (c + s with |s| ≪ |c| in float32).
    """
    theta, V = theta.to(torch.float64), V.to(torch.float64)
    rows = [along(objective, theta, V[i:i + 1], float(c) + offsets, chunk=chunk, desc=f"zoom v{i}")["loss"][0]
            for i, c in enumerate(centres)]
    return np.stack(rows)


def zoom(objective, theta: Tensor, V: Tensor, centres: np.ndarray, eigenvalues: np.ndarray, *, half_width: float,
         num: int = 2001, objective64=None, chunk: int = 64) -> dict:
    """The dense zoom of the module docstring for each row of V around its centre.

    Args:
        objective: the float32 (run-precision) objective.
        theta: θ ``(P,)``; V: directions ``(k, P)``; centres: c_i ``(k,)``.
        eigenvalues: λ_i ``(k,)`` for the quadratic reference D₂ = (λh²)².
        half_width, num: the zoom interval [c − w, c + w] and its number of points.
        objective64: the same objective in float64, or None.

    Returns:
        ``offsets (Z,)``, ``centres``, ``loss (k, Z)`` and its roughness (``d2``, ``exponent``,
        ``noise_sigma``, ``lags``, ``quadratic_d2``); with ``objective64`` also ``loss64``,
        its roughness (``*64``) and ``fp32_error_std``/``fp32_error_max`` ``(k,)``.
    """
    offsets = zoom_offsets(half_width, num)
    h = float(offsets[1] - offsets[0])
    out = {"offsets": offsets, "centres": np.asarray(centres, dtype=np.float64)}
    out["loss"] = dense_curves(objective, theta, V, centres, offsets, chunk=chunk)
    out.update(roughness(out["loss"], h, eigenvalues))
    if objective64 is not None:
        out["loss64"] = dense_curves(objective64, theta, V, centres, offsets, chunk=chunk)
        r64 = roughness(out["loss64"], h)
        out.update({f"{name}64": r64[name] for name in ("d2", "exponent", "noise_sigma")})
        err = out["loss"] - out["loss64"]
        out["fp32_error_std"], out["fp32_error_max"] = err.std(axis=1), np.abs(err).max(axis=1)
    return out
