"""The "Spaxel maps" dock: age and [M/H] maps of a cube, per spaxel.

Pick an IFU cube or a narrow-band stack layer; the dock measures every spaxel's SED in
the SED model's filters, leaves out spaxels below a S/N floor (or Voronoi-bins them to a
target S/N), runs the model in the shared worker process and adds the maps as image
layers on the cube's grid: :func:`napari_galam.pipeline.maps.iter_map_source`, the
function ``galam map`` runs per cube. The maps carry the galaxy's ellipse and R_e (from
the collapsed light) so that the Gradients dock can fit them at once. The work runs in
the dock's :class:`~napari_galam._widgets._jobs.JobRunner` thread with progress and
Cancel; errors become one notification.
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
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_galam._layerdata import CUBE_KEY, ELLIPSE_KEY, MAPS_KEY, NARROWBAND_KEY, RE_KEY
from napari_galam._widgets._choices import refill_choices
from napari_galam._widgets._jobs import JobRunner
from napari_galam._widgets._model_worker import shared_worker
from napari_galam.core.gradients import ellipse_from_moments, half_light_radius
from napari_galam.errors import GalamError, GalamInputError
from napari_galam.pipeline.maps import MAP_UNITS, SpaxelMaps, iter_map_source

if TYPE_CHECKING:
    import napari

__all__ = ["MapsDock", "AGE_LIMITS", "MH_LIMITS", "DISTRIBUTED_MIN_SPAXELS"]

#: Cubes with at least this many spaxels (e.g. a 300x300 MUSE cube) go to Dask.
DISTRIBUTED_MIN_SPAXELS = 60_000

#: Physical contrast limits: the E-MILES grid spans 0.063-17.8 Gyr and [M/H] -1.71..+0.22.
AGE_LIMITS = (8.5, 10.2)
MH_LIMITS = (-1.2, 0.3)


def _source_layers(viewer: Any) -> list[Any]:
    return [
        layer
        for layer in viewer.layers
        if CUBE_KEY in layer.metadata or NARROWBAND_KEY in layer.metadata
    ]


def _predict_in_worker(seds: np.ndarray) -> Any:
    """The SED model in the session's model worker (started on first use, in the job thread)."""
    worker = shared_worker()
    worker.start()
    return worker.predict_seds(seds)


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
        ``dask_workers`` processes (None: one per core), unless Voronoi binning, which
        needs the whole field, is asked for.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.maps: SpaxelMaps | None = None
        self._source: Any = None
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
        self.save_button = QPushButton("Save maps…")
        self.save_button.setEnabled(False)
        self.jobs = JobRunner(
            "Spaxel maps", idle_text="Open a cube or narrow-band stack, then map it."
        )

        form = QFormLayout()
        form.addRow("cube", self.source)
        form.addRow("minimum S/N", self.min_snr)
        form.addRow(self.voronoi)
        form.addRow("target S/N", self.target_snr)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.jobs)
        layout.addStretch(1)

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
            target_snr=self.target_snr.value() if self.voronoi.isChecked() else None,
            meta={"source": layer.name},
            distributed_min_spaxels=self.distributed_min_spaxels,
            n_workers=self.dask_workers,
        )
        if started:
            self._source = layer
        return started

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
        self._put_layer(f"S/N {base}", maps.snr, "gray", None, meta, kwargs, visible=False)
        self._put_layer(f"[M/H] {base}", maps.mh, "viridis", MH_LIMITS, meta, kwargs, visible=False)
        self._put_layer(f"log age {base}", maps.log_age, "magma", AGE_LIMITS, meta, kwargs)
        self.save_button.setEnabled(True)
        self.jobs.status.setText(
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
