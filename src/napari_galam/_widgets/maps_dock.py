"""The "Spaxel maps" dock: age and [M/H] maps of a cube, per spaxel.

Pick an IFU cube or a narrow-band stack layer; the dock measures every spaxel's SED in
the SED model's filters, leaves out spaxels below a S/N floor (or Voronoi-bins them to a
target S/N), runs the model in the shared worker process and adds the maps as image
layers on the cube's grid. The maps carry the galaxy's ellipse and R_e (from the
collapsed light) so that the Gradients dock can fit them at once. All the work runs in
a thread with progress and cancel; errors become notifications.
"""

from __future__ import annotations

import os
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
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_galam._layerdata import CUBE_KEY, ELLIPSE_KEY, MAPS_KEY, NARROWBAND_KEY, RE_KEY
from napari_galam._widgets._choices import refill_choices
from napari_galam._widgets._jobs import start_job
from napari_galam._widgets._model_worker import shared_worker
from napari_galam.core.gradients import ellipse_from_moments, half_light_radius
from napari_galam.errors import GalamError, GalamInputError
from napari_galam.pipeline.maps import (
    SpaxelMaps,
    iter_map_cube_distributed,
    iter_map_seds,
    iter_seds_from_cube,
    sed_model_filters,
    seds_from_narrowband,
)

if TYPE_CHECKING:
    import napari

__all__ = ["MapsDock", "AGE_LIMITS", "MH_LIMITS", "DISTRIBUTED_MIN_SPAXELS"]

#: Cubes with at least this many spaxels (e.g. a 300x300 MUSE cube) go to Dask.
DISTRIBUTED_MIN_SPAXELS = 60_000

#: Physical contrast limits: the E-MILES grid spans 0.063-17.8 Gyr and [M/H] -1.71..+0.22.
AGE_LIMITS = (8.5, 10.2)
MH_LIMITS = (-1.2, 0.3)
#: Layer-metadata key holding the :class:`SpaxelMaps` a map layer came from.


def _source_layers(viewer: Any) -> list[Any]:
    return [
        layer
        for layer in viewer.layers
        if CUBE_KEY in layer.metadata or NARROWBAND_KEY in layer.metadata
    ]


class MapsDock(QWidget):
    """Per-spaxel age and metallicity maps from a cube layer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.maps: SpaxelMaps | None = None
        self._source: Any = None
        self._job: Any = None
        #: Cubes with at least this many spaxels are mapped on a local Dask cluster
        #: (unless Voronoi binning, which needs the whole field, is asked for).
        self.distributed_min_spaxels = DISTRIBUTED_MIN_SPAXELS
        self.dask_workers: int | None = None  # None: one per core

        self.source = QComboBox()
        self.min_snr = QDoubleSpinBox()
        self.min_snr.setRange(0.0, 1000.0)
        self.min_snr.setValue(3.0)
        self.voronoi = QCheckBox("Voronoi-bin to target S/N")
        self.target_snr = QDoubleSpinBox()
        self.target_snr.setRange(1.0, 1000.0)
        self.target_snr.setValue(20.0)
        self.run_button = QPushButton("Map age and [M/H]")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.save_button = QPushButton("Save maps…")
        self.save_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel("Open a cube or narrow-band stack, then map it.")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("cube", self.source)
        form.addRow("minimum S/N", self.min_snr)
        form.addRow(self.voronoi)
        form.addRow("target S/N", self.target_snr)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.run_button.clicked.connect(self.start_mapping)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button.clicked.connect(self._on_save)
        viewer.layers.events.inserted.connect(self._refresh_sources)
        viewer.layers.events.removed.connect(self._refresh_sources)
        self._refresh_sources()

    # -- choices ---------------------------------------------------------------------
    def _refresh_sources(self, event: Any = None) -> None:
        refill_choices(self.source, [layer.name for layer in _source_layers(self.viewer)])

    def _notify(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.status.setText(message)
        show_error(message)

    # -- the job ---------------------------------------------------------------------
    def iter_job(self, layer: Any) -> Any:
        """The whole mapping as a generator: yields (fraction, text), returns the maps."""
        worker = shared_worker()
        filters_needed = sed_model_filters()
        cube = layer.metadata.get(CUBE_KEY)
        big = cube is not None and cube.shape[1] * cube.shape[2] >= self.distributed_min_spaxels
        if big and not self.voronoi.isChecked():
            # a big cube: the same pipeline on a local Dask cluster, as galam map --dask
            yield (0.0, f"mapping {cube.shape[1]}x{cube.shape[2]} spaxels on a Dask cluster")
            maps = None
            for item in iter_map_cube_distributed(
                cube.path, cube.shape, filters_needed,
                min_snr=self.min_snr.value(), n_workers=self.dask_workers,
            ):  # fmt: skip
                if isinstance(item, tuple):
                    yield (0.95 * item[1] / item[2], f"rows {item[1]} of {item[2]}")
                else:
                    maps = item
            light = np.asarray(cube.data[cube.shape[0] // 2], dtype=float)
            return maps, light
        if CUBE_KEY in layer.metadata:
            from napari_galam.sps.filters import load_filters

            cube = layer.metadata[CUBE_KEY]
            seds = None
            for item in iter_seds_from_cube(cube, load_filters(filters_needed)):
                if isinstance(item, tuple):
                    _, done, total = item
                    yield (0.6 * done / total, f"synthetic photometry: row {done} of {total}")
                else:
                    seds = item
        else:
            seds = seds_from_narrowband(layer.metadata[NARROWBAND_KEY], filters_needed)
        yield (0.6, "starting the model worker" if not worker.running else "predicting")
        worker.start()
        maps = None
        for item in iter_map_seds(
            seds,
            worker.predict_seds,
            min_snr=self.min_snr.value(),
            target_snr=self.target_snr.value() if self.voronoi.isChecked() else None,
            meta={"source": layer.name},
        ):
            if isinstance(item, tuple):
                stage, done, total = item
                yield (0.6 + 0.35 * done / max(total, 1), f"{stage}: {done} of {total}")
            else:
                maps = item
        light = np.nanmean(seds.flux, axis=0)
        return maps, light

    def start_mapping(self) -> Any:
        """Start mapping the chosen layer in a thread; returns the napari worker."""
        name = self.source.currentText()
        if not name or name not in self.viewer.layers:
            self._notify("Spaxel maps: open a cube or narrow-band stack first.")
            return None
        layer = self.viewer.layers[name]
        self._source = layer
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"Mapping {name}…")
        self.progress.setValue(0)
        self._job = start_job(
            self.iter_job, layer, yielded=self._on_progress, returned=self._on_done,
            errored=self._on_error, finished=self._on_finished,
        )  # fmt: skip
        return self._job

    def cancel(self) -> None:
        """Ask the running job to stop after its current step."""
        if self._job is not None:
            self._job.quit()
            self.status.setText("Cancelling…")

    def _on_progress(self, value: tuple[float, str]) -> None:
        fraction, text = value
        self.progress.setValue(int(100 * fraction))
        self.status.setText(text)

    def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, GalamError):
            self._notify(f"Spaxel maps: {exc}")
        else:
            self._notify(f"Spaxel maps failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self._job = None

    def _on_done(self, result: tuple[SpaxelMaps, Any]) -> None:
        maps, light = result
        self.maps = maps
        self.progress.setValue(100)
        layer = self._source
        meta: dict[str, Any] = {MAPS_KEY: maps}
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
            self.status.setText(f"maps made; no ellipse for gradients: {exc}")
        wcs = layer.metadata.get("wcs")
        if wcs is not None:
            meta["wcs"] = wcs
        kwargs = {"scale": layer.scale[-2:], "translate": layer.translate[-2:]}
        base = layer.name
        self._put_layer(f"S/N {base}", maps.snr, "gray", None, meta, kwargs, visible=False)
        self._put_layer(f"[M/H] {base}", maps.mh, "viridis", MH_LIMITS, meta, kwargs, visible=False)
        self._put_layer(f"log age {base}", maps.log_age, "magma", AGE_LIMITS, meta, kwargs)
        self.save_button.setEnabled(True)
        self.status.setText(
            f"{maps.n_mapped} spaxels mapped with {maps.model} "
            f"({len(maps.band_names)} filters, S/N >= {maps.meta['min_snr']:g})"
        )

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
            units={"LOG_AGE": "dex", "MH": "dex", "SNR": "", "BIN_ID": ""},
            header_extra={"MODEL": self.maps.model, "SOURCE": self.maps.meta.get("source", "")},
        )

    def _on_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save maps", "", "FITS (*.fits)")
        if not path:
            return
        try:
            saved = self.save_maps(path)
        except (GalamError, OSError) as exc:
            self._notify(f"Spaxel maps: could not save {path}: {exc}")
            return
        self.status.setText(f"Saved {saved}")
