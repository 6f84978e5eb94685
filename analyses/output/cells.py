"""Table cells that keep the exact stored number behind the rounded text (``data-value`` on the page)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cell:
    """Text shown, the exact number behind it (or None), and an optional second line (e.g. a residual)."""

    text: str
    value: float | None = None
    note: str = ""
    note_value: float | None = None


@dataclass
class Table:
    """A titled table: header, rows of cells, the number of label columns (left-aligned) and a note."""

    id: str
    title: str
    header: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    labels: int = 1
    note: str = ""


def num(x, digits: int = 4) -> Cell:
    """A numeric cell: ``digits`` significant digits shown, the exact value kept."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return Cell("—")
    v = float(x)
    return Cell(f"{v:.{digits}g}", v)


def text(s) -> Cell:
    """A text cell."""
    return Cell(str(s))
