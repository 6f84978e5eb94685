"""What an analysis hands the driver: records to store and items to compute (no I/O here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Record:
    """What one item stores: arrays (datasets) and attributes (scalars, strings, JSON)."""

    arrays: dict
    attrs: dict = field(default_factory=dict)
    summary: str = ""   # one line for the log when the item is done (e.g. the top eigenvalues)


@dataclass(frozen=True)
class Item:
    """One unit of work: ``compute()`` returns the :class:`Record` stored under ``key``."""

    key: str
    compute: Callable[[], Record]
    label: str = ""
