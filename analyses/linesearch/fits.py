"""Functional forms of the eigendirection line-search curves: fits of each curve to simple forms
(Taylor polynomials and a user expression; docs/analyses-eigen.md).

For curves f_i(t) = L(θ + t v_i) on a grid ``(k, T)``:

* Taylor fits Σ_n a_n tⁿ/n! of degree 2 (on |t| ≤ ``window`` and on the whole grid)
  and 4 (whole grid); a_2 of the small-window quadratic is the fitted curvature,
  compared with λ_i (``curvature_ratio`` = a_2/λ_i → 1 for small windows);
* a user-supplied form f(t; p) fitted by nonlinear least squares
  (:func:`scipy.optimize.curve_fit`);
* the distance from the quadratic prediction q_i(t) = f_i(0) + (g·v_i) t + ½ λ_i t²,
  relative to its curvature term,

      d_i(t) = (f_i(t) − q_i(t)) / (½ |λ_i| t²),

  and the departure point: the smallest |t| on each side where |d_i(t)| > ``tol``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

from analyses.linesearch.curves import taylor_fit


@dataclass(frozen=True)
class FunctionalForm:
    """A user form ``fn(t, *params) -> f(t)`` with parameter names and initial values."""

    name: str
    fn: Callable[..., np.ndarray]
    param_names: tuple[str, ...]
    p0: tuple[float, ...]
    expression: str = ""


def quadratic_prediction(ts: np.ndarray, L0: np.ndarray, slopes: np.ndarray, eigenvalues: np.ndarray) -> np.ndarray:
    """q_i(t) = L0_i + s_i t + ½ λ_i t², ``(k, T)``."""
    t = np.asarray(ts, dtype=np.float64)[None]
    L0, s, lam = (np.asarray(a, dtype=np.float64)[:, None] for a in (L0, slopes, eigenvalues))
    return L0 + s * t + 0.5 * lam * t * t


def relative_deviation(ts: np.ndarray, Y: np.ndarray, prediction: np.ndarray, eigenvalues: np.ndarray) -> np.ndarray:
    """d_i(t) = (f_i(t) − q_i(t)) / (½ |λ_i| t²); NaN at t = 0 or λ_i = 0."""
    t2 = 0.5 * np.abs(np.asarray(eigenvalues, dtype=np.float64))[:, None] * np.asarray(ts)[None] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t2 > 0, (np.asarray(Y) - prediction) / t2, np.nan)


def departure(ts: np.ndarray, deviation: np.ndarray, tol: float) -> np.ndarray:
    """Smallest |t| with |d(t)| > tol on the negative and the positive side ``(k, 2)`` (NaN: never)."""
    ts = np.asarray(ts)
    out = np.full((deviation.shape[0], 2), np.nan)
    for side, mask in enumerate((ts < 0, ts > 0)):
        mags, dev = np.abs(ts[mask]), np.abs(deviation[:, mask]) > tol
        order = np.argsort(mags)
        for i, row in enumerate(dev[:, order]):
            hits = np.flatnonzero(row)
            out[i, side] = mags[order][hits[0]] if hits.size else np.nan
    return out


def fit_form(ts: np.ndarray, Y: np.ndarray, form: FunctionalForm, maxfev: int = 5000) -> dict:
    """Least-squares fit of ``form`` to each curve of ``Y (k, T)``.

    Returns:
        ``form_params (k, p)``, ``form_rms (k,)`` and ``form_ok (k,)`` (False where the
        optimiser failed or the form returned non-finite values; params are then NaN).
    """
    k, p = len(Y), len(form.param_names)
    params, rms, ok = np.full((k, p), np.nan), np.full(k, np.nan), np.zeros(k, bool)
    for i, y in enumerate(np.asarray(Y, dtype=np.float64)):
        good = np.isfinite(y)
        try:
            popt, _ = curve_fit(form.fn, ts[good], y[good], p0=form.p0, maxfev=maxfev)
            resid = form.fn(ts[good], *popt) - y[good]
        except (RuntimeError, ValueError, TypeError, ZeroDivisionError, OverflowError, FloatingPointError):
            continue
        if np.all(np.isfinite(resid)):
            params[i], rms[i], ok[i] = popt, np.sqrt(np.mean(resid ** 2)), True
    return {"form_params": params, "form_rms": rms, "form_ok": ok}


def fit_curves(ts: np.ndarray, loss: np.ndarray, eigenvalues: np.ndarray, slopes: np.ndarray | None = None, *,
               window: float, form: FunctionalForm | None = None, tol: float = 0.1) -> dict:
    """Every fit of the module docstring for the full-dataset curves ``loss (k, T)``.

    Args:
        ts: the grid ``(T,)`` (must contain 0 for the quadratic prediction).
        eigenvalues: λ_i ``(k,)``.
        slopes: g·v_i ``(k,)``; None takes the slope of the small-window quadratic.
        window: |t| range of the small-window quadratic.
        form: an optional user form.
        tol: the relative deviation that marks the departure from quadratic.
    """
    ts, loss = np.asarray(ts, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    small, small_rms = taylor_fit(ts, loss, 2, window)
    quad, quad_rms = taylor_fit(ts, loss, 2)
    quartic, quartic_rms = taylor_fit(ts, loss, 4)
    L0 = loss[:, int(np.argmin(np.abs(ts)))]
    s = small[:, 1] if slopes is None else np.asarray(slopes, dtype=np.float64)
    pred = quadratic_prediction(ts, L0, s, eigenvalues)
    dev = relative_deviation(ts, loss, pred, eigenvalues)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = small[:, 2] / np.asarray(eigenvalues, dtype=np.float64)
    out = {"small_quadratic_coef": small, "small_quadratic_rms": small_rms, "fitted_curvature": small[:, 2],
           "curvature_ratio": ratio, "quadratic_coef": quad, "quadratic_rms": quad_rms,
           "quartic_coef": quartic, "quartic_rms": quartic_rms, "prediction": pred, "deviation": dev,
           "departure_t": departure(ts, dev, tol), "slopes": s}
    if form is not None:
        out.update(fit_form(ts, loss, form))
    return out
