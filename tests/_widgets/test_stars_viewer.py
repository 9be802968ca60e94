"""The Hubble Deep Field's spiked stars are rejected as stars in a real viewer.

By a click in the Galaxy QA dock (drawn in the star colour, the reason in the status
line), by a click in the predict dock and by its "predict all" (the model in the shared
worker process), with the star check on by default and the PSF taken from the field.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_galam._widgets._model_worker import stop_shared_worker
from napari_galam._widgets.predict_dock import PredictDock
from napari_galam._widgets.qa_dock import QA_LAYER_NAMES, QADock
from napari_galam.models.registry import available_models
from napari_galam.pipeline.qa import STATUS_COLOURS

HAVE_MODEL = "mmlforgalam" in available_models()

#: The field's stars with diffraction spikes (row, col) and a galaxy beside the first.
HDF_STARS = [(578, 754), (218, 146), (166, 254)]
HDF_GALAXY = (473, 727)


def _near(results, row, col, distance=6.0):
    """The results within ``distance`` px of (row, col)."""
    return [r for _, r in results if np.hypot(r.row - row, r.col - col) <= distance]


def test_qa_dock_clicks_reject_the_stars_and_draw_them_as_stars(make_napari_viewer):
    from napari.utils.colormaps.standardize_color import transform_color

    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-galam", "Galaxy QA")
    assert isinstance(dock, QADock) and dock.parameters.star_check
    viewer.open_sample("napari-galam", "hubble_deep_field")
    star_colour = transform_color(STATUS_COLOURS["star"])[0]
    for row, col in HDF_STARS:
        dock.pick_galaxy(float(row), float(col))
        dock.jobs.wait()
        assert dock.result.status == "star", (row, col, dock.result.reason)
        text = dock.jobs.status.text()
        assert text.startswith("star") and "point source (star)" in text
        shapes = viewer.layers[QA_LAYER_NAMES["shapes"]]
        target = list(shapes.features["role"]).index("target")
        assert np.allclose(shapes.edge_color[target], star_colour)
    dock.pick_galaxy(*map(float, HDF_GALAXY))
    dock.jobs.wait()
    assert dock.result.status in ("accepted", "blended"), dock.result.reason


@pytest.fixture
def predict_dock(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = PredictDock(viewer)
    viewer.window.add_dock_widget(widget, name="Galaxy age & [M/H]")
    viewer.open_sample("napari-galam", "hubble_deep_field")
    yield viewer, widget
    stop_shared_worker()
    assert "tensorflow" not in sys.modules


@pytest.mark.skipif(not HAVE_MODEL, reason="no shipped MMLforGalAM model in this checkout")
def test_predict_dock_rejects_the_stars_by_click_and_by_predict_all(predict_dock):
    viewer, widget = predict_dock
    for row, col in HDF_STARS:
        assert widget.predict_at(row, col)
        widget.jobs.wait(timeout=300)
    for (_, result), (row, col) in zip(widget.results, HDF_STARS, strict=True):
        assert result.status == "star" and not result.predicted, (row, col, result.reason)
        assert result.reason.startswith("point source (star)")
    widget.results.clear()
    assert widget.predict_all()
    widget.jobs.wait(timeout=600)
    for row, col in HDF_STARS:
        found = _near(widget.results, row, col)
        assert found and all(r.status == "star" for r in found), (row, col, found)
    statuses = [r.status for _, r in widget.results]
    assert statuses.count("accepted") > 10 * statuses.count("star") > 0
    assert any(r.predicted for _, r in widget.results)
