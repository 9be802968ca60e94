"""The Gradients dock in a real viewer: maps with a known gradient in, slopes out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_galam._widgets.gradients_dock import GradientsDock, ellipse_from_shape
from napari_galam.core.gradients import GalaxyEllipse, deprojected_radius


def _maps(ellipse: GalaxyEllipse, r_e: float, shape=(73, 78), seed=0):
    rng = np.random.default_rng(seed)
    radius = deprojected_radius(shape, ellipse) / r_e
    light = np.exp(-1.678 * radius)  # exponential disc with this R_e
    age = 9.7 - 0.12 * radius + rng.normal(0, 0.05, shape)
    mh = -0.1 - 0.25 * radius + rng.normal(0, 0.05, shape)
    outside = radius > 2.5
    age[outside] = np.nan
    mh[outside] = np.nan
    return light, age, mh


def test_ellipse_from_napari_shape_round_trip(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    # a 40 x 20 px ellipse centred at (x=50, y=30), major axis 30 deg from +x towards +y,
    # given to napari as the corners of its rotated bounding box in (row, col) order
    theta = np.radians(30.0)
    major = 20.0 * np.array([np.sin(theta), np.cos(theta)])  # (row, col)
    minor = 10.0 * np.array([np.cos(theta), -np.sin(theta)])
    centre = np.array([30.0, 50.0])
    corners = [centre - major - minor, centre + major - minor, centre + major + minor,
               centre - major + minor]  # fmt: skip
    layer = viewer.add_shapes([np.array(corners)], shape_type="ellipse")
    ellipse = ellipse_from_shape(layer.data[0])
    assert (ellipse.x, ellipse.y) == pytest.approx((50.0, 30.0))
    assert ellipse.axis_ratio == pytest.approx(0.5)
    assert ellipse.angle_deg % 180.0 == pytest.approx(30.0)


def test_dock_fits_known_gradients_and_exports(make_napari_viewer, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    ellipse = GalaxyEllipse(x=38.5, y=35.0, angle_deg=25.0, axis_ratio=0.6)
    light, age, mh = _maps(ellipse, r_e=9.0)
    viewer.add_image(light, name="light")
    viewer.add_image(age, name="log age", colormap="magma")
    viewer.add_image(mh, name="[M/H]", colormap="viridis")
    dock = GradientsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Gradients")
    dock.age_layer.setCurrentText("log age")
    dock.mh_layer.setCurrentText("[M/H]")
    dock.set_ellipse(ellipse)
    dock.light_layer.setCurrentText("light")  # measures R_e with a growth curve
    assert dock.r_e.value() == pytest.approx(9.0, rel=0.05)
    dock.fit_button.click()
    dock.jobs.wait()
    result = dock.result
    assert result is not None and result.age.ok and result.mh.ok
    assert result.age.slope == pytest.approx(-0.12, abs=0.03)
    assert result.mh.slope == pytest.approx(-0.25, abs=0.03)
    assert result.age.n_within >= 25
    assert "dex/R_e" in dock.jobs.status.text()
    # plain image layers: no model error known, the dock says the error is statistical
    assert "statistical only" in dock.jobs.status.text()
    assert result.age.model_sd == 0 and np.isfinite(result.age.slope_err)
    # the figure: crosses, 100 red bootstrap lines and a black mean line per panel
    top = dock.figure.axes[0]
    assert len(top.lines) >= 100 + 2
    assert "±" in top.get_title()

    png = dock.export_figure(tmp_path / "gradients.png")
    pdf = dock.export_figure(tmp_path / "gradients.pdf")
    assert png.stat().st_size > 10_000 and pdf.read_bytes().startswith(b"%PDF")
    from astropy.table import Table

    table = Table.read(dock.export_table(tmp_path / "gradients.ecsv"))
    assert list(table["quantity"]) == ["log_age", "mh"]
    assert {"slope_err", "slope_err_stat", "model_sd", "n_elements"} <= set(table.colnames)
    assert table.meta["axis_ratio"] == pytest.approx(0.6)
    shot = tmp_path / "gradients_dock.png"
    dock.grab().save(str(shot))
    assert shot.stat().st_size > 10_000


def test_too_few_spaxels_gives_a_clear_message(make_napari_viewer) -> None:
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    age = np.full((40, 40), np.nan)
    age[18:22, 18:22] = 9.5  # 16 spaxels only
    viewer.add_image(age, name="age")
    viewer.add_image(age.copy(), name="mh")
    dock = GradientsDock(viewer)
    dock.age_layer.setCurrentText("age")
    dock.mh_layer.setCurrentText("mh")
    dock.set_ellipse(GalaxyEllipse(19.5, 19.5, 0.0, 1.0))
    dock.r_e.setValue(10.0)
    before = len(notification_manager.records)
    dock.fit_button.click()
    dock.jobs.wait()
    assert "only 16 valid spaxels" in dock.jobs.status.text()
    assert any("at least 25" in str(n.message) for n in notification_manager.records[before:])
    # mismatched maps: a message, not an exception
    viewer.add_image(np.zeros((10, 10)), name="small")
    dock.mh_layer.setCurrentText("small")
    dock.fit_button.click()
    dock.jobs.wait()
    assert "one shape" in dock.jobs.status.text()


def test_a_map_with_a_model_error_and_a_psf_quotes_both(make_napari_viewer) -> None:
    from napari_galam._layerdata import GRADIENT_ERRORS_KEY
    from napari_galam.pipeline.gradient_errors import GradientErrorContext

    viewer = make_napari_viewer()
    ellipse = GalaxyEllipse(x=38.5, y=35.0, angle_deg=25.0, axis_ratio=0.6)
    _, age, mh = _maps(ellipse, r_e=9.0)
    context = GradientErrorContext(
        model_sd=0.05, model_note="test", resolution_pix=3.0, resolution_note="header RFWHM"
    )
    viewer.add_image(age, name="log age", metadata={GRADIENT_ERRORS_KEY: context})
    viewer.add_image(mh, name="[M/H]", metadata={GRADIENT_ERRORS_KEY: context})
    dock = GradientsDock(viewer)
    dock.age_layer.setCurrentText("log age")
    dock.mh_layer.setCurrentText("[M/H]")
    dock._on_map_chosen("log age")
    assert dock.resolution.value() == pytest.approx(3.0)
    assert "header RFWHM" in dock.resolution_note.text()
    dock.set_ellipse(ellipse)
    dock.r_e.setValue(9.0)
    result = dock.fit()
    # 6x6-pixel blocks: far fewer independent elements than spaxels
    assert result.age.n_elements < result.age.n_within / 10
    assert result.age.slope_err == pytest.approx(np.hypot(result.age.slope_err_stat, 0.05))
    assert "model's own gradient error" in dock.jobs.status.text()
    assert "±" in dock.figure.axes[0].get_title() and "(stat.)" not in dock.figure.axes[0].get_title()
