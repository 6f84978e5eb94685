"""Gaussian noise per band of Hessian eigendirections, and noise scales learned on a validation set.

Bands split the stored eigenvectors v_1 … v_k (descending λ) at chosen ranks —
``top`` = rows [0, a), ``middle`` = [a, b), … — and add two more: ``bulk``, the orthogonal
complement of span(v_1 … v_k), and ``all``, every direction (isotropic). A draw of noise of
scale σ in band b is

    ξ_b = σ Σ_{i ∈ b} z_i v_i                (eigen bands, z_i ~ N(0, 1))
    ξ_bulk = σ (z − Vᵀ V z),  ξ_all = σ z    (z ~ N(0, I_P))

so σ is the standard deviation **per direction** in every band (the bulk's total norm is
σ √(P − k)). At θ + ξ the train and test loss and accuracy are measured over many seeded
draws; the item stores every draw, the means, standard deviations and standard errors (n draws).

**Learned scales** (reparameterised noise; seed 003: "use the validation set to set the noise
level in each direction of eigenvalues using sgd"). With disjoint bands b and log-scales
s_b = log σ_b, the expected validation loss J(s) = E_z L_val(θ + Σ_b e^{s_b} ξ̂_b(z)) (ξ̂_b the unit-
scale draw) has the reparameterised gradient ∂J/∂s_b = E[σ_b ∇L_val(θ + δ)·ξ̂_b]. Each step
averages antithetic pairs ±δ, ½σ_b (∇L_val(θ + δ) − ∇L_val(θ − δ))·ξ̂_b, which cancels the
zero-mean first-order term g·ξ̂ exactly and leaves σ_b² ξ̂_bᵀ H_val ξ̂_b + O(σ⁴): two gradients of
the validation loss per pair. Near a minimum of a quadratic J the gradient in s scales as σ², so
plain SGD on s crawls where σ is small; the default optimiser is therefore Adam (Kingma & Ba
2015: the same stochastic gradients, each band's step normalised by its running RMS), plain SGD
on request. The sign of the band curvature ξ̂ᵀH_valξ̂ decides the direction: σ_b shrinks where the
validation loss is convex across the band and grows where noise lowers it. The validation set is
a seeded half of the test split; the other half reports the held-out loss at the learned σ.

**Predictive average.** For a cross-entropy classifier the band-noise item also stores the loss of
the averaged prediction over the draws (Bayesian model averaging over the noise),
−(1/N) Σ_n log((1/n) Σ_d p_d(y_n | x_n)) = mean_n [−logmeanexp_d(−ℓ_{d,n})], computed from the same
per-example losses: noise that raises each draw's loss can still lower the averaged prediction's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from landscape.errors import InputError

EIGEN, BULK, ALL = "eigen", "bulk", "all"


@dataclass(frozen=True)
class Band:
    """Rows [start, stop) of the descending eigenvectors (``kind="eigen"``), or the bulk, or all."""

    name: str
    kind: str
    start: int = -1
    stop: int = -1


def bands(splits: tuple[int, ...], k: int, *, bulk: bool = True, isotropic: bool = True) -> list[Band]:
    """Bands cut at ``splits`` (ranks 0 < a < b < … < k), then ``bulk`` and ``all``.

    One split a gives ``top`` [0, a) and ``middle`` [a, k); more give ``band1``, ``band2``, …
    """
    cuts = [0, *splits, k]
    if any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise InputError(f"--band-splits {','.join(map(str, splits))}: split ranks must increase strictly within "
                         f"1 … {k - 1} (the step has {k} usable eigenvectors)")
    names = ["top", "middle"] if len(cuts) == 3 else [f"band{i + 1}" for i in range(len(cuts) - 1)]
    out = [Band(n, EIGEN, a, b) for n, (a, b) in zip(names, zip(cuts, cuts[1:]))]
    return out + ([Band("bulk", BULK)] if bulk else []) + ([Band("all", ALL)] if isotropic else [])


def check_scales(sigmas, option: str = "--noise-scales") -> tuple[float, ...]:
    """Noise scales must be finite and ≥ 0."""
    sigmas = tuple(float(s) for s in sigmas)
    if not sigmas or any(not np.isfinite(s) or s < 0 for s in sigmas):
        raise InputError(f"{option} {','.join(map(str, sigmas)) or '(none)'}: noise scales must be finite numbers "
                         "≥ 0 (standard deviations per direction), e.g. 0.01,0.03,0.1")
    return sigmas


def unit_draws(band: Band, V: Tensor, n: int, seed: int) -> Tensor:
    """n unit-scale draws ξ̂ of a band ``(n, P)`` (seeded on the CPU, then moved to V's device)."""
    gen = torch.Generator().manual_seed(int(seed))
    P = V.shape[1]
    if band.kind == EIGEN:
        z = torch.randn(n, band.stop - band.start, generator=gen, dtype=torch.float64)
        return (z.to(V.device) @ V[band.start:band.stop].double()).to(V.dtype)
    z = torch.randn(n, P, generator=gen, dtype=torch.float64).to(V.device)
    if band.kind == BULK:
        Vd = V.double()
        z = z - (z @ Vd.T) @ Vd
    return z.to(V.dtype)


def draw_seed(seed: int, band: int, scale: int) -> int:
    """The seed of the draws of (band, scale): independent streams, the same for any number of bands/scales after them."""
    return int(np.random.SeedSequence([int(seed), band, scale]).generate_state(1)[0])


def summary(values: np.ndarray) -> dict:
    """Mean, standard deviation (ddof 1) and standard error of the last axis."""
    n = values.shape[-1]
    std = values.std(-1, ddof=1) if n > 1 else np.zeros(values.shape[:-1])
    return {"mean": values.mean(-1), "std": std, "sem": std / np.sqrt(n)}


def band_noise(objectives: dict, theta: Tensor, V: Tensor, band_list: list[Band], sigmas, n: int,
               seed: int, *, averaged: bool = False) -> dict:
    """Loss/accuracy of every objective (``{"train": obj, "test": obj}``) at θ + σ ξ̂ ``(B, S, n)`` and summaries.

    With ``averaged`` (cross-entropy), also ``<split>_bma_loss (B, S)``: the loss of the mean prediction
    over the n draws (module docstring).
    """
    B, S = len(band_list), len(sigmas)
    out = {f"{split}_{q}": np.empty((B, S, n)) for split in objectives for q in ("loss", "acc")}
    if averaged:
        out.update({f"{split}_bma_loss": np.empty((B, S)) for split in objectives})
    for b, band in enumerate(band_list):
        for s, sigma in enumerate(sigmas):
            points = theta + sigma * unit_draws(band, V, n, draw_seed(seed, b, s))
            for split, obj in objectives.items():
                losses, correct = obj.per_example_losses_at(points)          # (n, N)
                losses, correct = _np(losses), _np(correct)
                out[f"{split}_loss"][b, s], out[f"{split}_acc"][b, s] = losses.mean(1), correct.mean(1)
                if averaged:
                    out[f"{split}_bma_loss"][b, s] = averaged_prediction_loss(losses)
    for name in [k for k in out if not k.endswith("bma_loss")]:
        for stat, value in summary(out[name]).items():
            out[f"{name}_{stat}"] = value
    return out


def averaged_prediction_loss(losses: np.ndarray) -> float:
    """−(1/N) Σ_n log mean_d exp(−ℓ_{d,n}) for per-example cross-entropies ``(n_draws, N)``."""
    neg = -np.asarray(losses, np.float64)
    top = neg.max(0)
    return float(-(top + np.log(np.exp(neg - top).mean(0))).mean())


def _np(t: Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


OPTIMISERS = ("adam", "sgd")
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-12   # Kingma & Ba's defaults; eps far below any band's gradient scale


def learn_scales(objective, theta: Tensor, V: Tensor, band_list: list[Band], *, init: float, steps: int,
                 lr: float, pairs: int, seed: int, optimiser: str = "adam") -> dict:
    """Descend the expected validation loss in s_b = log σ_b (module docstring); 2·pairs gradients per step.

    Returns ``sigma (steps+1, B)`` (the trajectory), ``objective (steps,)`` (the mean loss of the
    pairs at each step) and ``grad (steps, B)`` (the estimates of ∂J/∂s_b).
    """
    if optimiser not in OPTIMISERS:
        raise InputError(f"--learn-optimizer {optimiser!r}: choose one of {', '.join(OPTIMISERS)}")
    s = np.full(len(band_list), np.log(init))
    m, v = np.zeros_like(s), np.zeros_like(s)
    sig_path, losses, grads = [np.exp(s)], [], []
    for t in range(steps):
        g, value = _scale_gradient(objective, theta, V, band_list, np.exp(s), pairs, draw_seed(seed, t, 9999))
        if optimiser == "adam":
            m, v = ADAM_BETAS[0] * m + (1 - ADAM_BETAS[0]) * g, ADAM_BETAS[1] * v + (1 - ADAM_BETAS[1]) * g * g
            step = (m / (1 - ADAM_BETAS[0] ** (t + 1))) / (np.sqrt(v / (1 - ADAM_BETAS[1] ** (t + 1))) + ADAM_EPS)
        else:
            step = g
        s = s - lr * step
        sig_path.append(np.exp(s))
        losses.append(value)
        grads.append(g)
    return {"sigma": np.array(sig_path), "objective": np.array(losses), "grad": np.array(grads)}


def _scale_gradient(objective, theta: Tensor, V: Tensor, band_list, sigma: np.ndarray, pairs: int,
                    seed: int) -> tuple[np.ndarray, float]:
    """(∂J/∂s_b estimates ``(B,)``, mean loss of the 2·pairs points) from antithetic pairs."""
    units = [unit_draws(band, V, pairs, seed + b) for b, band in enumerate(band_list)]       # B × (pairs, P)
    grad, value = np.zeros(len(band_list)), 0.0
    for j in range(pairs):
        delta = sum(float(sig) * u[j] for sig, u in zip(sigma, units))
        (lp, gp), (lm, gm) = objective.loss_and_grad(theta + delta), objective.loss_and_grad(theta - delta)
        diff = (gp - gm).double()
        grad += np.array([0.5 * float(sig) * float(diff @ u[j].double()) for sig, u in zip(sigma, units)])
        value += 0.5 * (float(lp) + float(lm))
    return grad / pairs, value / pairs


def validation_split(num_test: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation indices, held-out indices) of the test split: a seeded permutation cut at ``fraction``."""
    if not 0 < fraction < 1:
        raise InputError(f"--val-fraction {fraction}: give a fraction of the test split in (0, 1), e.g. 0.5")
    perm = np.random.default_rng(seed).permutation(num_test)
    cut = int(round(fraction * num_test))
    if cut < 1 or cut >= num_test:
        raise InputError(f"--val-fraction {fraction} leaves an empty validation or held-out set of the "
                         f"{num_test} test examples")
    return np.sort(perm[:cut]), np.sort(perm[cut:])
