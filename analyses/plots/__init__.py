"""Figures drawn from stored results only (no torch, no recomputation).

Each figure is a function registered with :func:`register`::

    @register("spectral_density", caption="SLQ density of the Hessian at each step ...")
    def spectral_density(results, run) -> list[Figure-like]:
        ...

``results`` is a :class:`landscape.io.ResultsFile` opened read-only (or None),
``run`` a :class:`landscape.io.RunFile` (or None). The function returns a list of
``(suffix, fig)`` pairs (``suffix`` may be ``""``) or raises :class:`MissingData`
with a one-line reason when the files lack what the figure needs; ``landscape
plot`` and the report then skip that figure with the note.

Modules under this package that register figures are imported by
:func:`all_figures`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass


class MissingData(Exception):
    """The stored results lack the data this figure needs (the message says what)."""


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure: its name, a one-line caption and the drawing function."""

    name: str
    caption: str
    draw: Callable


_REGISTRY: dict[str, FigureSpec] = {}


def register(name: str, caption: str):
    """Decorator adding a figure function to the registry under ``name``."""
    def wrap(fn):
        _REGISTRY[name] = FigureSpec(name, caption, fn)
        return fn
    return wrap


def step_items(results, analysis: str, quantity: str) -> list[tuple[int, dict]]:
    """``[(step, arrays)]`` of the complete items ``analysis/step_*/quantity``, by step.

    Raises:
        MissingData: no results file, or no such item (the message names the command that makes them).
    """
    if results is None:
        raise MissingData("no results file given")
    found = results.items(analysis, quantity)
    if not found:
        raise MissingData(f"no {analysis} {quantity} items in the results file (run `landscape {analysis}`)")
    return [(step, results.read_item(key)[0]) for step, key in found]


def by_step(results, analysis: str) -> dict[int, dict[str, dict]]:
    """``{step: {quantity: arrays}}`` of every complete per-step item of ``analysis``."""
    if results is None:
        raise MissingData("no results file given")
    out = {step: {q: results.read_item(key)[0] for q, key in quantities.items()}
           for step, quantities in results.by_step(analysis).items()}
    if not out:
        raise MissingData(f"no '{analysis}' results in the file")
    return out


def all_figures() -> dict[str, FigureSpec]:
    """Every registered figure, importing all plot modules first."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "style":
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(_REGISTRY)
