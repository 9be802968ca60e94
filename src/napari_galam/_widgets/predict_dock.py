"""The "Galaxy age & [M/H]" dock: click a galaxy (or predict all) -> QA -> model.

Each click takes a cutout around the clicked point, runs the MMLforGalAM image
preprocessing and blend check, and asks the shared model worker for log age and [M/H].
The galaxy is marked in a points layer (properties and text), and a table accumulates
one row per click, rejected galaxies included with their reason. "Predict all" detects
every source of the field and predicts them in one batch (on a local Dask cluster, the
engine of ``galam predict --dask``, when the field holds thousands). When an SDSS spectrum is open,
the spectra-only model (the paper's most accurate) is offered for it too. The models
were trained on SDSS-like gri cutouts (0.396"/px); the dock says so, once per layer,
when the image is not SDSS-like, and says once that a 128x128 colour JPEG without
metadata is taken as SDSS gri at 0.396"/px (what SDSS ImgCutout delivers). Every request to the model worker (and the QA before it) runs in the
dock's job thread (:class:`~napari_galam._widgets._jobs.JobRunner`), never on the GUI
thread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_galam._layerdata import SPECTRUM_KEY
from napari_galam._reader import SDSS_ASSUMED_KEY
from napari_galam._widgets._choices import follow_click, layer_named, refill_choices
from napari_galam._widgets._jobs import JobRunner
from napari_galam._widgets._model_worker import shared_worker
from napari_galam.errors import GalamError, GalamInputError
from napari_galam.pipeline.catalogue import answer_row, spectrum_model_input
from napari_galam.pipeline.galaxies import (
    CUTOUT_SIZE,
    GalaxyResult,
    detect_galaxies,
    iter_predict_positions,
    iter_predict_positions_distributed,
)
from napari_galam.progress import Progress, ProgressGenerator

if TYPE_CHECKING:
    import napari

__all__ = ["PredictDock", "POINTS_LAYER", "GALAXY_MODELS", "DISTRIBUTED_MIN_SOURCES"]

#: Fields with at least this many detected sources are predicted on a local Dask cluster.
DISTRIBUTED_MIN_SOURCES = 2000

POINTS_LAYER = "galaxy predictions"
GALAXY_MODELS = ("mmlforgalam", "image-only")
#: Columns of the saved table; the dock's table shows value ± error and the flag.
_COLUMNS = (
    "layer", "row", "col", "status", "log_age", "log_age_err", "mh", "mh_err", "ood",
    "ood_reason", "model", "reason",
)  # fmt: skip
_SHOWN = ("layer", "row", "col", "status", "log_age", "mh", "ood", "model", "reason")


def with_error(value: float, error: float, sign: str = "") -> str:
    """``"9.15 ± 0.12"`` (the error left out when it is not finite; "" for no value)."""
    if not np.isfinite(value):
        return ""
    text = f"{value:{sign}.2f}"
    return f"{text} ± {error:.2f}" if np.isfinite(error) else text


def interval_95_text(result: GalaxyResult) -> str:
    """``"95%: 8.90-9.40 / -0.55-+0.05"``: a prediction's 95% intervals, from its model
    card's ``z95`` ("" when the model or an error is unknown)."""
    from napari_galam.models.registry import interval_95

    try:
        z95 = interval_95(result.model)
    except GalamError:
        return ""
    values = np.array([result.log_age, result.mh], float)
    half = z95 * np.array([result.log_age_err, result.mh_err], float)
    if not np.all(np.isfinite(values) & np.isfinite(half)):
        return ""
    lo, hi = values - half, values + half
    return f"95%: {lo[0]:.2f} to {hi[0]:.2f} / {lo[1]:+.2f} to {hi[1]:+.2f}"


def _cell(result: GalaxyResult, column: str, values: dict[str, Any]) -> str:
    """The text of one cell of the dock's table."""
    if column == "log_age":
        return with_error(result.log_age, result.log_age_err)
    if column == "mh":
        return with_error(result.mh, result.mh_err, "+")
    if column == "ood":
        return f"flagged: {result.ood_reason}" if result.ood else ""
    value = values[column]
    return f"{value:.2f}" if isinstance(value, float) else str(value)


_TITLE = "Galaxy age & [M/H]"


def _image_of(layer: Any) -> Any:
    data = np.asarray(layer.data)
    if layer.rgb or data.ndim == 2:
        return data
    raise GalamInputError(
        f"layer '{layer.name}' has shape {data.shape}; pick a 2-D or RGB image layer."
    )


def sdss_like_note(layer: Any) -> str:
    """What the dock says about a layer's pixels: a warning when it is not known to be an
    SDSS-like gri cutout or field, the assumption made when the reader took it as one
    (a 128x128 colour JPEG without metadata), else ""."""
    flag = layer.metadata.get("sdss_like")
    if flag is True:
        return str(layer.metadata.get(SDSS_ASSUMED_KEY, ""))
    what = "is not SDSS-like" if flag is False else "has no known pixel scale or bands"
    return (
        f"'{layer.name}' {what}: the models were trained on SDSS gri images at 0.396\"/px, "
        "so these numbers are extrapolations."
    )


def iter_predict_field(
    layer_name: str,
    image: Any,
    positions: Any,
    *,
    model: str,
    size: int,
    distributed_min_sources: int,
    dask_workers: int | None,
) -> ProgressGenerator[tuple[str, list[GalaxyResult]]]:
    """The dock's job: QA and predict ``positions`` of ``image`` (runs in a thread).

    ``positions`` None: every source :func:`detect_galaxies` finds. Fields with at least
    ``distributed_min_sources`` positions run on a local Dask cluster, as
    ``galam predict --dask`` does; the others on the shared model worker.

    Returns
    -------
    (layer_name, results)
        No results when no source was detected.
    """
    if positions is None:
        yield Progress("detecting sources", 0, 0)
        positions = detect_galaxies(image)
        if len(positions) == 0:
            return layer_name, []
        yield Progress(f"{len(positions)} sources detected; predicting", 0, len(positions))
    if len(positions) >= distributed_min_sources:
        yield Progress(f"starting a Dask cluster for {len(positions)} galaxies", 0, 0)
        results = yield from iter_predict_positions_distributed(
            image, positions, model=model, size=size, n_workers=dask_workers
        )
    else:
        worker = shared_worker()
        worker.start()
        results = yield from iter_predict_positions(
            image, positions, worker.predict_galaxies, model=model, size=size
        )
    return layer_name, results


def predict_spectrum_of(layer_name: str, spectrum: Any) -> tuple[str, list[GalaxyResult]]:
    """The spectra-only model's answer for one spectrum (runs in a thread).

    ``spectrum`` is an ``SdssSpectrum``, a ``Spectrum1D`` or a ``specutils.Spectrum``.
    As in ``galam predict`` (:func:`~napari_galam.pipeline.catalogue.spectrum_model_input`),
    a spectrum whose redshift the pipeline flags or lies outside the range the model was
    trained on (its card), or whose flux is mostly negative, is predicted and flagged
    (``ood``, with the reasons beside the model's own); one no model input can be built
    from (no good pixel, no redshift or too little rest-frame coverage) gives a rejected
    row saying why.

    Returns
    -------
    (layer_name, [result])
    """
    from napari_galam.io.specutils_bridge import as_package_spectrum
    from napari_galam.models.registry import spectrum_frame, training_redshift_range

    spectrum = as_package_spectrum(spectrum)
    try:
        inputs, flags = spectrum_model_input(
            spectrum, spectrum_frame(), training_redshift_range("spectra-only")
        )
    except GalamInputError as exc:
        return layer_name, [GalaxyResult(float("nan"), float("nan"), "rejected", str(exc))]
    answer = shared_worker().predict_galaxies(spectra=inputs[None], model="spectra-only")
    result = GalaxyResult(
        float("nan"), float("nan"), "accepted", "", model=answer.model,
        **answer_row(answer, 0, flags),
    )  # fmt: skip
    return layer_name, [result]


def _point_label(result: GalaxyResult) -> str:
    """The text beside a galaxy's point: values ± errors, a flag mark, or the QA status."""
    if not result.predicted:
        return result.status
    text = f"{with_error(result.log_age, result.log_age_err)} / {with_error(result.mh, result.mh_err, '+')}"
    return f"{text} (flagged)" if result.ood else text


class PredictDock(QWidget):
    """Click galaxies to get their age and metallicity.

    Attributes
    ----------
    jobs
        The dock's :class:`~napari_galam._widgets._jobs.JobRunner` (progress, Cancel,
        status line); scripts and tests wait on ``jobs.wait()``.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.results: list[tuple[str, GalaxyResult]] = []
        #: "Predict all" with at least this many sources runs on a local Dask cluster.
        self.distributed_min_sources = DISTRIBUTED_MIN_SOURCES
        self.dask_workers: int | None = None  # None: one per core
        self._noted_layers: set[str] = set()  # layers whose pixel-scale note was shown

        self.image_layer = QComboBox()
        self.model = QComboBox()
        self.model.addItems(GALAXY_MODELS)
        self.size = QSpinBox()
        self.size.setRange(32, 1024)
        self.size.setValue(CUTOUT_SIZE)
        self.size.setSuffix(" px")
        self.click_box = QCheckBox("Click a galaxy in the viewer")
        self.click_box.setChecked(True)
        self.all_button = QPushButton("Predict all galaxies")
        self.spectrum_layer = QComboBox()
        self.spectrum_button = QPushButton("Predict from spectrum (spectra-only)")
        self.save_button = QPushButton("Save table…")
        self.jobs = JobRunner(_TITLE, idle_text="Click a galaxy of an image layer.")
        self.table = QTableWidget(0, len(_SHOWN))
        self.table.setHorizontalHeaderLabels(_SHOWN)
        self._lay_out()

        self.all_button.clicked.connect(self.predict_all)
        self.spectrum_button.clicked.connect(self.predict_spectrum)
        self.save_button.clicked.connect(self._on_save)
        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
        self._refresh_layers()

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("image layer", self.image_layer)
        form.addRow("model", self.model)
        form.addRow("cutout size", self.size)
        buttons = QHBoxLayout()
        buttons.addWidget(self.all_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.click_box)
        layout.addLayout(buttons)
        spectrum_row = QHBoxLayout()
        spectrum_row.addWidget(self.spectrum_layer, 1)
        spectrum_row.addWidget(self.spectrum_button)
        layout.addLayout(spectrum_row)
        layout.addWidget(self.jobs)
        layout.addWidget(self.table, 1)

    # -- layers ---------------------------------------------------------------------
    def _refresh_layers(self, event: Any = None) -> None:
        names = [
            layer.name
            for layer in self.viewer.layers
            if layer._type_string == "image"
            and (layer.rgb or layer.ndim == 2)
            and not layer.name.startswith("QA ")
        ]
        refill_choices(self.image_layer, names)
        spectra = [layer.name for layer in self.viewer.layers if SPECTRUM_KEY in layer.metadata]
        refill_choices(self.spectrum_layer, spectra)
        self.spectrum_layer.setVisible(bool(spectra))
        self.spectrum_button.setVisible(bool(spectra))

    @property
    def source_layer(self) -> Any | None:
        """The chosen image layer."""
        return layer_named(self.viewer, self.image_layer.currentText())

    # -- work -----------------------------------------------------------------------
    def _run(self, layer: Any, positions: Any | None, *, if_busy: str = "refuse") -> bool:
        try:
            image = _image_of(layer)
        except GalamInputError as exc:
            self.jobs.report(f"{_TITLE}: {exc}")
            return False
        model = self.model.currentText()
        from napari_galam.models.registry import available_models

        if model not in available_models():
            self.jobs.report(
                f"{_TITLE}: the model '{model}' is not shipped in this installation "
                f"(available: {', '.join(available_models()) or 'none'})."
            )
            return False
        note = sdss_like_note(layer)
        if note and layer.name not in self._noted_layers:  # said once per layer
            self._noted_layers.add(layer.name)
            self.jobs.report(note, error=False)
        return self.jobs.start(
            iter_predict_field, layer.name, image, positions, model=model,
            size=self.size.value(), distributed_min_sources=self.distributed_min_sources,
            dask_workers=self.dask_workers, done=self._on_done,
            text="predicting…" if positions is None else f"predicting {len(positions)} galaxies…",
            if_busy=if_busy,
        )  # fmt: skip

    def cancel(self) -> None:
        """Stop the running job after the galaxy it is on; what was done is dropped."""
        self.jobs.cancel()

    def predict_at(self, row: float, col: float) -> bool:
        """Predict the galaxy at (row, col) of the chosen layer's data.

        Returns
        -------
        bool
            Whether a job started or was queued behind the running one (clicks made
            while a job runs are predicted in turn; its rows arrive when it ends).
        """
        layer = self.source_layer
        if layer is None:
            self.jobs.report(f"{_TITLE}: open or choose an image layer first.")
            return False
        return self._run(layer, np.array([[row, col]], dtype=float), if_busy="queue")

    def predict_all(self) -> bool:
        """Detect every source of the chosen layer and predict them in one batch.

        The detection runs in the job thread too.

        Returns
        -------
        bool
            Whether a job started.
        """
        layer = self.source_layer
        if layer is None:
            self.jobs.report(f"{_TITLE}: open or choose an image layer first.")
            return False
        return self._run(layer, None)

    def predict_spectrum(self) -> bool:
        """Predict the chosen spectrum layer's galaxy with the spectra-only model.

        The request to the model worker runs in the dock's job thread; the row arrives
        when it ends.

        Returns
        -------
        bool
            Whether a job started.
        """
        layer = layer_named(self.viewer, self.spectrum_layer.currentText())
        if layer is None:
            self.jobs.report(f"{_TITLE}: open an SDSS spectrum first.")
            return False
        return self.jobs.start(
            predict_spectrum_of,
            layer.name,
            layer.metadata[SPECTRUM_KEY],
            done=self._on_done,
            text=f"spectrum '{layer.name}': predicting with spectra-only…",
        )

    def _on_mouse_drag(self, viewer: Any, event: Any) -> Any:
        if not self.click_box.isChecked() or getattr(event, "button", 1) != 1:
            return
        if "Shift" in [str(m) for m in getattr(event, "modifiers", ())]:
            return
        layer = self.source_layer
        if layer is None:
            return
        if not (yield from follow_click(event)):
            return
        row, col = np.asarray(layer.world_to_data(event.position), dtype=float)[-2:]
        self.predict_at(row, col)

    # -- results --------------------------------------------------------------------
    def _on_done(self, value: tuple[str, list[GalaxyResult]]) -> None:
        layer_name, results = value
        if not results:
            self.jobs.report(f"{_TITLE}: no sources detected in '{layer_name}'.", error=False)
            return
        for result in results:
            self.results.append((layer_name, result))
            self._append_row(layer_name, result)
        self._update_points()
        done = sum(r.predicted for r in results)
        last = results[-1] if results else None
        if len(results) == 1 and last is not None:
            if last.predicted:
                interval = interval_95_text(last)
                self.jobs.status.setText(
                    f"log age {with_error(last.log_age, last.log_age_err)} (age "
                    f"{10 ** (last.log_age - 9):.1f} Gyr), [M/H] "
                    f"{with_error(last.mh, last.mh_err, '+')} with {last.model}"
                    + (f" ({interval})" if interval else "")
                    + (f"; flagged: {last.ood_reason}" if last.ood else "")
                )
            else:
                self.jobs.status.setText(f"not predicted ({last.status}): {last.reason}")
        else:
            self.jobs.status.setText(f"{done} of {len(results)} galaxies predicted")

    def _append_row(self, layer_name: str, result: GalaxyResult) -> None:
        values = result.row_dict()
        cells = [layer_name] + [_cell(result, c, values) for c in _SHOWN[1:]]
        index = self.table.rowCount()
        self.table.insertRow(index)
        interval = interval_95_text(result)
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if _SHOWN[column] in ("log_age", "mh") and interval:
                item.setToolTip(f"± is 1 sigma (68%); {interval}")
            self.table.setItem(index, column, item)

    def _update_points(self) -> None:
        placed = [r for _, r in self.results if np.isfinite(r.row) and np.isfinite(r.col)]
        if not placed:
            return
        coords = np.array([[r.row, r.col] for r in placed], dtype=float).reshape(-1, 2)
        features = {
            "log_age": np.array([r.log_age for r in placed], dtype=float),
            "mh": np.array([r.mh for r in placed], dtype=float),
            "status": np.array([r.status for r in placed], dtype=object),
            "ood": np.array([r.ood for r in placed], dtype=bool),
            "label": np.array([_point_label(r) for r in placed], dtype=object),
        }
        colours = ["lime" if r.predicted else "orange" for r in placed]
        # flagged predictions (out of distribution): a red-edged diamond
        borders = ["red" if r.ood else "black" for r in placed]
        symbols = ["diamond" if r.ood else "disc" for r in placed]
        if POINTS_LAYER in self.viewer.layers:
            points = self.viewer.layers[POINTS_LAYER]
            points.data = coords
            points.features = features
            points.face_color = colours
            points.border_color = borders
            points.symbol = symbols
            points.refresh()
        else:
            layer = self.source_layer
            self.viewer.add_points(
                coords,
                name=POINTS_LAYER,
                features=features,
                face_color=colours,
                border_color=borders,
                border_width=0.25,
                symbol=symbols,
                size=8,
                text={"string": "{label}", "color": "white", "size": 9, "anchor": "upper_left"},
                scale=layer.scale[-2:] if layer is not None else None,
                translate=layer.translate[-2:] if layer is not None else None,
            )
        if self.source_layer is not None:
            self.viewer.layers.selection.active = self.source_layer

    def results_table(self) -> Any:
        """All rows so far as an astropy Table."""
        from astropy.table import Table

        rows = [{"layer": name, **result.row_dict()} for name, result in self.results]
        return Table(rows=rows, names=_COLUMNS) if rows else Table(names=_COLUMNS)

    def save_table(self, path: str | os.PathLike) -> Path:
        """Write the results (ECSV or CSV by suffix), atomically."""
        from napari_galam.io.writers import write_table
        from napari_galam.models.registry import interval_95_note

        table = self.results_table()
        table.meta["interval_95"] = interval_95_note(table["model"])
        return write_table(path, table)

    def _on_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save predictions", "", "ECSV (*.ecsv);;CSV (*.csv)"
        )
        if not path:
            return
        try:
            self.jobs.status.setText(f"Saved {self.save_table(path)}")
        except (GalamError, OSError) as exc:
            self.jobs.report(f"{_TITLE}: could not save {path}: {exc}")
