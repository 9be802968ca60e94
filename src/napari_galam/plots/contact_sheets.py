"""Contact sheets of galaxy QA: one tile per galaxy, pages of tiles as PNG files.

A tile (:class:`GalaxyTile`) is what drawing one galaxy needs, at most 128 px a side:
an 8-bit view of the cutout, the target ellipse coloured by verdict, the other fitted
ellipses thinner, the peaks of the target's sources (cyan crosses), the saddle points
between touching sources (magenta x) and companions of the rotation-residual check
(gold rings). :func:`galaxy_tile` makes one from a cutout and its
:class:`napari_galam.pipeline.qa.GalaxyQA`; :func:`draw_galaxy_qa` draws it on a
matplotlib ``Axes``; :func:`write_contact_sheet` writes a page of them. The batch QA
(:mod:`napari_galam.pipeline.qa_batch`) writes these pages so that a person can page
through thousands of cutouts.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.cutout import resize_nearest

__all__ = [
    "SHEET_COLUMNS",
    "SHEET_ROWS",
    "GalaxyTile",
    "display_image",
    "galaxy_tile",
    "unreadable_tile",
    "draw_galaxy_qa",
    "write_contact_sheet",
]

#: Tiles across and down a contact-sheet page.
SHEET_COLUMNS, SHEET_ROWS = 6, 5

#: Longest side of a tile's image, in pixels.
_TILE_SIZE = 128


def _no_points() -> NDArray[np.float64]:
    return np.empty((0, 2))


@dataclass(frozen=True)
class GalaxyTile:
    """One galaxy of a contact sheet.

    Attributes
    ----------
    label, status
        The name shown above the tile (cut to 22 characters) and the verdict under it.
    colour
        Colour of the verdict: the target ellipse, the frame and the title.
    image
        The 8-bit display image (see :func:`display_image`), at most 128 px a side;
        None draws an empty tile saying "unreadable".
    scale
        ``(row, col)`` factors from cutout pixels to display pixels.
    target, candidates
        The target ellipse (or None) and every fitted ellipse, in cutout pixels
        (:class:`napari_galam.core.masking.Ellipse`).
    peaks, saddles, companions
        ``(n, 2)`` row/col positions in cutout pixels.
    """

    label: str
    status: str
    colour: str
    image: NDArray[np.uint8] | None = field(default=None, repr=False)
    scale: tuple[float, float] = (1.0, 1.0)
    target: Any = None
    candidates: tuple[Any, ...] = ()
    peaks: NDArray[Any] = field(default_factory=_no_points, repr=False)
    saddles: NDArray[Any] = field(default_factory=_no_points, repr=False)
    companions: NDArray[Any] = field(default_factory=_no_points, repr=False)


def display_image(image: NDArray[Any]) -> NDArray[np.uint8]:
    """An 8-bit view of a cutout for contact sheets.

    8-bit pictures (JPEG/PNG, already stretched) are kept as they are; other data are
    asinh-stretched between their 1st and 99.7th percentiles.
    """
    if np.asarray(image).dtype == np.uint8:
        return np.asarray(image)
    data = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape[:2], dtype=np.uint8)
    lo, hi = np.percentile(data[finite], [1.0, 99.7])
    if not hi > lo:
        hi = lo + 1.0
    scaled = np.clip(np.where(finite, (data - lo) / (hi - lo), 0.0), 0.0, 1.0)
    stretched = np.arcsinh(10.0 * scaled) / np.arcsinh(10.0)
    return np.round(stretched * 255).astype(np.uint8)


def galaxy_tile(image: NDArray[Any], qa: Any, *, label: str, colour: str) -> GalaxyTile:
    """The tile of one cutout and its QA.

    Parameters
    ----------
    image
        The cutout, ``(ny, nx)`` or ``(ny, nx, 3)``.
    qa
        Its :class:`napari_galam.pipeline.qa.GalaxyQA`.
    label, colour
        The tile's name and the colour of the verdict.

    Returns
    -------
    GalaxyTile
        With the peaks and saddle points of the target's sources only when the galaxy
        has a masking ellipse (they are the ones that decide the verdict), else all.
    """
    ny, nx = np.shape(image)[:2]
    factor = min(1.0, _TILE_SIZE / max(ny, nx))
    display = display_image(image)
    if factor < 1.0:
        display = resize_nearest(display, _TILE_SIZE)
    peaks = saddles = companions = _no_points()
    deblend = qa.deblend
    if deblend is not None:
        touching = np.isin(deblend.saddle_labels, deblend.target_labels).any(axis=1)
        saddles = deblend.saddle_yx[touching] if qa.masking.ok else deblend.saddle_yx
        keep = np.isin(deblend.peak_label, deblend.target_labels)
        peaks = deblend.peak_yx[keep] if qa.masking.ok else deblend.peak_yx
    if qa.companions is not None and qa.companions.n_companions:
        companions = qa.companions.yx
    return GalaxyTile(
        label=label,
        status=qa.status,
        colour=colour,
        image=display,
        scale=(display.shape[0] / ny, display.shape[1] / nx),
        target=qa.masking.target,
        candidates=tuple(qa.masking.candidates),
        peaks=peaks,
        saddles=saddles,
        companions=companions,
    )


def unreadable_tile(label: str, status: str, colour: str) -> GalaxyTile:
    """The empty tile of a file that could not be read."""
    return GalaxyTile(label=label, status=status, colour=colour)


def _ellipse_patch(ellipse: Any, scale: tuple[float, float], **style: Any) -> Any:
    """A matplotlib patch of ``ellipse`` (cutout pixels) in display pixels."""
    from matplotlib.patches import Ellipse as EllipsePatch

    sy, sx = scale
    return EllipsePatch(
        ((ellipse.x + 0.5) * sx - 0.5, (ellipse.y + 0.5) * sy - 0.5),
        2 * ellipse.semi_major * sx,
        2 * ellipse.semi_minor * sy,
        angle=ellipse.angle_deg,
        fill=False,
        **style,
    )


def draw_galaxy_qa(ax: Any, tile: GalaxyTile, title: str = "") -> None:
    """Draw one galaxy's QA on a matplotlib ``Axes``.

    Parameters
    ----------
    ax
        A matplotlib Axes.
    tile
        The galaxy (see :func:`galaxy_tile`); its ``image`` must not be None.
    title
        Drawn above the tile in the verdict's colour (none when empty).
    """
    image = tile.image
    sy, sx = tile.scale
    ax.imshow(
        image, cmap="gray" if image.ndim == 2 else None, origin="upper", interpolation="nearest"
    )
    for ellipse in tile.candidates:
        if ellipse == tile.target:
            continue
        ax.add_patch(_ellipse_patch(ellipse, tile.scale, lw=0.5, ec="#1f77b4"))
    if tile.target is not None:
        ax.add_patch(_ellipse_patch(tile.target, tile.scale, lw=1.5, ec=tile.colour))

    def mark(yx: NDArray[Any], marker: str, **style: Any) -> None:
        if len(yx):
            ax.plot((yx[:, 1] + 0.5) * sx - 0.5, (yx[:, 0] + 0.5) * sy - 0.5, marker, **style)

    mark(tile.peaks, "+", color="#17becf", ms=5, mew=1)
    mark(tile.saddles, "x", color="#ff00ff", ms=5, mew=1.2)
    mark(tile.companions, "o", mfc="none", color="#ffd700", ms=7, mew=1.2)
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(tile.colour)
        spine.set_linewidth(3)
    if title:
        ax.set_title(title, fontsize=6, color=tile.colour)


def _draw_unreadable(ax: Any, tile: GalaxyTile, title: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=6, color=tile.colour)
    ax.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=7, transform=ax.transAxes)


def _save_png_atomically(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        figure.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_contact_sheet(
    path: str | os.PathLike,
    tiles: Sequence[GalaxyTile],
    *,
    columns: int = SHEET_COLUMNS,
    rows: int = SHEET_ROWS,
) -> Path:
    """Write one page of galaxies as a PNG (atomically).

    Parameters
    ----------
    path
        The PNG to write.
    tiles
        One per galaxy, in reading order; a tile without an image is drawn empty
        (an unreadable file).
    columns, rows
        Grid of the page.

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    figure = Figure(figsize=(columns * 1.6, rows * 1.75), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        if index >= len(tiles):
            ax.set_axis_off()
            continue
        tile = tiles[index]
        title = f"{tile.label[:22]}\n{tile.status}"
        if tile.image is None:
            _draw_unreadable(ax, tile, title)
        else:
            draw_galaxy_qa(ax, tile, title)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.05, hspace=0.3)
    _save_png_atomically(figure, path)
    return path
