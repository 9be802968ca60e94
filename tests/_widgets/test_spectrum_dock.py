"""The Spectrum dock and the sample data in a real napari viewer (Xvfb)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_galam._widgets.spectrum_dock import SpectrumDock


def _not_blank(path: Path) -> None:
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 10, f"{path} looks blank"


def test_samples_open_and_spectrum_dock_plots(make_napari_viewer, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-galam", "hubble_deep_field")
    viewer.open_sample("napari-galam", "sdss_spectrum_ngc3522")
    assert viewer.layers["Hubble Deep Field"].rgb
    assert viewer.layers["Hubble Deep Field"].data.shape == (872, 1000, 3)
    _, dock = viewer.window.add_plugin_dock_widget("napari-galam", "Spectrum")
    assert isinstance(dock, SpectrumDock)
    assert dock.current_spectrum is not None
    title = dock.figure.axes[0].get_title()
    assert "z = 0.0040" in title and "median S/N" in title
    line = dock.figure.axes[0].lines[0]
    assert len(line.get_xdata()) > 3000

    shot = tmp_path / "viewer.png"
    viewer.screenshot(str(shot), canvas_only=False, flash=False)
    _not_blank(shot)
    dock_shot = tmp_path / "spectrum_dock.png"
    dock.grab().save(str(dock_shot))
    _not_blank(dock_shot)


def test_shipped_ngc4636_sample_opens_in_the_spectrum_dock(make_napari_viewer, tmp_path) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-galam", "sdss_spectrum_ngc4636")
    _, dock = viewer.window.add_plugin_dock_widget("napari-galam", "Spectrum")
    assert dock.current_spectrum is not None
    title = dock.figure.axes[0].get_title()
    assert "NGC4636" in title and "z = 0.0030" in title
    dock_shot = tmp_path / "ngc4636_dock.png"
    dock.grab().save(str(dock_shot))
    _not_blank(dock_shot)


def test_dock_follows_new_spectra_and_theme(make_napari_viewer, sdss_spectrum_file) -> None:
    viewer = make_napari_viewer()
    dock = SpectrumDock(viewer)
    assert dock.current_spectrum is None  # shows a hint, no error
    viewer.open(str(sdss_spectrum_file(redshift=0.12)), plugin="napari-galam")
    assert dock.chooser.count() == 1
    assert "z = 0.1200" in dock.figure.axes[0].get_title()
    viewer.theme = "light"
    assert dock.figure.get_facecolor()[0] > 0.9  # redrawn on the light theme
    viewer.layers.clear()
    assert dock.chooser.count() == 0


def test_bad_file_in_viewer_notifies_and_keeps_viewer(make_napari_viewer, tmp_path: Path) -> None:
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    viewer.open_sample("napari-galam", "hubble_deep_field")
    bad = tmp_path / "bad.fits"
    bad.write_text("not fits at all")
    before = len(notification_manager.records)
    viewer.open(str(bad), plugin="napari-galam")
    assert [layer.name for layer in viewer.layers] == ["Hubble Deep Field"]
    assert any("bad.fits" in str(n.message) for n in notification_manager.records[before:])


def test_cube_opens_lazily_and_a_click_plots_the_spaxel(make_napari_viewer, tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
    from survey_files import write_califa_cube

    written = write_califa_cube(tmp_path / "NGC0001.V500.rscube.fits", ny=14, nx=12, nwave=300)
    viewer = make_napari_viewer()
    viewer.open(str(written.path), plugin="napari-galam")
    layer = viewer.layers["NGC0001.V500.rscube"]
    assert layer.data.shape == (300, 14, 12)
    assert layer.axis_labels[0] == "wavelength [Å]"
    assert layer.scale[0] == 2.0 and layer.translate[0] == 3749.0  # the slider reads Å
    assert "galam_cube" in layer.metadata

    _, dock = viewer.window.add_plugin_dock_widget("napari-galam", "Spectrum")
    assert dock.show_spaxel(layer, 7, 5)  # read in the dock's job thread
    dock.jobs.wait()
    spectrum = dock.spaxel
    assert spectrum is not None
    np.testing.assert_allclose(spectrum.flux, written.flux[:, 7, 5], rtol=1e-6, equal_nan=True)
    assert "spaxel (y=7, x=5)" in dock.figure.axes[0].get_title()
    assert "erg" in dock.figure.axes[0].get_ylabel()
    shot = tmp_path / "cube_spectrum.png"
    viewer.screenshot(str(shot), canvas_only=False, flash=False)
    _not_blank(shot)
    # a click outside the cube warns instead of failing
    assert dock.show_spaxel(layer, 99, 0) is False


def test_click_on_a_narrowband_stack_plots_the_sed(make_napari_viewer, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-galam", "simulated_jpas_cube")
    layer = viewer.layers["simulated J-PAS cube"]
    dock = SpectrumDock(viewer)
    assert dock.show_spaxel(layer, 48, 48)
    dock.jobs.wait()
    sed = dock.spaxel
    assert sed is not None and sed.wave.size == 54
    np.testing.assert_allclose(sed.flux, np.asarray(layer.data[:, 48, 48]), rtol=1e-6)
    assert np.all(np.diff(sed.wave) > 0) and sed.snr_median > 1
    assert "SED (y=48, x=48)" in dock.figure.axes[0].get_title()
    assert dock.figure.axes[0].lines[0].get_marker() == "o"


def test_fit_with_ppxf_beside_the_network(make_napari_viewer, qtbot, tmp_path: Path) -> None:
    """The shown SDSS spectrum fitted with pPXF in the job thread, beside spectra-only."""
    import sys

    from napari_galam._widgets._model_worker import stop_shared_worker
    from napari_galam.io.spectra import read_sdss_spectrum
    from napari_galam.pipeline.fit import FitOptions, fit_spectrum

    viewer = make_napari_viewer()
    viewer.open_sample("napari-galam", "sdss_spectrum_ngc3522")
    _, dock = viewer.window.add_plugin_dock_widget("napari-galam", "Spectrum")
    try:
        assert dock.fit_with_ppxf()
        qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=300_000)
    finally:
        stop_shared_worker()
    assert "tensorflow" not in sys.modules
    comparison = dock.comparison
    assert comparison is not None, dock.jobs.status.text()
    # the same numbers as galam fit's
    layer = viewer.layers[0]
    direct = fit_spectrum(read_sdss_spectrum(layer.metadata["path"]), FitOptions())
    assert comparison.fit.log_age == direct.log_age and comparison.fit.mh == direct.mh
    assert comparison.network["model"] == "spectra-only"
    assert abs(comparison.network["log_age"] - comparison.fit.log_age) < 0.5
    assert dock.table.item(0, 0).text().startswith(f"{comparison.fit.log_age:.3f}")
    assert "±" in dock.table.item(0, 1).text()
    # the network's ± is this spectrum's calibrated error (issue 20), not the card's SD
    assert 0 < comparison.network["log_age_sd"] < 0.5 and comparison.network["ood_reason"] == ""
    spectrum_ax, residual_ax = dock.figure.axes
    labels = [line.get_label() for line in spectrum_ax.lines]
    assert labels[:3] == ["data", "pPXF best fit", "gas"]
    assert residual_ax.get_ylabel() == "residual"
    assert spectrum_ax.patches or residual_ax.patches or comparison.fit.fitted.all()
    shot = tmp_path / "ppxf_fit.png"
    dock.grab().save(str(shot))
    _not_blank(shot)


def test_fit_with_ppxf_of_a_clicked_spaxel(make_napari_viewer, qtbot) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-galam", "simulated_califa_cube")
    layer = viewer.layers["simulated CALIFA cube"]
    dock = SpectrumDock(viewer)
    assert dock.show_spaxel(layer, 36, 39)
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=60_000)
    dock.fit_gas.setChecked(False)  # masked lines: shaded in the plot
    assert dock.fit_with_ppxf()
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=300_000)
    comparison = dock.comparison
    assert comparison is not None, dock.jobs.status.text()
    assert comparison.network is None and "map the cube" in dock.jobs.status.text()
    truth = layer.metadata["galam_truth"]["TRUE_LOG_AGE"][36, 39]
    assert abs(comparison.fit.log_age - truth) < 0.3
    assert abs(comparison.fit.velocity) < 100  # the cube's MED_VEL is the redshift
    assert dock.figure.axes[0].patches  # the masked emission lines
    assert dock.table.item(0, 1).text() == "—"
