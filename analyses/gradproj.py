"""Per-example gradients in the Hessian eigenbasis (Papyan 2019; Gur-Ari et al. 2018).

For examples i = 1..N with gradients g_i = ∇ℓ_i(θ) and eigenvectors v_1..v_k (rows of
V, ``(k, P)``):

* projections p_ij = g_i·v_j, an ``(N, k)`` array, by forward-mode JVPs
  (:meth:`Objective.per_example_projections`: k forward-mode passes, never N×P);
* norms ‖g_i‖ by chunked ``vmap(grad)`` (:meth:`Objective.per_example_grad_norms`);
* |cos(g_i, v_j)| = |p_ij| / (‖g_i‖ ‖v_j‖): does each eigendirection's curvature come
  from many examples with a slight dependence (many small |cos|) or from a few with a
  large one (a heavy tail)?
* per-class means of p_ij and the between-class share of their variance per direction
  (Papyan 2019, "Measurements of Three-Level Hierarchical Structure in the Outliers in
  the Spectrum of Deepnet Hessians": the top-C outliers are class-mean directions);
* the fraction of the full gradient g = (1/N) Σ g_i inside span(V),
  ‖Π_V g‖² / ‖g‖² with Π_V = Vᵀ(VVᵀ)⁻¹V (Gur-Ari et al. 2018, "Gradient Descent Happens
  in a Tiny Subspace"), and the same fraction per example.

Maths check stored with the result: the mean of the per-example projections equals the
projection of the full gradient, (1/N) Σ_i p_ij = g·v_j (linearity of the mean);
``mean_projection_error`` is the largest deviation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analyses.driver.records import Record
from landscape.errors import InputError


def _np(t: Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _subspace_fraction(P: np.ndarray, gram: np.ndarray, sq_norms: np.ndarray) -> np.ndarray:
    """pᵀ(VVᵀ)⁻¹p / ‖g‖² for rows p of ``P`` (projections onto V's rows)."""
    coef = np.linalg.solve(gram, P.T).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sq_norms > 0, (coef * P).sum(1) / np.where(sq_norms > 0, sq_norms, 1), np.nan)


def class_structure(proj: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Per-class means ``(C, k)``, counts ``(C,)`` and the between-class share of the variance ``(k,)``."""
    if labels.shape != (proj.shape[0],) or labels.min() < 0 or labels.max() >= num_classes:
        raise InputError(f"labels must be N={proj.shape[0]} integers in [0, {num_classes}); "
                         f"got shape {labels.shape}, range [{labels.min()}, {labels.max()}]")
    counts = np.bincount(labels, minlength=num_classes)
    sums = np.zeros((num_classes, proj.shape[1]))
    np.add.at(sums, labels, proj)
    means = np.divide(sums, counts[:, None], out=np.full_like(sums, np.nan), where=counts[:, None] > 0)
    centred = proj - proj.mean(0)
    between = (counts[:, None] * np.nan_to_num(means - proj.mean(0)) ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = between / (centred ** 2).sum(0)
    return {"class_means": means, "class_counts": counts, "between_class_fraction": share}


def gradient_projections(obj, theta: Tensor, V: Tensor, labels: np.ndarray | None = None, *,
                         num_classes: int | None = None) -> dict:
    """Every per-example gradient against the rows of ``V``.

    Args:
        obj: the :class:`~landscape.objective.Objective` (its N examples, in batch order).
        theta: parameters ``(P,)``.
        V: directions ``(k, P)``, e.g. the top-k Hessian eigenvectors (need not be unit).
        labels: class of each example ``(N,)``, in the objective's order, for the class means.
        num_classes: C (default: ``labels.max() + 1``).

    Returns:
        Arrays ``projections (N, k)``, ``grad_norms (N,)``, ``abs_cos (N, k)``,
        ``mean_projection (k,)``, ``full_projection (k,)`` (= V g), ``mean_projection_error``,
        ``full_grad_norm``, ``subspace_fraction`` (scalar), ``direction_fraction (k,)``
        ((g·v̂_j)²/‖g‖²), ``example_subspace_fraction (N,)`` and, with labels, the class structure.
    """
    V = V.unsqueeze(0) if V.ndim == 1 else V
    if V.ndim != 2 or V.shape[0] == 0 or V.shape[1] != theta.numel():
        raise InputError(f"gradient projections need directions of shape (k, {theta.numel()}), got {tuple(V.shape)}")
    proj = _np(obj.per_example_projections(theta, V))                 # (N, k)
    norms = _np(obj.per_example_grad_norms(theta))                     # (N,)
    out = {"projections": proj, "grad_norms": norms, **_geometry(proj, norms, V, obj.grad(theta))}
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        out.update(class_structure(proj, labels, num_classes or int(labels.max()) + 1), labels=labels)
    return out


def _geometry(proj: np.ndarray, norms: np.ndarray, V: Tensor, g: Tensor) -> dict:
    """|cos|, the mean-vs-full check and the subspace fractions from projections, norms, V and g."""
    full = _np(V.to(g) @ g)                                            # (k,) = V g
    Vd = V.detach().double()
    gram, vnorm = _np(Vd @ Vd.T), _np(Vd.norm(dim=1))
    g_sq = float(_np(g.double().norm()) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_cos = np.abs(proj) / (norms[:, None] * vnorm[None, :])
        direction = (full / vnorm) ** 2 / g_sq
    return {"abs_cos": abs_cos, "mean_projection": proj.mean(0), "full_projection": full,
            "mean_projection_error": float(np.abs(proj.mean(0) - full).max()), "full_grad_norm": g_sq ** 0.5,
            "vector_norms": vnorm, "direction_fraction": direction,
            "subspace_fraction": float(_subspace_fraction(full[None], gram, np.array([g_sq]))[0]),
            "example_subspace_fraction": _subspace_fraction(proj, gram, norms ** 2)}


class GradProjWork:
    """Computes the projections item of one step from the driver's inputs and stored eigenpairs.

    Args:
        inputs: the driver's :class:`~analyses.driver.inputs.RunInputs`.
        eigen_at: ``eigen_at(step)`` → the checked stored eigenpairs (:class:`~analyses.driver.eigen.Eigen`)
            with the top k kept.
        eigen_source: ``{"file", "key"}`` of where they were read, stored with the item.
    """

    def __init__(self, inputs, eigen_at, eigen_source):
        self.inputs, self.eigen_at, self.eigen_source = inputs, eigen_at, eigen_source

    def compute(self, step: int, settings: dict):
        train, eig = self.inputs.objective(step), self.eigen_at(step)
        V = torch.as_tensor(eig.eigenvectors).to(device=train.device, dtype=train.dtype)
        run = self.inputs.run
        y = run.dataset.y_train
        labels = y[torch.as_tensor(self.inputs.indices, device=y.device)].cpu().numpy()
        arrays = gradient_projections(train, train.theta, V, labels, num_classes=run.dataset.num_classes)
        arrays.update(eigenvalues=eig.eigenvalues, P=train.spec.numel)
        if self.inputs.options.subset is not None:
            arrays["example_indices"] = self.inputs.indices
        attrs = {**self.inputs.item_attrs(step), "settings": settings,
                 "eigen_source": {**self.eigen_source(step), "config": eig.config}}
        return Record(arrays, attrs)
