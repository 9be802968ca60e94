"""One way to run a dock's long work: :class:`JobRunner`.

Every dock owns one runner. The runner owns the worker thread, the progress bar, the
Cancel button, the status line, error formatting and notifications, so a dock only
says *what* to run (an ``iter_*`` generator yielding
:class:`~napari_galam.progress.Progress` and returning its result) and *what to do with
the result*. A failed job ends in exactly one notification with the project's message;
the exception never reaches Qt or napari's exception hook, so a plain script that opened
the viewer cannot be aborted by it. Tests wait on :attr:`JobRunner.busy` or
:meth:`JobRunner.wait`; nothing runs on the GUI thread in production or in tests.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from napari_galam.errors import GalamError
from napari_galam.progress import Progress

__all__ = ["JobRunner", "format_error"]


def format_error(title: str, exc: BaseException) -> str:
    """The line a person reads for a failed job: the project's message, or the type."""
    if isinstance(exc, GalamError):
        return f"{title}: {exc}"
    return f"{title} failed: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class _Failed:
    """What a job returns instead of raising (the exception stays in the job)."""

    error: BaseException


def _guarded(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
    """Run ``function`` (a generator function or a plain one) and never raise."""
    try:
        work = function(*args, **kwargs)
        if inspect.isgenerator(work):
            return (yield from work)
        return work
    except Exception as exc:  # noqa: BLE001 - becomes the dock's one notification
        return _Failed(exc)


class _StatusLabel(QLabel):
    """A word-wrapped label as tall as its lines at its width.

    A long status (a value with its 1-sigma error and 95% interval, an error message)
    wraps; without this the dock's stretching table squeezes it to one clipped line,
    because the height a wrapped label needs is not passed up through the dock's layouts.
    """

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.setWordWrap(True)

    def _fit(self) -> None:
        self.setMinimumHeight(0)  # heightForWidth would not go below the last minimum
        height = self.heightForWidth(max(self.width(), 1))
        if height > 0:
            self.setMinimumHeight(height)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self._fit()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()


class JobRunner(QWidget):
    """A dock's long work in a background thread, one job at a time.

    Parameters
    ----------
    title
        Prefix of every status line and notification (the dock's name).
    cancellable
        Show a Cancel button (jobs that yield progress stop at their next yield).
    idle_text
        The status line before any job ran.

    Attributes
    ----------
    progress, cancel_button, status
        The widgets the runner drives; a dock places the runner (a ``QWidget``) in its
        layout, or takes them one by one.
    last_error
        The exception of the last failed job (None after a success).
    """

    def __init__(
        self,
        title: str,
        *,
        cancellable: bool = True,
        idle_text: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.title = title
        self.last_error: BaseException | None = None
        self._worker: Any = None
        self._pending: deque[tuple[Any, ...]] = deque()
        self._cancelled = False
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setVisible(cancellable)
        self.cancel_button.clicked.connect(self.cancel)
        self.status = _StatusLabel(idle_text)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)

    # -- state ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True from :meth:`start` until the job's result (or error) has been handled."""
        return self._worker is not None

    def wait(self, timeout: float = 120.0) -> None:
        """Process Qt events until no job runs (for scripts and tests).

        Raises
        ------
        TimeoutError
            When a job still runs after ``timeout`` seconds.
        """
        from qtpy.QtWidgets import QApplication

        deadline = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.title}: the job still runs after {timeout:g} s.")
            QApplication.processEvents()
            time.sleep(0.005)

    # -- running -------------------------------------------------------------------
    def start(
        self,
        function: Callable[..., Generator[Progress, None, Any] | Any],
        *args: Any,
        done: Callable[[Any], None],
        text: str = "",
        failed: Callable[[BaseException], None] | None = None,
        cancelled: Callable[[], None] | None = None,
        if_busy: str = "refuse",
        **kwargs: Any,
    ) -> bool:
        """Run ``function(*args, **kwargs)`` in a thread; ``done(result)`` on the GUI thread.

        Parameters
        ----------
        function
            A generator function yielding :class:`Progress` and returning the result, or
            a plain function (no progress, no Cancel until it returns).
        done
            Called with the result on the GUI thread.
        text
            The status line while the job runs.
        failed
            Called with the exception after the notification (e.g. to clear a view).
        cancelled
            Called on the GUI thread when the job stopped at Cancel.
        if_busy
            What to do while a job runs: ``"refuse"`` says so and returns False;
            ``"latest"`` runs this request when the current job ends, replacing any
            request waiting (a form whose newest values matter); ``"queue"`` runs it
            after every request already waiting (clicks, each of which matters).

        Returns
        -------
        bool
            Whether the job was started (or queued).
        """
        request = (function, args, kwargs, done, text, failed, cancelled)
        if self.busy:
            if if_busy == "latest":
                self._pending.clear()
            if if_busy in ("latest", "queue"):
                self._pending.append(request)
                return True
            self.report(f"{self.title}: busy; wait for the running job or cancel it.", error=False)
            return False
        self._launch(request)
        return True

    def _launch(self, request: tuple[Any, ...]) -> None:
        from napari.qt.threading import create_worker

        function, args, kwargs, done, text, failed, cancelled = request
        self._cancelled = False
        self.last_error = None
        worker = create_worker(_guarded, function, args, kwargs, _start_thread=False)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda result: self._on_returned(result, done, failed))
        worker.finished.connect(lambda: self._on_finished(cancelled))
        self._worker = worker
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        if text:
            self.status.setText(text)
        worker.start()

    def cancel(self) -> None:
        """Stop the running job at its next progress step; requests waiting are dropped."""
        self._pending.clear()
        if self._worker is not None:
            self._cancelled = True
            self._worker.quit()
            self.status.setText(f"{self.title}: cancelling…")

    def report(self, message: str, *, error: bool = True) -> None:
        """Show ``message`` in the status line and as one napari notification."""
        from napari.utils.notifications import show_error, show_warning

        self.status.setText(message)
        (show_error if error else show_warning)(message)

    # -- handlers (GUI thread) ---------------------------------------------------------
    def _on_progress(self, step: Any) -> None:
        if isinstance(step, Progress):
            self.progress.setValue(int(round(100 * step.fraction)))
            self.status.setText(str(step))

    def _on_returned(
        self,
        result: Any,
        done: Callable[[Any], None],
        failed: Callable[[BaseException], None] | None,
    ) -> None:
        if isinstance(result, _Failed):
            self._fail(result.error, failed)
            return
        self.progress.setValue(100)
        try:
            done(result)
        except Exception as exc:  # noqa: BLE001 - showing a result must not crash Qt
            self._fail(exc, failed)

    def _fail(self, exc: BaseException, failed: Callable[[BaseException], None] | None) -> None:
        self.last_error = exc
        self.report(format_error(self.title, exc))
        if failed is not None:
            try:
                failed(exc)
            except Exception as inner:  # noqa: BLE001
                self.status.setText(format_error(self.title, inner))

    def _on_finished(self, cancelled: Callable[[], None] | None) -> None:
        was_cancelled = self._cancelled
        self._worker = None
        self._cancelled = False
        self.cancel_button.setEnabled(False)
        if was_cancelled:
            self.status.setText(f"{self.title}: cancelled.")
            if cancelled is not None:
                cancelled()
        if self._pending:
            self._launch(self._pending.popleft())
