"""Line searches along Hessian eigenvectors (user guide: docs/analyses-eigen.md).

Along a unit eigenvector v_i with eigenvalue λ_i the quadratic model predicts

    f_i(t) = L(θ + t v_i) ≈ L(θ) + t g·v_i + ½ λ_i t²,

so the curvature of a fit at small |t| should be λ_i, and the distance from that
prediction as |t| grows says how quadratic the landscape is (Ghorbani et al. 2019
and PyHessian's tutorial draw the same curves by hand).

**Cost.** Every grid point θ + t v_i costs one forward pass over the data and no
more: :func:`along` batches many points per call (vmapped over θ, see
:meth:`landscape.Objective.losses_at`), computes the centre θ once for all
directions, and — when minibatch curves are asked for — takes the *per-example*
losses ℓ_n(θ + t v_i) at each point once and averages them over each minibatch B,

    f_i^B(t) = (1/|B|) Σ_{n∈B} ℓ_n(θ + t v_i),

so the minibatch curves (b) reuse the forward passes of the full curves (a). With
equal-sized minibatches that partition the data, the mean of the f_i^B is f_i
exactly.

Curve summaries (vectorised over any leading axes ``(..., T)``):

* minimum location: the grid argmin refined by the parabola through it and its two
  neighbours; ``bracketed`` is false when the argmin sits on the grid's edge;
* curvature: twice the t² coefficient of a least-squares quadratic
  a + b t + ½ c t² on the points with |t| ≤ ``window`` (bias O(window²) from the
  quartic term).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor
from tqdm.auto import tqdm

from landscape.errors import InputError

SPACINGS = ("linear", "log")


@dataclass(frozen=True)
class TGrid:
    """A symmetric grid of step sizes t (units of θ; eigenvectors have unit norm).

    ``linear``: ``num`` points evenly spaced on [−t_max, t_max] (odd ``num`` includes 0).
    ``log``: 0 and ±``num // 2`` log-spaced magnitudes in [t_min, t_max].
    """

    t_max: float = 1.0
    num: int = 41
    spacing: str = "linear"
    t_min: float = 1e-3  # smallest |t| > 0 of a log grid

    def values(self) -> np.ndarray:
        """The sorted grid ``(T,)`` in float64."""
        self.check()
        if self.spacing == "linear":
            return np.linspace(-self.t_max, self.t_max, self.num)
        half = np.logspace(np.log10(self.t_min), np.log10(self.t_max), self.num // 2)
        return np.concatenate([-half[::-1], [0.0], half])

    def check(self) -> None:
        """Raise :class:`InputError` for a grid with no points, bad bounds or an unknown spacing."""
        if self.spacing not in SPACINGS:
            raise InputError(f"unknown t spacing {self.spacing!r}; use one of {', '.join(SPACINGS)}")
        bounds = (self.t_max, self.t_min) if self.spacing == "log" else (self.t_max,)
        if not all(np.isfinite(b) and b > 0 for b in bounds):
            raise InputError(f"the t-grid bounds must be finite and positive, got t_max={self.t_max}"
                             + (f", t_min={self.t_min}" if self.spacing == "log" else ""))
        if self.spacing == "log" and self.t_min >= self.t_max:
            raise InputError(f"a log t-grid needs t_min < t_max, got {self.t_min} ≥ {self.t_max}")
        least = 3 if self.spacing == "linear" else 2
        if self.num < least:
            raise InputError(f"the t-grid has {self.num} point(s); ask for at least {least} (--num-t)")


def select_directions(spec: str, eigenvalues: np.ndarray) -> np.ndarray:
    """Row indices of the stored eigenpairs that ``spec`` names.

    ``top:n`` (the n largest λ), ``bottom:n`` (the n smallest), ``all``, or
    comma-separated indices of the stored rows (``0,3,7``).
    """
    lam = np.asarray(eigenvalues)
    k = len(lam)
    kind, _, n = spec.partition(":")
    if kind in ("top", "bottom"):
        n = _ints(spec, n)[0] if n else 0
        if not 1 <= n <= k:
            raise InputError(f"--directions {spec}: n must be in 1 … {k} (the eigenpairs stored)")
        order = np.argsort(-lam, kind="stable")
        return order[:n] if kind == "top" else order[::-1][:n]
    idx = np.arange(k) if spec == "all" else np.array(_ints(spec, spec), dtype=np.int64)
    bad = [int(i) for i in idx if not 0 <= i < k]
    if bad or idx.size == 0:
        raise InputError(f"direction index {bad or spec} out of range: the results hold {k} eigenvectors (0 … {k - 1})")
    return idx


def _ints(spec: str, text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--directions {spec!r}: use 'top:n', 'bottom:n', 'all' or indices like '0,3,7'") from None


def minibatches(N: int, batch_size: int, num_batches: int | None = None, *, seed: int = 0) -> np.ndarray:
    """Disjoint random minibatches ``(n_b, batch_size)`` of example indices (a partition when all N // b)."""
    if not 1 <= batch_size <= N:
        raise InputError(f"minibatch size {batch_size} must be in 1 … N = {N}")
    most = N // batch_size
    n_b = most if num_batches is None else num_batches
    if not 1 <= n_b <= most:
        raise InputError(f"{n_b} disjoint minibatches of {batch_size} do not fit in N = {N}; at most {most}")
    perm = np.random.default_rng(seed).permutation(N)
    return perm[:n_b * batch_size].reshape(n_b, batch_size)


def per_example_at(objective, thetas: Tensor) -> tuple[Tensor, Tensor | None]:
    """Per-example losses ``(m, N)`` (and correctness, or None) at each row of ``thetas``.

    Uses ``objective.per_example_losses_at`` when the objective has it (one vmapped
    forward per batch); otherwise one :meth:`per_example_losses` pass per row.
    """
    batched = getattr(objective, "per_example_losses_at", None)
    if batched is not None:
        return batched(thetas)
    return torch.stack([objective.per_example_losses(t) for t in thetas]), None


def _eval_block(objective, X: Tensor, batches: Tensor | None) -> tuple[np.ndarray, ...]:
    """Loss, accuracy ``(c,)`` and minibatch losses ``(c, n_b)`` (or None) at the rows of ``X``."""
    if batches is None:
        loss, acc = objective.losses_at(X, check_finite=False)
        return _np(loss), _np(acc), None
    L, correct = per_example_at(objective, X)
    L = L.double()
    acc = correct.double().mean(1) if correct is not None else objective.losses_at(X, check_finite=False)[1]
    return _np(L.mean(1)), _np(acc), _np(L[:, batches].mean(-1))


def _np(t: Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def along(objective, theta: Tensor, W: Tensor, ts: np.ndarray, *, batches: np.ndarray | None = None,
          chunk: int = 64, desc: str = "line search") -> dict:
    """L (and accuracy, and minibatch means) at θ + t_j w_i for every row w_i of W and every t_j.

    Args:
        objective: a :class:`landscape.Objective`.
        theta: the centre ``(P,)``.
        W: directions ``(k, P)`` (used as given: unit eigenvectors, or scaled components).
        ts: the grid ``(T,)``.
        batches: minibatch example indices ``(n_b, b)`` into the objective's data, or None.
        chunk: parameter vectors per objective call (memory: chunk copies of the activations).

    Returns:
        ``loss (k, T)``, ``acc (k, T)`` and, with ``batches``, ``batch_loss (k, T, n_b)``.
        θ itself (t = 0) is evaluated once: k·|{t ≠ 0}| + 1 forward passes in all.
    """
    ts = np.asarray(ts, dtype=np.float64)
    W = W.to(device=theta.device, dtype=theta.dtype)
    k, T = W.shape[0], len(ts)
    I, J = np.meshgrid(np.arange(k), np.flatnonzero(ts != 0), indexing="ij")
    I, J = I.ravel(), J.ravel()
    centre = bool(np.any(ts == 0))
    rows_i, rows_t = np.r_[[0] * centre, I], np.r_[[0.0] * centre, ts[J]]
    idx = None if batches is None else torch.as_tensor(batches, device=theta.device)
    parts = []
    for a in tqdm(range(0, len(rows_t), chunk), desc=desc, unit="chunk", disable=None, leave=False):
        t = torch.as_tensor(rows_t[a:a + chunk], dtype=theta.dtype, device=theta.device)
        parts.append(_eval_block(objective, theta + t[:, None] * W[rows_i[a:a + chunk]], idx))
    return _scatter(parts, I, J, centre, ts, k, T)


def _scatter(parts, I, J, centre: bool, ts, k: int, T: int) -> dict:
    names = ("loss", "acc", "batch_loss")
    out = {}
    for n, name in enumerate(names):
        if parts[0][n] is None:
            continue
        flat = np.concatenate([p[n] for p in parts])
        grid = np.full((k, T) + flat.shape[1:], np.nan)
        grid[I, J] = flat[int(centre):]
        if centre:
            grid[:, np.flatnonzero(ts == 0)[0]] = flat[0]
        out[name] = grid
    return out


def taylor_fit(ts: np.ndarray, Y: np.ndarray, degree: int, window: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares Taylor coefficients a_n of Σ_n a_n tⁿ/n! (so a_2 is the curvature).

    Args:
        ts: ``(T,)``; Y: curves ``(..., T)``; window: use only |t| ≤ window (None: all).

    Returns:
        ``coef (..., degree+1)`` and the RMS residual ``(...)``.
    """
    ts = np.asarray(ts, dtype=np.float64)
    use = np.ones_like(ts, bool) if window is None else np.abs(ts) <= window
    if use.sum() < degree + 1:
        raise InputError(f"a degree-{degree} fit needs ≥ {degree + 1} grid points with |t| ≤ {window}, "
                         f"the grid has {int(use.sum())}; widen the fit window or refine the grid")
    s = max(float(np.abs(ts[use]).max()), 1e-300)  # scale t to [-1, 1] for conditioning
    fact = np.cumprod([1.0] + list(range(1, degree + 1)))
    A = (ts[use, None] / s) ** np.arange(degree + 1) / fact
    Yu = np.asarray(Y, dtype=np.float64)[..., use].reshape(-1, int(use.sum()))
    c, *_ = np.linalg.lstsq(A, Yu.T, rcond=None)
    rms = np.sqrt(np.mean((A @ c - Yu.T) ** 2, axis=0))
    lead = np.shape(Y)[:-1]
    return (c.T / s ** np.arange(degree + 1)).reshape(*lead, degree + 1), rms.reshape(lead)


def check_fit_grid(ts: np.ndarray, window: float) -> None:
    """Refuse, before any forward pass, a grid too coarse for the fits of the curves.

    The small-t quadratic (and the minibatch curvatures) needs 3 points with |t| ≤ ``window``;
    the quartic fit needs 5 points in all.
    """
    ts = np.asarray(ts, dtype=np.float64)
    inside = int((np.abs(ts) <= window).sum())
    if inside < 3:
        raise InputError(f"the t-grid has {inside} point(s) with |t| ≤ {window:g} (the fit window); the curvature "
                         "fit needs 3: raise --num-t, or widen --fit-window")
    if len(ts) < 5:
        raise InputError(f"the t-grid has {len(ts)} points; the quartic fit needs 5: raise --num-t")


def curve_minima(ts: np.ndarray, Y: np.ndarray) -> dict:
    """Minimum of each curve ``(..., T)``: ``min_t``, ``min_loss`` (parabola-refined), ``bracketed``."""
    Y = np.asarray(Y, dtype=np.float64)
    j = np.nanargmin(Y, axis=-1)
    T = Y.shape[-1]
    inner = np.clip(j, 1, T - 2)
    x = np.stack([ts[inner - 1], ts[inner], ts[inner + 1]], -1)
    y = np.take_along_axis(Y, np.stack([inner - 1, inner, inner + 1], -1), -1)
    d1, d2 = (y[..., 1] - y[..., 0]) / (x[..., 1] - x[..., 0]), (y[..., 2] - y[..., 1]) / (x[..., 2] - x[..., 1])
    curv = (d2 - d1) / ((x[..., 2] - x[..., 0]) / 2)  # second divided difference × 2
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = (x[..., 0] + x[..., 1]) / 2 - d1 / curv
    bracketed = (j > 0) & (j < T - 1)
    ok = bracketed & (curv > 0) & (np.abs(vertex - ts[j]) <= np.abs(x[..., 2] - x[..., 0]))
    min_t = np.where(ok, vertex, ts[j])
    fallback = np.take_along_axis(Y, j[..., None], -1)[..., 0]
    min_loss = np.where(ok, y[..., 1] - (curv / 2) * (ts[inner] - vertex) ** 2, fallback)
    return {"min_t": min_t, "min_loss": np.minimum(min_loss, fallback), "bracketed": bracketed}


def curvature(ts: np.ndarray, Y: np.ndarray, window: float) -> np.ndarray:
    """Curvature c of a least-squares a + b t + ½ c t² on |t| ≤ window, for each curve ``(..., T)``."""
    return taylor_fit(ts, Y, 2, window)[0][..., 2]


def minibatch_statistics(ts: np.ndarray, batch_loss: np.ndarray, eigenvalues: np.ndarray, window: float) -> dict:
    """Distribution over minibatches of each direction's minimum location and curvature.

    Args:
        batch_loss: ``(k, T, n_b)`` minibatch curves; eigenvalues: λ_i ``(k,)``.

    Returns:
        per-batch ``min_t``, ``curvature``, ``bracketed`` ``(k, n_b)``; their means and stds
        ``(k,)``; ``corr_min_curvature (k,)`` (Pearson, across batches); and Spearman
        correlations across directions of λ with the std of the minimum location and with
        the mean curvature (NaN with fewer than 3 directions).
    """
    curves = np.moveaxis(batch_loss, -1, 1)  # (k, n_b, T)
    mins, curv = curve_minima(ts, curves), curvature(ts, curves, window)
    out = {"batch_min_t": mins["min_t"], "batch_curvature": curv, "batch_bracketed": mins["bracketed"]}
    for name, a in (("min_t", mins["min_t"]), ("curvature", curv)):
        out[f"{name}_mean"], out[f"{name}_std"] = a.mean(1), a.std(1, ddof=1) if a.shape[1] > 1 else np.zeros(len(a))
    out["corr_min_curvature"] = np.array([_pearson(m, c) for m, c in zip(mins["min_t"], curv)])
    for name, other in (("min_std", out["min_t_std"]), ("curvature", out["curvature_mean"])):
        rho = _spearman(eigenvalues, other)
        out[f"spearman_lambda_{name}"], out[f"spearman_lambda_{name}_ci"] = rho, spearman_interval(rho, len(other))
    out["spearman_n"] = len(eigenvalues)
    return out


def spearman_interval(rho: float, n: int, confidence: float = 0.95) -> np.ndarray:
    """Confidence interval of Spearman's ρ over n pairs: Fisher's z with the variance 1.06/(n − 3)
    of Fieller, Hartley & Pearson (1957); ``[NaN, NaN]`` for n ≤ 3 or an undefined ρ."""
    if n <= 3 or not np.isfinite(rho):
        return np.array([np.nan, np.nan])
    from scipy.stats import norm

    z, half = np.arctanh(np.clip(rho, -0.999999, 0.999999)), norm.ppf(0.5 + confidence / 2) * np.sqrt(1.06 / (n - 3))
    return np.tanh([z - half, z + half])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)

