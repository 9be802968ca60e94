"""The "Galaxy QA" dock: masking ellipse, deblended sources and saddle points as layers.

Pick an image layer, then either run on the whole layer (a cutout) or tick "click a
galaxy" and click one in a large field: a cutout of the chosen size is taken around the
click. The dock runs :func:`napari_galam.pipeline.qa.assess_galaxy` in a worker thread
and shows the result as four layers placed on the galaxy:

- Shapes ``QA ellipses``: the target ellipse coloured by verdict (accepted green,
  blended orange, rejected red), the mask ellipse and the other fitted ellipses
  thinner, and the light-weighted moment ellipse (the reported shape) dashed white;
- Labels ``QA segments``: the deblended sources;
- Points ``QA peaks & saddles``: the peak of each source (crosses), companions found by
  the optional rotation-residual check (gold rings) and the saddle point
  between each pair of touching sources (x), with their level and label pair;
- Image ``QA model input``: the masked, cropped 128x128 image the models see, drawn
  beside the cutout.

Changing a parameter re-runs on the current galaxy without blocking the viewer. Errors
become napari notifications; nothing raises into Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_galam._widgets._choices import follow_click, layer_named, refill_choices
from napari_galam.core.cutout import cutout_around
from napari_galam.core.masking import MAX_MASKING_PIXELS
from napari_galam.errors import GalamError, GalamInputError
from napari_galam.pipeline.qa import (
    COMPANION_CHECK_DEFAULT,
    STATUS_COLOURS,
    GalaxyQA,
    QAParameters,
    assess_galaxy,
)

if TYPE_CHECKING:
    import napari

__all__ = ["QADock", "QA_LAYER_NAMES", "layer_image"]

#: Names of the layers the dock adds and updates.
QA_LAYER_NAMES = {
    "shapes": "QA ellipses",
    "labels": "QA segments",
    "points": "QA peaks & saddles",
    "image": "QA model input",
}


@dataclass(frozen=True)
class _Galaxy:
    """The galaxy being inspected: its pixels and where they sit in the layer."""

    layer_name: str
    data: Any
    origin: tuple[float, float]  # (row, col) of data[0, 0] in the layer's data pixels
    centre: tuple[float, float] | None  # the click, or None for the whole layer


def layer_image(layer: Any) -> Any:
    """The pixels of an image layer, ``(ny, nx)`` or ``(ny, nx, 3)``, not yet read.

    Lazy layer data (dask, zarr) is returned as it is, so that a click in a huge field
    reads only the cutout around it.

    Raises
    ------
    GalamInputError
        For layers that are not 2-D images (stacks, cubes, 2-channel data...).
    """
    data = layer.data
    if isinstance(data, (list, tuple)):  # multiscale: the full-resolution level
        data = data[0]
    shape = tuple(data.shape)
    if getattr(layer, "rgb", False):
        if len(shape) != 3:
            raise GalamInputError(f"layer {layer.name!r}: RGB data of shape {shape} is not 2-D.")
    elif len(shape) != 2:
        raise GalamInputError(
            f"layer {layer.name!r}: data of shape {shape} is not a 2-D image or RGB; "
            "galaxy QA needs one cutout or field."
        )
    return data  # may be lazy (dask): callers read only what they need


#: Vertices of the dashed moment ellipse (a dash of 3 vertices every 4).
_DASH_VERTICES = 64


class QADock(QWidget):
    """Galaxy QA of the chosen image layer or of a clicked galaxy."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.result: GalaxyQA | None = None
        self.galaxy: _Galaxy | None = None
        self.synchronous = False  # tests may run the work in the GUI thread
        self._worker: Any = None
        self._rerun = False

        self.layer_box = QComboBox()
        self.layer_box.setToolTip("Image layer to check")
        self.run_button = QPushButton("Run on whole layer")
        self.run_button.setToolTip(
            "Treat the whole layer as one cutout with the galaxy at the centre"
        )
        self.click_box = QCheckBox("Click a galaxy in the viewer")
        self.click_box.setToolTip("Take a cutout around each left click (no drag) on the image")
        self.size_box = QSpinBox()
        self.size_box.setRange(16, 1024)
        self.size_box.setValue(128)
        self.size_box.setSuffix(" px")
        self.size_box.setToolTip("Side of the cutout taken around a click")
        self.tolerance_box = QDoubleSpinBox()
        self.tolerance_box.setRange(0.5, 255.0)
        self.tolerance_box.setValue(36.0)
        self.tolerance_box.setToolTip("Isodata convergence tolerance, grey levels (0-255)")
        self.scale_box = QDoubleSpinBox()
        self.scale_box.setRange(0.5, 5.0)
        self.scale_box.setSingleStep(0.1)
        self.scale_box.setValue(1.5)
        self.scale_box.setToolTip("The mask keeps the ellipse enlarged by this factor")
        self.edges_box = QComboBox()
        self.edges_box.addItems(["outline", "canny"])
        self.edges_box.setToolTip(
            "Contours of the binary image: region outlines, or its Canny edges as the "
            "released pipeline (gaps make open arcs on noisy cutouts)"
        )
        self.levels_box = QSpinBox()
        self.levels_box.setRange(1, 512)
        self.levels_box.setValue(90)
        self.levels_box.setToolTip("Deblending thresholds (photutils n_levels)")
        self.contrast_box = QDoubleSpinBox()
        self.contrast_box.setDecimals(7)
        self.contrast_box.setRange(0.0, 1.0)
        self.contrast_box.setSingleStep(1e-4)
        self.contrast_box.setValue(1e-6)
        self.contrast_box.setToolTip("Minimum flux fraction of a deblended source")
        self.pixels_box = QSpinBox()
        self.pixels_box.setRange(1, 10000)
        self.pixels_box.setValue(10)
        self.pixels_box.setToolTip("Minimum connected pixels of a source")
        self.companion_box = QCheckBox("Extended blend check (rotation residual)")
        self.companion_box.setChecked(COMPANION_CHECK_DEFAULT)
        self.companion_box.setToolTip(
            "Also flag a neighbour with no peak of its own, found in the target's "
            "180-degree rotation residual, and a whole-layer cutout whose galaxy sits "
            "more than 3 px off its centre (a merged neighbour); deblended knots with "
            "under 5% of the light are not counted. Off: the seed's procedure exactly"
        )
        self.companion_sigma_box = QDoubleSpinBox()
        self.companion_sigma_box.setRange(0.5, 50.0)
        self.companion_sigma_box.setSingleStep(0.5)
        self.companion_sigma_box.setValue(QAParameters.companion_nsigma)
        self.companion_sigma_box.setToolTip("Rotation-residual threshold of the companion check")
        self.status_label = QLabel("Pick a layer, then run or click a galaxy.")
        self.status_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("image layer", self.layer_box)
        form.addRow(self.run_button)
        form.addRow(self.click_box)
        form.addRow("cutout size", self.size_box)
        form.addRow("tolerance", self.tolerance_box)
        form.addRow("mask scale", self.scale_box)
        form.addRow("contours", self.edges_box)
        form.addRow("levels", self.levels_box)
        form.addRow("contrast", self.contrast_box)
        form.addRow("pixels", self.pixels_box)
        form.addRow(self.companion_box)
        form.addRow("companion sigma", self.companion_sigma_box)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

        self.run_button.clicked.connect(self.run_whole_layer)
        for box in (
            self.tolerance_box,
            self.scale_box,
            self.levels_box,
            self.contrast_box,
            self.pixels_box,
            self.companion_sigma_box,
        ):
            box.valueChanged.connect(self._on_parameter_changed)
        self.companion_box.toggled.connect(self._on_parameter_changed)
        self.edges_box.currentIndexChanged.connect(self._on_parameter_changed)
        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
        self._refresh_layers()

    # -- parameters and layers -----------------------------------------------------
    @property
    def parameters(self) -> QAParameters:
        """The parameters set in the dock."""
        return QAParameters(
            tolerance=float(self.tolerance_box.value()),
            mask_scale=float(self.scale_box.value()),
            edges=self.edges_box.currentText(),
            n_levels=int(self.levels_box.value()),
            contrast=float(self.contrast_box.value()),
            n_pixels=int(self.pixels_box.value()),
            companion_check=self.companion_box.isChecked(),
            companion_nsigma=float(self.companion_sigma_box.value()),
        )

    def _image_layers(self) -> list[Any]:
        from napari.layers import Image

        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image) and layer.name not in QA_LAYER_NAMES.values()
        ]

    def _refresh_layers(self, event: Any = None) -> None:
        refill_choices(self.layer_box, [layer.name for layer in self._image_layers()])

    @property
    def source_layer(self) -> Any | None:
        """The image layer chosen in the dock."""
        return layer_named(self.viewer, self.layer_box.currentText())

    # -- what to run on ---------------------------------------------------------------
    def run_whole_layer(self) -> None:
        """Run the QA on the whole chosen layer."""
        layer = self.source_layer
        if layer is None:
            show_warning("Galaxy QA: open or choose an image layer first.")
            return
        try:
            data = layer_image(layer)
            ny, nx = data.shape[:2]
            if ny * nx > MAX_MASKING_PIXELS:
                raise GalamInputError(
                    f"layer {layer.name!r} is a {nx}x{ny} field, too large to treat as one "
                    "cutout; tick 'Click a galaxy' and click one instead."
                )
            data = np.asarray(data)
        except GalamError as exc:
            show_error(f"Galaxy QA: {exc}")
            return
        self.galaxy = _Galaxy(layer.name, data, (0.0, 0.0), None)
        self.run()

    def pick_galaxy(self, row: float, col: float) -> None:
        """Run the QA on a cutout around ``(row, col)`` (data pixels of the chosen layer)."""
        layer = self.source_layer
        if layer is None:
            show_warning("Galaxy QA: open or choose an image layer first.")
            return
        try:
            data = layer_image(layer)
            cutout = cutout_around(data, row, col, int(self.size_box.value()))
        except GalamError as exc:
            show_warning(f"Galaxy QA: {exc}")
            return
        self.galaxy = _Galaxy(
            layer.name, cutout.data, (float(cutout.origin[0]), float(cutout.origin[1])), (row, col)
        )
        self.run()

    def _on_mouse_drag(self, viewer: Any, event: Any):
        """Viewer mouse callback: a left click without a drag picks a galaxy."""
        if not self.click_box.isChecked() or getattr(event, "button", 1) != 1:
            return
        layer = self.source_layer
        if layer is None:
            return
        if not (yield from follow_click(event)):
            return
        data_position = layer.world_to_data(event.position)
        row, col = float(data_position[-2]), float(data_position[-1])
        self.pick_galaxy(row, col)

    # -- running -----------------------------------------------------------------------
    def _on_parameter_changed(self, value: Any = None) -> None:
        if self.galaxy is not None:
            self.run()

    def run(self) -> None:
        """(Re-)run the QA on the current galaxy with the current parameters."""
        if self.galaxy is None:
            return
        galaxy, params = self.galaxy, self.parameters
        if galaxy.centre is not None:
            # A cutout around a click is centred on the click, not on the galaxy.
            params = replace(params, max_centre_offset=None)
        self.status_label.setText("running...")
        if self.synchronous:
            try:
                result = assess_galaxy(galaxy.data, params, deblend_all=True)
            except Exception as exc:  # noqa: BLE001 - shown to the person, never raised
                self._on_error(exc)
                return
            self._show(galaxy, result)
            return
        if self._worker is not None:
            self._rerun = True  # run again with the newest parameters when this one ends
            return
        from napari.qt.threading import create_worker

        worker = create_worker(assess_galaxy, galaxy.data, params, deblend_all=True)
        worker.returned.connect(lambda result, g=galaxy: self._show(g, result))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()

    def _on_finished(self) -> None:
        self._worker = None
        if self._rerun:
            self._rerun = False
            self.run()

    def _on_error(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, GalamError) else f"{type(exc).__name__}: {exc}"
        self.status_label.setText(f"error: {message}")
        show_error(f"Galaxy QA: {message}")

    # -- showing -----------------------------------------------------------------------
    def _show(self, galaxy: _Galaxy, result: GalaxyQA) -> None:
        try:
            self._update_layers(galaxy, result)
        except Exception as exc:  # noqa: BLE001 - a drawing problem must not reach Qt
            self._on_error(exc)
            return
        self.result = result
        text = f"{result.status}"
        if result.masking.target is not None:
            t = result.masking.target
            text += (
                f": ellipse at (x {t.x + galaxy.origin[1]:.1f}, y {t.y + galaxy.origin[0]:.1f}), "
                f"a {t.semi_major:.1f} px, b/a {t.axis_ratio:.2f}, angle {t.angle_deg:.0f} deg"
            )
        if result.deblend is not None and result.masking.ok:
            text += f"; {result.deblend.n_sources} source(s) in the ellipse"
        if result.reason:
            text += f" ({result.reason})"
        self.status_label.setText(text)
        if result.status in ("accepted", "blended"):
            show_info(f"Galaxy QA: {text}")
        else:
            show_warning(f"Galaxy QA: {text}")

    def _placement(self, galaxy: _Galaxy) -> tuple[np.ndarray, np.ndarray]:
        """World scale and translate of the cutout's pixel grid."""
        layer = (
            self.viewer.layers[galaxy.layer_name]
            if galaxy.layer_name in self.viewer.layers
            else None
        )
        scale = np.asarray(layer.scale[-2:], dtype=float) if layer is not None else np.ones(2)
        base = np.asarray(layer.translate[-2:], dtype=float) if layer is not None else np.zeros(2)
        return scale, base + np.asarray(galaxy.origin) * scale

    def _existing(self, kind: str) -> Any | None:
        """The dock's layer of this kind when it is still there with the right type."""
        name = QA_LAYER_NAMES[kind]
        if name not in self.viewer.layers:
            return None
        from napari import layers

        layer = self.viewer.layers[name]
        expected = {
            "shapes": layers.Shapes,
            "labels": layers.Labels,
            "points": layers.Points,
            "image": layers.Image,
        }
        if not isinstance(layer, expected[kind]):
            self.viewer.layers.remove(name)
            return None
        return layer

    def _update_layers(self, galaxy: _Galaxy, result: GalaxyQA) -> None:
        """Add the four QA layers, or update them in place (removing layers is slow)."""
        import pandas as pd

        scale, translate = self._placement(galaxy)
        status_colour = STATUS_COLOURS.get(result.status, "#d62728")
        masking = result.masking
        ny, nx = np.shape(galaxy.data)[:2]

        polygons, colours, widths, roles = [], [], [], []
        for ellipse in masking.candidates:
            if ellipse == masking.target:
                continue
            polygons.append(ellipse.polygon(48))
            colours.append("#1f9fdf")
            widths.append(0.6)
            roles.append("candidate")
        if masking.target is not None:
            polygons.append(masking.target.polygon(64))
            colours.append(status_colour)
            widths.append(2.0)
            roles.append("target")
            polygons.append(masking.target.scaled(masking.mask_scale).polygon(64))
            colours.append(status_colour)
            widths.append(0.8)
            roles.append("mask")
            if result.shape is not None:
                # The light-weighted moment ellipse (GalaxyQA.shape, the reported PA),
                # scaled to the contour ellipse's major axis, drawn dashed (napari
                # Shapes have no dash style: 16 short paths).
                moments = result.shape.scaled(
                    masking.target.semi_major / max(result.shape.semi_major, 1e-9)
                )
                outline = moments.polygon(_DASH_VERTICES)
                for start in range(0, _DASH_VERTICES, 4):
                    polygons.append(outline[start : start + 3])
                    colours.append("#ffffff")
                    widths.append(0.5)
                    roles.append("moments")
        else:
            # No ellipse: a red frame around the cutout says so.
            frame = [[0, 0], [0, nx - 1], [ny - 1, nx - 1], [ny - 1, 0]]
            polygons.append(np.array(frame, dtype=float))
            colours.append(status_colour)
            widths.append(2.0)
            roles.append("rejected")
        types = ["path" if role == "moments" else "polygon" for role in roles]
        shape_features = pd.DataFrame({"role": roles, "status": [result.status] * len(roles)})
        shapes = self._existing("shapes")
        if shapes is None:
            shapes = self.viewer.add_shapes(
                polygons,
                shape_type=types,
                name=QA_LAYER_NAMES["shapes"],
                face_color="transparent",
                edge_color=colours,
                edge_width=widths,
                features=shape_features,
            )
        else:
            shapes.data = list(zip(polygons, types, strict=True))
            shapes.face_color = "transparent"
            shapes.edge_color = colours
            shapes.edge_width = widths
            shapes.features = shape_features

        deblend = result.deblend
        segments = deblend.segments if deblend is not None else np.zeros((ny, nx), np.int32)
        labels = self._existing("labels")
        if labels is None:
            labels = self.viewer.add_labels(segments, name=QA_LAYER_NAMES["labels"], opacity=0.35)
        else:
            labels.data = segments

        coords, kinds, levels, pairs = [], [], [], []
        if deblend is not None:
            for (r, c), level, label in zip(
                deblend.peak_yx, deblend.peak_level, deblend.peak_label, strict=True
            ):
                coords.append((r, c))
                kinds.append("peak")
                levels.append(float(level))
                pairs.append(str(int(label)))
            for (r, c), level, (a, b) in zip(
                deblend.saddle_yx, deblend.saddle_level, deblend.saddle_labels, strict=True
            ):
                coords.append((r, c))
                kinds.append("saddle")
                levels.append(float(level))
                pairs.append(f"{int(a)}-{int(b)}")
        companions = result.companions
        if companions is not None:
            for (r, c), significance in zip(companions.yx, companions.significance, strict=True):
                coords.append((r, c))
                kinds.append("companion")
                levels.append(float(significance))
                pairs.append("")
        point_data = np.asarray(coords, dtype=float).reshape(-1, 2)
        point_features = pd.DataFrame({"kind": kinds, "level": levels, "labels": pairs})
        symbol_of = {"peak": "cross", "saddle": "x", "companion": "ring"}
        colour_of = {"peak": "#17becf", "saddle": "#ff00ff", "companion": "#ffd700"}
        symbols = [symbol_of[k] for k in kinds]
        point_colours = [colour_of[k] for k in kinds]
        points = self._existing("points")
        if points is None:
            points = self.viewer.add_points(
                point_data,
                name=QA_LAYER_NAMES["points"],
                features=point_features,
                size=max(3.0, 0.04 * max(ny, nx)),
            )
        else:
            points.data = point_data
            points.features = point_features
        if len(point_data):
            points.symbol = symbols
            points.face_color = point_colours
            points.border_color = point_colours

        model_input = result.model_input
        if model_input is None:
            model_input = np.zeros((128, 128), dtype=np.float32)
        rgb = model_input.ndim == 3
        image = self._existing("image")
        if image is not None and bool(image.rgb) != rgb:
            self.viewer.layers.remove(image.name)
            image = None
        if image is None:
            kwargs: dict[str, Any] = {"rgb": True} if rgb else {"colormap": "gray"}
            image = self.viewer.add_image(model_input, name=QA_LAYER_NAMES["image"], **kwargs)
        else:
            image.data = model_input
            if not rgb:
                image.reset_contrast_limits()

        for layer in (shapes, labels, points):
            layer.scale = scale
            layer.translate = translate
        image.scale = scale * (max(ny, nx) / 128.0)
        image.translate = translate + np.array([0.0, (nx + 8) * scale[1]])
        source = self.source_layer
        if source is not None:
            self.viewer.layers.selection.active = source

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        if self._on_mouse_drag in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
        super().closeEvent(event)
