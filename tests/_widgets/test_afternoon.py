"""The whole afternoon in one viewer, on simulated data, against the simulator's truth.

Open a simulated CALIFA-like cube -> map it -> fit its gradients; open a simulated SDSS
field -> click three galaxies -> table; predict all galaxies of the Hubble Deep Field and
cancel. The models run in the worker process, in threads, as a person would use them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from napari_galam._widgets._model_worker import stop_shared_worker
from napari_galam._widgets.gradients_dock import GradientsDock
from napari_galam._widgets.maps_dock import MapsDock
from napari_galam._widgets.predict_dock import PredictDock
from napari_galam.models.registry import available_models

pytestmark = pytest.mark.skipif(
    not {"sed-cnn", "mmlforgalam"} <= set(available_models()), reason="models not shipped"
)


def _robust_sd(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def test_afternoon(make_napari_viewer, qtbot, tmp_path: Path) -> None:
    from napari_galam.pipeline.qa import assess_galaxy
    from napari_galam.simulate.datasets import simulate_sdss_galaxy

    viewer = make_napari_viewer()
    try:
        # --- a cube: maps, then gradients ---------------------------------------------
        viewer.open_sample("napari-galam", "simulated_califa_cube")
        truth = viewer.layers["simulated CALIFA cube"].metadata["galam_truth"]
        maps_dock = MapsDock(viewer)
        viewer.window.add_dock_widget(maps_dock, name="Spaxel maps")
        assert maps_dock.start_mapping()
        # wait on the dock's own state: a job can finish before a waitSignal connects
        qtbot.waitUntil(lambda: not maps_dock.jobs.busy, timeout=240_000)
        age = viewer.layers["log age simulated CALIFA cube"]
        mh = viewer.layers["[M/H] simulated CALIFA cube"]
        assert age.colorbar.visible
        inside = (truth["TRUE_R_RE"] <= 2.0) & np.isfinite(age.data)
        sd_age = _robust_sd(age.data[inside] - truth["TRUE_LOG_AGE"][inside])
        sd_mh = _robust_sd(mh.data[inside] - truth["TRUE_MH"][inside])
        assert sd_age <= 0.10 and sd_mh <= 0.10  # the SED CNN's unseen robust SD: 0.08 / 0.09
        gradients = GradientsDock(viewer)
        viewer.window.add_dock_widget(gradients, name="Gradients", tabify=True)
        gradients.age_layer.setCurrentText(age.name)
        gradients.mh_layer.setCurrentText(mh.name)
        gradients._on_map_chosen(age.name)
        gradients.fit_button.click()
        gradients.jobs.wait()
        result = gradients.result
        assert result is not None and result.age.ok and result.mh.ok
        # unseen gradient error SD is ~0.06 dex/R_e: allow 3 sigma on one galaxy
        assert abs(result.age.slope - truth["GRAD_AGE"]) < 0.2
        assert abs(result.mh.slope - truth["GRAD_MH"]) < 0.2
        viewer.screenshot(str(tmp_path / "afternoon_cube.png"), canvas_only=False, flash=False)

        # --- a field: click three galaxies ------------------------------------------
        rng = np.random.default_rng(21)
        galaxies = []
        while len(galaxies) < 3:
            galaxy = simulate_sdss_galaxy(rng, blend_probability=0.0)
            if assess_galaxy(galaxy.cutout.rgb).status == "accepted":
                galaxies.append(galaxy)
        field = np.concatenate([g.cutout.rgb for g in galaxies], axis=1)
        viewer.add_image(field, name="simulated field", rgb=True, metadata={"sdss_like": True})
        predict = PredictDock(viewer)
        viewer.window.add_dock_widget(predict, name="Galaxy age & [M/H]", tabify=True)
        predict.image_layer.setCurrentText("simulated field")
        for k in range(3):
            assert predict.predict_at(63.5, 63.5 + 128 * k)
            qtbot.waitUntil(lambda: not predict.jobs.busy, timeout=120_000)
        assert predict.table.rowCount() == 3
        results = [r for _, r in predict.results]
        d_age = [r.log_age - g.spectrum.log_age for r, g in zip(results, galaxies, strict=True)]
        d_mh = [r.mh - g.spectrum.mh for r, g in zip(results, galaxies, strict=True)]
        assert all(r.predicted for r in results)
        assert np.all(np.abs(d_age) < 0.45) and np.all(np.abs(d_mh) < 0.35)
        viewer.screenshot(str(tmp_path / "afternoon_field.png"), canvas_only=False, flash=False)

        # --- predict all on the Hubble Deep Field, then cancel: nothing breaks --------
        viewer.open_sample("napari-galam", "hubble_deep_field")
        predict.image_layer.setCurrentText("Hubble Deep Field")
        assert predict.predict_all()
        predict.cancel()
        qtbot.waitUntil(lambda: not predict.jobs.busy, timeout=120_000)
        assert predict.table.rowCount() >= 3 and not predict.jobs.cancel_button.isEnabled()
    finally:
        stop_shared_worker()
    assert "tensorflow" not in sys.modules
