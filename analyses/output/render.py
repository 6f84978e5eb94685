"""Render the registered figures for one or several runs to PDF + PNG (I/O edge).

Layout on disk (``landscape plot`` and the report's ``figures/``): with one run, ``DIR/<name>.pdf|png``
as always; with several, each run's figures in ``DIR/<label>/`` and the comparison figures (scope
"runs") in ``DIR`` itself. A figure returning several parts appends the part to the name
(``surface_2d_<surface>_step<S>``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt

from analyses.output.inputs import open_runs, slug
from analyses.plots import FigureSpec, MissingData, RunView, all_figures
from analyses.plots.style import RC, save
from landscape.errors import InputError


@dataclass(frozen=True)
class RenderedFigure:
    """A figure written to disk: its spec, the run it shows (None: a comparison), the part, and the files."""

    spec: FigureSpec
    run: str | None
    part: str
    png: Path
    pdf: Path

    @property
    def name(self) -> str:
        """The file stem: the figure's name and its part."""
        return f"{self.spec.name}_{self.part}" if self.part else self.spec.name

    @property
    def caption(self) -> str:
        """The registered caption."""
        return self.spec.caption


@dataclass(frozen=True)
class Skipped:
    """A figure not drawn for a run (None: the comparison), and why."""

    spec: FigureSpec
    run: str | None
    reason: str


@dataclass
class Rendering:
    """What :func:`render_runs` drew and skipped, in the report's order."""

    figures: list[RenderedFigure] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _draw(spec: FigureSpec, runs: Sequence[RunView], view: RunView | None) -> list:
    with plt.rc_context(RC):   # titles and legends added after figure() get the paper style too
        return spec.draw(runs) if view is None else spec.draw(view.results, view.run)


def _targets(spec: FigureSpec, runs: Sequence[RunView]) -> list[RunView | None]:
    if spec.scope == "runs":
        return [None] if len(runs) > 1 else []   # a comparison of one run repeats its own figures
    return list(runs)


def render_figures(results, run, out_dir: str | Path, *, only: Sequence[str] | None = None,
                   log: Callable[[str], None] = print) -> list[RenderedFigure]:
    """Draw every registered figure (or those in ``only``) of one run (``results`` and/or ``run``, either
    may be None) into ``out_dir``; skip those lacking data with a note. See :func:`render_runs`."""
    return render_runs([RunView("", results, run)], out_dir, only=only, log=log).figures


@contextlib.contextmanager
def open_inputs_for_figures(paths: Sequence[str]):
    """Open one run's files (a run file and/or its results file); yield ``(results, run)`` (either may be None).

    Raises:
        InputError: the files are of several runs (use :func:`analyses.output.inputs.open_runs`).
    """
    with open_runs(paths) as views:
        if len(views) > 1:
            raise InputError(f"the files are of {len(views)} runs ({', '.join(v.label for v in views)}); give "
                             "one run and its results file here")
        view = views[0] if views else RunView("")
        yield view.results, view.run


def render_runs(runs: Sequence[RunView], out_dir: str | Path, *, only: Sequence[str] | None = None,
                log: Callable[[str], None] = print) -> Rendering:
    """Draw every registered figure (or those in ``only``) for every run; skip those lacking data with a note."""
    out, several = Path(out_dir), len(runs) > 1
    done = Rendering()
    for spec in all_figures().values():
        if only and spec.name not in only:
            continue
        for view in _targets(spec, runs):
            label = None if view is None else view.label
            try:
                parts = _draw(spec, runs, view)
            except MissingData as why:
                reason = str(why)
            except Exception as err:  # a figure must never take the report down with it
                reason = f"could not draw it from the stored data ({type(err).__name__}: {err})"
            else:
                folder = out / slug(label) if several and label is not None else out
                for part, fig in parts:
                    stem = f"{spec.name}_{part}" if part else spec.name
                    pdf, png = save(fig, folder, stem)
                    done.figures.append(RenderedFigure(spec, label, part, png, pdf))
                continue
            done.skipped.append(Skipped(spec, label, reason))
            log(f"skipped figure {spec.name}{f' for {label}' if label and several else ''}: {reason}")
    return done
