"""What each recipe's result is compared with, on held-out seeds (the item ``hyperopt/<recipe>/evaluation``).

* ``schedule`` — the learned schedule against the **best constant rate on the same budget** (T steps; the
  constant chosen on the validation loss over a log-spaced grid, on the evaluation seeds themselves, so the
  baseline is if anything favoured) and against the starting rate: learning curves (validation and test
  loss and accuracy at ``curve_points`` steps) per seed.
* ``init`` — nets started from the learned per-layer distributions against the model's own initialisation:
  learning curves; the learned and starting quantile knots; θ_0 of one seed under each (the empirical
  histogram beside the learned density).
* ``ard`` — the learned per-weight penalties against the best single penalty λ (grid, chosen on the
  validation loss) and the starting one: learning curves, and the trained weights of one seed.
* ``distill`` / ``distill_fixed`` — nets trained on the distilled examples against nets trained on the
  same number of random real training examples (one draw per seed), with the learned learning rates and
  with the constant rate of the best validation *accuracy* for the real examples (the validation loss of
  nets trained on ten examples is lowest when they barely train, so a loss-tuned rate would be a weak
  accuracy baseline): validation and test loss and accuracy per seed
  (random init: a fresh init per seed; fixed init: the optimisation's init, the real draw varies).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from analyses.driver.records import Record
from analyses.hyper_optimize.work import OptimizeWork, eval_seeds, metrics, real_examples
from landscape.hyper import train
from landscape.hyper.hyperparams import initial_theta

WHICH = ("learned", "best", "initial")   # the curves of every recipe but distill (best: the baseline)


def evaluate(work: OptimizeWork, phi: dict) -> Record:
    """The recipe's evaluation of the meta-parameters φ (normally those after the last meta-iteration)."""
    fn = {"schedule": _schedule, "init": _init, "ard": _ard}.get(work.cfg.recipe, _distill)
    record = fn(work, phi)
    record.attrs.update(kind="evaluation", recipe=work.cfg.recipe, route=work.route, eval_seeds=eval_seeds(work.cfg),
                        groups=list(work.cfg.groups))
    return record


def curve_steps(cfg) -> np.ndarray:
    """The steps at which the learning curves are evaluated (0 and T included)."""
    return np.unique(np.linspace(0, cfg.steps, cfg.curve_points).round().astype(int))


def const_grid(cfg) -> np.ndarray:
    return np.geomspace(cfg.const_lo, cfg.const_hi, cfg.const_num)


def learning_curve(work: OptimizeWork, problem, h: dict, steps: np.ndarray) -> dict[str, np.ndarray]:
    """Validation and test loss/accuracy at ``steps`` of one training run (NaN where it diverged)."""
    keep = {int(s) for s in steps}
    thetas = {0: initial_theta(problem, h).detach()}
    train(problem, h, int(steps[-1]), callback=lambda t, th, m: thetas.__setitem__(t, th) if t in keep else None)
    rows = [(*problem.val_metrics(thetas[int(s)]), *metrics(problem, thetas[int(s)], *work.splits["test"]))
            for s in steps]
    cols = np.asarray(rows, dtype=float).T
    return dict(zip(("val_loss", "val_acc", "test_loss", "test_acc"), cols))


def final_metrics(work: OptimizeWork, problem, h: dict) -> dict[str, float]:
    """Validation and test loss/accuracy after T steps (NaN loss where training diverged), and θ_T."""
    theta = train(problem, h, work.cfg.steps)["theta"]
    val, test = problem.val_metrics(theta), metrics(problem, theta, *work.splits["test"])
    return {"val_loss": val[0], "val_acc": val[1], "test_loss": test[0], "test_acc": test[1], "theta": theta}


def _curves(work: OptimizeWork, variants: dict[str, dict], make=None) -> dict[str, np.ndarray]:
    """``curve.<variant>.<metric>`` ``(E, C)`` over the evaluation seeds."""
    steps, out = curve_steps(work.cfg), {}
    make = make or work.problem
    per = {name: [learning_curve(work, make(s), h, steps) for s in eval_seeds(work.cfg)] for name, h in variants.items()}
    for name, rows in per.items():
        for metric in rows[0]:
            out[f"curve.{name}.{metric}"] = np.stack([r[metric] for r in rows])
    out["curve_steps"] = steps
    return out


def _grid(work: OptimizeWork, hyper_of, make=None, by: str = "val_loss") -> tuple[dict[str, np.ndarray], int]:
    """Final metrics ``(G, E)`` over the constant grid, and the index of the best mean ``by`` on validation
    (``val_loss``: lowest; ``val_acc``: highest)."""
    make = make or work.problem
    rows = [[final_metrics(work, make(s), hyper_of(v)) for s in eval_seeds(work.cfg)] for v in const_grid(work.cfg)]
    out = {f"const_{m}": np.asarray([[r[m] for r in row] for row in rows], float)
           for m in ("val_loss", "val_acc", "test_loss", "test_acc")}
    sign = 1.0 if by == "val_loss" else -1.0
    mean = np.nan_to_num(sign * out[f"const_{by}"].mean(axis=1), nan=np.inf)
    out["const_values"] = const_grid(work.cfg)
    return out, int(np.argmin(mean))


def _scalar(work: OptimizeWork, group: str, value: float) -> dict:
    return {group: torch.tensor(math.log(value), dtype=work.dtype, device=work.device)}


def _schedule(work: OptimizeWork, phi: dict) -> Record:
    learned, initial = work.hyper(phi), work.hyper(work.phi0)
    grid, best = _grid(work, lambda v: _scalar(work, "log_lr", v))
    eta = float(grid["const_values"][best])
    arrays = {**grid, **_curves(work, {"learned": learned, "best": _scalar(work, "log_lr", eta), "initial": initial})}
    arrays.update(best_const=eta, lr_learned=_np(learned["log_lr"].exp()), lr_initial=_np(initial["log_lr"].exp()))
    return Record(arrays, {"baseline": "best constant learning rate"},
                  summary=_compare(arrays, f"best constant η = {eta:.4g}"))


def _init(work: OptimizeWork, phi: dict) -> Record:
    learned, initial = work.hyper(phi), work.hyper(work.phi0)
    arrays = _curves(work, {"learned": learned, "best": {}, "initial": initial})
    prob = work.problem(eval_seeds(work.cfg)[0])
    spec = prob.spec
    arrays.update(knots_learned=_np(learned["init_quantiles"]), knots_initial=_np(initial["init_quantiles"]),
                  theta0_learned=_np(initial_theta(prob, learned)), theta0_default=_np(prob.theta_base),
                  layer_sizes=np.asarray(spec.numels))
    return Record(arrays, {"baseline": "the model's own initialisation", "layer_names": list(spec.names)},
                  summary=_compare(arrays, "default init"))


def _ard(work: OptimizeWork, phi: dict) -> Record:
    learned, initial = work.hyper(phi), work.hyper(work.phi0)
    grid, best = _grid(work, lambda v: _scalar(work, "log_l2", v))
    lam = float(grid["const_values"][best])
    variants = {"learned": learned, "best": _scalar(work, "log_l2", lam), "initial": initial}
    arrays = {**grid, **_curves(work, variants)}
    prob = work.problem(eval_seeds(work.cfg)[0])
    arrays.update(best_const=lam, l2_learned=_np(_per_weight(prob, learned["log_l2"]).exp()),
                  theta_learned=_np(final_metrics(work, prob, learned)["theta"]),
                  theta_best=_np(final_metrics(work, prob, variants["best"])["theta"]),
                  weight_shape=np.asarray(prob.spec.shapes[0]), layer_sizes=np.asarray(prob.spec.numels))
    return Record(arrays, {"baseline": "best single L2 penalty", "layer_names": list(prob.spec.names)},
                  summary=_compare(arrays, f"best single λ = {lam:.3g}"))


def _per_weight(problem, log_l2: torch.Tensor) -> torch.Tensor:
    if log_l2.ndim == 0:
        return log_l2.expand(problem.P)
    return log_l2 if log_l2.shape[0] == problem.P else log_l2[problem.layer_index]


def _compare(arrays: dict, baseline: str) -> str:
    test = {w: arrays[f"curve.{w}.test_acc"][:, -1] for w in ("learned", "best")}
    return (f"test accuracy after T steps: learned {test['learned'].mean():.3f} ± {test['learned'].std():.3f}, "
            f"{baseline} {test['best'].mean():.3f} ± {test['best'].std():.3f}")


def _distill(work: OptimizeWork, phi: dict) -> Record:
    cfg, data = work.cfg, work.data
    learned = work.hyper(phi)
    x_d, labels = learned["train_inputs"], work.distilled[1]
    lr = {k: v for k, v in learned.items() if k != "train_inputs"}
    seeds = eval_seeds(cfg)
    init = {s: (s if cfg.init == "random" else cfg.seed) for s in seeds}
    real = {s: real_examples(data.train[0], data.train[1], data.num_classes, cfg.per_class,
                             torch.Generator().manual_seed(s)) for s in seeds}

    def make(s, x):
        return data.make_problem(init[s], train=(x, labels))

    rows = {"distilled": [final_metrics(work, make(s, x_d), {**lr, "train_inputs": x_d}) for s in seeds],
            "real": [final_metrics(work, make(s, real[s]), lr) for s in seeds]}
    grid, best = _grid(work, lambda v: _scalar(work, "log_lr", v), make=lambda s: make(s, real[s]), by="val_acc")
    eta = float(grid["const_values"][best])
    rows["real_tuned"] = [final_metrics(work, make(s, real[s]), _scalar(work, "log_lr", eta)) for s in seeds]
    arrays = {f"{name}_{m}": np.asarray([r[m] for r in rs], float) for name, rs in rows.items()
              for m in ("val_loss", "val_acc", "test_loss", "test_acc")}
    arrays.update(grid, seeds=np.asarray(seeds), init_seeds=np.asarray([init[s] for s in seeds]), best_const=eta,
                  distilled_inputs=_np(x_d), distilled_start=_np(work.hyper(work.phi0)["train_inputs"]),
                  labels=_np(labels), real_inputs=_np(real[seeds[0]]), class_means=_class_means(data))
    if "log_lr" in learned:
        arrays["lr_learned"] = _np(learned["log_lr"].exp())
    return Record(arrays, _distill_attrs(arrays), summary=_distill_summary(arrays))


def _class_means(data) -> np.ndarray:
    x, y = data.train
    return np.stack([x[y == c].double().mean(0).cpu().numpy() for c in range(data.num_classes)])


def _distill_attrs(a: dict) -> dict:
    """The margin of the distilled set over the stronger real baseline, against the seed-to-seed spread."""
    means = {k: float(a[f"{k}_test_acc"].mean()) for k in ("distilled", "real", "real_tuned")}
    spread = max(float(a[f"{k}_test_acc"].std(ddof=1)) if len(a[f"{k}_test_acc"]) > 1 else 0.0 for k in means)
    margin = means["distilled"] - max(means["real"], means["real_tuned"])
    return {"baseline": "random real examples", "test_acc_mean": means, "margin": margin, "spread": spread,
            "beats_by_more_than_spread": bool(margin > spread)}


def _distill_summary(a: dict) -> str:
    f = {k: a[f"{k}_test_acc"] for k in ("distilled", "real", "real_tuned")}
    return (f"test accuracy over {len(f['distilled'])} seeds: distilled {f['distilled'].mean():.3f} ± "
            f"{f['distilled'].std(ddof=1) if len(f['distilled']) > 1 else 0:.3f}, random real "
            f"{f['real'].mean():.3f} (learned η), {f['real_tuned'].mean():.3f} (best constant η)")


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
