"""Figures drawn from stored results only (no torch, no recomputation).

Each figure is a function registered with :func:`register`::

    @register("spectral_density", caption="SLQ density of the Hessian at each step ... Look for ...",
              section="spectrum", title="Spectral density")
    def spectral_density(results, run) -> list[Figure-like]:
        ...

``results`` is a :class:`landscape.io.ResultsFile` opened read-only (or None),
``run`` a :class:`landscape.io.RunFile` (or None). The function returns a list of
``(suffix, fig)`` pairs (``suffix`` may be ``""``) or raises :class:`MissingData`
with a one-line reason when the files lack what the figure needs; ``landscape
plot`` and the report then skip that figure with the note. A figure registered with
``scope="runs"`` compares runs instead: it is called once with the list of
:class:`RunView` (label, results, run) given to the report.

Sections: the report groups figures by ``section`` in the order of the study
(:data:`STUDY_SECTIONS`: training → spectrum → eigendirections → sharpness →
projections → surfaces). A figure registered without one lands in a section named
after its module (``analyses/plots/hyper.py`` → "Hyper"), placed after the study's
sections; :func:`define_section` gives such a section its heading and lead text.

Modules under this package that register figures are imported by
:func:`all_figures`.
"""

from __future__ import annotations

import importlib
import itertools
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass


class MissingData(Exception):
    """The stored results lack the data this figure needs (the message says what)."""


@dataclass(frozen=True)
class Section:
    """A section of the report: its id, heading and a lead sentence saying what it asks."""

    id: str
    title: str
    lead: str = ""


# The order of the study. Lead sentences say what question the section answers.
STUDY_SECTIONS = (
    Section("training", "Training", "How did each run train: losses, accuracy, and the curvature it met "
            "against the stability threshold of its optimizer."),
    Section("spectrum", "Hessian spectrum", "The Hessian at saved checkpoints: certified top eigenvalues, "
            "the trace and the spectral density, and how they evolve."),
    Section("eigendirections", "Eigendirections", "The loss along the top eigenvectors: how far the "
            "quadratic model holds, how minibatches see each direction, how the eigenvectors rotate, and "
            "how training moves in the eigenbasis."),
    Section("sharpness", "Sharpness", "Random-direction and worst-case perturbations of the final "
            "parameters, set against each run's generalization gap."),
    Section("projections", "Per-example gradient projections", "How the examples' gradients distribute "
            "over the top eigendirections, and which classes carry them."),
    Section("surfaces", "Loss surfaces", "The loss on lines and planes through the parameters, with the "
            "training trajectory projected onto the plane."),
)
OTHER = Section("other", "Other analyses", "Figures registered outside the study's sections.")
# Sections of the analyses beside the study (named after their plot modules), placed after it.
BESIDE_STUDY = (
    Section("hyper", "Hypergradients", "Meta-loss and hypergradients against a training hyperparameter, and "
            "where unrolled differentiation turns chaotic."),
    Section("hyperopt", "Hyperparameter optimisation", "Hyperparameters no grid search could reach — a learning "
            "rate per step, initial weight distributions per layer, an L2 penalty per weight, the training examples "
            "themselves — optimised by gradient descent on the validation loss after training."),
    Section("deeplinear", "Deep linear networks", "Exactly solvable deep linear nets: their landscape, "
            "critical points, learning-rate regimes, depth and initialisation."),
    Section("interventions", "Interventions in the eigenbasis", "What each part of the spectrum does for the "
            "train and test loss: Newton steps in the top subspace, noise per band of eigendirections, and "
            "training continued with the update shaped in the top-k basis."),
    Section("papyan", "Class structure of the Hessian", "How much of the top of the Hessian spectrum the class "
            "means, the cross-class and the within-class parts of its Gauss–Newton matrix explain (Papyan)."),
)
_SECTIONS: dict[str, Section] = {s.id: s for s in STUDY_SECTIONS + BESIDE_STUDY}
SCOPES = ("run", "runs")   # one figure per run; one figure comparing every run


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure.

    Attributes:
        name: unique name (file stem, ``--only``).
        caption: what the figure shows and what to look for (no internal labels).
        draw: ``draw(results, run)`` (scope "run") or ``draw(runs)`` (scope "runs").
        section: id of the report section (see :data:`STUDY_SECTIONS`).
        title: the heading shown above the figure.
        scope: ``"run"`` or ``"runs"`` (a comparison of every run given).
        module: the registering module's short name; ``order``: registration counter.
    """

    name: str
    caption: str
    draw: Callable
    section: str = OTHER.id
    title: str = ""
    scope: str = "run"
    module: str = ""
    order: int = 0

    @property
    def heading(self) -> str:
        """``title``, or the name in words."""
        return self.title or self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class RunView:
    """One run as a figure of scope "runs" sees it: a label, its results and run files (either may be None)."""

    label: str
    results: object = None
    run: object = None


_REGISTRY: dict[str, FigureSpec] = {}
_COUNTER = itertools.count()


def _module_section(module: str) -> str:
    short = module.rsplit(".", 1)[-1]
    return short if module.startswith(f"{__name__}.") and not short.startswith("_") else OTHER.id


def register(name: str, caption: str, *, section: str | None = None, title: str = "", scope: str = "run"):
    """Decorator adding a figure function to the registry under ``name``.

    Args:
        name: the figure's name.
        caption: what it shows and what to look for.
        section: a section id (default: the registering module's name, or "other").
        title: heading in the report (default: ``name`` in words).
        scope: ``"run"`` (drawn for each run) or ``"runs"`` (once, comparing the runs).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")

    def wrap(fn):
        module = getattr(fn, "__module__", "") or ""
        _REGISTRY[name] = FigureSpec(name, caption, fn, section or _module_section(module), title, scope,
                                     module.rsplit(".", 1)[-1], next(_COUNTER))
        return fn
    return wrap


def define_section(id: str, title: str, lead: str = "") -> Section:
    """Give a section outside the study (e.g. a new module's) its heading and lead sentence."""
    _SECTIONS[id] = Section(id, title, lead)
    return _SECTIONS[id]


def get_section(id: str) -> Section:
    """The section ``id``: a study section, one defined by :func:`define_section`, or one titled after the id."""
    return _SECTIONS.get(id) or (OTHER if id == OTHER.id else Section(id, id.replace("_", " ").capitalize()))


def section_rank(id: str) -> tuple:
    """Sort key of a section: the study's order, then other sections alphabetically, "other" last."""
    study = [s.id for s in STUDY_SECTIONS]
    if id in study:
        return (0, study.index(id), "")
    return (2, 0, "") if id == OTHER.id else (1, 0, get_section(id).title.lower())


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


def last_step_item(results, analysis: str, quantity: str, hint: str = "") -> tuple[int, dict]:
    """``(step, arrays)`` of the latest step holding ``analysis/…/quantity``.

    Raises:
        MissingData: none stored (the message names the command, with ``hint`` appended).
    """
    if results is None:
        raise MissingData("no results file given")
    found = results.items(analysis, quantity)
    if not found:
        raise MissingData(f"no {analysis} {quantity} items stored (run `landscape {analysis}{hint}`)")
    step, key = found[-1]
    return step, results.read_item(key)[0]


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
    """Every registered figure in the report's order (section, comparisons first, registration), importing
    all plot modules first."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "style":
            importlib.import_module(f"{__name__}.{info.name}")
    return {spec.name: spec for spec in sorted(_REGISTRY.values(), key=figure_rank)}


# Modules in the order of the study, so a section drawing from several modules follows it.
STUDY_MODULES = ("compare", "training", "spectrum", "eigen", "sharpness", "gradproj", "surface")


def figure_rank(spec: FigureSpec) -> tuple:
    """Sort key of a figure: its section, comparisons before per-run figures, its module, registration."""
    module = STUDY_MODULES.index(spec.module) if spec.module in STUDY_MODULES else len(STUDY_MODULES)
    return (*section_rank(spec.section), spec.scope != "runs", module, spec.module, spec.order)
