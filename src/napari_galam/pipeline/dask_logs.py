"""Dask's log lines on one line each: no traceback from a cluster of the package.

A LocalCluster of the package (:func:`napari_galam.pipeline.dask_cluster.start_client`)
has its scheduler and nannies in the user's process and its workers in processes that
write to the same terminal. Dask logs some events with their traceback (a worker that lost
its scheduler's connection while the cluster shuts down, a task that raised), which in a
terminal reads as a crash of ``galam`` itself, while a failed partition already has its
row with the reason. :class:`OneLineLogs` folds the exception into the line instead.
Imported only by the Dask engine (it imports ``distributed``).
"""

from __future__ import annotations

import logging
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["OneLineLogs", "OneLineWorkerLogs", "fold_dask_logs", "unfold_dask_logs"]


class OneLineLogs(logging.Filter):
    """A log filter that folds a record's exception into its one line of text.

    Added to the handlers of Dask's ``distributed`` logger in the processes of a
    LocalCluster of the package (the scheduler and nannies here, each worker through
    :class:`OneLineWorkerLogs`): ``"Failed to communicate with scheduler during
    heartbeat. (CommClosedError: ...)"`` instead of the message and a traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _dask_log_handlers() -> list[logging.Handler]:
    return list(logging.getLogger("distributed").handlers)


def fold_dask_logs() -> None:
    """Add one :class:`OneLineLogs` to each handler of ``distributed`` in this process."""
    for handler in _dask_log_handlers():
        if not any(isinstance(f, OneLineLogs) for f in handler.filters):
            handler.addFilter(OneLineLogs())


def unfold_dask_logs() -> None:
    """Remove what :func:`fold_dask_logs` added."""
    for handler in _dask_log_handlers():
        for log_filter in [f for f in handler.filters if isinstance(f, OneLineLogs)]:
            handler.removeFilter(log_filter)


class OneLineWorkerLogs(WorkerPlugin):
    """Folds the log records of each worker of a LocalCluster (restarted ones too)."""

    name = "napari-galam-one-line-logs"

    def setup(self, worker: Any) -> None:
        fold_dask_logs()
