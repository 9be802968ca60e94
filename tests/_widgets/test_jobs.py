"""The dock job runner: progress, results, errors, Cancel and requests made while busy."""

from __future__ import annotations

import threading

import pytest

from napari_galam._widgets._jobs import JobRunner, format_error
from napari_galam.errors import GalamInputError
from napari_galam.progress import Progress


@pytest.fixture
def notifications(monkeypatch):
    """Every notification the runner shows, as (kind, message)."""
    import napari.utils.notifications as nn

    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(nn, "show_error", lambda m: shown.append(("error", m)))
    monkeypatch.setattr(nn, "show_warning", lambda m: shown.append(("warning", m)))
    return shown


def _count(n: int, gate: threading.Event | None = None):
    for k in range(n):
        if gate is not None:
            gate.wait(5)
        yield Progress("counting", k + 1, n)
    return n * 10


def test_result_progress_and_busy(qtbot, notifications) -> None:
    runner = JobRunner("Test")
    qtbot.addWidget(runner)
    results: list[int] = []
    assert runner.start(_count, 4, done=results.append, text="go")
    assert runner.busy
    runner.wait(10)
    assert not runner.busy and results == [40]
    assert runner.progress.value() == 100
    assert runner.status.text() == "counting: 4/4"
    assert notifications == []


def test_a_failure_is_one_notification_and_never_raised(qtbot, notifications) -> None:
    runner = JobRunner("Maps")
    qtbot.addWidget(runner)

    def broken():
        yield Progress("reading", 0, 1)
        raise GalamInputError("cube.fits: no spectral axis")

    failures: list[BaseException] = []
    assert runner.start(broken, done=lambda r: None, failed=failures.append)
    runner.wait(10)
    assert notifications == [("error", "Maps: cube.fits: no spectral axis")]
    assert isinstance(runner.last_error, GalamInputError) and len(failures) == 1
    # an unexpected error names its type
    assert runner.start(lambda: 1 / 0, done=lambda r: None)
    runner.wait(10)
    assert notifications[-1] == ("error", "Maps failed: ZeroDivisionError: division by zero")
    assert format_error("X", KeyError("k")) == "X failed: KeyError: 'k'"


def test_cancel_stops_at_the_next_step(qtbot, notifications) -> None:
    runner = JobRunner("Test")
    qtbot.addWidget(runner)
    gate = threading.Event()
    results: list[int] = []
    cancelled: list[bool] = []
    runner.start(_count, 1000, gate, done=results.append, cancelled=lambda: cancelled.append(True))
    runner.cancel()
    gate.set()
    runner.wait(10)
    assert results == [] and cancelled == [True]
    assert runner.status.text() == "Test: cancelled."


@pytest.mark.parametrize(("mode", "expected"), [("queue", [10, 20, 30]), ("latest", [10, 30])])
def test_requests_while_busy(qtbot, notifications, mode, expected) -> None:
    runner = JobRunner("Test")
    qtbot.addWidget(runner)
    gate = threading.Event()
    results: list[int] = []
    assert runner.start(_count, 1, gate, done=results.append)
    assert runner.start(_count, 2, done=results.append, if_busy=mode)
    assert runner.start(_count, 3, done=results.append, if_busy=mode)
    gate.set()
    qtbot.waitUntil(lambda: len(results) == len(expected) and not runner.busy, timeout=10_000)
    assert results == expected


def test_refused_while_busy_and_wait_times_out(qtbot, notifications) -> None:
    runner = JobRunner("Test")
    qtbot.addWidget(runner)
    gate = threading.Event()
    runner.start(_count, 1, gate, done=lambda r: None)
    assert not runner.start(_count, 1, done=lambda r: None)
    assert notifications[-1][0] == "warning" and "busy" in notifications[-1][1]
    with pytest.raises(TimeoutError, match="still runs"):
        runner.wait(0.2)
    gate.set()
    runner.wait(10)
