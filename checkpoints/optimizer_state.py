"""A ``torch.optim`` optimizer described honestly, its state as flat vectors, and back.

The :class:`~checkpoints.recorder.Recorder` stores the optimizer of a user's loop so that the
analyses know the update rule (for replay and for the stability threshold). :func:`describe`
reads the class and hyperparameters: ``torch.optim.SGD`` (dampening 0) and ``torch.optim.AdamW``
(and ``Adam`` without weight decay, the same rule) are the rules of :mod:`landscape.optim` and can
be replayed; anything else is recorded by its class name and cannot. :func:`state_vectors`
flattens the optimizer's per-parameter state in θ's order (``ParamSpec`` order):
SGD's momentum buffer, or AdamW's first and second moments; :func:`load_state` writes them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from landscape.params import ParamSpec


@dataclass
class Described:
    """What a run file records about an optimizer.

    Attributes:
        name: ``"sgd"``, ``"adamw"`` or ``"other"``.
        hyper: its hyperparameters (JSON), with ``class`` the optimizer's class path.
        replayable: whether :mod:`landscape.optim` implements this exact rule.
        why: why not, when not.
    """

    name: str
    hyper: dict = field(default_factory=dict)
    replayable: bool = True
    why: str = ""


def class_path(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def describe(optimizer, model) -> Described:
    """The update rule ``optimizer`` applies to ``model``'s θ (see the module docstring)."""
    if optimizer is None:
        return Described("other", {"class": None}, False, "no optimizer was given to the recorder")
    groups = optimizer.param_groups
    kind = _kind(optimizer, groups[0])
    hyper = {"class": class_path(optimizer), **{k: _plain(groups[0].get(k)) for k in _KEYS.get(kind, ())}}
    why = _why_not(optimizer, model, kind, groups)
    return Described(kind if kind in ("sgd", "adamw") else "other", hyper, not why, why)


_KEYS = {"sgd": ("lr", "momentum", "dampening", "nesterov", "weight_decay", "maximize"),
         "adamw": ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")}


def _kind(optimizer, group: dict) -> str:
    if type(optimizer) is torch.optim.SGD:
        return "sgd"
    if type(optimizer) is torch.optim.AdamW or (type(optimizer) is torch.optim.Adam and (
            not group.get("weight_decay") or group.get("decoupled_weight_decay"))):
        return "adamw"
    return "other"


def _why_not(optimizer, model, kind: str, groups: list[dict]) -> str:
    if kind == "other":
        return f"the toolkit does not implement {class_path(optimizer)} (it replays torch.optim.SGD and AdamW)"
    g = groups[0]
    if g.get("maximize") or g.get("amsgrad") or g.get("dampening"):
        return "maximize, amsgrad and dampening are not part of the replayed rules"
    hyper = [{k: v for k, v in gr.items() if k not in ("params", "lr", "initial_lr")} for gr in groups]
    if any(h != hyper[0] for h in hyper) or len({float(gr["lr"]) for gr in groups}) > 1:
        return "the optimizer's parameter groups have different hyperparameters"
    held = {id(p) for gr in groups for p in gr["params"]}
    if any(id(p) not in held for p in model.parameters() if p.requires_grad):
        return "the optimizer does not update every trainable parameter of the model"
    return ""


def _plain(v):
    if isinstance(v, torch.Tensor):
        v = v.item()
    return list(v) if isinstance(v, tuple) else v


def state_vectors(optimizer, model, kind: str) -> tuple[torch.Tensor | None, torch.Tensor | None, int | None]:
    """``(momentum or first moment, second moment, Adam's step count)`` as flat float32 vectors.

    Parameters without state yet (before the first step) contribute zeros; vectors are None
    where the rule keeps none (SGD without momentum; the second moment of SGD).
    """
    if optimizer is None or kind == "other":
        return None, None, None
    params = [p for p in model.parameters() if p.requires_grad]
    if kind == "sgd":
        if not optimizer.param_groups[0].get("momentum"):
            return None, None, None
        return _flat(optimizer, params, "momentum_buffer"), None, None
    return _flat(optimizer, params, "exp_avg"), _flat(optimizer, params, "exp_avg_sq"), _adam_step(optimizer, params)


def _flat(optimizer, params, key: str) -> torch.Tensor:
    parts = []
    for p in params:
        s = optimizer.state.get(p, {}).get(key)
        parts.append((torch.zeros_like(p) if s is None else s).detach().reshape(-1).to("cpu", torch.float32))
    return torch.cat(parts) if parts else torch.zeros(0)


def _adam_step(optimizer, params) -> int:
    steps = {int(float(optimizer.state[p]["step"])) for p in params if "step" in optimizer.state.get(p, {})}
    return steps.pop() if len(steps) == 1 else 0


def load_state(optimizer, model, kind: str, momentum, second_moment, adam_step: int) -> None:
    """Write flat state vectors (from a snapshot) back into ``optimizer``'s per-parameter state."""
    if optimizer is None or kind == "other" or momentum is None:
        return
    spec = ParamSpec.from_module(model)
    named = dict(model.named_parameters())
    for name, part in spec.unflatten(torch.as_tensor(momentum)).items():
        p = named[name]
        st = optimizer.state[p]
        if kind == "sgd":
            st["momentum_buffer"] = part.detach().clone().to(p.device, p.dtype)
            continue
        st["exp_avg"] = part.detach().clone().to(p.device, p.dtype)
        st["exp_avg_sq"] = spec.unflatten(torch.as_tensor(second_moment))[name].detach().clone().to(p.device, p.dtype)
        st["step"] = torch.tensor(float(adam_step), dtype=torch.float32)
