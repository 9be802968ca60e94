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

The parameter form is generated from the fields of
:class:`~napari_galam.pipeline.qa.QAParameters` (their labels, ranges and help), expert
ones in a collapsed section. Changing a parameter re-runs on the current galaxy in the
dock's job thread, with the newest parameters, without blocking the viewer. Errors
become napari notifications; nothing raises into Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_galam._widgets._choices import follow_click, layer_named, refill_choices
from napari_galam._widgets._jobs import JobRunner
from napari_galam._widgets._parameter_form import ParameterForm
from napari_galam.core.cutout import cutout_around
from napari_galam.core.masking import MAX_MASKING_PIXELS
from napari_galam.errors import GalamError, GalamInputError
from napari_galam.parameters import parameter_specs
from napari_galam.pipeline.qa import (
    STATUS_COLOURS,
    GalaxyQA,
    QAParameters,
    assess_galaxy,
    with_field_psf,
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
    field: Any = None  # the whole layer's pixels when in memory (its PSF), else None


#: Largest in-memory layer (pixels) whose PSF the dock estimates from all of it.
_FIELD_PSF_MAX_PIXELS = 4096 * 4096


def assess_in_field(data: Any, params: QAParameters, field: Any, **kwargs: Any) -> GalaxyQA:
    """:func:`assess_galaxy` of a cutout, the star check's PSF taken from its whole field.

    ``field`` None (a lazy or very large layer): the cutout's own estimate.
    """
    if field is not None:
        params = with_field_psf(field, params)
    return assess_galaxy(data, params, **kwargs)


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

_TITLE = "Galaxy QA"


@dataclass(frozen=True)
class _ShapesData:
    """What the ``QA ellipses`` layer shows: one entry per path or polygon."""

    polygons: list[np.ndarray]
    types: list[str]
    colours: list[str]
    widths: list[float]
    features: Any  # pandas DataFrame: role, status


@dataclass(frozen=True)
class _PointsData:
    """What the ``QA peaks & saddles`` layer shows."""

    coords: np.ndarray  # (n, 2) row, col
    features: Any  # pandas DataFrame: kind, level, labels
    symbols: list[str]
    colours: list[str]


def _ellipse_shapes(result: GalaxyQA, ny: int, nx: int) -> _ShapesData:
    """The ellipses of a QA result (candidates, target, mask, dashed moments) as shapes.

    Without an ellipse, a frame around the cutout in the verdict's colour says so.
    """
    import pandas as pd

    status_colour = STATUS_COLOURS.get(result.status, "#d62728")
    masking = result.masking
    polygons, colours, widths, roles = [], [], [], []

    def add(polygon: np.ndarray, colour: str, width: float, role: str) -> None:
        polygons.append(polygon)
        colours.append(colour)
        widths.append(width)
        roles.append(role)

    for ellipse in masking.candidates:
        if ellipse != masking.target:
            add(ellipse.polygon(48), "#1f9fdf", 0.6, "candidate")
    if masking.target is not None:
        add(masking.target.polygon(64), status_colour, 2.0, "target")
        add(masking.target.scaled(masking.mask_scale).polygon(64), status_colour, 0.8, "mask")
        if result.shape is not None:
            # The light-weighted moment ellipse (GalaxyQA.shape, the reported PA),
            # scaled to the contour ellipse's major axis, drawn dashed (napari
            # Shapes have no dash style: 16 short paths).
            moments = result.shape.scaled(
                masking.target.semi_major / max(result.shape.semi_major, 1e-9)
            )
            outline = moments.polygon(_DASH_VERTICES)
            for start in range(0, _DASH_VERTICES, 4):
                add(outline[start : start + 3], "#ffffff", 0.5, "moments")
    else:
        frame = [[0, 0], [0, nx - 1], [ny - 1, nx - 1], [ny - 1, 0]]
        add(np.array(frame, dtype=float), status_colour, 2.0, "rejected")
    types = ["path" if role == "moments" else "polygon" for role in roles]
    features = pd.DataFrame({"role": roles, "status": [result.status] * len(roles)})
    return _ShapesData(polygons, types, colours, widths, features)


def _peak_points(result: GalaxyQA) -> _PointsData:
    """Peaks (crosses), saddles (x) and companions (rings) of a QA result as points."""
    import pandas as pd

    coords, kinds, levels, pairs = [], [], [], []
    deblend = result.deblend
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
    symbol_of = {"peak": "cross", "saddle": "x", "companion": "ring"}
    colour_of = {"peak": "#17becf", "saddle": "#ff00ff", "companion": "#ffd700"}
    return _PointsData(
        coords=np.asarray(coords, dtype=float).reshape(-1, 2),
        features=pd.DataFrame({"kind": kinds, "level": levels, "labels": pairs}),
        symbols=[symbol_of[k] for k in kinds],
        colours=[colour_of[k] for k in kinds],
    )


def _verdict_text(galaxy: _Galaxy, result: GalaxyQA) -> str:
    """One line: the verdict, the ellipse in layer pixels, the sources and the reason."""
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
    return text


class QADock(QWidget):
    """Galaxy QA of the chosen image layer or of a clicked galaxy.

    Attributes
    ----------
    form
        The parameter form generated from :class:`QAParameters` (``form.widgets`` by
        field name).
    jobs
        The dock's :class:`~napari_galam._widgets._jobs.JobRunner`; its status line is
        the dock's. Scripts and tests wait on ``jobs.wait()``.
    result, galaxy
        The last QA result and the galaxy it was run on.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.result: GalaxyQA | None = None
        self.galaxy: _Galaxy | None = None
        self.jobs = JobRunner(
            _TITLE, cancellable=False, idle_text="Pick a layer, then run or click a galaxy."
        )
        self.jobs.progress.setVisible(False)
        self._build_target_widgets()
        self.form = ParameterForm(parameter_specs(QAParameters))
        self._lay_out()
        self._connect(viewer)
        self._refresh_layers()

    def _build_target_widgets(self) -> None:
        """The widgets that say what to run on: layer, whole-layer button, click, size."""
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

    def _lay_out(self) -> None:
        target = QFormLayout()
        target.addRow("image layer", self.layer_box)
        target.addRow(self.run_button)
        target.addRow(self.click_box)
        target.addRow("cutout size", self.size_box)
        layout = QVBoxLayout(self)
        layout.addLayout(target)
        layout.addWidget(self.form)
        layout.addWidget(self.jobs)
        layout.addStretch(1)

    def _connect(self, viewer: napari.viewer.Viewer) -> None:
        self.run_button.clicked.connect(self.run_whole_layer)
        self.form.changed.connect(self._on_parameter_changed)
        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        viewer.mouse_drag_callbacks.append(self._on_mouse_drag)

    # -- parameters and layers -----------------------------------------------------
    @property
    def parameters(self) -> QAParameters:
        """The parameters set in the dock."""
        return QAParameters(**self.form.values())

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
            show_warning(f"{_TITLE}: open or choose an image layer first.")
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
            show_error(f"{_TITLE}: {exc}")
            return
        self.galaxy = _Galaxy(layer.name, data, (0.0, 0.0), None)
        self.run()

    def pick_galaxy(self, row: float, col: float) -> None:
        """Run the QA on a cutout around ``(row, col)`` (data pixels of the chosen layer)."""
        layer = self.source_layer
        if layer is None:
            show_warning(f"{_TITLE}: open or choose an image layer first.")
            return
        try:
            data = layer_image(layer)
            cutout = cutout_around(data, row, col, int(self.size_box.value()))
        except GalamError as exc:
            show_warning(f"{_TITLE}: {exc}")
            return
        in_memory = isinstance(data, np.ndarray) and data.shape[0] * data.shape[1] <= (
            _FIELD_PSF_MAX_PIXELS
        )
        self.galaxy = _Galaxy(
            layer.name,
            cutout.data,
            (float(cutout.origin[0]), float(cutout.origin[1])),
            (row, col),
            data if in_memory else None,
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
    def _on_parameter_changed(self) -> None:
        if self.galaxy is not None:
            self.run()

    def run(self) -> None:
        """(Re-)run the QA on the current galaxy with the current parameters.

        While a run is on, the newest request waits and replaces any older one waiting.
        """
        if self.galaxy is None:
            return
        galaxy, params = self.galaxy, self.parameters
        if galaxy.centre is not None:
            # A cutout around a click is centred on the click, not on the galaxy.
            params = replace(params, max_centre_offset=None)
        self.jobs.start(
            assess_in_field,
            galaxy.data,
            params,
            galaxy.field,
            deblend_all=True,
            done=partial(self._show, galaxy),
            text="running...",
            if_busy="latest",
        )

    # -- showing -----------------------------------------------------------------------
    def _show(self, galaxy: _Galaxy, result: GalaxyQA) -> None:
        self._update_layers(galaxy, result)
        self.result = result
        text = _verdict_text(galaxy, result)
        self.jobs.status.setText(text)
        if result.status in ("accepted", "blended"):
            show_info(f"{_TITLE}: {text}")
        else:
            show_warning(f"{_TITLE}: {text}")

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
        scale, translate = self._placement(galaxy)
        ny, nx = np.shape(galaxy.data)[:2]
        shapes = self._show_ellipses(_ellipse_shapes(result, ny, nx))
        labels = self._show_segments(result, ny, nx)
        points = self._show_points(_peak_points(result), ny, nx)
        image = self._show_model_input(result)
        for layer in (shapes, labels, points):
            layer.scale = scale
            layer.translate = translate
        image.scale = scale * (max(ny, nx) / 128.0)
        image.translate = translate + np.array([0.0, (nx + 8) * scale[1]])
        source = self.source_layer
        if source is not None:
            self.viewer.layers.selection.active = source

    def _show_ellipses(self, drawn: _ShapesData) -> Any:
        shapes = self._existing("shapes")
        if shapes is None:
            return self.viewer.add_shapes(
                drawn.polygons,
                shape_type=drawn.types,
                name=QA_LAYER_NAMES["shapes"],
                face_color="transparent",
                edge_color=drawn.colours,
                edge_width=drawn.widths,
                features=drawn.features,
            )
        shapes.data = list(zip(drawn.polygons, drawn.types, strict=True))
        shapes.face_color = "transparent"
        shapes.edge_color = drawn.colours
        shapes.edge_width = drawn.widths
        shapes.features = drawn.features
        return shapes

    def _show_segments(self, result: GalaxyQA, ny: int, nx: int) -> Any:
        deblend = result.deblend
        segments = deblend.segments if deblend is not None else np.zeros((ny, nx), np.int32)
        labels = self._existing("labels")
        if labels is None:
            return self.viewer.add_labels(segments, name=QA_LAYER_NAMES["labels"], opacity=0.35)
        labels.data = segments
        return labels

    def _show_points(self, drawn: _PointsData, ny: int, nx: int) -> Any:
        points = self._existing("points")
        if points is None:
            points = self.viewer.add_points(
                drawn.coords,
                name=QA_LAYER_NAMES["points"],
                features=drawn.features,
                size=max(3.0, 0.04 * max(ny, nx)),
            )
        else:
            points.data = drawn.coords
            points.features = drawn.features
        if len(drawn.coords):
            points.symbol = drawn.symbols
            points.face_color = drawn.colours
            points.border_color = drawn.colours
        return points

    def _show_model_input(self, result: GalaxyQA) -> Any:
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
            return self.viewer.add_image(model_input, name=QA_LAYER_NAMES["image"], **kwargs)
        image.data = model_input
        if not rgb:
            image.reset_contrast_limits()
        return image

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        if self._on_mouse_drag in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
        super().closeEvent(event)
