"""The Galaxy QA dock in a real napari viewer (run under Xvfb)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from napari_galam._widgets import qa_dock as qa_dock_module
from napari_galam._widgets.qa_dock import QA_LAYER_NAMES, QADock
from napari_galam.pipeline.qa import QA_STATUSES

# Galaxies of the Hubble Deep Field (row, col): the brightest local maxima of the
# smoothed grey image, 25 px apart.
HDF_GALAXIES = [
    (473, 727), (578, 754), (490, 978), (166, 819), (738, 774), (333, 308), (716, 422),
    (402, 124), (591, 657), (108, 291), (488, 87), (166, 254), (723, 540), (403, 420),
    (604, 281), (596, 499), (217, 146), (151, 447), (441, 511), (312, 335),
]  # fmt: skip


def blob(shape, row, col, amplitude, radius):
    rows, cols = np.indices(shape, dtype=float)
    return amplitude * np.exp(-((np.hypot(rows - row, cols - col) / radius) ** 0.8))


def blended_cutout(seed=0):
    rng = np.random.default_rng(seed)
    image = blob((128, 128), 64, 58, 150, 5) + blob((128, 128), 64, 72, 80, 4)
    return (image + rng.normal(0, 1, image.shape)).astype(np.float32)


@pytest.fixture
def notes(monkeypatch):
    """Notifications the dock and its job runner send, as (level, message)."""
    import napari.utils.notifications

    seen: list[tuple[str, str]] = []
    for level in ("error", "warning", "info"):
        for module in (qa_dock_module, napari.utils.notifications):
            monkeypatch.setattr(
                module, f"show_{level}", lambda msg, level=level: seen.append((level, msg))
            )
    return seen


@pytest.fixture
def dock_and_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-galam", "Galaxy QA")
    assert isinstance(dock, QADock)
    return dock, viewer


def _not_blank(path: Path) -> None:
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 10, f"{path} looks blank"


def test_whole_cutout_gives_layers_of_the_right_types(dock_and_viewer, notes):
    dock, viewer = dock_and_viewer
    viewer.add_image(blended_cutout(), name="cutout")
    dock.layer_box.setCurrentText("cutout")
    dock.run_whole_layer()
    dock.jobs.wait()
    result = dock.result
    assert result is not None and result.status == "blended"
    shapes = viewer.layers[QA_LAYER_NAMES["shapes"]]
    labels = viewer.layers[QA_LAYER_NAMES["labels"]]
    points = viewer.layers[QA_LAYER_NAMES["points"]]
    image = viewer.layers[QA_LAYER_NAMES["image"]]
    assert type(shapes).__name__ == "Shapes" and type(labels).__name__ == "Labels"
    assert type(points).__name__ == "Points" and type(image).__name__ == "Image"
    roles = list(shapes.features["role"])
    assert roles.count("target") == 1 and roles.count("mask") == 1
    assert roles.count("moments") == 16  # the dashed moment ellipse
    assert len(shapes.data) == len(result.masking.candidates) + 1 + 16
    assert shapes.shape_type[roles.index("moments")] == "path"
    target_colour = shapes.edge_color[roles.index("target")]
    np.testing.assert_allclose(target_colour[:3], [1.0, 127 / 255, 14 / 255], atol=0.01)
    assert labels.data.max() == result.deblend.n_segments
    kinds = list(points.features["kind"])
    assert kinds.count("peak") == result.deblend.n_segments
    assert kinds.count("saddle") == len(result.deblend.saddle_level) >= 1
    assert image.data.shape == (128, 128)
    assert "blended" in dock.jobs.status.text()
    assert not [n for n in notes if n[0] == "error"]


def test_form_is_generated_from_the_parameter_specs(dock_and_viewer):
    from napari_galam.parameters import parameter_specs
    from napari_galam.pipeline.qa import QAParameters

    dock, _ = dock_and_viewer
    specs = parameter_specs(QAParameters)
    assert specs and set(dock.form.widgets) == {spec.name for spec in specs}
    for spec in specs:
        assert dock.form.widgets[spec.name].toolTip() == spec.help
    assert dock.parameters == QAParameters()  # the form starts at the defaults, exactly


def test_parameter_change_reruns_in_a_thread(dock_and_viewer, qtbot, notes):
    dock, viewer = dock_and_viewer
    viewer.add_image(blended_cutout(1), name="cutout")
    dock.layer_box.setCurrentText("cutout")
    dock.run_whole_layer()  # threaded
    qtbot.waitUntil(lambda: dock.result is not None and not dock.jobs.busy, timeout=20000)
    first = dock.result
    assert first.status == "blended"
    area_before = viewer.layers[QA_LAYER_NAMES["labels"]].data.astype(bool).sum()
    shapes = viewer.layers[QA_LAYER_NAMES["shapes"]]
    mask_before = shapes.data[list(shapes.features["role"]).index("mask")]
    dock.form.widgets["mask_scale"].setValue(3.0)
    qtbot.waitUntil(lambda: dock.result is not first and not dock.jobs.busy, timeout=20000)
    shapes = viewer.layers[QA_LAYER_NAMES["shapes"]]
    mask_after = shapes.data[list(shapes.features["role"]).index("mask")]
    assert np.ptp(mask_after[:, 1]) > 1.8 * np.ptp(mask_before[:, 1])
    assert dock.result.masking.mask_scale == 3.0
    # One level cannot split the pair: the verdict becomes "accepted".
    second = dock.result
    dock.form.widgets["n_levels"].setValue(1)
    qtbot.waitUntil(lambda: dock.result is not second and not dock.jobs.busy, timeout=20000)
    assert dock.result.status == "accepted"
    assert viewer.layers[QA_LAYER_NAMES["labels"]].data.astype(bool).sum() == area_before
    third = dock.result
    dock.form.widgets["edges"].setCurrentText("canny")
    qtbot.waitUntil(lambda: dock.result is not third and not dock.jobs.busy, timeout=20000)
    assert dock.parameters.edges == "canny" and dock.result.masking.target is not None
    assert not [n for n in notes if n[0] == "error"]


def faint_companion(seed=3):
    """A bright elongated galaxy with a faint neighbour on its slope (no peak of its own)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((128, 128), dtype=float)
    theta = np.radians(30.0)
    u = (cols - 63.5) * np.cos(theta) + (rows - 63.5) * np.sin(theta)
    v = -(cols - 63.5) * np.sin(theta) + (rows - 63.5) * np.cos(theta)
    image = 200.0 * np.exp(-((np.hypot(u, v / 0.75) / 8.0) ** 0.8))
    image = image + blob((128, 128), 72.5, 54.5, 30.0, 3.0)
    return (image + rng.normal(0, 1, image.shape)).astype(np.float32)


def test_toggling_the_companion_check_reruns_and_updates_the_points(dock_and_viewer, qtbot, notes):
    dock, viewer = dock_and_viewer
    viewer.add_image(faint_companion(), name="cutout")
    dock.layer_box.setCurrentText("cutout")
    dock.form.widgets["companion_check"].setChecked(False)
    dock.run_whole_layer()  # threaded
    qtbot.waitUntil(lambda: dock.result is not None and not dock.jobs.busy, timeout=20000)
    first = dock.result
    assert first.status == "accepted" and first.companions is None
    points = viewer.layers[QA_LAYER_NAMES["points"]]
    assert "companion" not in list(points.features["kind"])
    dock.form.widgets["companion_check"].setChecked(True)
    qtbot.waitUntil(lambda: dock.result is not first and not dock.jobs.busy, timeout=20000)
    second = dock.result
    assert second.status == "blended" and second.companions.n_companions == 1
    points = viewer.layers[QA_LAYER_NAMES["points"]]
    kinds = list(points.features["kind"])
    assert kinds.count("companion") == 1
    ring = np.asarray(points.data)[kinds.index("companion")]
    assert np.hypot(ring[0] - 72.5, ring[1] - 54.5) < 3  # on the neighbour
    assert "blended" in dock.jobs.status.text()
    dock.form.widgets["companion_check"].setChecked(False)
    qtbot.waitUntil(lambda: dock.result is not second and not dock.jobs.busy, timeout=20000)
    assert dock.result.status == "accepted"
    assert "companion" not in list(viewer.layers[QA_LAYER_NAMES["points"]].features["kind"])
    assert not [n for n in notes if n[0] == "error"]


def test_failures_become_notifications(dock_and_viewer, notes):
    dock, viewer = dock_and_viewer
    dock.run_whole_layer()  # no layer at all
    assert notes and notes[-1][0] == "warning" and "image layer" in notes[-1][1]
    viewer.add_image(np.zeros((4, 32, 32), dtype=np.float32), name="stack")
    dock.layer_box.setCurrentText("stack")
    dock.run_whole_layer()
    assert notes[-1][0] == "error" and "not a 2-D image" in notes[-1][1]
    viewer.add_image(np.full((64, 64), 3.0, dtype=np.float32), name="flat")
    dock.layer_box.setCurrentText("flat")
    dock.run_whole_layer()
    dock.jobs.wait()
    assert notes[-1][0] == "warning" and "flat" in notes[-1][1]
    assert dock.result.status == "flat"
    dock.pick_galaxy(500.0, 10.0)  # outside the 64x64 layer
    assert notes[-1][0] == "warning" and "outside" in notes[-1][1]


def test_clicking_hubble_deep_field_galaxies(dock_and_viewer, notes, tmp_path):
    dock, viewer = dock_and_viewer
    viewer.open_sample("napari-galam", "hubble_deep_field")
    layer = viewer.layers["Hubble Deep Field"]
    dock.layer_box.setCurrentText(layer.name)
    dock.size_box.setValue(96)
    verdicts = []
    for row, col in HDF_GALAXIES:
        dock.pick_galaxy(float(row), float(col))
        dock.jobs.wait()
        result = dock.result
        assert result.status in QA_STATUSES
        assert result.masking.target is not None or result.reason
        verdicts.append(result.status)
    assert len(verdicts) >= 20
    assert verdicts.count("accepted") >= 10
    # A click through the viewer's mouse callback (press, release, no drag).
    dock.click_box.setChecked(True)
    row, col = HDF_GALAXIES[0]
    event = SimpleNamespace(type="mouse_press", position=(row, col), button=1)
    callback = dock._on_mouse_drag(viewer, event)
    next(callback)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(callback)
    dock.jobs.wait()
    # A drag (panning) picks nothing.
    before = dock.result
    event = SimpleNamespace(type="mouse_press", position=(300.0, 300.0), button=1)
    callback = dock._on_mouse_drag(viewer, event)
    next(callback)
    event.type, event.position = "mouse_move", (320.0, 330.0)
    next(callback)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(callback)
    dock.jobs.wait()
    assert dock.result is before
    target = dock.result.masking.target
    shapes = viewer.layers[QA_LAYER_NAMES["shapes"]]
    # The layers sit on the galaxy in the field.
    assert abs(shapes.translate[0] - (row - 48)) < 1 and abs(shapes.translate[1] - (col - 48)) < 1
    assert abs(target.x + shapes.translate[1] - col) < 6
    viewer.window.resize(1400, 900)
    viewer.camera.center = (row, col + 52)
    viewer.camera.zoom = 3
    shot = tmp_path / "qa_dock_viewer.png"
    viewer.screenshot(str(shot), canvas_only=False, flash=False)
    _not_blank(shot)
    dock_shot = tmp_path / "qa_dock.png"
    dock.grab().save(str(dock_shot))
    _not_blank(dock_shot)
    keep = os.environ.get("GALAM_KEEP_SCREENSHOTS")
    if keep:
        import shutil

        shutil.copy(shot, Path(keep) / shot.name)
        shutil.copy(dock_shot, Path(keep) / dock_shot.name)


def test_huge_lazy_field_is_refused_whole_but_clickable(dock_and_viewer, notes, monkeypatch):
    da = pytest.importorskip("dask.array")
    from napari_galam._widgets.qa_dock import layer_image

    dock, viewer = dock_and_viewer
    field = da.zeros((20000, 20000), dtype=np.uint8, chunks=(2000, 2000))
    assert layer_image(SimpleNamespace(data=field, name="f", rgb=False)) is field  # not read
    # A small layer stands in the viewer; the dock reads the lazy field behind it.
    viewer.add_image(np.zeros((8, 8), np.float32), name="field")
    dock.layer_box.setCurrentText("field")
    monkeypatch.setattr(qa_dock_module, "layer_image", lambda _layer: field)
    dock.run_whole_layer()
    assert notes[-1][0] == "error" and "20000x20000 field" in notes[-1][1]
    dock.pick_galaxy(5000.0, 5000.0)
    dock.jobs.wait()
    assert dock.result.status == "flat" and notes[-1][0] == "warning"


def test_centre_offset_test_applies_to_cutouts_not_to_clicks(dock_and_viewer, notes):
    # The extended check calls a galaxy whose ellipse sits > 3 px off the cutout centre
    # blended (a merged neighbour); a cutout taken around a click is centred on the
    # click, so there the test is skipped.
    dock, viewer = dock_and_viewer
    dock.form.widgets["companion_check"].setChecked(True)
    rng = np.random.default_rng(2)
    rows, cols = np.indices((200, 200), dtype=float)
    field = 150.0 * np.exp(-(((rows - 100) / 0.7) ** 2 + (cols - 100) ** 2) / (2 * 100.0))
    field = (field + rng.normal(0, 1, field.shape)).astype(np.float32)
    viewer.add_image(field[36:164, 42:170], name="off-centre cutout")  # galaxy 6 px left
    dock.layer_box.setCurrentText("off-centre cutout")
    dock.run_whole_layer()
    dock.jobs.wait()
    assert dock.result.status == "blended" and "cutout centre" in dock.result.reason
    viewer.add_image(field, name="field")
    dock.layer_box.setCurrentText("field")
    dock.click_box.setChecked(True)
    dock.pick_galaxy(100.0, 106.0)  # a click 6 px off the galaxy
    dock.jobs.wait()
    assert dock.result.status == "accepted", dock.result.reason
    assert not [n for n in notes if n[0] == "error"]
