"""The Spaxel maps dock maps MUSE, MaNGA and CALIFA-layout cubes from their spectra.

The shipped ``spaxel-spectra`` model runs in the shared worker process (TensorFlow never
enters this process, which holds a napari viewer).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from napari_galam._layerdata import CUBE_KEY
from napari_galam._widgets._model_worker import stop_shared_worker
from napari_galam._widgets.maps_dock import MapsDock
from napari_galam.models.registry import available_models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "io"))
from survey_files import write_califa_cube, write_manga_logcube, write_muse_cube  # noqa: E402

pytestmark = pytest.mark.skipif(
    "spaxel-spectra" not in available_models(), reason="no shipped spaxel-spectra model"
)


@pytest.fixture
def worker_cleanup():
    yield
    stop_shared_worker()
    assert "tensorflow" not in sys.modules


def _open_cube(viewer, path: Path) -> str:
    layers = viewer.open(str(path), plugin="napari-galam")
    return next(layer.name for layer in layers if CUBE_KEY in layer.metadata)


def test_three_layouts_through_the_dock(
    make_napari_viewer, qtbot, tmp_path: Path, worker_cleanup
) -> None:
    viewer = make_napari_viewer()
    dock = MapsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Spaxel maps")
    assert dock.model.currentText() == "auto"
    dock.redshift.setValue(0.02)
    cubes = {
        "MUSE": (write_muse_cube(tmp_path / "g.muse.fits", ny=8, nx=6, nwave=3681).path, (8, 6)),
        "MaNGA": (write_manga_logcube(tmp_path / "manga-1-LOGCUBE.fits", ny=7, nx=7, nwave=4563).path, (7, 7)),
        "CALIFA": (write_califa_cube(tmp_path / "g.V500.rscube.fits", ny=6, nx=5, nwave=1877).path, (6, 5)),
    }  # fmt: skip
    for layout, (path, shape) in cubes.items():
        name = _open_cube(viewer, path)
        dock.source.setCurrentText(name)
        # "auto" sends a MUSE cube to spaxel-spectra (the SED CNN cannot read it)
        dock.model.setCurrentText("auto" if layout == "MUSE" else "spaxel-spectra")
        assert dock.start_mapping()
        qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=240_000)
        assert dock.maps is not None and dock.maps.model == "spaxel-spectra", (
            dock.jobs.status.text()
        )
        assert dock.maps.meta["layout"] == layout and dock.maps.meta["redshift"] == 0.02
        age = viewer.layers[f"log age {name}"].data
        assert age.shape == shape
        valued = np.isfinite(age)
        assert valued.sum() > shape[0] * shape[1] // 2
        # every spaxel left out is counted by reason (MUSE's NaN edge row: "no data")
        reasons = dock.maps.meta["nan_reasons"]
        assert valued.sum() + sum(reasons.values()) == shape[0] * shape[1]
        assert reasons["no data"] == (shape[1] if layout == "MUSE" else 0)
        assert np.all((age[valued] > 7.5) & (age[valued] < 10.5))
        error = viewer.layers[f"log age error {name}"].data
        assert np.all(np.isfinite(error[valued]) & (error[valued] > 0))
        assert "spectra at z = 0.02" in dock.jobs.status.text()
        mapped = dock.maps

    # the SED CNN cannot read a MUSE cube (it starts at 4750 A): one clear message
    dock.model.setCurrentText("sed-cnn")
    dock.source.setCurrentText(_open_cube(viewer, cubes["MUSE"][0]))
    assert dock.start_mapping()
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=240_000)
    assert dock.maps is mapped  # unchanged
    assert "covered" in dock.jobs.status.text()


def test_powerbin_binning_through_the_dock(
    make_napari_viewer, qtbot, tmp_path: Path, worker_cleanup
) -> None:
    from napari_galam._widgets._model_worker import shared_worker
    from napari_galam.pipeline.binning import spaxel_bins

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
    from test_spectral_maps import bin_mean_inputs

    viewer = make_napari_viewer()
    dock = MapsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Spaxel maps")
    path = write_califa_cube(tmp_path / "g.V500.rscube.fits", nwave=1877).path
    name = _open_cube(viewer, path)
    dock.source.setCurrentText(name)
    dock.model.setCurrentText("spaxel-spectra")
    choices = [dock.binning.itemText(i) for i in range(dock.binning.count())]
    assert choices == ["voronoi", "powerbin"] and dock.binning.currentText() == "voronoi"
    dock.bin_spaxels.setChecked(True)
    dock.target_snr.setValue(20.0)
    dock.binning.setCurrentText("powerbin")
    assert dock.start_mapping()
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=240_000)
    maps = dock.maps
    assert maps is not None, dock.jobs.status.text()
    assert maps.meta["binning"] == "powerbin" and maps.meta["target_snr"] == 20.0
    assert "powerbin bins to S/N 20" in dock.jobs.status.text()
    kept = maps.snr >= dock.min_snr.value()
    np.testing.assert_array_equal(maps.bin_id >= 0, kept)  # the bins cover the kept spaxels
    # PowerBin's bins on the S/N the spectra were mapped with
    light, snr = np.where(kept, maps.light, np.nan), np.where(kept, maps.snr, np.nan)
    expected = spaxel_bins(light, snr, target_snr=20.0, min_snr=3.0, binning="powerbin")
    np.testing.assert_array_equal(maps.bin_id, expected.bin_id)
    assert 1 < expected.n_bins < kept.sum()
    # each bin carries the model's answer on its mean spectrum (the same worker process)
    means = bin_mean_inputs(viewer.layers[name].metadata[CUBE_KEY], maps.bin_id)
    answer = shared_worker().predict_spectra(means.x, snr=means.snr)
    age = viewer.layers[f"log age {name}"].data
    for number in range(expected.n_bins):
        inside = maps.bin_id == number
        assert np.all(age[inside] == age[inside][0])
        assert age[inside][0] == pytest.approx(answer.log_age[number], abs=2e-4)
