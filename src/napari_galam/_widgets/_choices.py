"""Combo boxes that list layers: refill them as layers come and go, keeping the choice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qtpy.QtWidgets import QComboBox

__all__ = ["refill_choices", "layer_named"]


def refill_choices(box: QComboBox, names: Sequence[str], *, none_item: str | None = None) -> None:
    """Replace the items of ``box`` by ``names`` (after ``none_item`` when given).

    The current choice stays when it is still offered; no signal fires while the list
    is rebuilt, so a dock does not re-run on every layer event.
    """
    current = box.currentText()
    items = ([none_item] if none_item is not None else []) + list(names)
    box.blockSignals(True)
    box.clear()
    box.addItems(items)
    if current in items:
        box.setCurrentText(current)
    box.blockSignals(False)


def layer_named(viewer: Any, name: str) -> Any | None:
    """The layer called ``name`` in ``viewer``, or None (also for an empty name)."""
    return viewer.layers[name] if name and name in viewer.layers else None
