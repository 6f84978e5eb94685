"""Interventions in the Hessian eigenbasis at a checkpoint (seed 003, steps 4 and 5; user guide: docs/interventions.md).

Items per step (``intervene/step_XXXXXXXX/<quantity>``), computed by :class:`InterventionWork` from
the stored top-k eigenpairs (:func:`analyses.driver.eigen.read_eigen`) and the run:

* ``newton`` — Newton in the top-m subspace for m = 0 … M and the same moves to each direction's
  line-search minimum; train/test loss and accuracy against m and the λ threshold, beside the
  quadratic model's predicted change (:mod:`analyses.interventions.newton`);
* ``noise`` — Gaussian noise per band of eigendirections, many draws per scale
  (:mod:`analyses.interventions.noise`);
* ``noise_learned`` — band noise scales learned by SGD on a validation half of the test split;
* ``continued_<variant>`` — continued training with the update shaped in the top-k basis, each
  variant from the checkpoint on the control's batch plan (:mod:`analyses.interventions.continued`).

The loss whose Hessian the eigenpairs are of (the ``fit`` objective: the eigen item's training
subset, BatchNorm mode, parameters and dtype) gives the gradient and the quadratic check; the train
and test numbers are over the whole splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from analyses.driver.records import Record
from analyses.interventions import continued as CT
from analyses.interventions import newton as NW
from analyses.interventions import noise as NZ
from landscape.errors import InputError
from landscape.io import step_key

NAME = "intervene"
QUANTITIES = ("newton", "noise", "noise_learned", "continued")
LINESEARCH = ("auto", "stored", "compute", "none")

NEWTON_FIELDS = ("m_max", "linesearch", "ls_points", "ls_span", "ls_floor")
NOISE_FIELDS = ("band_splits", "noise_scales", "draws", "seed")
LEARN_FIELDS = ("band_splits", "learn_steps", "learn_lr", "learn_optimizer", "learn_init", "learn_pairs",
                "val_fraction", "draws", "seed")
CONTINUED_FIELDS = ("continue_steps", "continue_lr", "refresh", "shape_k", "eval_every", "b1_lr", "refresh_tol",
                    "seed")


@dataclass(frozen=True)
class InterventionConfig:
    """Every option of the interventions (units in comments); stored with each item."""

    m_max: int | None = None           # directions moved by Newton (None: every positive λ stored)
    linesearch: str = "auto"           # line-search minima: stored curves, computed, auto (stored if usable), none
    ls_points: int = 41                # grid points per computed line search
    ls_span: float = 3.0               # grid half-width, in units of |t_i| (the Newton step) or ls_floor
    ls_floor: float = 1e-3             # smallest grid half-width unit (θ units)
    band_splits: tuple | None = None   # ranks cutting the eigenvectors into bands (None: k // 2)
    noise_scales: tuple = (0.003, 0.01, 0.03, 0.1)   # σ: standard deviation per direction (θ units)
    draws: int = 20                    # noise draws per (band, σ)
    learn_steps: int = 30              # SGD steps on log σ_b (0: no learning)
    learn_lr: float = 0.1              # step size on log σ_b (Adam: ≈ the largest change of log σ_b per step)
    learn_optimizer: str = "adam"      # adam (per-band normalised stochastic gradients) | sgd
    learn_init: float = 0.01           # σ_b at the start (θ units, per direction)
    learn_pairs: int = 2               # antithetic pairs per step (2 validation gradients each)
    val_fraction: float = 0.5          # share of the test split used as the validation set
    variants: tuple = CT.VARIANTS      # continued-training variants (control always runs)
    continue_steps: int | None = None  # updates per continuation (None: one epoch of the run's batches)
    continue_lr: float | None = None   # constant η (None: the run's η at the step)
    refresh: int = 10                  # R: updates between eigenbasis refreshes
    shape_k: int | None = None         # eigenvectors shaping the update (None: all positive stored)
    eval_every: int | None = None      # updates between evaluations (None: steps // 8)
    b1_lr: float | None = None         # η of the batch-size-1 epoch (None: η / B)
    refresh_tol: float = 1e-3          # relative residual of the refreshed eigenpairs
    seed: int = 0

    def __post_init__(self):
        if self.learn_optimizer not in NZ.OPTIMISERS:
            raise InputError(f"--learn-optimizer {self.learn_optimizer!r}: choose one of {', '.join(NZ.OPTIMISERS)}")
        if self.linesearch not in LINESEARCH:
            raise InputError(f"--linesearch {self.linesearch!r}: choose one of {', '.join(LINESEARCH)}")
        object.__setattr__(self, "noise_scales", NZ.check_scales(self.noise_scales))
        if self.band_splits is not None:
            object.__setattr__(self, "band_splits", tuple(int(s) for s in self.band_splits))
        NZ.check_scales([self.learn_init], "--learn-init")
        if self.learn_init <= 0:
            raise InputError(f"--learn-init {self.learn_init}: the starting noise scale must be > 0 (σ = e^s)")
        bad = [v for v in self.variants if v not in CT.VARIANTS]
        if bad:
            raise InputError(f"--variants: unknown {', '.join(bad)}; choose from {', '.join(CT.VARIANTS)}")
        positive = {"draws": self.draws, "ls_points": self.ls_points, "refresh": self.refresh,
                    "learn_pairs": self.learn_pairs}
        if any(v < 1 for v in positive.values()) or self.learn_steps < 0:
            raise InputError(f"{', '.join(f'--{k.replace(chr(95), chr(45))}' for k in positive)} must be ≥ 1 and "
                             f"--learn-steps ≥ 0; got {positive}, learn_steps={self.learn_steps}")
        for name in ("continue_lr", "b1_lr"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise InputError(f"--{name.replace('_', '-')} {v}: a learning rate must be positive and finite")

    def settings(self, quantity: str) -> dict:
        """The fields the numbers of ``quantity`` depend on (``continued_<v>`` → the continuation fields)."""
        fields = {"newton": NEWTON_FIELDS, "noise": NOISE_FIELDS, "noise_learned": LEARN_FIELDS}.get(
            quantity, CONTINUED_FIELDS)
        return {f: getattr(self, f) for f in fields}


def item_quantities(cfg: InterventionConfig, wanted) -> list[str]:
    """The item names of the chosen quantities (``continued`` → one ``continued_<variant>`` each, control first)."""
    out = []
    for q in wanted:
        if q == "continued":
            out += ["continued_control"] + [f"continued_{v}" for v in cfg.variants if v != "control"]
        elif q == "noise_learned" and cfg.learn_steps == 0:
            continue
        else:
            out.append(q)
    return out


def _np(t) -> np.ndarray:
    return t.detach().double().cpu().numpy()


class InterventionWork:
    """The items of one step.

    Args:
        inputs: the driver's :class:`~analyses.driver.inputs.RunInputs` over the whole training split
            (the eigen item's BN mode, parameters and dtype).
        fit_inputs: the same over the Hessian's own training examples (the eigen item's subset).
        eig: the checked stored eigenpairs of the step (:class:`~analyses.driver.eigen.Eigen`).
        cfg: the options.
        stored_minima: ``{row: (min_t, bracketed)}`` of stored line searches usable here (may be empty).
        continue_fn: the driver's continuation runner (``continued_*`` items only;
            :class:`analyses.driver.continuation.Continuer`): ``continue_fn(step, steps=, lr=, per_example=,
            eval_every=, rule=, k=, every=, tol=, v0=)`` → ``(result, refresh_log)``, and
            ``continue_fn.lr_at(step)``, the run's η at the step.
    """

    def __init__(self, inputs, fit_inputs, eig, cfg: InterventionConfig, *, stored_minima=None, continue_fn=None):
        self.inputs, self.fit_inputs, self.eig, self.cfg, self.step = inputs, fit_inputs, eig, cfg, eig.step
        self.used, self.skipped = NW.order_positive(eig.eigenvalues)
        if len(self.used) == 0:
            raise InputError(f"step {self.step}: none of the {len(eig.eigenvalues)} stored eigenvalues is positive; "
                             "Newton steps, bands and shaping need λ > 0")
        self.M = NW.check_m(cfg.m_max, len(self.used), len(eig.eigenvalues), self.step)
        self.stored_minima, self.continue_fn = stored_minima or {}, continue_fn

    def key(self, quantity: str) -> str:
        return step_key(NAME, self.step, quantity)

    def compute(self, quantity: str, settings: dict | None = None) -> Record:
        """The item ``quantity`` (``settings``: what its numbers depend on, stored with it)."""
        if quantity.startswith("continued_"):
            arrays, attrs = self.continued(quantity.removeprefix("continued_"))
        else:
            arrays, attrs = getattr(self, quantity)()
        common = {"eigenvalues_used": self.eig.eigenvalues[self.used], "rows_used": self.used.astype(np.int64),
                  "rows_skipped": self.skipped.astype(np.int64),
                  "eigenvalues_skipped": self.eig.eigenvalues[self.skipped]}
        return Record({**common, **arrays}, {**self.inputs.item_attrs(self.step), **attrs,
                                            "eigen_config": self.eig.config, "settings": settings or {}})

    # --- inputs ---------------------------------------------------------------------------
    def objectives(self) -> tuple:
        fit = self.fit_inputs.objective(self.step)
        P = fit.spec.numel
        if self.eig.eigenvectors.shape[1] != P:
            raise InputError(f"the eigenvectors of step {self.step} have length {self.eig.eigenvectors.shape[1]}, "
                             f"the objective has P = {P}; they were computed for other parameters")
        return fit, self.inputs.objective(self.step), self.inputs.objective(self.step, "test")

    def vectors(self, obj, rows) -> torch.Tensor:
        return torch.as_tensor(self.eig.eigenvectors[rows], device=obj.device, dtype=obj.dtype)

    def splits(self, fit, train, test) -> dict:
        """The evaluated objectives: the Hessian's own examples (when a subset), train, test."""
        out = {"train": train, "test": test}
        return {"fit": fit, **out} if self.fit_inputs is not self.inputs else out

    # --- newton ---------------------------------------------------------------------------
    def newton(self) -> tuple[dict, dict]:
        fit, train, test = self.objectives()
        theta, rows = fit.theta, self.used[:self.M]
        V, lam = self.vectors(fit, rows), self.eig.eigenvalues[rows]
        slopes = _np(V @ fit.grad(theta))
        t = NW.newton_steps(slopes, lam)
        out = {"m": np.arange(self.M + 1), "threshold": np.r_[np.inf, lam], "directions": rows.astype(np.int64),
               "eigenvalues": lam, "slopes": slopes, "newton_t": t, "predicted_change": NW.predicted_change(slopes, lam)}
        splits = self.splits(fit, train, test)
        out.update(self._evaluate(splits, NW.path(theta, V, t), ""))
        source, ls = self._minima(fit, theta, V, t, rows)
        if ls is not None:
            out.update(ls_t=ls["min_t"], ls_bracketed=ls["bracketed"].astype(np.int64))
            out.update(self._evaluate(splits, NW.path(theta, V, ls["min_t"]), "ls_"))
        points = len(splits) * (self.M + 1) * (2 if ls is not None else 1)
        searched = self.cfg.ls_points * self.M if source == "computed" else 0
        cost = {"gradients": 1, "hvps": 0, "eigensolves": 0, "forward_points": points + searched}
        return out, {"linesearch_source": source, "cost": cost}

    def _evaluate(self, splits: dict, thetas: torch.Tensor, prefix: str) -> dict:
        out = {}
        for name, obj in splits.items():
            loss, acc = NW.evaluate(obj, thetas)
            out[f"{prefix}{name}_loss"], out[f"{prefix}{name}_acc"] = loss, acc
        return out

    def _minima(self, fit, theta, V, t, rows) -> tuple[str, dict | None]:
        mode = self.cfg.linesearch
        have = all(int(r) in self.stored_minima for r in rows)
        if mode == "none":
            return "none", None
        if mode == "stored" and not have:
            missing = [int(r) for r in rows if int(r) not in self.stored_minima]
            raise InputError(f"--linesearch stored: step {self.step} has no stored line search (with the eigen item's "
                             f"subset, BN mode and dtype) along eigenvector row(s) {missing}; run `landscape "
                             "linesearch` with those options, or pass --linesearch compute")
        if mode in ("stored", "auto") and have:
            pairs = [self.stored_minima[int(r)] for r in rows]
            return "stored", {"min_t": np.array([p[0] for p in pairs]), "bracketed": np.array([p[1] for p in pairs])}
        scales = np.maximum(np.abs(t), self.cfg.ls_floor)
        return "computed", NW.search_minima(fit, theta, V, scales, self.cfg.ls_points, self.cfg.ls_span)

    # --- noise ----------------------------------------------------------------------------
    def band_list(self, *, learned: bool = False) -> list:
        k = len(self.used)
        splits = self.cfg.band_splits if self.cfg.band_splits is not None else ((k // 2,) if k > 1 else ())
        return NZ.bands(splits, k, isotropic=not learned)

    def noise(self) -> tuple[dict, dict]:
        _, train, test = self.objectives()
        theta = train.theta
        V, bands = self.vectors(train, self.used), self.band_list()
        out = NZ.band_noise({"train": train, "test": test}, theta, V, bands, self.cfg.noise_scales,
                            self.cfg.draws, self.cfg.seed, averaged=train.loss_name == "cross_entropy")
        for name, obj in (("train", train), ("test", test)):
            loss, acc = NW.evaluate(obj, theta[None])
            out[f"base_{name}_loss"], out[f"base_{name}_acc"] = float(loss[0]), float(acc[0])
        out.update(self._band_arrays(bands), sigmas=np.asarray(self.cfg.noise_scales), num_draws=self.cfg.draws)
        cost = {"gradients": 0, "hvps": 0, "forward_points": 2 * len(bands) * len(self.cfg.noise_scales) * self.cfg.draws}
        return out, {"cost": cost}

    @staticmethod
    def _band_arrays(bands) -> dict:
        return {"band_names": np.array([b.name for b in bands]), "band_kind": np.array([b.kind for b in bands]),
                "band_start": np.array([b.start for b in bands]), "band_stop": np.array([b.stop for b in bands])}

    def noise_learned(self) -> tuple[dict, dict]:
        _, train, test = self.objectives()
        theta, c = train.theta, self.cfg
        V, bands = self.vectors(train, self.used), self.band_list(learned=True)
        val_idx, held_idx = NZ.validation_split(test.num_examples, c.val_fraction, c.seed)
        val, held = test.subset(val_idx), test.subset(held_idx)
        learned = NZ.learn_scales(val, theta, V, bands, init=c.learn_init, steps=c.learn_steps, lr=c.learn_lr,
                                  pairs=c.learn_pairs, seed=c.seed, optimiser=c.learn_optimizer)
        out = {**learned, **self._band_arrays(bands), "val_indices": val_idx, "heldout_indices": held_idx}
        for label, sigma in (("init", learned["sigma"][0]), ("learned", learned["sigma"][-1])):
            out.update(self._joint_noise({"val": val, "heldout": held}, theta, V, bands, sigma, label))
        for name, obj in (("val", val), ("heldout", held)):
            loss, acc = NW.evaluate(obj, theta[None])
            out[f"base_{name}_loss"], out[f"base_{name}_acc"] = float(loss[0]), float(acc[0])
        cost = {"gradients_per_step": 2 * c.learn_pairs, "gradients": 2 * c.learn_pairs * c.learn_steps,
                "forward_points": 2 * 2 * c.draws}
        return out, {"cost": cost, "validation": "a seeded half of the test split (val_indices)"}

    def _joint_noise(self, objectives: dict, theta, V, bands, sigma: np.ndarray, label: str) -> dict:
        """Loss/accuracy at θ + Σ_b σ_b ξ̂_b over the draws, summarised (mean, std, sem)."""
        seed = NZ.draw_seed(self.cfg.seed, 7777, 0)
        delta = sum(float(s) * NZ.unit_draws(b, V, self.cfg.draws, seed + i) for i, (s, b) in enumerate(zip(sigma, bands)))
        out = {}
        for name, obj in objectives.items():
            loss, acc = NW.evaluate(obj, theta + delta)
            for q, v in (("loss", loss), ("acc", acc)):
                for stat, value in NZ.summary(v).items():
                    out[f"{label}_{name}_{q}_{stat}"] = float(value)
        return out

    # --- continued training ---------------------------------------------------------------
    def continuation_plan(self) -> dict:
        """Length, learning rate, batch size and refresh settings shared by every variant."""
        run_cfg = self.inputs.run.config
        N = int(self.inputs.run.dataset.num_train)
        B = N if run_cfg.full_batch else int(run_cfg.batch_size)
        steps = self.cfg.continue_steps or max(1, N // B)
        lr = self.cfg.continue_lr or self.continue_fn.lr_at(self.step)
        k = min(self.cfg.shape_k or len(self.used), len(self.used))
        return {"steps": steps, "lr": lr, "B": B, "N": N, "momentum": float(run_cfg.momentum), "k": k,
                "eval_every": self.cfg.eval_every or max(1, steps // 8)}

    def continued(self, variant: str) -> tuple[dict, dict]:
        if self.continue_fn is None:
            raise InputError("continued training needs the driver's continuation runner (use `landscape intervene`)")
        p = self.continuation_plan()
        rule = CT.rule_for(variant, lr=p["lr"], batch_size=p["B"], num_train=p["N"], momentum=p["momentum"])
        b1 = variant == "b1"
        lr = (self.cfg.b1_lr or p["lr"] / p["B"]) if b1 else p["lr"]
        steps, every = (p["steps"] * p["B"], p["eval_every"] * p["B"]) if b1 else (p["steps"], p["eval_every"])
        v0 = torch.as_tensor(self.eig.eigenvectors[self.used[:p["k"]]])
        result, log = self.continue_fn(self.step, steps=steps, lr=lr, per_example=b1, eval_every=every, rule=rule,
                                       k=p["k"], every=self.cfg.refresh, tol=self.cfg.refresh_tol, v0=v0)
        out = CT.curves(result, log)
        attrs = {"variant": variant, "plan": p, "cost": self._continuation_cost(out, steps)}
        if variant == "stationary":
            out["critical_eigenvalue"] = rule.critical_eigenvalue
        return out, attrs

    @staticmethod
    def _continuation_cost(out: dict, steps: int) -> dict:
        matvecs = int(np.sum(out.get("refresh_matvecs", 0)))
        return {"updates": steps, "minibatch_gradients": steps, "evaluations": len(out["eval_steps"]),
                "refresh_hvps": matvecs, "refreshes": len(out.get("refresh_steps", []))}
