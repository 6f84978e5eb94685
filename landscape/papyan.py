"""Papyan's decomposition of the Gauss–Newton matrix of a C-class cross-entropy classifier.

For example i of class c = y_i with softmax output p_i and logit Jacobian J_i ``(C, P)``, the
Hessian of the loss in the logits is diag(p) − ppᵀ = Σ_{c'} p_{c'} (e_{c'} − p)(e_{c'} − p)ᵀ, so the
generalised Gauss–Newton matrix is a sum of rank-one terms::

    G = (1/N) Σ_i J_iᵀ (diag p_i − p_i p_iᵀ) J_i = (1/N) Σ_i Σ_{c'} δ_{i,c'} δ_{i,c'}ᵀ,
    δ_{i,c'} = √p_{i,c'} J_iᵀ (e_{c'} − p_i)     (P-vectors; Papyan 2019, eq. 4).

Group the examples by class (fraction w_c = n_c/N) and take the means δ_{c,c'} = E_{i∈c} δ_{i,c'},
the class means δ_c = (1/(C−1)) Σ_{c'≠c} δ_{c,c'} and the cross-class deviations
ν_{c,c'} = δ_{c,c'} − δ_c (c' ≠ c). Then, exactly,

    G = G_self + G_class + G_cross + G_within,
    G_self   = Σ_c w_c δ_{c,c} δ_{c,c}ᵀ                                     (Papyan's G₀; rank ≤ C)
    G_class  = Σ_c w_c (C−1) δ_c δ_cᵀ                                       (G₁, class means; rank ≤ C)
    G_cross  = Σ_c w_c Σ_{c'≠c} ν_{c,c'} ν_{c,c'}ᵀ                           (G₂, cross-class; rank ≤ C(C−2),
                                                                             since Σ_{c'≠c} ν_{c,c'} = 0)
    G_within = Σ_c w_c Σ_{c'} E_{i∈c} (δ_{i,c'} − δ_{c,c'})(δ_{i,c'} − δ_{c,c'})ᵀ   (within-class variation)

With balanced classes (w_c = 1/C) these are the matrices of Papyan (2019), "Measurements of
Three-Level Hierarchical Structure in the Outliers in the Spectrum of Deepnet Hessians"
(arXiv 1901.08244; code: deep-lab/DeepnetHessian): the C outliers of the Hessian come from G_class,
C(C−1) smaller ones from G_cross, the bulk from G_within; Papyan (2020), "Traces of class/cross-class
structure pervade deep learning spectra" (JMLR, arXiv 2008.11865), follows the same structure
through training. The per-class mean gradients g_c = E_{i∈c} ∇ℓ_i = E_{i∈c} J_iᵀ (p_i − e_c) and their
Gram matrix come from the same pass.

**Cost.** One pass over the data gives every δ_{c,c'} and g_c: each batch is split by class and each
part costs one forward and C + 1 reverse passes (vmapped) over its own examples (with BatchNorm in
batch-statistics mode, whole batches with class-masked cotangents: C² + C reverse passes). After
that the three low-rank parts are :class:`~landscape.operators.LowRankOperator` s (products: dense
(r, P) multiplications, no data; their nonzero spectra exact from r × r Gram matrices) and G_within = G − (G_self + G_class + G_cross) costs one GGN product (a JVP and a VJP per
batch) — no more than G itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from landscape.errors import InputError
from landscape.operators import DeflatedOperator, LinearOperator, LowRankOperator

PARTS = ("self", "class", "cross", "within")
LOW_RANK_PARTS = ("self", "class", "cross")


@dataclass(frozen=True, eq=False)
class PapyanDecomposition:
    """The GGN at θ and the vectors its parts are made of (see the module docstring).

    Attributes:
        ggn: G as an operator (:class:`~landscape.curvature.GGNOperator`).
        delta: δ_{c,c'} ``(C, C, P)`` (rows of absent classes are 0).
        weights: w_c = n_c/N ``(C,)``.
        class_gradients: g_c ``(C, P)``, the mean gradient of the loss over class c.
    """

    ggn: LinearOperator
    delta: Tensor
    weights: Tensor
    class_gradients: Tensor

    @property
    def num_classes(self) -> int:
        """C."""
        return int(self.weights.shape[0])

    @property
    def class_means(self) -> Tensor:
        """δ_c = (1/(C−1)) Σ_{c'≠c} δ_{c,c'} ``(C, P)``."""
        C = self.num_classes
        return (self.delta.sum(1) - torch.diagonal(self.delta).T) / (C - 1)

    def rows(self, name: str) -> tuple[Tensor, Tensor]:
        """The rows d_j ``(r, P)`` and weights ``(r,)`` of a low-rank part: Σ_j w_j d_j d_jᵀ."""
        C, w = self.num_classes, self.weights
        off = ~torch.eye(C, dtype=torch.bool, device=w.device)
        if name == "self":
            return torch.diagonal(self.delta).T.contiguous(), w
        if name == "class":
            return self.class_means, w * (C - 1)
        if name == "cross":
            nu = self.delta - self.class_means[:, None, :]                  # ν_{c,c'}
            return nu[off].contiguous(), w[:, None].expand(C, C)[off]
        raise InputError(f"unknown low-rank part {name!r}; choose one of {', '.join(LOW_RANK_PARTS)}")

    def part(self, name: str) -> LinearOperator:
        """The operator of one part: ``self``, ``class``, ``cross`` (low rank) or ``within`` (G minus those)."""
        if name == "within":
            rows, weights = zip(*(self.rows(n) for n in LOW_RANK_PARTS))
            return DeflatedOperator(self.ggn, torch.cat(rows), torch.cat(weights))
        return LowRankOperator(*self.rows(name))

    def parts(self) -> dict[str, LinearOperator]:
        """Every part by name; they sum to G."""
        return {name: self.part(name) for name in PARTS}

    def class_gradient_gram(self) -> Tensor:
        """g_cᵀ g_{c'} ``(C, C)`` in float64."""
        g = self.class_gradients.double()
        return g @ g.T


def _check_classifier(z: Tensor, y: Tensor, C: int) -> None:
    if z.ndim != 2 or z.shape[1] != C:
        raise InputError(f"Papyan's decomposition needs a classifier with C = {C} logits per example; the model "
                         f"outputs shape {tuple(z.shape[1:])} (use a model whose output is (N, {C}))")
    if y.is_floating_point() or y.ndim != 1:
        raise InputError("Papyan's decomposition needs integer class labels (N,); these targets are "
                         f"{y.dtype} {tuple(y.shape)} (a regression or soft-label task)")


def _class_cotangents(z: Tensor, y: Tensor, C: int) -> Tensor:
    """``(C + 1, B, C)`` for examples of one class c = y: rows c' → √p_{c'} (e_{c'} − p), then p − e_c."""
    _check_classifier(z, y, C)
    p = torch.softmax(z, dim=1)
    eye = torch.eye(C, dtype=z.dtype, device=z.device)
    a = p.sqrt()[:, :, None] * (eye[None] - p[:, None, :])                  # (B, c', C)
    return torch.cat([a.permute(1, 0, 2), (p - eye[y])[None]])


def _cotangents(z: Tensor, y: Tensor, C: int) -> Tensor:
    """``(C² + C, B, C)``: rows (c, c') → 1[y=c] √p_{c'} (e_{c'} − p), then rows c → 1[y=c] (p − e_y)."""
    _check_classifier(z, y, C)
    p = torch.softmax(z, dim=1)                                              # (B, C)
    mask = F.one_hot(y, C).to(z.dtype)                                      # (B, C)
    eye = torch.eye(C, dtype=z.dtype, device=z.device)
    a = p.sqrt()[:, :, None] * (eye[None] - p[:, None, :])                  # (B, c', C)
    delta = mask.T[:, None, :, None] * a.permute(1, 0, 2)[None]             # (c, c', B, C)
    grads = mask.T[:, :, None] * (p - mask)[None]                           # (c, B, C)
    return torch.cat([delta.reshape(C * C, -1, C), grads])


def check_classifier(objective, num_classes: int, theta: Tensor | None = None) -> Tensor:
    """The class fractions w_c ``(C,)`` of a C-class cross-entropy objective (one forward pass).

    Raises:
        InputError: another loss, C < 2, soft or real-valued targets, outputs that are not C logits.
    """
    C = int(num_classes)
    if objective.loss_name != "cross_entropy":
        raise InputError(f"Papyan's decomposition is of the cross-entropy Gauss-Newton matrix; this objective's "
                         f"loss is {objective.loss_name!r} (train the classifier with --loss cross_entropy)")
    if C < 2:
        raise InputError(f"Papyan's decomposition needs at least 2 classes, got {C} (a regression task?)")
    theta = objective.theta if theta is None else theta
    return objective.output_means(theta, lambda z, y: _fractions(z, y, C))


def papyan_decomposition(objective, theta: Tensor, num_classes: int) -> PapyanDecomposition:
    """Papyan's δ vectors and class gradients at θ, and the GGN operator (one pass over the data).

    Args:
        objective: a :class:`~landscape.objective.Objective` with ``loss="cross_entropy"``, integer
            labels and a model with ``num_classes`` logits.
        theta: ``(P,)``.
        num_classes: C ≥ 2.

    Raises:
        InputError: see :func:`check_classifier`.
    """
    C = int(num_classes)
    weights = check_classifier(objective, C, theta)
    inv = torch.where(weights > 0, 1 / weights.clamp_min(torch.finfo(weights.dtype).tiny), 0)
    if objective.bn == "eval":   # split each batch by class: C + 1 VJPs per example
        sums = objective.output_pullbacks(theta, lambda z, y: _class_cotangents(z, y, C), groups=lambda y: y,
                                          num_groups=C)                                 # (C, C + 1, P)
        delta, grads = sums[:, :C], sums[:, C]
    else:                        # batch statistics: whole batches, masked cotangents, C² + C VJPs per example
        sums = objective.output_pullbacks(theta, lambda z, y: _cotangents(z, y, C))   # (C² + C, P)
        delta, grads = sums[:C * C].reshape(C, C, -1), sums[C * C:]
    return PapyanDecomposition(objective.ggn(theta), delta * inv[:, None, None], weights, grads * inv[:, None])


def _fractions(z: Tensor, y: Tensor, C: int) -> Tensor:
    _check_classifier(z, y, C)
    return F.one_hot(y, C).to(z.dtype)
