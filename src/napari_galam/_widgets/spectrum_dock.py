"""The "Spectrum" dock: plots the SDSS spectra open in the viewer and clicked spaxels.

A spectrum opens as an empty points layer whose metadata carries the spectrum under
:data:`SPECTRUM_KEY` (napari has no spectrum layer). The dock lists those layers,
follows the layer selection and plots the chosen one with
:func:`napari_galam.plots.plot_spectrum`. Clicking a spaxel of a cube layer (one whose
metadata carries :data:`CUBE_KEY`) reads that spaxel's spectrum from disk, in the dock's
job thread (a gzipped cube is decompressed up to the last plane), and plots it.

"Fit with pPXF" fits the shown spectrum in the job thread with
:func:`napari_galam.pipeline.fit.fit_spectrum` (the fit ``galam fit`` makes) and shows
the best fit over the data, the residuals and the masked pixels
(:func:`napari_galam.plots.ppxf.plot_ppxf_fit`), and a table of pPXF's log age and
[M/H] beside the network's: the spectra-only model in the shared model worker for an
SDSS spectrum, the Spaxel maps layer of the cube for a spaxel, each +- the SD of the
model on unseen simulated galaxies (its model card).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
)

from napari_galam._layerdata import CUBE_KEY, MAPS_KEY, NARROWBAND_KEY, SPECTRUM_KEY
from napari_galam._widgets._jobs import JobRunner
from napari_galam._widgets._model_worker import shared_worker
from napari_galam._widgets._mpl import MplDock
from napari_galam.errors import GalamInputError
from napari_galam.io.spectra import SdssSpectrum, Spectrum1D
from napari_galam.pipeline.fit import FitOptions, cube_fwhm, cube_redshift, fit_spectrum
from napari_galam.plots import plot_spectrum
from napari_galam.plots.ppxf import plot_ppxf_fit

if TYPE_CHECKING:
    import napari

__all__ = [
    "SPECTRUM_KEY",
    "SpectrumDock",
    "PpxfComparison",
    "check_spaxel",
    "compare_with_ppxf",
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


@dataclass(frozen=True, eq=False)
class PpxfComparison:
    """A pPXF fit of a spectrum beside the network's answer.

    Attributes
    ----------
    name
        The spectrum's name (the dock's entry).
    fit
        The ``PopulationFit``.
    network
        ``{"log_age", "mh", "log_age_sd", "mh_sd", "model"}`` (spectra: the calibrated
        1-sigma errors and ``ood_reason``) or None when no network
        answer exists (a spaxel of a cube not mapped yet).
    """

    name: str
    fit: Any
    network: dict[str, Any] | None


def _model_sd(model: str) -> tuple[float, float]:
    """The SD of a shipped model's log age and [M/H] on unseen simulated galaxies (card)."""
    from napari_galam.models.registry import read_model_card

    try:
        metrics = read_model_card(model).get("metrics", {})
        return float(metrics["log_age"]["sd"]), float(metrics["mh"]["sd"])
    except (GalamInputError, KeyError, TypeError, ValueError, OSError):
        return float("nan"), float("nan")


def _network_for_sdss(spectrum: Any) -> dict[str, Any]:
    """The spectra-only model's answer for an SDSS spectrum (in the shared worker), with
    its calibrated 1-sigma errors and why it is flagged out of distribution ("" if not)."""
    from napari_galam.core.preprocess import model_spectrum
    from napari_galam.models.registry import spectrum_frame

    good = np.asarray(spectrum.ivar) > 0
    inputs = model_spectrum(spectrum.wave[good], spectrum.flux[good],
                            redshift=spectrum.redshift, frame=spectrum_frame())  # fmt: skip
    worker = shared_worker()
    worker.start()
    answer = worker.predict_galaxies(
        spectra=inputs[None], model="spectra-only", redshift=[float(spectrum.redshift)]
    )
    return {"log_age": float(answer.log_age[0]), "mh": float(answer.mh[0]),
            "log_age_sd": float(answer.log_age_err[0]), "mh_sd": float(answer.mh_err[0]),
            "ood_reason": answer.ood_reason[0] if answer.ood[0] else "",
            "model": "spectra-only"}  # fmt: skip


def compare_with_ppxf(
    spectrum: Any,
    options: FitOptions,
    *,
    cube: Any = None,
    maps: Any = None,
    spaxel: tuple[int, int] | None = None,
) -> PpxfComparison:
    """Fit ``spectrum`` with pPXF and get the network's answer for it (job thread).

    An SDSS spectrum is compared with the spectra-only model; a spaxel of ``cube`` with
    the SED model's ``maps`` (a ``SpaxelMaps``) at ``spaxel``, when the cube was mapped.
    """
    if isinstance(spectrum, SdssSpectrum):
        fit = fit_spectrum(spectrum, options)
        return PpxfComparison(spectrum.name, fit, _network_for_sdss(spectrum))
    kwargs = {}
    if cube is not None:
        kwargs = {"redshift": cube_redshift(cube), "fwhm": cube_fwhm(cube),
                  "vacuum": cube.wave_medium == "vacuum"}  # fmt: skip
    fit = fit_spectrum(spectrum, options, **kwargs)
    network = None
    if maps is not None and spaxel is not None:
        sd_age, sd_mh = _model_sd(maps.model)
        network = {"log_age": float(maps.log_age[spaxel]), "mh": float(maps.mh[spaxel]),
                   "log_age_sd": sd_age, "mh_sd": sd_mh, "model": maps.model}  # fmt: skip
    return PpxfComparison(spectrum.name, fit, network)


def _pm(value: float, error: float) -> str:
    if not np.isfinite(value):
        return "—"
    return f"{value:.3f} ± {error:.3f}" if np.isfinite(error) else f"{value:.3f}"


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
        self.fit_button = QPushButton("Fit with pPXF")
        self.fit_button.setToolTip(
            "Full-spectrum fit of the shown spectrum with pPXF and the E-MILES library"
        )
        self.fit_gas = QCheckBox("fit gas lines")
        self.fit_gas.setChecked(True)
        self.bootstrap = QSpinBox()
        self.bootstrap.setRange(0, 200)
        self.bootstrap.setPrefix("bootstrap ")
        fit_row = QHBoxLayout()
        fit_row.addWidget(self.fit_button)
        fit_row.addWidget(self.fit_gas)
        fit_row.addWidget(self.bootstrap)
        self.export_button = QPushButton("Export spectrum…")
        self.export_button.setToolTip(
            "Write the shown spectrum as a FITS table that specutils' Spectrum.read opens"
        )
        self.export_button.clicked.connect(lambda: self.export_spectrum())
        fit_row.addWidget(self.export_button)
        self._layout.insertLayout(1, fit_row)
        self.jobs = JobRunner("Spectrum", cancellable=False)
        self.jobs.progress.setVisible(False)
        self._layout.insertWidget(2, self.jobs)
        self.table = QTableWidget(2, 2)
        self.table.setHorizontalHeaderLabels(["pPXF", "network"])
        self.table.setVerticalHeaderLabels(["log age [yr]", "[M/H] [dex]"])
        self.table.setMaximumHeight(90)
        self.table.setVisible(False)
        self._layout.addWidget(self.table)
        self.comparison: PpxfComparison | None = None
        self._spaxel_source: tuple[Any, int, int] | None = None
        self.fit_button.clicked.connect(self.fit_with_ppxf)
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
        self._spaxel_source = (layer, y, x)
        return self.jobs.start(
            spaxel_spectrum_of,
            layer,
            y,
            x,
            done=self._show_spaxel,
            text=f"reading spaxel (y={y}, x={x}) of '{layer.name}'…",
            if_busy="latest",
        )

    def fit_with_ppxf(self) -> bool:
        """Fit the shown spectrum with pPXF in the job thread; False when nothing started."""
        spectrum = self.current_spectrum
        if spectrum is None:
            self.jobs.report("Spectrum: open a spectrum or click a spaxel first.", error=False)
            return False
        options = FitOptions(gas="fit" if self.fit_gas.isChecked() else "mask",
                             n_bootstrap=self.bootstrap.value())  # fmt: skip
        context: dict[str, Any] = {}
        if spectrum is self.spaxel and self._spaxel_source is not None:
            layer, y, x = self._spaxel_source
            context["cube"] = layer.metadata.get(CUBE_KEY)
            context["maps"] = self._maps_of(layer)
            context["spaxel"] = (y, x)
        return self.jobs.start(
            compare_with_ppxf, spectrum, options, done=self._show_comparison,
            text=f"fitting {spectrum.name} with pPXF…", **context,
        )  # fmt: skip

    def export_spectrum(self, path: str | None = None) -> str | None:
        """Write the shown spectrum as specutils' ``tabular-fits`` (wavelength, flux,
        uncertainty, mask; ``Z`` in the header); asks for a file when ``path`` is None.

        Returns
        -------
        str or None
            The file written, or None when nothing was (no spectrum, no file chosen, an
            error reported in the status line).
        """
        from napari_galam.io.specutils_bridge import write_spectrum

        spectrum = self.current_spectrum
        if spectrum is None:
            self.jobs.report("Spectrum: open a spectrum or click a spaxel first.", error=False)
            return None
        if path is None:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getSaveFileName(
                self, "Export spectrum", f"{spectrum.name}.fits", "FITS table (*.fits)"
            )
            if not path:
                return None
        try:
            written = str(write_spectrum(spectrum, path))
        except (GalamInputError, OSError, ValueError) as exc:
            self.jobs.report(f"Spectrum: could not export to {path}: {exc}")
            return None
        self.jobs.status.setText(f"Exported {spectrum.name} to {written} (specutils tabular-fits)")
        return written

    def _maps_of(self, layer: Any) -> Any:
        """The network maps made of cube ``layer`` by the Spaxel maps dock, if any."""
        name = f"log age {layer.name}"
        if name in self.viewer.layers:
            return self.viewer.layers[name].metadata.get(MAPS_KEY)
        return None

    def _show_comparison(self, comparison: PpxfComparison) -> None:
        self.comparison = comparison
        fit, network = comparison.fit, comparison.network or {}
        cells = [
            (_pm(fit.log_age, fit.log_age_err), _pm(network.get("log_age", np.nan),
                                                     network.get("log_age_sd", np.nan))),
            (_pm(fit.mh, fit.mh_err), _pm(network.get("mh", np.nan), network.get("mh_sd", np.nan))),
        ]  # fmt: skip
        for row, values in enumerate(cells):
            for column, text in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.setHorizontalHeaderLabels(["pPXF", network.get("model", "network")])
        self.table.setVisible(True)
        self.jobs.status.setText(
            f"pPXF: {fit.n_fitted} pixels fitted, σ {fit.sigma:.0f} km/s, χ² {fit.chi2:.2f}"
            + ("" if comparison.network else "; map the cube to compare with the network")
            + (f"; network flagged: {network['ood_reason']}" if network.get("ood_reason") else "")
        )
        self.redraw()

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
        comparison = self.comparison
        shows_fit = comparison is not None and comparison.name == getattr(spectrum, "name", None)
        self.table.setVisible(shows_fit)
        if shows_fit:
            self.figure.delaxes(ax)
            top, bottom = self.figure.subplots(
                2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
            )
            plot_ppxf_fit(top, bottom, comparison.fit, title=comparison.name,
                          text_color=self.theme_colors()["text"])  # fmt: skip
            return
        plot_spectrum(ax, spectrum, color="#4fc3f7", text_color=self.theme_colors()["text"])
