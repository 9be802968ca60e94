"""The one model worker process that all docks of a napari session share.

TensorFlow never enters the napari process (see docs/architecture.md); models run in a
:class:`napari_galam.models.worker.ModelWorker` child process, started on first use,
kept warm for the whole session and stopped when Python exits.
"""

from __future__ import annotations

import atexit
import threading

from napari_galam.models.worker import ModelWorker

__all__ = ["shared_worker", "stop_shared_worker"]

_lock = threading.Lock()
_worker: ModelWorker | None = None


def shared_worker() -> ModelWorker:
    """The session's model worker (created, not yet started, on the first call)."""
    global _worker
    with _lock:
        if _worker is None:
            _worker = ModelWorker(threads=2)
            atexit.register(stop_shared_worker)
        return _worker


def stop_shared_worker() -> None:
    """Stop the worker process, if any (the next :func:`shared_worker` starts anew)."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.stop()
