"""One paper style for every figure.

Serif fonts at journal sizes, widths for a single (3.25 in) and a double (6.75 in)
column, and the Okabe–Ito colour-blind-safe palette (Okabe & Ito 2008). Figures are
saved as vector PDF and as PNG (for the HTML report).

No backend is forced here: in Jupyter the figure functions' Figures show inline; the command
line (``analyses.cli``) selects the headless Agg backend unless ``MPLBACKEND`` says otherwise,
and matplotlib itself falls back to Agg where no display exists.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

SINGLE_COLUMN_IN = 3.25
DOUBLE_COLUMN_IN = 6.75
GOLDEN = 0.618

# Okabe–Ito: distinguishable under the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
SEQUENTIAL_CMAP = "viridis"     # perceptually uniform, colour-blind safe
DIVERGING_CMAP = "RdBu_r"

RC = {
    "font.family": "serif",
    "font.serif": ["DejaVu Serif", "Times New Roman", "Times"],
    "mathtext.fontset": "dejavuserif",
    "font.size": 8, "axes.labelsize": 8, "axes.titlesize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "axes.spines.top": False, "axes.spines.right": False,
    "axes.linewidth": 0.6, "lines.linewidth": 1.2, "lines.markersize": 3,
    "legend.frameon": False, "savefig.bbox": "tight", "savefig.pad_inches": 0.02,
    "figure.dpi": 100, "savefig.dpi": 200, "pdf.fonttype": 42,
}


def styled(draw):
    """Run a drawing function inside the paper style, so titles and legends made after
    :func:`figure` get the paper sizes too."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            return draw(*args, **kwargs)
    return wrapper


def figure(width: str = "single", aspect: float = GOLDEN, ncols: int = 1, nrows: int = 1, **kw):
    """A new figure in the paper style; ``width`` is ``"single"`` or ``"double"`` column.

    Returns:
        ``(fig, axes)`` as from :func:`matplotlib.pyplot.subplots`.
    """
    w = SINGLE_COLUMN_IN if width == "single" else DOUBLE_COLUMN_IN
    with plt.rc_context(RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(w, w * aspect), constrained_layout=True, **kw)
    return fig, axes


def save(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``name.pdf`` and ``name.png`` into ``out_dir``; close the figure; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.pdf", out_dir / f"{name}.png"]
    with plt.rc_context(RC):
        for path in paths:
            fig.savefig(path)
    plt.close(fig)
    return paths
