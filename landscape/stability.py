"""Stability thresholds of the update rules in :mod:`landscape.optim` (pure Python, no torch).

On a quadratic with curvature λ along an eigendirection, the iteration of an update rule
with learning rate η is stable exactly when η·λ stays below a constant c that depends only on
the rule; "the edge of stability" is λ = c/η (Cohen et al. 2021, "Gradient descent on neural
networks typically occurs at the edge of stability"):

* gradient descent: c = 2;
* heavy-ball momentum β in PyTorch's form (b ← βb + g, θ ← θ − ηb): c = 2(1 + β)
  (38 for β = 0.9), where an eigenvalue of the 2 × 2 iteration matrix on (θ, b) crosses −1;
* Nesterov momentum (θ ← θ − η(g + βb)): c = 2(1 + β)/(1 + 2β);
* Adam/AdamW with β₁: the threshold applies to the *preconditioned* curvature, the top
  eigenvalue of P⁻¹H with P = diag(√v̂ + ε) (:func:`landscape.optim.adam_preconditioner`):
  c = (2 + 2β₁)/(1 − β₁), 38 for β₁ = 0.9 (Cohen et al. 2022, "Adaptive gradient methods at
  the edge of stability"; the momentum is an exponential average, so the heavy-ball constant
  is divided by the (1 − β₁) that scales its input).

Every caller (the trainer's progress bar, the trajectory analysis, the training figure) uses
:func:`stability_constant` and :func:`threshold_label`, so one definition holds everywhere.
"""

from __future__ import annotations

OPTIMIZERS = ("sgd", "adamw")


def stability_constant(optimizer: str = "sgd", momentum: float = 0.0, nesterov: bool = False,
                       beta1: float = 0.9) -> float:
    """c such that the rule is stable on a quadratic exactly when η·λ < c (module docstring).

    Args:
        optimizer: ``"sgd"`` (with ``momentum``/``nesterov``) or ``"adamw"`` (with ``beta1``;
            λ is then the preconditioned curvature, an eigenvalue of P⁻¹H).
        momentum: β of SGD (0: gradient descent).
        nesterov: Nesterov's form of SGD momentum.
        beta1: β₁ of Adam/AdamW.

    Raises:
        ValueError: an unknown optimizer (e.g. a user's own, which has no known threshold).
    """
    if optimizer == "adamw":
        return (2.0 + 2.0 * beta1) / (1.0 - beta1)
    if optimizer != "sgd":
        raise ValueError(f"no stability threshold is known for optimizer {optimizer!r}; known: {OPTIMIZERS}")
    return 2.0 * (1.0 + momentum) / ((1.0 + 2.0 * momentum) if nesterov else 1.0)


def describe(config: dict) -> dict:
    """The optimizer of a run from its stored config: ``optimizer``, ``momentum``, ``nesterov``, ``beta1``.

    Configs written before AdamW existed have no ``optimizer`` key: they are SGD.
    """
    betas = config.get("betas") or (0.9, 0.999)
    return {"optimizer": str(config.get("optimizer", "sgd")), "momentum": float(config.get("momentum", 0.0) or 0.0),
            "nesterov": bool(config.get("nesterov", False)), "beta1": float(betas[0])}


def run_constant(config: dict) -> float | None:
    """:func:`stability_constant` for a run's stored config; None for an optimizer without one."""
    d = describe(config)
    if d["optimizer"] not in OPTIMIZERS:
        return None
    return stability_constant(**d)


def threshold_label(config: dict) -> str:
    """A short label of the threshold λ = c/η of a run, e.g. ``2(1+β)/η = 3.8/η, β = 0.9``.

    For AdamW (``AdamW: 38/η, β₁ = 0.9``) the threshold is for λ_max(P⁻¹H), the preconditioned sharpness.
    """
    d = describe(config)
    c = run_constant(config)
    if c is None:
        return f"no known threshold ({d['optimizer']})"
    if d["optimizer"] == "adamw":
        return f"AdamW: (2+2β₁)/((1−β₁)η) = {c:.4g}/η, β₁ = {d['beta1']:g}"
    if not d["momentum"]:
        return "2/η"
    if d["nesterov"]:
        return f"Nesterov: 2(1+β)/((1+2β)η) = {c:.4g}/η, β = {d['momentum']:g}"
    return f"2(1+β)/η = {c:.4g}/η, β = {d['momentum']:g}"
