"""The "Gradients" dock: radial age and [M/H] gradients with bootstrap fits.

Pick an age map and a metallicity map (image layers on one grid), give the galaxy's
ellipse (typed in, taken from a Shapes layer, or read from the maps' metadata) and its
effective radius (typed in, or measured on a light image with a growth curve), and the
dock fits both gradients with :func:`napari_galam.core.gradients.bootstrap_gradient` and
plots them with :func:`napari_galam.plots.plot_gradient`. The figure exports to PNG/PDF
and the numbers to ECSV/CSV. The bootstrap (up to 10 000 fits) runs in the dock's
job thread.

Each slope's error covers the truth as often as it claims: a bootstrap over independent
resolution elements (the "resolution element" field: the PSF FWHM in pixels, filled from
the map's source file or survey), each spaxel moved by its own error where the map has
one, plus the model's own gradient error from its model card (maps made by the Spaxel
maps dock carry all of it, ``_layerdata.GRADIENT_ERRORS_KEY``). A map without a
calibrated model error says that its error is statistical only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
)

from napari_galam._layerdata import ELLIPSE_KEY, GRADIENT_ERRORS_KEY, RE_KEY
from napari_galam._widgets._choices import layer_named, refill_choices
from napari_galam._widgets._jobs import JobRunner
from napari_galam._widgets._mpl import MplDock
from napari_galam.core.gradients import (
    GalaxyEllipse,
    GradientFit,
    bootstrap_gradient,
    deprojected_radius,
    half_light_radius,
)
from napari_galam.errors import GalamInputError
from napari_galam.pipeline.gradient_errors import GradientErrorContext
from napari_galam.plots import plot_gradient

if TYPE_CHECKING:
    import napari

__all__ = ["GradientsDock", "GradientResult", "ellipse_from_shape", "fit_gradients"]

_NO_LAYER = "(none)"


def ellipse_from_shape(vertices: Any) -> GalaxyEllipse:
    """The ellipse of a napari Shapes ellipse, given its four bounding-box vertices.

    napari stores an ellipse as the corners of its (possibly rotated) bounding box in
    (row, column) order; the two edges give the axes and the rotation.
    """
    corners = np.asarray(vertices, dtype=float)[:, -2:]
    if corners.shape != (4, 2):
        raise GalamInputError(f"an ellipse shape has 4 corners, got {corners.shape[0]}.")
    row, col = corners.mean(axis=0)
    edge_a = corners[1] - corners[0]
    edge_b = corners[2] - corners[1]
    len_a, len_b = np.hypot(*edge_a), np.hypot(*edge_b)
    major, minor = (edge_a, len_a), (edge_b, len_b)
    if len_b > len_a:
        major, minor = minor, major
    if major[1] == 0:
        raise GalamInputError("the ellipse shape has zero size.")
    angle = float(np.degrees(np.arctan2(major[0][0], major[0][1])))  # from +x towards +y
    return GalaxyEllipse(
        x=float(col), y=float(row), angle_deg=angle, axis_ratio=minor[1] / major[1]
    )


@dataclass(frozen=True)
class GradientResult:
    """Both fits, with the geometry they were made with."""

    age: GradientFit
    mh: GradientFit
    ellipse: GalaxyEllipse
    r_e_pix: float
    age_layer: str
    mh_layer: str
    resolution_pix: float = 1.0

    def to_table(self) -> Any:
        """An astropy Table: one row per quantity, geometry in the metadata."""
        from astropy.table import Table

        rows = []
        for quantity, fit, unit in (("log_age", self.age, "dex"), ("mh", self.mh, "dex")):
            rows.append(
                {
                    "quantity": quantity,
                    "slope": fit.slope,
                    "slope_err": fit.slope_err,
                    "slope_err_stat": fit.slope_err_stat,
                    "model_sd": fit.model_sd,
                    "slope_sd_subsamples": fit.slope_sd,
                    "intercept": fit.intercept,
                    "intercept_sd": fit.intercept_sd,
                    "n_within_re": fit.n_within,
                    "n_outside_re": fit.n_outside,
                    "n_elements": fit.n_elements,
                    "n_boot": fit.slopes.size,
                    "status": fit.status,
                    "reason": fit.reason,
                    "unit": f"{unit}/R_e",
                    "error_note": fit.error_note if fit.ok else "",
                }
            )
        table = Table(rows=rows)
        table.meta.update(
            {
                "age_layer": self.age_layer,
                "mh_layer": self.mh_layer,
                "centre_x_pix": self.ellipse.x,
                "centre_y_pix": self.ellipse.y,
                "angle_deg": self.ellipse.angle_deg,
                "axis_ratio": self.ellipse.axis_ratio,
                "r_e_pix": self.r_e_pix,
                "resolution_pix": self.resolution_pix,
                "method": (
                    "slope: mean of bootstrap least-squares fits of 75% of the spaxels within "
                    "R_e (Liew-Cain et al. 2021, Sect. 3.3); slope_err: bootstrap over "
                    "resolution elements with each spaxel's error, plus the model's own "
                    "gradient error (model card), in quadrature"
                ),
            }
        )
        return table


def fit_gradients(
    age: np.ndarray,
    mh: np.ndarray,
    ellipse: GalaxyEllipse,
    r_e: float,
    n_boot: int,
    age_layer: str,
    mh_layer: str,
    resolution_pix: float = 1.0,
    contexts: tuple[GradientErrorContext | None, GradientErrorContext | None] = (None, None),
) -> GradientResult:
    """Bootstrap fits of both maps' gradients within R_e (seeds 0 and 1).

    Parameters
    ----------
    age, mh
        The log-age and [M/H] maps, 2-D and of one shape.
    ellipse, r_e
        The galaxy's ellipse and effective radius (pixels).
    n_boot
        Bootstrap samples per fit.
    age_layer, mh_layer
        Names of the maps' layers, kept with the result.
    resolution_pix
        The PSF's FWHM in pixels (independent elements are blocks two FWHM across).
    contexts
        What each map's layer says of its errors (model error, per-spaxel errors,
        bins), or None.
    """
    radius_re = deprojected_radius(age.shape, ellipse) / r_e
    fits = []
    for seed, (values, context) in enumerate(zip((age, mh), contexts, strict=True)):
        context = context or GradientErrorContext()
        errors = context.errors if context.errors is not None else None
        if errors is not None and errors.shape != values.shape:
            errors = None
        fits.append(
            bootstrap_gradient(
                radius_re,
                values,
                n_boot=n_boot,
                seed=seed,
                errors=errors,
                elements=context.elements_for(values.shape, resolution_pix),
                model_sd=context.model_sd,
            )
        )
    return GradientResult(
        age=fits[0],
        mh=fits[1],
        ellipse=ellipse,
        r_e_pix=r_e,
        age_layer=age_layer,
        mh_layer=mh_layer,
        resolution_pix=resolution_pix,
    )


def _spin(
    lo: float, hi: float, value: float, decimals: int = 2, step: float = 1.0
) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    return box


class GradientsDock(MplDock):
    """Fit and plot radial gradients of the age and [M/H] maps.

    Attributes
    ----------
    jobs
        The dock's :class:`~napari_galam._widgets._jobs.JobRunner` (the bootstrap runs
        there; its status line is the dock's).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer)
        self.figure.set_size_inches(5, 5)
        self.canvas.setMinimumHeight(380)
        self.result: GradientResult | None = None

        self.age_layer = QComboBox()
        self.mh_layer = QComboBox()
        self.light_layer = QComboBox()
        self.shapes_layer = QComboBox()
        self.centre_x = _spin(-1e5, 1e5, 0.0)
        self.centre_y = _spin(-1e5, 1e5, 0.0)
        self.angle = _spin(-180.0, 180.0, 0.0, 1, 5.0)
        self.axis_ratio = _spin(0.05, 1.0, 1.0, 3, 0.05)
        self.r_e = _spin(0.1, 1e5, 10.0, 2, 0.5)
        self.n_boot = QSpinBox()
        self.n_boot.setRange(10, 10_000)
        self.n_boot.setValue(100)
        self.resolution = _spin(0.5, 1000.0, 1.0, 2, 0.5)
        self.resolution.setToolTip(
            "The PSF's FWHM in pixels: the bootstrap of the slope's error draws whole "
            "independent elements (blocks two FWHM across, or bins), not spaxels."
        )
        self.resolution_note = QLabel("resolution unknown: give the PSF FWHM in pixels")
        self.resolution_note.setWordWrap(True)
        self.fit_button = QPushButton("Fit gradients")
        self.save_figure_button = QPushButton("Save figure…")
        self.save_table_button = QPushButton("Save table…")
        self.jobs = JobRunner(
            "Gradients", cancellable=False, idle_text="Choose the age and [M/H] maps, then fit."
        )

        form = QFormLayout()
        form.addRow("age map", self.age_layer)
        form.addRow("[M/H] map", self.mh_layer)
        form.addRow("ellipse from shapes", self.shapes_layer)
        form.addRow("centre x [px]", self.centre_x)
        form.addRow("centre y [px]", self.centre_y)
        form.addRow("angle [deg]", self.angle)
        form.addRow("axis ratio b/a", self.axis_ratio)
        form.addRow("R_e from light", self.light_layer)
        form.addRow("R_e [px]", self.r_e)
        form.addRow("bootstrap fits", self.n_boot)
        form.addRow("PSF FWHM [px]", self.resolution)
        form.addRow("", self.resolution_note)
        buttons = QHBoxLayout()
        buttons.addWidget(self.fit_button)
        buttons.addWidget(self.save_figure_button)
        buttons.addWidget(self.save_table_button)
        self._layout.insertLayout(0, form)
        self._layout.insertLayout(1, buttons)
        self._layout.insertWidget(2, self.jobs)

        self.fit_button.clicked.connect(self._on_fit_clicked)
        self.save_figure_button.clicked.connect(self._on_save_figure)
        self.save_table_button.clicked.connect(self._on_save_table)
        self.age_layer.currentTextChanged.connect(self._on_map_chosen)
        self.shapes_layer.currentTextChanged.connect(self._on_shapes_chosen)
        self.light_layer.currentTextChanged.connect(self._on_light_chosen)
        viewer.layers.events.inserted.connect(self._refresh_choices)
        viewer.layers.events.removed.connect(self._refresh_choices)
        self._refresh_choices()
        self.redraw()

    # -- layer choices -----------------------------------------------------------------
    def _refresh_choices(self, event: Any = None) -> None:
        images = [layer.name for layer in self.viewer.layers if layer._type_string == "image"]
        shapes = [layer.name for layer in self.viewer.layers if layer._type_string == "shapes"]
        refill_choices(self.age_layer, images)
        refill_choices(self.mh_layer, images)
        refill_choices(self.light_layer, images, none_item=_NO_LAYER)
        refill_choices(self.shapes_layer, shapes, none_item=_NO_LAYER)
        if (
            self.age_layer.currentText()
            and self.mh_layer.currentText() == self.age_layer.currentText()
        ):
            guess = next((n for n in images if "mh" in n.lower() or "m/h" in n.lower()), None)
            if guess:
                self.mh_layer.setCurrentText(guess)
        guess_age = next((n for n in images if "age" in n.lower()), None)
        if guess_age and event is not None and getattr(event, "value", None) is not None:
            if event.value.name == guess_age:
                self.age_layer.setCurrentText(guess_age)
                self._on_map_chosen(guess_age)

    def _layer(self, name: str) -> Any:
        return None if name == _NO_LAYER else layer_named(self.viewer, name)

    def set_ellipse(self, ellipse: GalaxyEllipse) -> None:
        """Fill the ellipse fields."""
        self.centre_x.setValue(ellipse.x)
        self.centre_y.setValue(ellipse.y)
        self.angle.setValue(((ellipse.angle_deg + 180.0) % 360.0) - 180.0)
        self.axis_ratio.setValue(ellipse.axis_ratio)

    def current_ellipse(self) -> GalaxyEllipse:
        """The ellipse in the fields."""
        return GalaxyEllipse(
            x=self.centre_x.value(),
            y=self.centre_y.value(),
            angle_deg=self.angle.value(),
            axis_ratio=self.axis_ratio.value(),
        )

    def _on_map_chosen(self, name: str) -> None:
        layer = self._layer(name)
        if layer is None:
            return
        meta = layer.metadata
        if ELLIPSE_KEY in meta:
            self.set_ellipse(GalaxyEllipse(**meta[ELLIPSE_KEY]))
        else:  # a sensible start: the map's centre, face-on
            ny, nx = layer.data.shape[-2:]
            self.set_ellipse(GalaxyEllipse((nx - 1) / 2, (ny - 1) / 2, 0.0, 1.0))
        if RE_KEY in meta:
            self.r_e.setValue(float(meta[RE_KEY]))
        context = meta.get(GRADIENT_ERRORS_KEY)
        if isinstance(context, GradientErrorContext) and context.resolution_pix:
            self.resolution.setValue(context.resolution_pix)
            self.resolution_note.setText(f"resolution: {context.resolution_note}")
        elif isinstance(context, GradientErrorContext):
            self.resolution_note.setText(
                f"resolution {context.resolution_note}: give the PSF FWHM in pixels"
            )

    def _on_shapes_chosen(self, name: str) -> None:
        layer = self._layer(name)
        if layer is None:
            return
        ellipses = [
            d for d, kind in zip(layer.data, layer.shape_type, strict=True) if kind == "ellipse"
        ]
        if not ellipses:
            self._report(f"Shapes layer '{name}' has no ellipse; draw one around the galaxy.")
            return
        try:
            self.set_ellipse(ellipse_from_shape(ellipses[-1]))
        except GalamInputError as exc:
            self._report(f"Shapes layer '{name}': {exc}")

    def _on_light_chosen(self, name: str) -> None:
        layer = self._layer(name)
        if layer is None:
            return
        data = np.asarray(layer.data, dtype=float)
        if layer.rgb:
            data = data.mean(axis=-1)
        if data.ndim != 2:
            self._report(f"Light layer '{name}' is not a 2-D image; choose a collapsed image.")
            return
        try:
            self.r_e.setValue(half_light_radius(data, self.current_ellipse()))
        except GalamInputError as exc:
            self._report(f"Light layer '{name}': {exc}")

    # -- fitting ---------------------------------------------------------------------
    def _report(self, message: str) -> None:
        self.jobs.report(message, error=False)

    def _fit_inputs(self) -> tuple[Any, ...]:
        """The arguments of :func:`fit_gradients` from the current choices.

        Raises
        ------
        GalamInputError
            When the maps are missing or not 2-D maps of one shape.
        """
        age_layer = self._layer(self.age_layer.currentText())
        mh_layer = self._layer(self.mh_layer.currentText())
        if age_layer is None or mh_layer is None:
            raise GalamInputError("choose an age map and an [M/H] map (image layers).")
        age = np.asarray(age_layer.data, dtype=float)
        mh = np.asarray(mh_layer.data, dtype=float)
        if age.ndim != 2 or mh.shape != age.shape:
            raise GalamInputError(
                f"maps must be 2-D and of one shape: '{age_layer.name}' is {age.shape}, "
                f"'{mh_layer.name}' is {mh.shape}."
            )
        contexts = tuple(
            context if isinstance(context, GradientErrorContext) else None
            for context in (
                age_layer.metadata.get(GRADIENT_ERRORS_KEY),
                mh_layer.metadata.get(GRADIENT_ERRORS_KEY),
            )
        )
        return (
            age,
            mh,
            self.current_ellipse(),
            self.r_e.value(),
            self.n_boot.value(),
            age_layer.name,
            mh_layer.name,
            self.resolution.value(),
            contexts,
        )

    def fit(self) -> GradientResult:
        """Fit both gradients from the current choices here (raises GalamInputError)."""
        result = fit_gradients(*self._fit_inputs())
        self._show_fit(result)
        return result

    def _on_fit_clicked(self) -> None:
        try:
            inputs = self._fit_inputs()
        except GalamInputError as exc:
            self._report(f"Gradients: {exc}")
            return
        self.jobs.start(fit_gradients, *inputs, done=self._show_fit, text="fitting gradients…")

    def _show_fit(self, result: GradientResult) -> None:
        self.result = result
        self.redraw()
        problems = [f.reason for f in (result.age, result.mh) if not f.ok]
        if problems:
            self._report(f"Gradients: {problems[0]}.")
        else:
            notes = {result.age.error_note, result.mh.error_note}
            self.jobs.status.setText(
                f"age {result.age.slope:+.3f} ± {result.age.slope_err:.3f}, "
                f"[M/H] {result.mh.slope:+.3f} ± {result.mh.slope_err:.3f} dex/R_e "
                f"(1σ; {result.age.n_within} spaxels in {result.age.n_elements} resolution "
                f"elements within R_e = {result.r_e_pix:.1f} px; {'; '.join(sorted(notes))})"
            )

    def draw(self) -> None:
        """Two panels: log age and [M/H] against R/R_e."""
        if self.result is None:
            ax = self.figure.add_subplot(111)
            ax.text(0.5, 0.5, "Fit gradients to plot them here", ha="center", va="center",
                    transform=ax.transAxes, color=self.theme_colors()["text"])  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            return
        top, bottom = self.figure.subplots(2, 1, sharex=True)
        plot_gradient(top, self.result.age, ylabel="log age [yr]", title="age")
        plot_gradient(bottom, self.result.mh, ylabel="[M/H] [dex]", title="[M/H]")
        top.set_xlabel("")

    # -- export ---------------------------------------------------------------------
    def export_figure(self, path: str | os.PathLike) -> Path:
        """Save the figure (PNG, PDF or SVG by suffix), atomically."""
        if self.result is None:
            raise GalamInputError("nothing to save yet: fit the gradients first.")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.part")
        self.figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150)
        os.replace(tmp, path)
        return path

    def export_table(self, path: str | os.PathLike) -> Path:
        """Save the fitted numbers as ECSV (or CSV by suffix), atomically."""
        if self.result is None:
            raise GalamInputError("nothing to save yet: fit the gradients first.")
        path = Path(path)
        fmt = "ascii.ecsv" if path.suffix.lower() != ".csv" else "ascii.csv"
        tmp = path.with_name(f".{path.name}.part")
        self.result.to_table().write(tmp, format=fmt, overwrite=True)
        os.replace(tmp, path)
        return path

    def _save_with_dialog(self, caption: str, filters: str, save: Any) -> None:
        path, _ = QFileDialog.getSaveFileName(self, caption, "", filters)
        if not path:
            return
        try:
            saved = save(path)
        except (GalamInputError, OSError) as exc:
            self._report(f"Gradients: could not save {path}: {exc}")
            return
        self.jobs.status.setText(f"Saved {saved}")

    def _on_save_figure(self) -> None:
        self._save_with_dialog(
            "Save gradient figure", "PNG (*.png);;PDF (*.pdf)", self.export_figure
        )

    def _on_save_table(self) -> None:
        self._save_with_dialog(
            "Save gradient numbers", "ECSV (*.ecsv);;CSV (*.csv)", self.export_table
        )
