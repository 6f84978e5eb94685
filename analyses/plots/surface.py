"""Loss surfaces: 1-D curves (loss and accuracy) and 2-D contours with the projected trajectory.

Reads ``surface/step_XXXXXXXX/<name>`` (``landscape surface``): ``xs``, ``loss``, ``acc``
and, for 2-D surfaces, ``ys`` and optionally ``trajectory_coords`` / ``trajectory_steps``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import FormatStrFormatter

from analyses.plots import MissingData, by_step, register
from analyses.plots.style import PALETTE, SEQUENTIAL_CMAP, figure, styled

NUM_LEVELS = 25  # contour levels, spaced in log(loss) when every loss is positive


def _surfaces(results, dims: int) -> list[tuple[int, str, dict]]:
    found = [(step, name, a) for step, q in sorted(by_step(results, "surface").items())
             for name, a in sorted(q.items()) if ("ys" in a) == (dims == 2)]
    if not found:
        raise MissingData(f"no {dims}-D surface stored")
    return found


def fitted_curvature(xs: np.ndarray, loss: np.ndarray) -> float:
    """d²L/dx² of the least-squares quadratic through the curve (≈ λ along a unit eigenvector)."""
    finite = np.isfinite(loss)
    return float(2 * np.polyfit(xs[finite], loss[finite], 2)[0]) if finite.sum() >= 3 else float("nan")


def _curve(ax, a, title):
    xs, loss = np.asarray(a["xs"]), np.asarray(a["loss"])[0]
    ax.plot(xs, loss, color=PALETTE[0], label="loss")
    ax.set_xlabel(str(a.get("x_label", "x (step along the direction)")))
    ax.set_ylabel("loss", color=PALETTE[0])
    if np.isfinite(np.asarray(a["acc"])).any():
        twin = ax.twinx()
        twin.plot(xs, np.asarray(a["acc"])[0], color=PALETTE[1], ls="--")
        twin.set_ylabel("accuracy", color=PALETTE[1])
        twin.spines["right"].set_visible(True)
    if len(xs) >= 3:
        title += f"; fitted curvature {fitted_curvature(xs, loss):.3g}"
    ax.set_title(title)


@register("surface_1d", section="surfaces", title="Loss along a line",
          caption="Loss (solid) and accuracy (dashed) along one direction through θ, one panel per stored 1-D "
          "surface; the title gives the direction and the curvature of the least-squares quadratic (for a "
          "unit eigenvector it estimates the eigenvalue). Look for: the width of the basin and whether "
          "accuracy drops before the loss rises.")
@styled
def surface_1d(results, run):
    out = []
    for step, name, a in _surfaces(results, 1):
        fig, ax = figure("single")
        _curve(ax, a, f"{name}, step {step}")
        out.append((f"{name}_step{step}", fig))
    return out


def _levels(loss: np.ndarray) -> np.ndarray:
    finite = loss[np.isfinite(loss)]
    lo, hi = finite.min(), finite.max()
    if lo > 0 and hi > lo:
        return np.geomspace(lo, hi, NUM_LEVELS)
    return np.linspace(lo, hi if hi > lo else lo + 1, NUM_LEVELS)


def _trajectory(ax, a):
    c = np.asarray(a["trajectory_coords"])
    ax.plot(c[:, 0], c[:, 1], "-", color="white", lw=1.6)
    ax.plot(c[:, 0], c[:, 1], ".-", color=PALETTE[1], lw=0.9, ms=3, label="trajectory")
    ax.plot(c[-1, 0], c[-1, 1], "*", color=PALETTE[1], ms=7)
    ax.legend(loc="upper right")


@register("surface_2d", section="surfaces", title="Loss surface with the trajectory",
          caption="Loss contours on the plane θ + x d₁ + y d₂ (levels spaced in log loss), with the saved "
          "training trajectory projected onto the plane by least squares (Li et al. 2018); the star marks the "
          "last snapshot, the cross θ. Look for: whether training runs down a valley or across contours, and "
          "how wide the final basin is; a 2-D slice can hide the directions that matter, so read it with the "
          "eigendirection section.")
@styled
def surface_2d(results, run):
    out = []
    for step, name, a in _surfaces(results, 2):
        loss = np.asarray(a["loss"])
        fig, ax = figure("single", aspect=0.85)
        cs = ax.contourf(a["xs"], a["ys"], loss, levels=_levels(loss), cmap=SEQUENTIAL_CMAP,
                         norm=_norm(loss))
        ax.contour(a["xs"], a["ys"], loss, levels=_levels(loss)[::3], colors="black", linewidths=0.3)
        bar = fig.colorbar(cs, ax=ax, label="loss")
        bar.set_ticks(round_ticks(float(np.nanmin(loss)), float(np.nanmax(loss)), log=_norm(loss) is not None))
        bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        bar.ax.minorticks_off()
        if "trajectory_coords" in a:
            _trajectory(ax, a)
        ax.plot(0, 0, "+", color="black")
        ax.set_xlabel(str(a.get("x_label", "x")))
        ax.set_ylabel(str(a.get("y_label", "y")))
        ax.set_title(f"{name}, step {step}")
        out.append((f"{name}_step{step}", fig))
    return out


def round_ticks(lo: float, hi: float, *, log: bool, target: int = 5) -> np.ndarray:
    """Colour-bar ticks at round values (1, 2, 5 × 10ⁿ on a log scale; a 1-2-5 step on a linear one)
    inside [lo, hi] — the contour levels themselves are unround (geometric)."""
    if log:
        decades = np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
        ticks = _inside(np.array([m * 10.0 ** d for d in decades for m in (1, 2, 5)]), lo, hi)
        if len(ticks) > 2 * target:                     # many decades: keep the powers of ten
            ticks = ticks[np.isclose(np.log10(ticks) % 1, 0)]
        if len(ticks) >= 3:
            return ticks
    # a narrow range: the coarsest 1-2-5 step that still gives three ticks (few digits, evenly spaced)
    span = hi - lo if hi > lo else abs(hi) or 1.0
    for step in sorted((m * 10.0 ** e for e in range(int(np.floor(np.log10(span))) - 2, int(np.floor(np.log10(span))) + 1)
                        for m in (1, 2, 5)), reverse=True):
        ticks = np.round(_inside(np.arange(np.ceil(lo / step), np.floor(hi / step) + 1) * step, lo, hi), 12)
        if len(ticks) >= 3:
            return ticks
    return np.array([lo, hi])


def _inside(ticks: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ticks[(ticks >= lo * (1 - 1e-12)) & (ticks <= hi * (1 + 1e-12))]


def _norm(loss: np.ndarray):
    from matplotlib.colors import LogNorm

    finite = loss[np.isfinite(loss)]
    return LogNorm(finite.min(), finite.max()) if finite.min() > 0 and finite.max() > finite.min() else None
