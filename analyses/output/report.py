"""A self-contained HTML report of one or several runs, in the order of the study.

Sections: the runs (a comparison table and each run's provenance), then training → Hessian
spectrum → eigendirections → sharpness → per-example projections → loss surfaces (and any section a
newer plot module registers), each with its tables and figures. A figure drawn for several runs
shows them side by side under one heading and one caption; comparison figures (scope "runs") come
first in their section. A table of contents links every section, table and figure; a click on a
figure enlarges it. Figures are embedded as base64 PNG and styles and script are inline: the page
needs no network and no other file, so it can be mailed to a colleague.
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from analyses.output import gap, html as H, summary
from analyses.output.cells import Table
from analyses.output.inputs import describe, slug
from analyses.output.render import Rendering, render_runs
from analyses.plots import RunView, all_figures, get_section
from landscape import __version__
from landscape.errors import OutputExistsError

REPORT_NAME = "report.html"
RUNS = ("sec-runs", "Runs", "What was trained, where each run ended, and how sharp it is there.")


@dataclass
class Block:
    """One section of the page: id, heading, lead, tables, figure groups (html, anchor, title), notes."""

    id: str
    title: str
    lead: str = ""
    tables: list[Table] = field(default_factory=list)
    groups: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    def html(self, number: int, extra: str = "") -> str:
        notes = (f'<details class="notes"><summary>Not drawn here ({len(self.notes)})</summary><ul>'
                 + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul></details>") if self.notes else ""
        lead = f'<p class="lead">{html.escape(self.lead)}</p>' if self.lead else ""
        absent = "".join(f'<p class="absent">Nothing here for {html.escape(a)}</p>' for a in self.absent)
        return (f'<section id="{self.id}"><h2>{number} {html.escape(self.title)}</h2>{lead}{absent}'
                + "".join(H.table(t) for t in self.tables) + extra + "".join(g for g, _, _ in self.groups) + notes
                + "</section>")

    def toc(self) -> tuple[str, str, list[tuple[str, str]]]:
        return self.id, self.title, [(t.id, t.title) for t in self.tables] + [(a, title) for _, a, title in self.groups]


def _tables(sid: str, views: Sequence[RunView]) -> list[Table]:
    each = {"spectrum": (summary.eigenvalues, summary.traces), "eigendirections": (summary.line_search_fits,),
            "sharpness": (gap.study,)}.get(sid, ())
    found = [gap.sharpness_against_gap(list(views))] if sid == "sharpness" else []
    found += [make(v) for v in views for make in each]
    return [t for t in found if t is not None]


def _groups(names: list[str], rendering: Rendering, labels: list[str | None], block: Block,
            quiet: set[str] = frozenset()) -> None:
    """Figure groups of one section: each figure's panels, one per run (and part), side by side.

    A run with no figure at all in the section gets one line saying so (not a row of empty panels;
    none for the ``quiet`` labels: studies, which never have per-run figures); a run missing one figure
    that others have gets a panel saying why. Every skip is listed in the section's collapsed notes.
    """
    present = {f.run for f in rendering.figures if f.spec.name in names}
    for label in labels:
        reasons = [s.reason for s in rendering.skipped if s.spec.name in names and s.run == label]
        if label is not None and label not in present and label not in quiet and reasons:
            block.absent.append(f"{label}: {reasons[0]}")
    block.notes += [_note(s) for s in rendering.skipped if s.spec.name in names]
    for name in names:
        drawn = [f for f in rendering.figures if f.spec.name == name]
        if drawn:
            skipped = {s.run: s.reason for s in rendering.skipped if s.spec.name == name}
            panels = [p for label in labels if label is None or label in present
                      for p in _panels(drawn, label, skipped.get(label))]
            spec, anchor = drawn[0].spec, f"fig-{name}"
            block.groups.append((H.figure_group(anchor, spec.heading, spec.caption, panels), anchor, spec.heading))


def _panels(drawn: list, label: str | None, reason: str | None) -> list[str]:
    mine = [f for f in drawn if f.run == label]
    if not mine:
        return [H.figure(f"fig-{drawn[0].spec.name}-{slug(label)}-missing", None, label, "", reason)] if reason else []
    who = label if label is not None else "all runs"
    names = [f"{who}: {f.part.replace('_', ', ')}" if f.part and len(mine) > 1 else who for f in mine]
    return [H.figure(f"fig-{slug(f.name)}-{slug(label or 'all')}", f.png, n, f"{f.spec.heading} — {n}")
            for f, n in zip(mine, names)]


def _note(s) -> str:
    return f"{s.spec.heading}{f' ({s.run})' if s.run else ''}: {s.reason}"


def blocks(views: Sequence[RunView], rendering: Rendering) -> list[Block]:
    """The study's sections that hold a table or a figure, in order; a last block lists what was not drawn."""
    tried = {f.spec.name for f in rendering.figures} | {s.spec.name for s in rendering.skipped}
    by_section: dict[str, list[str]] = {}
    for name, spec in all_figures().items():       # in the report's order
        if name in tried:
            by_section.setdefault(spec.section, []).append(name)
    labels = [None, *(v.label for v in views)]       # None: the comparison figures, first
    studies = {v.label for v in views if v.run is None and v.results is not None and not v.results.run_id}
    out, empty = [], Block("sec-not-drawn", "Not drawn", "Figures whose data the files do not hold.")
    for sid, names in by_section.items():
        sec = get_section(sid)
        block = Block(f"sec-{slug(sid)}", sec.title, sec.lead, _tables(sid, views))
        _groups(names, rendering, labels, block, studies)
        if block.tables or block.groups:
            out.append(block)
        else:
            empty.notes += block.notes
    return out + ([empty] if empty.notes else [])


def _runs_block(views: Sequence[RunView]) -> tuple[Block, str]:
    block = Block(*RUNS, tables=[summary.overview(list(views))])
    details = []
    for v in views:
        files = ", ".join(str(f.path) for f in (v.run, v.results) if f is not None)
        info = v.run.info() if v.run is not None else {}
        info.pop("param_sha256", None)
        meta = {"files": files, "run": info, "config": getattr(v.run, "config", None),
                "provenance": getattr(v.run, "provenance", None), "results_run_id": getattr(v.results, "run_id", None)}
        details.append(f"<details><summary>{html.escape(v.label)}: files, configuration and provenance</summary>"
                       f"<pre>{html.escape(json.dumps(meta, indent=2, default=str))}</pre></details>")
    return block, "".join(details)


def _header(title: str, views: Sequence[RunView]) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    items = "".join(f"<li><b>{html.escape(v.label)}</b> — "
                    f"{html.escape(describe(v.run) if v.run is not None else 'no run file (results only)')}"
                    + ("" if v.results is not None else " <i>(no results file: training only)</i>") + "</li>"
                    for v in views)
    n = len(views)
    return (f"<header><h1>{html.escape(title)}</h1><p class=\"meta\">{n} run{'s' if n != 1 else ''} · written "
            f"{when} by landscape {__version__} · click a figure to enlarge it</p>"
            f"<ul class=\"runs\">{items}</ul></header>")


def build_report(views: Sequence[RunView], out_dir: str | Path, *, overwrite: bool = False,
                 title: str = "Landscape report", log: Callable[[str], None] = print) -> Path:
    """Render the figures into ``out_dir/figures`` and write ``out_dir/report.html``.

    Args:
        views: the runs (label, results, run), e.g. from :func:`analyses.output.inputs.open_runs`.

    Raises:
        OutputExistsError: ``out_dir`` already holds a report and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    target = out_dir / REPORT_NAME
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} already exists; pass --overwrite to replace it or choose another --out")
    rendering = render_runs(views, out_dir / "figures", log=lambda message: None)
    log(f"{len(rendering.figures)} figure(s) drawn into {out_dir / 'figures'}; {len(rendering.skipped)} not drawn "
        "for lack of data (each listed in the report with the command that makes its data)")
    runs, provenance = _runs_block(views)
    parts = [runs, *blocks(views, rendering)]
    body = _header(title, views) + "".join(b.html(i, provenance if b is runs else "") for i, b in enumerate(parts, 1))
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(H.page(title, H.toc([b.toc() for b in parts]), body), encoding="utf-8")
    tmp.replace(target)
    return target
