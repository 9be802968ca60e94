"""The "Spectrum" dock: plots the SDSS spectra open in the viewer and clicked spaxels.

A spectrum opens as an empty points layer whose metadata carries the spectrum under
:data:`SPECTRUM_KEY` (napari has no spectrum layer). The dock lists those layers,
follows the layer selection and plots the chosen one with
:func:`napari_galam.plots.plot_spectrum`. Clicking a spaxel of a cube layer (one whose
metadata carries :data:`CUBE_KEY`) reads that spaxel's spectrum from disk, in the dock's
job thread (a gzipped cube is decompressed up to the last plane), and plots it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel

from napari_galam._layerdata import CUBE_KEY, NARROWBAND_KEY, SPECTRUM_KEY
from napari_galam._widgets._jobs import JobRunner
from napari_galam._widgets._mpl import MplDock
from napari_galam.errors import GalamInputError
from napari_galam.io.spectra import Spectrum1D
from napari_galam.plots import plot_spectrum

if TYPE_CHECKING:
    import napari

__all__ = [
    "SPECTRUM_KEY",
    "SpectrumDock",
    "check_spaxel",
    "spectrum_layers",
    "spaxel_spectrum_of",
]


def check_spaxel(layer: Any, y: int, x: int) -> None:
    """Raise GalamInputError when (y, x) lies outside the cube or stack of ``layer``.

    Reads only the shape, so a dock can refuse a bad click before any disk read.
    """
    if NARROWBAND_KEY in layer.metadata:
        _, ny, nx = layer.metadata[NARROWBAND_KEY].data.shape
        if not (0 <= y < ny and 0 <= x < nx):
            raise GalamInputError(f"pixel (y={y}, x={x}) is outside '{layer.name}' ({ny}x{nx}).")
        return
    _, ny, nx = layer.metadata[CUBE_KEY].shape
    if not (0 <= y < ny and 0 <= x < nx):
        raise GalamInputError(
            f"spaxel (y={y}, x={x}) is outside cube '{layer.name}' ({ny}x{nx})."
        )


def spaxel_spectrum_of(layer: Any, y: int, x: int) -> Spectrum1D:
    """The spectrum (IFU cube) or SED (narrow-band stack) of spaxel (y, x) of a layer."""
    check_spaxel(layer, y, x)
    if NARROWBAND_KEY in layer.metadata:
        stack = layer.metadata[NARROWBAND_KEY]
        wave = np.asarray(stack.wavelength, dtype=float)
        flux = np.asarray(stack.data[:, y, x], dtype=float)
        variance = None if stack.variance is None else np.asarray(stack.variance[:, y, x], float)
        name, unit = f"{layer.name} SED (y={y}, x={x})", stack.unit
    else:
        from napari_galam.io.cubes import spaxel_spectrum

        cube = layer.metadata[CUBE_KEY]
        wave, flux, variance = spaxel_spectrum(cube, y, x)
        name, unit = f"{layer.name} spaxel (y={y}, x={x})", cube.unit
    if variance is None:
        ivar = np.where(np.isfinite(flux), 1.0, 0.0)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            ivar = np.where(np.isfinite(variance) & (variance > 0), 1.0 / variance, 0.0)
    return Spectrum1D(
        wave=np.asarray(wave, float),
        flux=np.asarray(flux, np.float32),
        ivar=np.asarray(ivar, np.float32),
        name=name,
        flux_unit=str(unit) if unit is not None else "",
    )


def spectrum_layers(viewer: napari.viewer.Viewer) -> list[Any]:
    """The layers of ``viewer`` that carry a spectrum, in layer-list order."""
    return [layer for layer in viewer.layers if SPECTRUM_KEY in layer.metadata]


class SpectrumDock(MplDock):
    """Plot flux against wavelength for a spectrum layer, titled with z and S/N.

    Attributes
    ----------
    jobs
        The dock's :class:`~napari_galam._widgets._jobs.JobRunner`: spaxel reads run
        there (a newer click replaces one still waiting).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.chooser = QComboBox()
        self.chooser.setToolTip("Spectrum layer to plot")
        row = QHBoxLayout()
        row.addWidget(QLabel("spectrum:"))
        row.addWidget(self.chooser, 1)
        self._layout.insertLayout(0, row)
        self.jobs = JobRunner("Spectrum", cancellable=False)
        self.jobs.progress.setVisible(False)
        self._layout.insertWidget(1, self.jobs)
        self.spaxel: Spectrum1D | None = None
        self.chooser.currentIndexChanged.connect(lambda _index: self.redraw())
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        viewer.layers.selection.events.active.connect(self._on_active_layer)
        self._on_layers_changed()

    @property
    def current_spectrum(self) -> Any | None:
        """The spectrum object of the chosen entry (None when there is none)."""
        name = self.chooser.currentText()
        if self.spaxel is not None and name == self.spaxel.name:
            return self.spaxel
        if name and name in self.viewer.layers:
            return self.viewer.layers[name].metadata.get(SPECTRUM_KEY)
        return None

    def show_spaxel(self, layer: Any, y: int, x: int) -> bool:
        """Read spaxel (y, x) of cube ``layer`` in a thread, then plot it.

        A click outside the cube is a warning and reads nothing.

        Returns
        -------
        bool
            Whether the read started (:attr:`spaxel` holds the spectrum once it ends).
        """
        try:
            check_spaxel(layer, y, x)
        except GalamInputError as exc:
            self.jobs.report(str(exc), error=False)
            return False
        return self.jobs.start(
            spaxel_spectrum_of,
            layer,
            y,
            x,
            done=self._show_spaxel,
            text=f"reading spaxel (y={y}, x={x}) of '{layer.name}'…",
            if_busy="latest",
        )

    def _show_spaxel(self, spectrum: Spectrum1D) -> None:
        self.spaxel = spectrum
        self._on_layers_changed()
        self.chooser.setCurrentText(spectrum.name)
        self.jobs.status.setText("")

    def _watch_cube(self, layer: Any) -> None:
        has_spaxels = CUBE_KEY in layer.metadata or NARROWBAND_KEY in layer.metadata
        if has_spaxels and self._on_cube_click not in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.append(self._on_cube_click)

    def _on_cube_click(self, layer: Any, event: Any) -> None:
        if event.type != "mouse_press":
            return
        coords = np.round(layer.world_to_data(event.position)).astype(int)
        self.show_spaxel(layer, int(coords[-2]), int(coords[-1]))

    def show_layer(self, layer: Any) -> None:
        """Choose ``layer`` (a spectrum layer) and plot it."""
        index = self.chooser.findText(layer.name)
        if index >= 0:
            self.chooser.setCurrentIndex(index)

    def _on_layers_changed(self, event: Any = None) -> None:
        current = self.chooser.currentText()
        for layer in self.viewer.layers:
            self._watch_cube(layer)
        names = [layer.name for layer in spectrum_layers(self.viewer)]
        if self.spaxel is not None:
            names.append(self.spaxel.name)
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
                "Open an SDSS spec-*.fits file, or click a spaxel of a cube",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color=self.theme_colors()["text"],
            )
            ax.set_xticks([])
            ax.set_yticks([])
            return
        plot_spectrum(ax, spectrum, color="#4fc3f7", text_color=self.theme_colors()["text"])
