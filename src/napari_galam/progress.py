"""Progress of long work: one type for every ``iter_*`` generator of the package.

Long work is a generator that yields :class:`Progress` and *returns* its result, so a
caller that wants the progress writes ``result = yield from iter_something(...)`` and a
caller that does not writes ``result = run_to_end(iter_something(...))``. The docks wrap
the same generators in a thread (:mod:`napari_galam._widgets._jobs`); the command line
feeds the progress to a ``tqdm`` bar.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Progress", "ProgressGenerator", "run_to_end"]

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """How far a long job has come.

    Attributes
    ----------
    stage
        What the job is doing now, in words a person reads ("photometry", "predicting").
    done, total
        Units of that stage finished, and in all (``total`` 0: the size is not known).
    """

    stage: str
    done: int
    total: int

    @property
    def fraction(self) -> float:
        """``done / total`` clipped to [0, 1] (0 when the total is unknown)."""
        if self.total <= 0:
            return 0.0
        return min(1.0, max(0.0, self.done / self.total))

    def __str__(self) -> str:
        if self.total <= 0:
            return self.stage
        return f"{self.stage}: {self.done}/{self.total}"


#: The type of every ``iter_*`` function: yields progress, returns the result.
ProgressGenerator = Generator[Progress, None, T]


def run_to_end(
    generator: Generator[Progress, None, T],
    *,
    on_progress: Callable[[Progress], Any] | None = None,
) -> T:
    """Drive a progress generator to its end and return its result.

    Parameters
    ----------
    generator
        An ``iter_*`` generator of this package.
    on_progress
        Called with each :class:`Progress` (e.g. to update a ``tqdm`` bar).
    """
    while True:
        try:
            step = next(generator)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(step)
