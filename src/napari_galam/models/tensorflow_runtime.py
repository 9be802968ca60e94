"""Import TensorFlow once, without its CUDA start-up messages on a machine without a GPU.

TensorFlow's C++ runtime prints to the process's standard error before its own logging
is set up ("Could not find cuda drivers on your machine", oneDNN and CPU-feature
notices, "failed call to cuInit"), so ``TF_CPP_MIN_LOG_LEVEL`` alone does not silence
it. Where no NVIDIA driver is installed these lines say nothing a user of ``galam`` can
act on, so the first import runs with file descriptor 2 pointed at ``/dev/null`` and the
log level at 3 (errors that matter still raise Python exceptions). Where a driver is
installed, or ``TF_CPP_MIN_LOG_LEVEL`` is set to 0 or 1 by the user, nothing is hidden.
Every path of the package that needs TensorFlow calls :func:`import_tensorflow` first.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["has_nvidia_driver", "import_tensorflow", "quiet_start_wanted"]

_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl")


def has_nvidia_driver() -> bool:
    """Whether this machine has an NVIDIA kernel driver (a GPU TensorFlow could use)."""
    return any(Path(name).exists() for name in _DRIVER_FILES)


def quiet_start_wanted() -> bool:
    """No NVIDIA driver here, and the user did not ask for TensorFlow's messages."""
    return not has_nvidia_driver() and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "") not in (
        "0",
        "1",
    )


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block (C++ writes included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> Any:
    """Import TensorFlow and Keras (quietly without a GPU driver); return ``tensorflow``."""
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return sys.modules["tensorflow"]
    if not quiet_start_wanted():
        import keras  # noqa: F401
        import tensorflow

        return tensorflow
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with _stderr_to_devnull():
        import keras  # noqa: F401
        import tensorflow

        tensorflow.config.list_physical_devices("GPU")  # the cuInit probe, while quiet
    return tensorflow
