"""A small base class for matplotlib docks that follow the napari theme.

Subclasses only draw: they implement :meth:`MplDock.draw` on ``self.figure`` using the
pure functions of :mod:`napari_galam.plots`, and call :meth:`MplDock.redraw` when their
input changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
from matplotlib.figure import Figure
from qtpy.QtWidgets import QVBoxLayout, QWidget

if TYPE_CHECKING:
    import napari

__all__ = ["MplDock"]


class MplDock(QWidget):
    """A QWidget holding a matplotlib canvas and toolbar styled like the viewer."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.figure = Figure(figsize=(5, 3), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(220)
        self.toolbar = NavigationToolbar2QT(self.canvas, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas)
        self._layout = layout
        viewer.events.theme.connect(self._on_theme)

    # -- theme ---------------------------------------------------------------------
    def theme_colors(self) -> dict[str, str]:
        """Background, foreground (axes) and text colours of the viewer's theme."""
        from napari.utils.theme import get_theme

        theme = get_theme(self.viewer.theme)
        return {
            "background": theme.background.as_hex(),
            "axes": theme.foreground.as_hex(),
            "text": theme.text.as_hex(),
        }

    def style_axes(self, ax: Any) -> None:
        """Colour one Axes (faces, spines, ticks, labels) after the theme."""
        colors = self.theme_colors()
        ax.set_facecolor(colors["background"])
        for spine in ax.spines.values():
            spine.set_color(colors["text"])
        ax.tick_params(colors=colors["text"], which="both")
        ax.xaxis.label.set_color(colors["text"])
        ax.yaxis.label.set_color(colors["text"])
        ax.title.set_color(colors["text"])
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_color(colors["text"])

    def _on_theme(self, event: Any = None) -> None:
        self.redraw()

    # -- drawing ---------------------------------------------------------------------
    def draw(self) -> None:
        """Draw the current content on ``self.figure`` (subclasses implement)."""
        raise NotImplementedError

    def redraw(self) -> None:
        """Clear the figure, draw, apply the theme and refresh the canvas."""
        self.figure.clear()
        self.figure.set_facecolor(self.theme_colors()["background"])
        self.draw()
        for ax in self.figure.axes:
            self.style_axes(ax)
        self.canvas.draw_idle()
