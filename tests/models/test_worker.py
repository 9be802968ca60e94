"""The model worker: TensorFlow stays out of this (the calling) process.

These tests are not marked ``tensorflow``: they run in the same pytest process as the
viewer tests, which is exactly the situation the worker exists for. The tiny models are
written by a subprocess, so nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from napari_galam.errors import GalamError, GalamInputError
from napari_galam.models.inference import GalaxyPrediction, SpaxelPrediction
from napari_galam.models.worker import ModelWorker

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("worker_weights")
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); from galam_model_helpers import write_tiny_registry; write_tiny_registry({str(folder)!r})"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def worker(tiny_weights):
    tf_before = "tensorflow" in sys.modules
    with ModelWorker(weights_dir=tiny_weights, preload=("mmlforgalam",)) as running:
        yield running
    if not tf_before:
        assert "tensorflow" not in sys.modules


def test_predictions_come_back_as_numpy_without_tensorflow_here(worker):
    tf_before = "tensorflow" in sys.modules
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    result = worker.predict_galaxies(images)
    assert isinstance(result, GalaxyPrediction) and result.model == "mmlforgalam"
    assert result.log_age.shape == (4,) and np.all(np.isfinite(result.mh))
    spectra = worker.predict_galaxies(images, np.random.default_rng(1).random((4, 4171)))
    assert spectra.model == "spectra-only"
    maps = worker.predict_seds(np.ones((3, 5, 12)))
    assert isinstance(maps, SpaxelPrediction) and maps.log_age.shape == (3, 5)
    if not tf_before:
        assert "tensorflow" not in sys.modules
    assert worker.pid != os.getpid()


def test_a_bad_request_raises_and_the_worker_keeps_serving(worker):
    pid = worker.pid
    with pytest.raises(GalamInputError, match="expected"):
        worker.predict_galaxies(np.zeros((2, 30, 31, 3), np.uint8))
    with pytest.raises(
        GalamError, match="no model named 'nonexistent'.*available models: image-only"
    ):
        worker.load(["nonexistent"])
    again = worker.predict_galaxies(np.zeros((1, 32, 32, 3), np.uint8), model="image-only")
    assert len(again) == 1 and worker.pid == pid


def test_requests_from_other_threads(worker):
    """napari calls from its thread_worker threads; concurrent requests are served in turn."""
    results: list = []
    errors: list = []

    def ask(seed: int) -> None:
        try:
            cube = np.random.default_rng(seed).random((4, 4, 12)) + 0.5
            cube[0, 0] = np.nan
            results.append(worker.predict_seds(cube))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(results) == 4
    for maps in results:
        assert np.isnan(maps.log_age[0, 0]) and np.isfinite(maps.log_age).sum() == 15


def test_background_start_and_start_up_errors(tiny_weights):
    """start(wait=False) returns at once; the first request waits and reports start-up errors."""
    lazy = ModelWorker(weights_dir=tiny_weights, preload=("image-only", "no-such-model"))
    try:
        lazy.start(wait=False)
        assert lazy.running
        with pytest.raises(GalamError, match="no model named 'no-such-model'"):
            lazy.predict_galaxies(np.zeros((1, 32, 32, 3), np.uint8), model="image-only")
        result = lazy.predict_galaxies(np.zeros((1, 32, 32, 3), np.uint8), model="image-only")
        assert len(result) == 1 and lazy.pid is not None
    finally:
        lazy.stop()
    assert not lazy.running
    eager = ModelWorker(weights_dir=tiny_weights, preload=("no-such-model",))
    with pytest.raises(GalamError, match="available models"):
        eager.start()
    assert not eager.running  # a failed start leaves no process behind


def test_a_dead_worker_gives_a_clear_error_then_restarts(tiny_weights):
    with ModelWorker(weights_dir=tiny_weights) as fresh:
        first = fresh.pid
        os.kill(first, signal.SIGKILL)
        with pytest.raises(GalamError, match="model worker process died"):
            fresh.predict_seds(np.ones((2, 12)))
        assert not fresh.running
        maps = fresh.predict_seds(np.ones((2, 12)))  # a new child starts
        assert maps.log_age.shape == (2,) and fresh.pid not in (None, first)


def test_a_process_using_the_worker_never_imports_tensorflow(tiny_weights):
    """Checked in a fresh interpreter, independent of what this pytest process loaded."""
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from napari_galam.models.worker import ModelWorker
        with ModelWorker(weights_dir={str(tiny_weights)!r}) as w:
            r = w.predict_galaxies(np.zeros((2, 32, 32, 3), np.uint8), model="image-only")
            assert r.log_age.shape == (2,)
        assert "tensorflow" not in sys.modules, "tensorflow leaked into the parent"
        assert "keras" not in sys.modules, "keras leaked into the parent"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "ok"
