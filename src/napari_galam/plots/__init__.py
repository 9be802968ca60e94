"""Drawing functions that take a matplotlib ``Axes`` and a result object.

The same functions draw in the napari docks (through a Qt canvas) and headless, in
reports and contact sheets (Agg). Nothing here imports Qt or napari.
"""

from napari_galam.plots.contact_sheets import (
    GalaxyTile,
    draw_galaxy_qa,
    galaxy_tile,
    write_contact_sheet,
)
from napari_galam.plots.gradients import plot_gradient
from napari_galam.plots.spectrum import ABSORPTION_LINES, plot_spectrum

__all__ = [
    "ABSORPTION_LINES",
    "GalaxyTile",
    "draw_galaxy_qa",
    "galaxy_tile",
    "plot_gradient",
    "plot_spectrum",
    "write_contact_sheet",
]
