"""Papyan's class structure of the Hessian at a checkpoint (user guide: docs/interventions.md).

The Hessian of a C-class cross-entropy loss splits as H = G + (H − G), G the Gauss–Newton matrix,
and G splits into class-mean, cross-class and within-class parts (and Papyan's small G₀ of the
c' = c terms; :mod:`landscape.papyan` has the formulas). Per step this analysis stores

* ``spectra`` — the top eigenvalues (:func:`landscape.eigsh`, certified by residuals) of H, G,
  H − G and of every part, with the exact nonzero spectra of the low-rank parts from their Gram
  matrices; the outlier count of H; the overlap of H's top eigenvectors with the range of the
  class-mean part (and of all the between-class parts); the per-class mean gradients g_c and their
  Gram matrix and cosines;
* ``density`` — SLQ densities (raw nodes and weights per probe) of H, G, H − G and the within part.

**Outliers.** ``outliers_class`` — the outlier count — is the number of H's top eigenvalues above
``bulk_edge_class``, the largest eigenvalue of H compressed to the orthogonal complement of the
class-mean span Q (``(I − QQᵀ) H (I − QQᵀ)``, one more eigsh): what H has above everything it does
outside the class structure (at most rank Q ≤ C by Cauchy interlacing). Two more counts are stored:
``outliers_within``, the eigenvalues of H above the largest eigenvalue of the within-class part
(Papyan's bulk edge; ``outliers_capped`` = 1 when all k stand above it), and ``outliers_gap``, the
position of the largest ratio λ_i/λ_{i+1}. On networks trained to low cross-entropy the within-class
part's top eigenvectors often lie in the class-mean directions too (the δ_{i,c,c'} of one class vary
mostly in length, as √p_{i,c'} does), which makes the within-class edge too high; the gap count is
fragile where two gaps are alike.

**Overlap.** ``top_overlap_class`` = (1/m)‖V_mᵀ U_m‖_F² for H's top-m eigenvectors V_m and G_class's
top-m U_m, m = ``outliers_class`` (1: the same space; m/P: chance), with the principal cosines
``top_cosines_class``. Against the whole range: with Q an orthonormal basis of range(G_class) =
span{δ_c} (rank ≤ C), ``overlap_class[i]`` = ‖Qᵀv_i‖² is the share of H's eigenvector v_i inside it
(``overlap_between``: inside the span of all δ_{c,c'}).

Papyan (2019), arXiv 1901.08244; Papyan (2020), JMLR, arXiv 2008.11865.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from analyses.driver.records import Record
from landscape.errors import InputError
from landscape.io import step_key
from landscape.operators import CountingOperator, DifferenceOperator, ProjectedOperator
from landscape.papyan import LOW_RANK_PARTS, PARTS, papyan_decomposition

NAME = "papyan"
QUANTITIES = ("spectra", "density")
OPERATORS = ("hessian", "ggn", "residual", *PARTS)   # residual = H − G
DENSITY_OPERATORS = ("hessian", "ggn", "residual", "within")
# Data passes per product, in units of one HVP pass (forward-over-reverse over the data): a GGN product is a
# JVP and a VJP per batch; the low-rank parts need no data. Measured in bench/papyan_cost.py.
PASSES = {"hessian": "1 HVP", "ggn": "1 GGN product", "residual": "1 HVP + 1 GGN product",
          "within": "1 GGN product", "self": "none", "class": "none", "cross": "none"}
RANK_RTOL = 1e-6   # a Gram eigenvalue counts toward a part's numerical rank above this fraction of its largest


@dataclass(frozen=True)
class PapyanConfig:
    """What to compute (units in comments)."""

    k: int | None = None        # top eigenvalues per operator (None: 2C)
    tol: float = 1e-3           # eigsh residual relative to ‖A‖_est
    max_matvecs: int | None = None  # eigsh budget per operator (None: eigsh's default)
    density_probes: int = 5     # SLQ probes (0: no density item)
    density_iters: int = 60     # Lanczos steps per probe
    seed: int = 0

    def __post_init__(self):
        if self.k is not None and self.k < 1:
            raise InputError(f"--k {self.k}: ask for at least one eigenvalue per operator")
        if self.density_probes < 0 or self.density_iters < 2 or not self.tol > 0:
            raise InputError(f"--density needs probes ≥ 0 and iterations ≥ 2, --tol > 0; got {self.density_probes}, "
                             f"{self.density_iters}, {self.tol}")

    def settings(self, quantity: str) -> dict:
        if quantity == "density":
            return {"density_probes": self.density_probes, "density_iters": self.density_iters, "seed": self.seed}
        return {"k": self.k, "tol": self.tol, "seed": self.seed}


def operators(objective, theta, decomposition) -> dict:
    """H, G, H − G and the four parts of G, by name."""
    H, G = objective.hessian(theta), decomposition.ggn
    return {"hessian": H, "ggn": G, "residual": DifferenceOperator(H, G), **decomposition.parts()}


def top_eigenpairs(op, k: int, cfg: PapyanConfig) -> dict:
    """Top-k eigenvalues, residuals, eigenvectors and the product count of one operator."""
    from landscape.solvers import eigsh

    counted = CountingOperator(op)
    res = eigsh(counted, k=k, which="LA", tol=cfg.tol, max_matvecs=cfg.max_matvecs, seed=cfg.seed)
    return {"eigenvalues": res.eigenvalues.numpy().astype(np.float64), "residuals": res.residuals.numpy(),
            "vectors": res.eigenvectors, "matvecs": int(counted.num_matvecs), "converged": int(bool(res.converged))}


def outliers(hessian: np.ndarray, bulk_edge: float) -> dict:
    """Outlier counts of the top eigenvalues of H (descending) against the within-class edge and by the largest gap."""
    lam = np.asarray(hessian, np.float64)
    above = int(np.sum(lam > bulk_edge))
    pos = lam[lam > 0]
    gap = int(np.argmax(pos[:-1] / pos[1:]) + 1) if len(pos) > 1 else len(pos)
    return {"outliers_within": above, "outliers_capped": int(above == len(lam)), "outliers_gap": gap,
            "bulk_edge": float(bulk_edge)}


def range_basis(rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis ``(r, P)`` of span{d_j : w_j > 0} in float64 (numerical rank by :data:`RANK_RTOL`)."""
    D = rows.double()[weights > 0]
    _, s, Vh = torch.linalg.svd(D, full_matrices=False)
    r = int((s > RANK_RTOL * s[0]).sum()) if len(s) and s[0] > 0 else 0
    return Vh[:r]


def overlaps(V: torch.Tensor, Q: torch.Tensor) -> dict:
    """Per eigenvector ‖Qᵀv_i‖² ``(k,)``, the top-m subspace overlap and principal cosines (m = min(rank Q, k))."""
    C = V.double().to(Q.device) @ Q.T                      # (k, r)
    share = (C ** 2).sum(1)
    m = min(Q.shape[0], V.shape[0])
    cos = torch.linalg.svdvals(C[:m]) if m else torch.zeros(0, dtype=torch.float64)
    return {"share": share.cpu().numpy(), "subspace": float(share[:m].mean()) if m else float("nan"),
            "cosines": cos.cpu().numpy(), "m": m, "rank": int(Q.shape[0])}


def top_overlap(VH: torch.Tensor, VC: torch.Tensor, m: int) -> dict:
    """The overlap (1/m)‖V_mᵀ U_m‖_F² of H's top-m eigenvectors with G_class's top m, and its principal cosines."""
    m = min(int(m), VH.shape[0], VC.shape[0])
    C = VH[:m].double() @ VC[:m].double().to(VH.device).T
    return {"top_overlap_class": float((C ** 2).sum() / m) if m else float("nan"),
            "top_cosines_class": torch.linalg.svdvals(C).cpu().numpy() if m else np.zeros(0), "top_overlap_dim": m}


def class_gradient_arrays(decomposition) -> dict:
    """g_c norms ``(C,)``, Gram ``(C, C)`` and cosines ``(C, C)``."""
    gram = decomposition.class_gradient_gram()
    norms = gram.diagonal().clamp_min(0).sqrt()
    cos = gram / (norms[:, None] * norms[None, :]).clamp_min(torch.finfo(torch.float64).tiny)
    return {"class_gradient_gram": gram.cpu().numpy(), "class_gradient_cos": cos.cpu().numpy(),
            "class_gradient_norms": norms.cpu().numpy()}


class PapyanWork:
    """Computes the items of one step from the driver's inputs (the training objective at the step).

    Args:
        inputs: the driver's :class:`~analyses.driver.inputs.RunInputs`.
        cfg: the options.
        num_classes: C.
    """

    def __init__(self, inputs, cfg: PapyanConfig, num_classes: int):
        self.inputs, self.cfg, self.C = inputs, cfg, int(num_classes)
        self.k = cfg.k or 2 * self.C
        self._cache: dict = {}

    def key(self, step: int, quantity: str) -> str:
        return step_key(NAME, step, quantity)

    def setup(self, step: int):
        """(objective, θ, decomposition, operators) of the step, built once."""
        if self._cache.get("step") != step:
            obj = self.inputs.objective(step)
            dec = papyan_decomposition(obj, obj.theta, self.C)
            self._cache = {"step": step, "value": (obj, obj.theta, dec, operators(obj, obj.theta, dec))}
        return self._cache["value"]

    def compute(self, step: int, quantity: str, settings: dict) -> Record:
        arrays = self.spectra(step) if quantity == "spectra" else self.density(step)
        return Record(arrays, {**self.inputs.item_attrs(step), "settings": settings, "passes_per_product": PASSES})

    def spectra(self, step: int) -> dict:
        obj, _, dec, ops = self.setup(step)
        out, vectors = {}, {}
        for name in OPERATORS:
            k = min(self.k, self._rank_bound(name, obj.spec.numel))
            top = top_eigenpairs(ops[name], k, self.cfg)
            vectors[name] = top.pop("vectors")
            out.update({f"{q}_{name}": v for q, v in top.items()})
        for name in LOW_RANK_PARTS:
            out[f"gram_eigenvalues_{name}"] = ops[name].gram_eigenvalues()
        out.update(outliers(out["eigenvalues_hessian"], float(out["eigenvalues_within"][0])))
        Q = range_basis(*dec.rows("class"))
        outside = top_eigenpairs(ProjectedOperator(ops["hessian"], Q.to(obj.dtype)), 1, self.cfg)
        edge = float(outside["eigenvalues"][0])
        out.update(bulk_edge_class=edge, matvecs_outside_class=outside["matvecs"],
                   outliers_class=int(np.sum(out["eigenvalues_hessian"] > edge)))
        out.update(self._overlaps(dec, vectors["hessian"]), **class_gradient_arrays(dec))
        out.update(top_overlap(vectors["hessian"], vectors["class"], out["outliers_class"]))
        out.update(weights=dec.weights.double().cpu().numpy(), num_classes=self.C, num_examples=obj.num_examples)
        return out

    def _rank_bound(self, name: str, P: int) -> int:
        return {"self": self.C, "class": self.C, "cross": max(1, self.C * (self.C - 2))}.get(name, P)

    def _overlaps(self, dec, VH: torch.Tensor) -> dict:
        out = {}
        for label, names in (("class", ("class",)), ("between", LOW_RANK_PARTS)):
            rows, weights = zip(*(dec.rows(n) for n in names))
            ov = overlaps(VH, range_basis(torch.cat(rows), torch.cat(weights)))
            out.update({f"overlap_{label}": ov["share"], f"subspace_overlap_{label}": ov["subspace"],
                        f"principal_cosines_{label}": ov["cosines"], f"rank_{label}": ov["rank"],
                        f"overlap_dim_{label}": ov["m"]})
        return out

    def density(self, step: int) -> dict:
        from landscape.solvers import spectral_density

        _, _, _, ops = self.setup(step)
        out = {}
        for name in DENSITY_OPERATORS:
            counted = CountingOperator(ops[name])
            dens = spectral_density(counted, num_probes=self.cfg.density_probes, num_iters=self.cfg.density_iters,
                                    seed=self.cfg.seed)
            out.update({f"nodes_{name}": np.asarray(dens.nodes, np.float64),
                        f"weights_{name}": np.asarray(dens.weights, np.float64),
                        f"matvecs_{name}": int(counted.num_matvecs)})
        out["dim"] = int(ops["hessian"].dim)
        return out
