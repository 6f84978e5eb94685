"""Render the registered figures for a results file and/or a run file (I/O edge)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from analyses.plots import MissingData, all_figures
import matplotlib.pyplot as plt

from analyses.plots.style import RC, save
from landscape.errors import InputError
from landscape.io import ResultsFile, RunFile, file_kind


@dataclass(frozen=True)
class RenderedFigure:
    """A figure written to disk: its name, caption and the PNG/PDF paths."""

    name: str
    caption: str
    png: Path
    pdf: Path


@contextlib.contextmanager
def open_inputs_for_figures(paths: Sequence[str]):
    """Open each path as a results or run file (by its schema); yield ``(results, run)``."""
    results = run = None
    try:
        for path in paths:
            kind = file_kind(path)
            if kind == "results":
                if results is not None:
                    raise InputError("give at most one results file")
                results = ResultsFile(path, "r")
            else:
                if run is not None:
                    raise InputError("give at most one run file")
                run = RunFile(path)
        yield results, run
    finally:
        for f in (results, run):
            if f is not None:
                f.close()


def render_figures(results, run, out_dir: str | Path, *, only: Sequence[str] | None = None,
                   log: Callable[[str], None] = print) -> list[RenderedFigure]:
    """Draw every registered figure (or those in ``only``); skip those lacking data with a note."""
    made = []
    for name, spec in sorted(all_figures().items()):
        if only and name not in only:
            continue
        try:
            with plt.rc_context(RC):   # titles and legends added after figure() get the paper style too
                parts = spec.draw(results, run)
        except MissingData as why:
            log(f"skipped figure {name}: {why}")
            continue
        except Exception as err:  # a figure must never take the report down with it
            log(f"skipped figure {name}: could not draw it from the stored data ({type(err).__name__}: {err})")
            continue
        for suffix, fig in parts:
            stem = f"{name}_{suffix}" if suffix else name
            pdf, png = save(fig, out_dir, stem)
            made.append(RenderedFigure(stem, spec.caption, png, pdf))
    return made
