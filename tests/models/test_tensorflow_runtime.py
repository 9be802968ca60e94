"""TensorFlow's CUDA start-up messages do not reach a user on a machine without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from napari_galam.models.tensorflow_runtime import has_nvidia_driver

pytestmark = pytest.mark.tensorflow

_LOAD = (
    "from napari_galam.models.registry import load_model; "
    "model = load_model('spectra-only'); print('loaded', model.name)"
)


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=300
    )


@pytest.mark.skipif(has_nvidia_driver(), reason="a GPU machine keeps TensorFlow's messages")
def test_loading_a_model_prints_nothing_without_a_gpu() -> None:
    result = _run(_LOAD)
    assert result.returncode == 0, result.stderr
    assert "loaded" in result.stdout
    assert result.stderr.strip() == ""


@pytest.mark.skipif(has_nvidia_driver(), reason="a GPU machine keeps TensorFlow's messages")
def test_the_user_can_ask_for_the_messages() -> None:
    result = _run(_LOAD, TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == 0, result.stderr
    assert "cuda" in result.stderr.lower() or "onednn" in result.stderr.lower()
