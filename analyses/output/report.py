"""A self-contained HTML report: provenance, training summary, eigenvalue table, every figure.

Figures are embedded as base64 PNG, styles are inline: the page needs no network
and no other file, so it can be mailed to a colleague.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from analyses.output.render import RenderedFigure, render_figures
from landscape.errors import OutputExistsError

REPORT_NAME = "report.html"

CSS = """
body{font-family:Georgia,'DejaVu Serif',serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} figure{margin:1.5em 0} figure img{max-width:100%}
figcaption{font-size:.9em;color:#444} pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
.note{color:#8a5a00;font-size:.85em}
"""


def _table(header: list[str], rows: list[list], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(str(h))}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{html.escape(str(c))}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(x, digits: int = 4) -> str:
    if isinstance(x, (float, np.floating)):
        return f"{x:.{digits}g}"
    return str(x)


def _provenance_section(run) -> str:
    if run is None:
        return "<p class=note>No run file given.</p>"
    info = run.info()
    rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in info.items()
            if k not in ("snapshots", "param_sha256")]
    prov = getattr(run, "provenance", {}) or {}
    return _table(["field", "value"], rows, left=2) + \
        f"<details><summary>configuration and provenance (JSON)</summary><pre>{html.escape(json.dumps({'config': run.config, 'provenance': prov}, indent=2, default=str))}</pre></details>"


def _eigen_rows(results) -> list[list]:
    rows = []
    for step, key in results.items("hessian", "eigen"):
        arrays = results.read_item(key)[0]
        lam, res = arrays["eigenvalues"], arrays.get("residuals", np.full_like(arrays["eigenvalues"], np.nan))
        for i, (l, r) in enumerate(zip(lam, res)):
            rows.append([step, i + 1, _fmt(float(l), 6), _fmt(float(r), 2), _fmt(float(r) / max(abs(float(lam.max())), 1e-300), 2)])
    return rows


def _eigen_section(results) -> str:
    rows = _eigen_rows(results) if results is not None else []
    if not rows:
        return "<p class=note>No eigenpairs in the results file.</p>"
    return ("<p>Certified eigenpairs: each residual is ‖Hv − λv‖ recomputed with one more HVP.</p>"
            + _table(["step", "i", "λᵢ", "‖Hvᵢ − λᵢvᵢ‖", "residual / |λ_max|"], rows, left=0))


def _figure_html(fig: RenderedFigure) -> str:
    data = base64.b64encode(fig.png.read_bytes()).decode()
    return (f'<figure id="{html.escape(fig.name)}"><img alt="{html.escape(fig.name)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{html.escape(fig.name)}.</b> {html.escape(fig.caption)}</figcaption></figure>")


def build_report(results, run, out_dir: str | Path, *, overwrite: bool = False,
                 title: str = "Landscape report", log: Callable[[str], None] = print) -> Path:
    """Render the figures into ``out_dir/figures`` and write ``out_dir/report.html``.

    Raises:
        OutputExistsError: ``out_dir`` already holds a report and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    target = out_dir / REPORT_NAME
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} already exists; pass --overwrite to replace it or choose another --out")
    notes: list[str] = []
    figures = render_figures(results, run, out_dir / "figures", log=lambda m: (notes.append(m), log(m)))
    parts = [f"<h1>{html.escape(title)}</h1>",
             "<h2>Run and provenance</h2>", _provenance_section(run),
             "<h2>Hessian eigenvalues per step</h2>", _eigen_section(results),
             "<h2>Figures</h2>", *(_figure_html(f) for f in figures)]
    if notes:
        parts += ["<h2>Figures not drawn</h2><ul>", *(f"<li class=note>{html.escape(n)}</li>" for n in notes), "</ul>"]
    page = f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target
