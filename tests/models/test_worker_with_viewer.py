"""The point of the worker: a napari viewer and model predictions in one session.

TensorFlow and a viewer in one process segfault; with the worker, the viewer lives here
and TensorFlow only in the spawned child. Not marked ``tensorflow``: this process never
imports it. The tiny models are written by a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_galam.models.worker import ModelWorker

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viewer_weights")
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); "
        f"from galam_model_helpers import write_tiny_registry; write_tiny_registry({str(folder)!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return folder


def test_viewer_and_worker_predictions_in_one_session(make_napari_viewer, tiny_weights):
    tf_before = "tensorflow" in sys.modules
    viewer = make_napari_viewer()
    cutouts = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    viewer.add_image(cutouts, rgb=True, name="cutouts")
    with ModelWorker(weights_dir=tiny_weights) as worker:
        galaxies = worker.predict_galaxies(cutouts)
        maps = worker.predict_seds(np.random.default_rng(1).random((6, 7, 12)) + 0.5)
    viewer.add_image(maps.log_age, name="log_age")
    viewer.add_image(maps.mh, name="mh")
    assert galaxies.model == "mmlforgalam" and np.all(np.isfinite(galaxies.log_age))
    assert [layer.name for layer in viewer.layers] == ["cutouts", "log_age", "mh"]
    assert viewer.layers["log_age"].data.shape == (6, 7)
    if not tf_before:
        assert "tensorflow" not in sys.modules
