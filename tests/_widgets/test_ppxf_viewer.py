"""pPXF maps of a small simulated CALIFA-like cube in a real viewer, against the truth.

The network's maps come from the shipped SED model in the shared worker process
(TensorFlow never enters this process); pPXF runs in the Spaxel maps dock's job thread.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_galam._widgets._model_worker import stop_shared_worker
from napari_galam._widgets.gradients_dock import GradientsDock
from napari_galam._widgets.maps_dock import DIFF_LIMITS, MapsDock
from napari_galam.models.registry import available_models
from napari_galam.pipeline.fit import finished_rows

pytestmark = pytest.mark.skipif(
    "sed-cnn" not in available_models(), reason="no shipped SED model in this checkout"
)

#: pPXF recovery on simulated spectra (benchmarks/bench_ppxf.py --recovery): robust SD of
#: log age about 0.06-0.1 dex and of [M/H] about 0.07-0.1 dex at S/N 20-30; a bin's truth
#: is its spaxels' truth, so the bound is a few times that.
RECOVERY_DEX = 0.25

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def worker_cleanup():
    yield
    stop_shared_worker()
    assert "tensorflow" not in sys.modules


@pytest.fixture(scope="module")
def small_cube(tmp_path_factory) -> tuple[Path, object]:
    """An 18x18-spaxel CALIFA-like cube at S/N 6 at R_e: a handful of bins at S/N 30."""
    from napari_galam.simulate.cubes import render_califa_cube
    from napari_galam.simulate.galaxy import draw_galaxy
    from napari_galam.simulate.populations import default_library
    from napari_galam.simulate.writers import write_califa_cube

    rng = np.random.default_rng(3)
    library = default_library()
    galaxy = draw_galaxy(rng, survey="califa", library=library)
    cube = render_califa_cube(galaxy, rng=rng, library=library, shape=(18, 18), snr_at_re=6.0)
    path = tmp_path_factory.mktemp("ppxf") / "small.V500.rscube.fits"
    write_califa_cube(path, cube)
    return path, cube.truth


def _robust(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    median = float(np.median(x))
    return median, float(1.4826 * np.median(np.abs(x - median)))


def test_ppxf_maps_beside_the_network(
    make_napari_viewer, qtbot, small_cube, worker_cleanup, tmp_path
):
    path, truth = small_cube
    viewer = make_napari_viewer()
    viewer.window._qt_window.resize(1500, 950)
    (cube_layer,) = viewer.open(str(path), plugin="napari-galam")
    dock = MapsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Spaxel maps")
    dock.ppxf_target_snr.setValue(30.0)
    assert dock.start_ppxf_maps()
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=600_000)
    assert dock.ppxf is not None, dock.jobs.status.text()
    base = cube_layer.name
    age = viewer.layers[f"pPXF log age {base}"].data
    mh = viewer.layers[f"pPXF [M/H] {base}"].data
    assert dock.ppxf.n_fitted == dock.ppxf.n_bins >= 4, dock.jobs.status.text()
    fitted = np.isfinite(age)
    assert fitted.sum() > 50
    bias_age, sd_age = _robust(age[fitted] - truth.log_age[fitted])
    bias_mh, sd_mh = _robust(mh[fitted] - truth.mh[fitted])
    print(f"pPXF maps - truth: log age {bias_age:+.3f} +- {sd_age:.3f}, "
          f"[M/H] {bias_mh:+.3f} +- {sd_mh:.3f} dex over {fitted.sum()} spaxels")  # fmt: skip
    assert abs(bias_age) < RECOVERY_DEX and sd_age < RECOVERY_DEX
    assert abs(bias_mh) < RECOVERY_DEX and sd_mh < RECOVERY_DEX

    # the difference layers are network - pPXF, and the scatter plot shows both with 1:1
    diff = viewer.layers[f"network − pPXF log age {base}"]
    np.testing.assert_allclose(diff.data, dock.maps.log_age - age, equal_nan=True)
    assert tuple(diff.contrast_limits) == DIFF_LIMITS
    bins = viewer.layers[f"pPXF bins {base}"].data
    assert bins.max() == dock.ppxf.n_bins
    assert not dock.scatter_canvas.isHidden()
    axes = dock.scatter_figure.axes
    assert len(axes) == 2
    assert any(line.get_label() == "1:1" for line in axes[0].lines)
    both = np.isfinite(age) & np.isfinite(dock.maps.log_age)
    assert len(axes[0].lines[0].get_xdata()) == both.sum() > 0

    # the Gradients dock fits the pPXF maps (ellipse from the layers' metadata)
    gradients = GradientsDock(viewer)
    viewer.window.add_dock_widget(gradients, name="Gradients")
    gradients.age_layer.setCurrentText(f"pPXF log age {base}")
    gradients.mh_layer.setCurrentText(f"pPXF [M/H] {base}")
    gradients._on_map_chosen(f"pPXF log age {base}")
    result = gradients.fit()
    assert result.age_layer == f"pPXF log age {base}"
    assert result.age.n_within > 0

    viewer.layers[f"pPXF log age {base}"].visible = True
    viewer.layers[f"log age {base}"].visible = False  # the network's map under pPXF's
    # GALAM_WRITE_DOCS=1 refreshes the README's screenshot
    shot = (DOCS if os.environ.get("GALAM_WRITE_DOCS") else tmp_path) / "ppxf_maps.png"
    viewer.screenshot(str(shot), canvas_only=False, flash=False)
    assert shot.stat().st_size > 50_000


def test_cancel_keeps_partial_maps(make_napari_viewer, qtbot, small_cube, worker_cleanup):
    path, _ = small_cube
    viewer = make_napari_viewer()
    (cube_layer,) = viewer.open(str(path), plugin="napari-galam")
    dock = MapsDock(viewer)
    dock.ppxf_target_snr.setValue(12.0)  # many bins: Cancel comes before the end
    assert dock.start_ppxf_maps()
    run = dock._ppxf_run
    qtbot.waitUntil(lambda: len(finished_rows(run.directory)) > 0, timeout=600_000)
    dock.cancel()
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=120_000)
    assert "cancelled" in dock.jobs.status.text()
    partial = dock.ppxf
    assert partial is not None and 0 < partial.n_fitted < partial.n_bins
    age = viewer.layers[f"pPXF log age {cube_layer.name}"].data
    assert 0 < np.isfinite(age).sum() < np.isfinite(dock.maps.log_age).sum()
    # the viewer stays usable: a new layer, and another job starts
    viewer.add_image(np.zeros((4, 4)), name="after cancel")
    assert dock.start_mapping()
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=240_000)
    assert dock.maps is not None
