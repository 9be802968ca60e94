"""A long-lived model process, so that TensorFlow never enters the napari process.

TensorFlow 2.21 and Mesa's libLLVM (loaded by Qt's OpenGL) segfault in one process, so
the GUI talks to the models through :class:`ModelWorker`: one child process started
with the ``spawn`` method (a fresh interpreter that never inherits Qt or OpenGL state),
run through a :class:`concurrent.futures.ProcessPoolExecutor` with one worker. The
child imports TensorFlow, loads each model once from the registry and keeps it warm;
requests and results are numpy arrays and small frozen dataclasses, pickled across.

Failure modes:

- a bad request (wrong shape, unknown model, corrupt weights) raises
  :class:`~napari_galam.errors.GalamError` / ``GalamInputError`` in the caller with the
  child's message, and the child keeps serving;
- if the child dies (killed, out of memory, a crash in native code), the pending call
  raises :class:`~napari_galam.errors.GalamError` saying so; the next call starts a new
  child (cold again: models reload).

Use it as a context manager (``with ModelWorker() as worker: ...``) or call
:meth:`ModelWorker.start` / :meth:`ModelWorker.stop`. A GUI should call
``start(wait=False)`` when a widget opens: the child's start-up (importing TensorFlow
and loading the models, several seconds) then runs in the background, and the first
request, made from a worker thread, waits for it. Requests may come from several
threads; the child serves them one at a time. Nothing in this module imports
TensorFlow in the calling process.

Spawn re-imports the parent's ``__main__`` module in the child: a script that creates a
viewer must do so under ``if __name__ == "__main__":`` (napari's own launcher does).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NoReturn

from numpy.typing import NDArray

from napari_galam.errors import GalamError
from napari_galam.models.inference import GalaxyPrediction, SpaxelPrediction
from napari_galam.models.registry import WEIGHTS_DIR_ENV

__all__ = ["ModelWorker"]


# ----------------------------------------------------------------- child-side functions


def _initialise_child(weights_dir: str | None, threads: int | None) -> None:
    """Runs once in the child: weights folder, quiet TensorFlow logs, thread count."""
    if weights_dir is not None:
        os.environ[WEIGHTS_DIR_ENV] = weights_dir
    from napari_galam.models.tensorflow_runtime import import_tensorflow

    tf = import_tensorflow()
    if threads:

        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, int(threads) // 2))


def _serve(request: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Dispatch one request in the child; every failure comes back as a picklable GalamError."""
    try:
        if request == "ping":
            return os.getpid()
        if request == "load":
            from napari_galam.models.inference import GALAXY_MODELS
            from napari_galam.models.registry import load_model, load_uncertainty_head

            for name in args[0]:
                load_model(name)
                if name in GALAXY_MODELS:
                    load_uncertainty_head(name)
            return list(args[0])
        if request == "predict_galaxies":
            from napari_galam.models.inference import predict_galaxies

            return predict_galaxies(*args, **kwargs)
        if request == "predict_seds":
            from napari_galam.models.inference import predict_seds

            return predict_seds(*args, **kwargs)
        if request == "predict_spectra":
            from napari_galam.models.inference import predict_spectra

            return predict_spectra(*args, **kwargs)
        raise GalamError(f"model worker: unknown request {request!r}")
    except GalamError as exc:
        # Rebuild from the message so the exception always pickles.
        raise type(exc)(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - turn anything else into a clear message
        raise GalamError(f"model worker: {request} failed: {type(exc).__name__}: {exc}") from None


# ----------------------------------------------------------------- parent-side handle


class ModelWorker:
    """Handle on the model process: start it once, send arrays, get predictions back.

    Parameters
    ----------
    weights_dir : path, optional
        Weights folder for the child (default: the registry's own, which also honours
        ``NAPARI_GALAM_WEIGHTS_DIR`` in the environment).
    preload : sequence of str
        Model names to load as soon as the worker starts (so the first prediction is
        warm). Missing models are reported by :meth:`start`.
    threads : int, optional
        TensorFlow intra-op threads in the child (default: TensorFlow's choice).
    timeout : float, optional
        Seconds to wait for any one request (default: no limit).
    """

    def __init__(
        self,
        *,
        weights_dir: str | os.PathLike | None = None,
        preload: Sequence[str] = (),
        threads: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self._weights_dir = None if weights_dir is None else os.fspath(weights_dir)
        self._preload = tuple(preload)
        self._threads = threads
        self._timeout = timeout
        self._executor: ProcessPoolExecutor | None = None
        self._pid: int | None = None
        self._pending: list[Future] = []
        self._lock = threading.Lock()

    # lifecycle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether a child process has been started and not stopped or lost."""
        return self._executor is not None

    @property
    def pid(self) -> int | None:
        """Process id of the child, once it has answered (None before, or when stopped)."""
        return self._pid

    def start(self, *, wait: bool = True) -> ModelWorker:
        """Start the child (no-op when running) and preload the models.

        Parameters
        ----------
        wait : bool
            True: return once the child answers and the models are loaded (several
            seconds: the child imports TensorFlow). False: return at once, so a GUI
            thread never blocks; the start-up runs in the background and the first
            request waits for it (and raises its error, e.g. a missing model, if any).
        """
        with self._lock:
            if self._executor is not None:
                return self
            executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_initialise_child,
                initargs=(self._weights_dir, self._threads),
            )
            self._executor, self._pid = executor, None
            self._pending = [executor.submit(_serve, "ping", (), {})]
            if self._preload:
                self._pending.append(executor.submit(_serve, "load", (self._preload,), {}))
        if wait:
            try:
                self._collect_pending(executor)
            except BaseException:
                self.stop()  # a failed start leaves no process behind
                raise
        return self

    def _collect_pending(self, executor: ProcessPoolExecutor) -> None:
        """Wait for the start-up requests; keep the pid; raise their first error once."""
        with self._lock:
            pending, self._pending = self._pending, []
        for index, future in enumerate(pending):
            result = self._result(executor, future)
            if index == 0:
                self._pid = result

    def stop(self) -> None:
        """Stop the child process and wait for it to exit."""
        with self._lock:
            executor, self._executor, self._pid, self._pending = self._executor, None, None, []
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ModelWorker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    # requests ------------------------------------------------------------------------
    def _call(self, request: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            executor = self._executor
        if executor is None:
            self.start(wait=False)
            with self._lock:
                executor = self._executor
            if executor is None:  # pragma: no cover - stop() raced with us
                raise GalamError("model worker was stopped")
        if self._pending:
            self._collect_pending(executor)
        try:
            future = executor.submit(_serve, request, args, kwargs)
        except BrokenProcessPool:
            self._lost(executor)
        return self._result(executor, future)

    def _result(self, executor: ProcessPoolExecutor, future: Future) -> Any:
        try:
            return future.result(timeout=self._timeout)
        except BrokenProcessPool:
            self._lost(executor)
        except TimeoutError:
            raise GalamError(f"the model worker did not answer within {self._timeout} s") from None

    def _lost(self, executor: ProcessPoolExecutor) -> NoReturn:
        with self._lock:
            if self._executor is executor:
                self._executor, self._pid, self._pending = None, None, []
        executor.shutdown(wait=False, cancel_futures=True)
        raise GalamError(
            "the model worker process died while handling a request (killed, out of memory, "
            "or a crash in TensorFlow); the request was lost, and the next request starts "
            "a new worker"
        ) from None

    def load(self, names: Sequence[str]) -> list[str]:
        """Load (and keep warm) the named models in the child."""
        return self._call("load", tuple(names))

    def predict_galaxies(
        self,
        images: NDArray[Any] | None = None,
        spectra: NDArray[Any] | None = None,
        model: str = "auto",
        *,
        batch_size: int = 256,
        redshift: Any = None,
        problems: Any = None,
    ) -> GalaxyPrediction:
        """Per-galaxy log age and [M/H] with 1-sigma errors and the out-of-distribution
        flag; see :func:`napari_galam.models.inference.predict_galaxies`."""
        return self._call(
            "predict_galaxies",
            images,
            spectra,
            model=model,
            batch_size=batch_size,
            redshift=redshift,
            problems=problems,
        )

    def predict_seds(
        self, seds: NDArray[Any], *, snr: NDArray[Any] | None = None, batch_size: int = 65536
    ) -> SpaxelPrediction:
        """Per-spaxel maps; see :func:`napari_galam.models.inference.predict_seds`."""
        return self._call("predict_seds", seds, snr=snr, batch_size=batch_size)

    def predict_spectra(
        self,
        inputs: NDArray[Any],
        *,
        snr: NDArray[Any] | None = None,
        layout: str | None = None,
        batch_size: int = 4096,
    ) -> SpaxelPrediction:
        """Per-spaxel values from spectra; see
        :func:`napari_galam.models.inference.predict_spectra`."""
        return self._call("predict_spectra", inputs, snr=snr, layout=layout, batch_size=batch_size)
