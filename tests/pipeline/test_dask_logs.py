"""Dask's log records from a cluster of the package reach the terminal as one line each."""

from __future__ import annotations

import logging

import pytest

from napari_galam.pipeline.dask_logs import OneLineLogs
from napari_galam.pipeline.distributed import dask_client


def _log_a_failed_heartbeat() -> str:
    """Run in a worker: log an exception the way ``distributed.worker`` does."""
    try:
        raise ConnectionError("Stream is closed")
    except ConnectionError:
        logging.getLogger("distributed.worker").error(
            "Failed to communicate with scheduler during heartbeat.", exc_info=True
        )
    return "logged"


def test_the_filter_folds_the_exception_into_the_line() -> None:
    try:
        raise ValueError("bad frame")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "distributed.worker", logging.ERROR, __file__, 1, "lost %s", ("it",), sys.exc_info()
        )
    handler = logging.StreamHandler()
    handler.addFilter(OneLineLogs())
    assert handler.filter(record)
    text = handler.format(record)
    assert text == "lost it (ValueError: bad frame)"
    assert "Traceback" not in text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_worker_of_the_local_cluster_logs_an_error_without_a_traceback(
    capfd: pytest.CaptureFixture,
) -> None:
    with dask_client(n_workers=1) as client:
        assert client.submit(_log_a_failed_heartbeat, pure=False).result() == "logged"
        client.run(lambda: None)  # the worker's stderr is flushed before the cluster closes
    captured = capfd.readouterr()
    assert "Failed to communicate with scheduler during heartbeat." in captured.err
    assert "ConnectionError: Stream is closed" in captured.err
    assert "Traceback" not in captured.err
    handlers = logging.getLogger("distributed").handlers
    assert not any(isinstance(f, OneLineLogs) for h in handlers for f in h.filters)
