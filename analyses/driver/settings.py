"""The one check that keeps a results file consistent: no mixing of results of other settings.

Every item stores the settings its numbers depend on (attribute ``settings``; items written
before this attribute existed are read through their ``config``). Before computing, a
command states, for each key it would extend or compare with, the settings it asks for;
a complete item whose stored value differs in any of those names is refused, naming each
difference, before anything expensive runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from landscape.errors import ConfigMismatchError


def normal(value):
    """JSON-normal form (tuples → lists, numpy scalars → numbers), so stored and asked compare equal."""
    return json.loads(json.dumps(value, default=_plain))


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value)


def stored_settings(results, key: str) -> dict:
    """The settings stored with the complete item ``key`` (its ``config`` for older items)."""
    attrs = results.read_item(key)[1]
    return dict(attrs.get("settings") or attrs.get("config") or {})


def differences(stored: dict, wanted: dict) -> dict:
    """``{name: (stored, asked)}`` for the names of ``wanted`` whose values differ."""
    return {n: (stored.get(n), v) for n, v in normal(wanted).items() if normal(stored.get(n)) != v}


def check_settings(results, wanted: Mapping[str, dict], *, remedy: str = "--recompute to replace them") -> None:
    """Refuse complete items (key → settings asked) stored with other settings.

    ``remedy`` names the command's own way to replace them (in the message).

    Raises:
        ConfigMismatchError: naming the item and each differing setting, stored and asked.
    """
    for key, settings in wanted.items():
        if not results.is_complete(key):
            continue
        diff = differences(stored_settings(results, key), settings)
        if diff:
            shown = ", ".join(f"{n}: stored {a!r}, asked {b!r}" for n, (a, b) in diff.items())
            raise ConfigMismatchError(
                f"{results.path} already holds {key} computed with other options ({shown}). Mixing results "
                f"of other settings in one file is refused: use the same options, another --out, or {remedy}")
