"""Small pieces the docks share: layer lists in combo boxes, and telling clicks from pans."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
from qtpy.QtWidgets import QComboBox

__all__ = ["refill_choices", "layer_named", "follow_click"]


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


def follow_click(event: Any, *, tolerance: float = 2.0) -> Generator[None, None, bool]:
    """Follow a mouse press to its release, inside a napari mouse-drag callback.

    Use as ``clicked = yield from follow_click(event)``: True when the pointer moved by
    at most ``tolerance`` (world units), i.e. a click rather than a pan.
    """
    start = np.asarray(event.position, dtype=float)
    dragged = False
    yield
    while event.type == "mouse_move":
        dragged = (
            dragged or np.linalg.norm(np.asarray(event.position, dtype=float) - start) > tolerance
        )
        yield
    return not dragged
