"""Which Ritz values are wanted: orderings for ``which`` = LA, SA, LM, BE."""

from __future__ import annotations

import torch
from torch import Tensor

WHICH = ("LA", "SA", "LM", "BE")


def priority(theta: Tensor, which: str) -> Tensor:
    """Indices of the Ritz values ``theta`` in order of preference for ``which``."""
    if which == "LA":
        return torch.argsort(theta, descending=True, stable=True)
    if which == "SA":
        return torch.argsort(theta, stable=True)
    if which == "LM":
        return torch.argsort(theta.abs(), descending=True, stable=True)
    top, bottom = torch.argsort(theta, descending=True, stable=True), torch.argsort(theta, stable=True)
    seen, order = set(), []
    for i in torch.stack([top, bottom], dim=1).reshape(-1).tolist():  # BE: top, bottom, top, ...
        if i not in seen:
            seen.add(i)
            order.append(i)
    return torch.tensor(order, dtype=torch.long)


def handicap(theta: Tensor, which: str, margin: float) -> Tensor:
    """``theta`` made less wanted by ``margin`` (never crossing the point it is judged from).

    LA/SA move values down/up; LM shrinks |θ| toward 0; BE moves values toward the
    middle of their range. Ties then go to the values that were not handicapped.
    """
    if which == "LA":
        return theta - margin
    if which == "SA":
        return theta + margin
    center = 0.0 if which == "LM" else float(theta.max() + theta.min()) / 2
    d = theta - center
    return center + torch.sign(d) * (d.abs() - margin).clamp(min=0.0)


def output_order(theta: Tensor, which: str) -> Tensor:
    """Permutation that sorts the chosen values as ``which`` reports them (LA descending,
    SA ascending, LM by descending |λ|, BE ascending)."""
    if which == "LA":
        return torch.argsort(theta, descending=True, stable=True)
    if which == "LM":
        return torch.argsort(theta.abs(), descending=True, stable=True)
    return torch.argsort(theta, stable=True)
