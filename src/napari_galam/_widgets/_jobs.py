"""Run a dock's long work in a napari thread worker, wired to the dock's handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["start_job"]


def start_job(
    generator_function: Callable[..., Any],
    *args: Any,
    yielded: Callable[[Any], None],
    returned: Callable[[Any], None],
    errored: Callable[[Exception], None],
    finished: Callable[[], None],
) -> Any:
    """Start ``generator_function(*args)`` in a thread and return the napari worker.

    Progress (each yielded value), the returned value, an error and the end all come
    back on the GUI thread through the given handlers; ``worker.quit()`` cancels at
    the next yield. The handlers run from the event loop, so a caller may store the
    returned worker before any of them can fire.
    """
    from napari.qt.threading import create_worker

    job = create_worker(generator_function, *args, _start_thread=False)
    job.yielded.connect(yielded)
    job.returned.connect(returned)
    job.errored.connect(errored)
    job.finished.connect(finished)
    job.start()
    return job
