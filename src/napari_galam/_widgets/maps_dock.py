"""The "Spaxel maps" dock: age and [M/H] maps of a cube, per spaxel.

Pick an IFU cube or a narrow-band stack layer; the dock measures every spaxel's SED in
the SED model's filters, leaves out spaxels below a S/N floor (or bins them to a target
S/N with the chosen binner, Voronoi binning or PowerBin, and maps each bin's mean), runs
the model in the shared worker process and adds the maps as image
layers on the cube's grid: :func:`napari_galam.pipeline.maps.iter_map_source`, the
function ``galam map`` runs per cube. The maps carry the galaxy's ellipse and R_e (from
the collapsed light) so that the Gradients dock can fit them at once. The work runs in
the dock's :class:`~napari_galam._widgets._jobs.JobRunner` thread with progress and
Cancel; errors become one notification.

"pPXF maps" bins the cube to a target S/N with PowerBin and fits every bin with pPXF
(:func:`napari_galam.pipeline.fit.iter_fit_cube`, the fits ``galam fit`` makes, in the
job thread or on a local Dask cluster), then adds pPXF log age and [M/H] layers, the
differences network - pPXF and the bin map, and plots the network's maps against
pPXF's with the 1:1 line. Cancel keeps the bins fitted so far as partial maps; running
again on the same cube and settings resumes from them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_galam._layerdata import (
    CUBE_KEY,
    ELLIPSE_KEY,
    GRADIENT_ERRORS_KEY,
    MAPS_KEY,
    NARROWBAND_KEY,
    RE_KEY,
)
from napari_galam._widgets._choices import refill_choices
from napari_galam._widgets._jobs import JobRunner
from napari_galam._widgets._model_worker import shared_worker
from napari_galam.core.gradients import ellipse_from_moments, half_light_radius
from napari_galam.errors import GalamError, GalamInputError
from napari_galam.pipeline.binning import BINNINGS
from napari_galam.pipeline.fit import (
    CubeFit,
    FitOptions,
    PpxfMaps,
    finished_rows,
    iter_fit_cube,
    maps_from_rows,
)
from napari_galam.pipeline.gradient_errors import gradient_error_context
from napari_galam.pipeline.maps import MAP_MODELS, MAP_UNITS, SpaxelMaps, iter_map_source
from napari_galam.plots.ppxf import plot_map_scatter
from napari_galam.progress import ProgressGenerator

if TYPE_CHECKING:
    import napari

__all__ = [
    "MapsDock",
    "PpxfRun",
    "iter_ppxf_maps",
    "AGE_LIMITS",
    "MH_LIMITS",
    "DIFF_LIMITS",
    "DISTRIBUTED_MIN_SPAXELS",
]

#: Cubes with at least this many spaxels (e.g. a 300x300 MUSE cube) go to Dask.
DISTRIBUTED_MIN_SPAXELS = 60_000

#: Physical contrast limits: the E-MILES grid spans 0.063-17.8 Gyr and [M/H] -1.71..+0.22.
AGE_LIMITS = (8.5, 10.2)
MH_LIMITS = (-1.2, 0.3)
#: Contrast limits of the network - pPXF difference maps (dex).
DIFF_LIMITS = (-0.5, 0.5)
#: Contrast limits of the error maps (dex).
ERROR_LIMITS = (0.0, 0.4)


@dataclass
class PpxfRun:
    """What a pPXF-maps job has made so far (filled in the job thread, read on Cancel).

    Attributes
    ----------
    directory
        The partitions folder of the bins' fits.
    network
        The network's maps (made first when the dock had none of this cube).
    result
        The finished :class:`~napari_galam.pipeline.fit.CubeFit` (None until done).
    bins
        The cube's bins, once made.
    """

    directory: Path
    network: SpaxelMaps | None = None
    result: CubeFit | None = None
    bins: Any = None

    def partial_maps(self) -> PpxfMaps | None:
        """The maps of the bins fitted so far (None before the binning)."""
        if self.result is not None:
            return self.result.maps
        if self.bins is None:
            return None
        return maps_from_rows(finished_rows(self.directory), self.bins)


def iter_ppxf_maps(
    source: Any,
    run: PpxfRun,
    *,
    target_snr: float,
    min_snr: float,
    options: FitOptions,
    n_workers: int | None,
) -> ProgressGenerator[PpxfRun]:
    """The job of "pPXF maps": the network's maps if missing, then pPXF of every bin.

    Fills ``run`` as it goes (so that Cancel can show what was fitted) and returns it.
    """
    from napari_galam.pipeline.binning import bin_cube, iter_cube_snr_map

    if run.network is None:
        run.network = yield from iter_map_source(
            source, _predict_in_worker, min_snr=min_snr, meta={"source": source.name},
            model="auto", predict_spectra=_predict_spectra_in_worker,
        )  # fmt: skip
    snr = yield from iter_cube_snr_map(source)
    run.bins = bin_cube(snr, target_snr=target_snr, min_snr=min_snr)
    run.result = yield from iter_fit_cube(
        source, run.directory, target_snr=target_snr, min_snr=min_snr, options=options,
        engine="dask" if n_workers else "local", n_workers=n_workers or None,
    )  # fmt: skip
    return run


def _source_layers(viewer: Any) -> list[Any]:
    return [
        layer
        for layer in viewer.layers
        if CUBE_KEY in layer.metadata or NARROWBAND_KEY in layer.metadata
    ]


def _predict_in_worker(seds: np.ndarray, *, snr: Any = None) -> Any:
    """The SED model in the session's model worker (started on first use, in the job thread)."""
    worker = shared_worker()
    worker.start()
    return worker.predict_seds(seds, snr=snr)


def _predict_spectra_in_worker(
    inputs: np.ndarray, *, snr: Any = None, layout: str | None = None
) -> Any:
    """The spectral model in the session's model worker (started on first use)."""
    worker = shared_worker()
    worker.start()
    return worker.predict_spectra(inputs, snr=snr, layout=layout)


def _scatter_canvas() -> tuple[Any, Any]:
    """A small matplotlib figure and Qt canvas for the network-vs-pPXF scatter plot."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 2.6), layout="constrained")
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(220)
    canvas.setVisible(False)
    return figure, canvas


def _gradient_metadata(light: Any) -> tuple[dict[str, Any], str]:
    """The galaxy's ellipse and R_e measured on ``light``, for the Gradients dock.

    Returns the metadata and, when no ellipse was found, the reason (else "").
    """
    meta: dict[str, Any] = {}
    try:
        ellipse = ellipse_from_moments(light)
        meta[ELLIPSE_KEY] = {
            "x": ellipse.x,
            "y": ellipse.y,
            "angle_deg": ellipse.angle_deg,
            "axis_ratio": ellipse.axis_ratio,
        }
        meta[RE_KEY] = half_light_radius(light, ellipse)
    except GalamInputError as exc:
        return meta, f"maps made; no ellipse for gradients: {exc}"
    return meta, ""


class MapsDock(QWidget):
    """Per-spaxel age and metallicity maps from a cube layer.

    Attributes
    ----------
    jobs
        The dock's :class:`~napari_galam._widgets._jobs.JobRunner`: the mapping runs in
        its thread, with its progress bar, Cancel and status line.
    maps
        The last maps made (None before).
    distributed_min_spaxels, dask_workers
        Cubes with at least this many spaxels are mapped on a local Dask cluster of
        ``dask_workers`` processes (None: one per core), unless binning, which needs
        the whole field, is asked for.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.maps: SpaxelMaps | None = None
        self._source: Any = None
        self.distributed_min_spaxels = DISTRIBUTED_MIN_SPAXELS
        self.dask_workers: int | None = None  # None: one per core

        self.source = QComboBox()
        self.model = QComboBox()
        self.model.addItems(list(MAP_MODELS))
        self.model.setToolTip(
            "auto: spaxel-spectra (the spectra themselves) for IFU cubes, sed-cnn for "
            "narrow-band stacks; sed-cnn on a cube uses J-PAS-like SEDs (from 3762 A)"
        )
        self.redshift = QDoubleSpinBox()
        self.redshift.setDecimals(4)
        self.redshift.setRange(-0.0001, 0.99)
        self.redshift.setSingleStep(0.01)
        self.redshift.setSpecialValueText("from header")
        self.redshift.setValue(-0.0001)
        self.min_snr = QDoubleSpinBox()
        self.min_snr.setRange(0.0, 1000.0)
        self.min_snr.setValue(3.0)
        self.bin_spaxels = QCheckBox("bin to target S/N")
        self.target_snr = QDoubleSpinBox()
        self.target_snr.setRange(1.0, 1000.0)
        self.target_snr.setValue(20.0)
        self.binning = QComboBox()
        self.binning.addItems(list(BINNINGS))
        self.binning.setToolTip(
            "voronoi: Voronoi binning (Cappellari & Copin 2003); powerbin: PowerBin "
            "(Cappellari 2025). Each bin is mapped from its mean spectrum or SED."
        )
        self.run_button = QPushButton("Map age and [M/H]")
        self.save_button = QPushButton("Save maps…")
        self.save_button.setEnabled(False)
        self.jobs = JobRunner(
            "Spaxel maps", idle_text="Open a cube or narrow-band stack, then map it."
        )
        self.ppxf_button = QPushButton("pPXF maps")
        self.ppxf_button.setToolTip(
            "Bin the cube to the pPXF target S/N (PowerBin) and fit each bin with pPXF"
        )
        self.ppxf_target_snr = QDoubleSpinBox()
        self.ppxf_target_snr.setRange(5.0, 500.0)
        self.ppxf_target_snr.setValue(30.0)
        self.ppxf_workers = QSpinBox()
        self.ppxf_workers.setRange(0, 64)
        self.ppxf_workers.setToolTip("Dask worker processes (0: fit in this process)")
        self.ppxf_fit_gas = QCheckBox("fit gas lines")
        self.ppxf_fit_gas.setChecked(True)
        self.ppxf: PpxfMaps | None = None
        self._ppxf_run: PpxfRun | None = None
        self._ppxf_root = Path(tempfile.mkdtemp(prefix="galam-ppxf-"))
        self.scatter_figure, self.scatter_canvas = _scatter_canvas()

        form = QFormLayout()
        form.addRow("cube", self.source)
        form.addRow("model", self.model)
        form.addRow("redshift", self.redshift)
        form.addRow("minimum S/N", self.min_snr)
        form.addRow(self.bin_spaxels)
        form.addRow("target S/N", self.target_snr)
        form.addRow("binning", self.binning)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.save_button)
        ppxf_form = QFormLayout()
        ppxf_form.addRow(QLabel("Full-spectrum fits (pPXF, E-MILES)"))
        ppxf_form.addRow("pPXF target S/N", self.ppxf_target_snr)
        ppxf_form.addRow("Dask workers", self.ppxf_workers)
        ppxf_form.addRow(self.ppxf_fit_gas)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(ppxf_form)
        layout.addWidget(self.ppxf_button)
        layout.addWidget(self.jobs)
        layout.addWidget(self.scatter_canvas)
        layout.addStretch(1)

        self.ppxf_button.clicked.connect(self.start_ppxf_maps)
        self.run_button.clicked.connect(self.start_mapping)
        self.save_button.clicked.connect(self._on_save)
        viewer.layers.events.inserted.connect(self._refresh_sources)
        viewer.layers.events.removed.connect(self._refresh_sources)
        self._refresh_sources()

    # -- choices ---------------------------------------------------------------------
    def _refresh_sources(self, event: Any = None) -> None:
        refill_choices(self.source, [layer.name for layer in _source_layers(self.viewer)])

    # -- the job ---------------------------------------------------------------------
    def start_mapping(self) -> bool:
        """Start mapping the chosen layer in the job thread; False when nothing started.

        :func:`napari_galam.pipeline.maps.iter_map_source` with the model in the
        session's model worker; big cubes go to a local Dask cluster.
        """
        name = self.source.currentText()
        if not name or name not in self.viewer.layers:
            self.jobs.report("Spaxel maps: open a cube or narrow-band stack first.")
            return False
        layer = self.viewer.layers[name]
        source = layer.metadata.get(CUBE_KEY)
        if source is None:
            source = layer.metadata[NARROWBAND_KEY]
        started = self.jobs.start(
            iter_map_source,
            source,
            _predict_in_worker,
            done=self._on_done,
            text=f"Mapping {name}…",
            min_snr=self.min_snr.value(),
            target_snr=self.target_snr.value() if self.bin_spaxels.isChecked() else None,
            binning=self.binning.currentText(),
            meta={"source": layer.name},
            distributed_min_spaxels=self.distributed_min_spaxels,
            n_workers=self.dask_workers,
            model=self.model.currentText(),
            predict_spectra=_predict_spectra_in_worker,
            redshift=None if self.redshift.value() < 0 else self.redshift.value(),
        )
        if started:
            self._source = layer
        return started

    def start_ppxf_maps(self) -> bool:
        """Start pPXF maps of the chosen cube in the job thread; False when nothing started.

        The network's maps are made first when the dock has none of this cube.
        """
        name = self.source.currentText()
        layer = self.viewer.layers[name] if name and name in self.viewer.layers else None
        if layer is None or CUBE_KEY not in layer.metadata:
            self.jobs.report("Spaxel maps: pPXF maps need an IFU cube layer; open one first.")
            return False
        options = FitOptions(gas="fit" if self.ppxf_fit_gas.isChecked() else "mask")
        target = self.ppxf_target_snr.value()
        folder = self._ppxf_root / f"{layer.name}-snr{target:g}-{options.gas}"
        same = self._source is layer and self.maps is not None
        run = PpxfRun(folder, network=self.maps if same else None)
        started = self.jobs.start(
            iter_ppxf_maps, layer.metadata[CUBE_KEY], run, done=self._on_ppxf_done,
            cancelled=self._on_ppxf_cancelled, text=f"pPXF maps of {name}…",
            target_snr=target, min_snr=self.min_snr.value(), options=options,
            n_workers=self.ppxf_workers.value(),
        )  # fmt: skip
        if started:
            self._ppxf_run = run
            self._source = layer
        return started

    def _on_ppxf_done(self, run: PpxfRun) -> None:
        self._show_ppxf(run)
        maps = self.ppxf
        if maps is not None:
            self.jobs.status.setText(
                f"pPXF: {maps.n_fitted} of {maps.n_bins} bins fitted "
                f"(target S/N {self.ppxf_target_snr.value():g})"
            )

    def _on_ppxf_cancelled(self) -> None:
        run = self._ppxf_run
        if run is None or run.partial_maps() is None:
            return
        self._show_ppxf(run)
        maps = self.ppxf
        self.jobs.status.setText(
            f"pPXF cancelled: {maps.n_fitted} of {maps.n_bins} bins fitted; the partial maps "
            "are shown (run again to go on)."
        )

    def _show_ppxf(self, run: PpxfRun) -> None:
        """Add the pPXF, difference and bin layers and draw the scatter plot."""
        if run.network is not None and (self.maps is None or self.maps is not run.network):
            self._on_done(run.network)
        maps = run.partial_maps()
        if maps is None:
            return
        self.ppxf = maps
        layer = self._source
        meta: dict[str, Any] = {}
        if self.maps is not None:
            meta.update(_gradient_metadata(self.maps.light)[0])
        if layer.metadata.get("wcs") is not None:
            meta["wcs"] = layer.metadata["wcs"]
        kwargs = {"scale": layer.scale[-2:], "translate": layer.translate[-2:]}
        base = layer.name
        age_meta, mh_meta = self._with_gradient_errors(
            meta, None, maps.maps["BIN_ID"], errors=(maps.maps["LOG_AGE_ERR"], maps.maps["MH_ERR"])
        )
        self._put_layer(f"pPXF [M/H] {base}", maps.mh, "viridis", MH_LIMITS, mh_meta, kwargs,
                        visible=False)  # fmt: skip
        self._put_layer(f"pPXF log age {base}", maps.log_age, "magma", AGE_LIMITS, age_meta,
                        kwargs)  # fmt: skip
        if self.maps is not None:
            self._put_layer(f"network − pPXF [M/H] {base}", self.maps.mh - maps.mh, "PiYG",
                            DIFF_LIMITS, meta, kwargs, visible=False)  # fmt: skip
            self._put_layer(f"network − pPXF log age {base}", self.maps.log_age - maps.log_age,
                            "PiYG", DIFF_LIMITS, meta, kwargs, visible=False)  # fmt: skip
        bins_name = f"pPXF bins {base}"
        if bins_name in self.viewer.layers:
            self.viewer.layers[bins_name].data = maps.maps["BIN_ID"] + 1
        else:
            self.viewer.add_labels(maps.maps["BIN_ID"] + 1, name=bins_name, visible=False,
                                   opacity=0.4, **kwargs)  # fmt: skip
        self.draw_scatter()

    def draw_scatter(self) -> None:
        """Network against pPXF, log age and [M/H], with the 1:1 line."""
        figure = self.scatter_figure
        figure.clear()
        if self.ppxf is None or self.maps is None:
            self.scatter_canvas.setVisible(False)
            return
        age_ax, mh_ax = figure.subplots(1, 2)
        plot_map_scatter(age_ax, self.maps.log_age, self.ppxf.log_age, label="log age [yr]",
                         span=AGE_LIMITS, color="#ff7043")  # fmt: skip
        plot_map_scatter(mh_ax, self.maps.mh, self.ppxf.mh, label="[M/H] [dex]",
                         span=MH_LIMITS, color="#26a69a")  # fmt: skip
        self.scatter_canvas.setVisible(True)
        self.scatter_canvas.draw_idle()

    def cancel(self) -> None:
        """Ask the running job to stop after its current step."""
        self.jobs.cancel()

    def _on_done(self, maps: SpaxelMaps) -> None:
        self.maps = maps
        layer = self._source
        meta: dict[str, Any] = {MAPS_KEY: maps}
        gradient_meta, no_ellipse = _gradient_metadata(maps.light)
        meta.update(gradient_meta)
        if no_ellipse:
            self.jobs.status.setText(no_ellipse)
        wcs = layer.metadata.get("wcs")
        if wcs is not None:
            meta["wcs"] = wcs
        kwargs = {"scale": layer.scale[-2:], "translate": layer.translate[-2:]}
        base = layer.name
        # the network's spaxel errors stay out of the gradient bootstrap: it already sees
        # their scatter over the resolution elements (see pipeline/evaluate.py)
        age_meta, mh_meta = self._with_gradient_errors(meta, maps.model, maps.bin_id)
        self._put_layer(f"S/N {base}", maps.snr, "gray", None, meta, kwargs, visible=False)
        self._put_error_layers(maps, base, meta, kwargs)
        self._put_layer(f"[M/H] {base}", maps.mh, "viridis", MH_LIMITS, mh_meta, kwargs,
                        visible=False)  # fmt: skip
        self._put_layer(f"log age {base}", maps.log_age, "magma", AGE_LIMITS, age_meta, kwargs)
        flagged = self._put_ood_layer(maps, base, kwargs)
        self.save_button.setEnabled(True)
        details = [
            f"spectra at z = {maps.meta['redshift']:g}"
            if "redshift" in maps.meta
            else f"{len(maps.band_names)} filters",
            f"S/N >= {maps.meta['min_snr']:g}",
        ]
        if maps.meta.get("binning"):
            details.append(f"{maps.meta['binning']} bins to S/N {maps.meta['target_snr']:g}")
        self.jobs.status.setText(
            f"{maps.n_mapped} spaxels mapped with {maps.model} ({', '.join(details)})"
            + (f"; {flagged} outside the training data (marked)" if flagged else "")
        )

    def _put_error_layers(
        self, maps: SpaxelMaps, base: str, meta: dict[str, Any], kwargs: dict[str, Any]
    ) -> None:
        """The calibrated 1-sigma error maps, hidden until asked for."""
        for label, error in (("log age", maps.log_age_err), ("[M/H]", maps.mh_err)):
            if error is not None:
                self._put_layer(f"{label} error {base}", error, "inferno", ERROR_LIMITS, meta,
                                kwargs, visible=False)  # fmt: skip

    def _put_ood_layer(self, maps: SpaxelMaps, base: str, kwargs: dict[str, Any]) -> int:
        """Mark spaxels outside the training data (labels = reason bits); return how many."""
        if maps.ood is None:
            return 0
        name = f"out of distribution {base}"
        codes = np.asarray(maps.ood, dtype=np.int32)
        if name in self.viewer.layers:
            self.viewer.layers[name].data = codes
        else:
            self.viewer.add_labels(codes, name=name, opacity=0.5, **kwargs)
        return int(np.count_nonzero(codes))

    def _with_gradient_errors(
        self,
        meta: dict[str, Any],
        model: str | None,
        bin_id: Any,
        errors: tuple[Any, Any] = (None, None),
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``meta`` for the age and the [M/H] layer, each with its gradient-error context."""
        source_meta = self._source.metadata
        source = source_meta.get(CUBE_KEY, source_meta.get(NARROWBAND_KEY))
        contexts = [
            gradient_error_context(
                model=model, quantity=quantity, source=source, errors=error, bin_id=bin_id
            )
            for quantity, error in zip(("log_age", "mh"), errors, strict=True)
        ]
        return tuple(dict(meta, **{GRADIENT_ERRORS_KEY: c}) for c in contexts)  # type: ignore[return-value]

    def _put_layer(
        self,
        name: str,
        data: Any,
        colormap: str,
        limits: tuple[float, float] | None,
        meta: dict[str, Any],
        kwargs: dict[str, Any],
        *,
        visible: bool = True,
    ) -> None:
        if name in self.viewer.layers:
            self.viewer.layers[name].data = data
            self.viewer.layers[name].metadata.update(meta)
            return
        options = dict(kwargs, name=name, colormap=colormap, metadata=dict(meta), visible=visible)
        if limits is not None:
            options["contrast_limits"] = limits
        layer = self.viewer.add_image(data, **options)
        layer.colorbar.visible = limits is not None  # physical scale for age and [M/H]

    # -- saving ---------------------------------------------------------------------
    def save_ppxf_maps(self, path: str | os.PathLike) -> Path:
        """Write the pPXF maps (with BIN_ID) to a multi-extension FITS file."""
        from napari_galam.io.writers import write_maps
        from napari_galam.pipeline.fit import PPXF_MAP_UNITS

        if self.ppxf is None:
            raise GalamInputError("nothing to save yet: make pPXF maps first.")
        wcs = self._source.metadata.get("wcs") if self._source is not None else None
        return write_maps(path, self.ppxf.maps, celestial_wcs=wcs, units=PPXF_MAP_UNITS,
                          header_extra={"METHOD": "pPXF E-MILES"})  # fmt: skip

    def save_maps(self, path: str | os.PathLike) -> Path:
        """Write the maps to a multi-extension FITS file with the cube's celestial WCS."""
        from napari_galam.io.writers import write_maps

        if self.maps is None:
            raise GalamInputError("nothing to save yet: map a cube first.")
        wcs = self._source.metadata.get("wcs") if self._source is not None else None
        return write_maps(
            path,
            self.maps.as_dict(),
            celestial_wcs=wcs,
            units=MAP_UNITS,
            header_extra={"MODEL": self.maps.model, "SOURCE": self.maps.meta.get("source", "")},
        )

    def _on_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save maps", "", "FITS (*.fits)")
        if not path:
            return
        try:
            saved = self.save_maps(path)
        except (GalamError, OSError) as exc:
            self.jobs.report(f"Spaxel maps: could not save {path}: {exc}")
            return
        self.jobs.status.setText(f"Saved {saved}")
