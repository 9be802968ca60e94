"""The Spaxel maps and Gradients docks on a simulated CALIFA cube, against its truth.

The shipped SED model runs in the shared worker process (TensorFlow never enters this
process, which holds a napari viewer).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_galam._widgets._model_worker import stop_shared_worker
from napari_galam._widgets.gradients_dock import GradientsDock
from napari_galam._widgets.maps_dock import MapsDock
from napari_galam.models.registry import available_models

pytestmark = pytest.mark.skipif(
    "sed-cnn" not in available_models(), reason="no shipped SED model in this checkout"
)


@pytest.fixture
def worker_cleanup():
    yield
    stop_shared_worker()
    assert "tensorflow" not in sys.modules


def _robust_sd(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def test_cube_to_maps_to_gradients(
    make_napari_viewer, qtbot, tmp_path: Path, worker_cleanup
) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-galam", "simulated_califa_cube")
    cube_layer = viewer.layers["simulated CALIFA cube"]
    truth = cube_layer.metadata["galam_truth"]

    dock = MapsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Spaxel maps")
    assert dock.source.currentText() == "simulated CALIFA cube"
    assert dock.start_mapping()
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=240_000)
    assert dock.maps is not None, dock.jobs.status.text()
    age_layer = viewer.layers["log age simulated CALIFA cube"]
    mh_layer = viewer.layers["[M/H] simulated CALIFA cube"]
    assert age_layer.data.shape == (73, 78) and mh_layer.data.shape == (73, 78)
    assert age_layer.contrast_limits == [8.5, 10.2]
    assert "spaxels mapped" in dock.jobs.status.text()
    model = dock.maps.model
    assert model == "spaxel-spectra"  # "auto" maps IFU cubes from their spectra

    # against the simulator's truth: spaxels within 2 R_e that were mapped
    inside = (truth["TRUE_R_RE"] <= 2.0) & np.isfinite(age_layer.data)
    assert inside.sum() > 100
    sd_age = _robust_sd(age_layer.data[inside] - truth["TRUE_LOG_AGE"][inside])
    sd_mh = _robust_sd(mh_layer.data[inside] - truth["TRUE_MH"][inside])
    print(f"map robust SD vs truth: log age {sd_age:.3f}, [M/H] {sd_mh:.3f} dex")
    assert sd_age < 0.25 and sd_mh < 0.25

    saved = dock.save_maps(tmp_path / "maps.fits")
    from napari_galam.io.writers import read_maps

    maps = read_maps(saved)
    np.testing.assert_allclose(maps.maps["LOG_AGE"], age_layer.data, equal_nan=True)

    # each map comes with its calibrated error map and the out-of-distribution mask
    age_err = viewer.layers["log age error simulated CALIFA cube"].data
    mh_err = viewer.layers["[M/H] error simulated CALIFA cube"].data
    valued = np.isfinite(age_layer.data)
    assert np.all(np.isfinite(age_err[valued]) & (age_err[valued] > 0))
    assert np.all(np.isfinite(mh_err[valued]) & (mh_err[valued] > 0))
    ood = viewer.layers["out of distribution simulated CALIFA cube"]
    assert ood.data.shape == (73, 78) and np.all(ood.data[~valued] == 0)
    from napari_galam.models.registry import read_model_card

    floor = read_model_card(model)["calibration"]["ood"]["min_snr"]
    faint = valued & (viewer.layers["S/N simulated CALIFA cube"].data < floor)
    np.testing.assert_array_equal((ood.data & 1) > 0, faint)  # below the training S/N
    np.testing.assert_allclose(maps.maps["MH_ERR"], mh_err, equal_nan=True)

    gradients = GradientsDock(viewer)
    viewer.window.add_dock_widget(gradients, name="Gradients")
    gradients.age_layer.setCurrentText(age_layer.name)
    gradients.mh_layer.setCurrentText(mh_layer.name)
    gradients._on_map_chosen(age_layer.name)  # ellipse and R_e from the maps' metadata
    ellipse = gradients.current_ellipse()
    assert ellipse.axis_ratio == pytest.approx(truth["AXRATIO"], abs=0.2)
    # the maps carry what an honest error needs: the model's own gradient error (model
    # card) and CALIFA's resolution (2.5" PSF on 1" spaxels)
    from napari_galam._layerdata import GRADIENT_ERRORS_KEY
    from napari_galam.models.registry import gradient_model_sd

    calibrated = gradient_model_sd(model)
    assert calibrated is not None
    assert age_layer.metadata[GRADIENT_ERRORS_KEY].model_sd == calibrated["log_age"]
    assert mh_layer.metadata[GRADIENT_ERRORS_KEY].model_sd == calibrated["mh"]
    # ... but not the network's spaxel errors: the bootstrap over resolution elements
    # already sees their scatter (drawing them too held the truth less often)
    assert age_layer.metadata[GRADIENT_ERRORS_KEY].errors is None
    assert mh_layer.metadata[GRADIENT_ERRORS_KEY].errors is None
    assert gradients.resolution.value() == pytest.approx(2.5)
    assert "CALIFA" in gradients.resolution_note.text()
    result = gradients.fit()
    assert result.age.ok and result.mh.ok
    assert result.age.model_sd == calibrated["log_age"]
    assert result.age.slope_err >= calibrated["log_age"] > 10 * result.age.slope_sd
    assert result.age.n_elements < result.age.n_within / 10  # 5x5-spaxel blocks
    assert "model's own gradient error" in gradients.jobs.status.text()
    err_age = result.age.slope - truth["GRAD_AGE"]
    err_mh = result.mh.slope - truth["GRAD_MH"]
    print(f"gradient error: log age {err_age:+.3f}, [M/H] {err_mh:+.3f} dex/R_e")
    assert abs(err_age) < 0.3 and abs(err_mh) < 0.3
    # GALAM_WRITE_DOCS=1 refreshes the README's screenshot
    docs = Path(__file__).resolve().parents[2] / "docs"
    shot = (docs if os.environ.get("GALAM_WRITE_DOCS") else tmp_path) / "maps_and_gradients.png"
    viewer.screenshot(str(shot), canvas_only=False, flash=False)
    assert shot.stat().st_size > 50_000


def test_mapping_without_a_cube_is_a_notification(make_napari_viewer) -> None:
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    dock = MapsDock(viewer)
    before = len(notification_manager.records)
    assert not dock.start_mapping()
    assert any("open a cube" in str(n.message) for n in notification_manager.records[before:])


def test_big_cubes_go_to_dask_with_the_same_maps(make_napari_viewer, qtbot, worker_cleanup) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-galam", "simulated_califa_cube")
    dock = MapsDock(viewer)
    assert dock.start_mapping()  # 73x78: the local path
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=240_000)
    local = dock.maps
    dock.distributed_min_spaxels = 100  # now the same cube counts as big
    dock.dask_workers = 2
    assert dock.start_mapping()
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=240_000)
    remote = dock.maps
    assert remote is not local and remote.meta.get("engine") == "dask"
    assert remote.n_mapped == local.n_mapped
    np.testing.assert_allclose(remote.log_age, local.log_age, atol=1e-4, equal_nan=True)
    np.testing.assert_allclose(remote.mh, local.mh, atol=1e-4, equal_nan=True)
