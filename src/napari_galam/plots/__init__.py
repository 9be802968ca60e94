"""Drawing functions that take a matplotlib ``Axes`` and a result object.

The same functions draw in the napari docks (through a Qt canvas) and headless, in
reports and contact sheets (Agg). Nothing here imports Qt or napari.
"""

from napari_galam.plots.gradients import plot_gradient
from napari_galam.plots.spectrum import ABSORPTION_LINES, plot_spectrum

__all__ = ["ABSORPTION_LINES", "plot_gradient", "plot_spectrum"]
