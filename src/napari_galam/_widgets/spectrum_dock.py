"""The "Spectrum" dock: plots the SDSS spectra that are open in the viewer.

A spectrum opens as an empty points layer whose metadata carries the spectrum under
:data:`SPECTRUM_KEY` (napari has no spectrum layer). The dock lists those layers,
follows the layer selection and plots the chosen one with
:func:`napari_galam.plots.plot_spectrum`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel

from napari_galam._widgets._mpl import MplDock
from napari_galam.plots import plot_spectrum

if TYPE_CHECKING:
    import napari

__all__ = ["SPECTRUM_KEY", "SpectrumDock", "spectrum_layers"]

#: Layer-metadata key under which a spectrum object is stored.
SPECTRUM_KEY = "galam_spectrum"


def spectrum_layers(viewer: napari.viewer.Viewer) -> list[Any]:
    """The layers of ``viewer`` that carry a spectrum, in layer-list order."""
    return [layer for layer in viewer.layers if SPECTRUM_KEY in layer.metadata]


class SpectrumDock(MplDock):
    """Plot flux against wavelength for a spectrum layer, titled with z and S/N."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.chooser = QComboBox()
        self.chooser.setToolTip("Spectrum layer to plot")
        row = QHBoxLayout()
        row.addWidget(QLabel("spectrum:"))
        row.addWidget(self.chooser, 1)
        self._layout.insertLayout(0, row)
        self.chooser.currentIndexChanged.connect(lambda _index: self.redraw())
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        viewer.layers.selection.events.active.connect(self._on_active_layer)
        self._on_layers_changed()

    @property
    def current_spectrum(self) -> Any | None:
        """The spectrum object of the chosen layer (None when there is none)."""
        name = self.chooser.currentText()
        if name and name in self.viewer.layers:
            return self.viewer.layers[name].metadata.get(SPECTRUM_KEY)
        return None

    def show_layer(self, layer: Any) -> None:
        """Choose ``layer`` (a spectrum layer) and plot it."""
        index = self.chooser.findText(layer.name)
        if index >= 0:
            self.chooser.setCurrentIndex(index)

    def _on_layers_changed(self, event: Any = None) -> None:
        current = self.chooser.currentText()
        names = [layer.name for layer in spectrum_layers(self.viewer)]
        self.chooser.blockSignals(True)
        self.chooser.clear()
        self.chooser.addItems(names)
        if event is not None and getattr(event, "type", "") == "inserted":
            new = event.value
            if SPECTRUM_KEY in new.metadata:
                current = new.name
        if current in names:
            self.chooser.setCurrentIndex(names.index(current))
        self.chooser.blockSignals(False)
        self.redraw()

    def _on_active_layer(self, event: Any = None) -> None:
        layer = self.viewer.layers.selection.active
        if layer is not None and SPECTRUM_KEY in layer.metadata:
            self.show_layer(layer)

    def draw(self) -> None:
        """Plot the chosen spectrum, or a hint when none is open."""
        ax = self.figure.add_subplot(111)
        spectrum = self.current_spectrum
        if spectrum is None:
            ax.text(
                0.5,
                0.5,
                "Open an SDSS spec-*.fits file to plot it here",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color=self.theme_colors()["text"],
            )
            ax.set_xticks([])
            ax.set_yticks([])
            return
        plot_spectrum(ax, spectrum, color="#4fc3f7", text_color=self.theme_colors()["text"])
