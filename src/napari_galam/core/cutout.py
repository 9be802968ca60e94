"""Cutouts: a window around a clicked galaxy, and the cropped 128x128 model input.

After masking, MMLforGalAM (Sect. 2.2.2) crops the region that is not black around the
target and resizes it to 128x128 pixels with nearest-neighbour interpolation, so that
pixel values are never mixed. :func:`crop_and_resize` does that; by default the crop is
made square (centred on the non-black region, padded with black) so that the resize does
not change the galaxy's axis ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError

__all__ = [
    "Cutout",
    "MODEL_INPUT_SIZE",
    "cutout_around",
    "nonblack_bounding_box",
    "resize_nearest",
    "crop_and_resize",
]

#: Side of the square images the MMLforGalAM image models take.
MODEL_INPUT_SIZE = 128


@dataclass(frozen=True)
class Cutout:
    """A window of a larger image.

    Attributes
    ----------
    data
        ``(size, size)`` or ``(size, size, channels)``; parts outside the image are
        filled with ``fill``.
    origin
        ``(row, col)`` in the parent image of ``data[0, 0]`` (may be negative).
    centre
        ``(row, col)`` in the parent image of the requested centre (the clicked point).
    clipped
        True when the window reached over the image border and was padded.
    """

    data: NDArray[Any]
    origin: tuple[int, int]
    centre: tuple[float, float]
    clipped: bool

    def to_parent(self, rows: Any, cols: Any) -> tuple[NDArray[Any], NDArray[Any]]:
        """Convert cutout pixel coordinates to the parent image's."""
        return (
            np.asarray(rows, dtype=float) + self.origin[0],
            np.asarray(cols, dtype=float) + self.origin[1],
        )


def _check_image(image: Any, name: str = "image") -> NDArray[Any]:
    # Lazy arrays (dask, zarr, memory maps) stay lazy: only the window is read.
    lazy = hasattr(image, "shape") and hasattr(image, "ndim") and hasattr(image, "__getitem__")
    array = image if lazy else np.asarray(image)
    if array.ndim not in (2, 3) or 0 in tuple(array.shape):
        raise GalamInputError(
            f"{name}: shape {array.shape} is not an image; expected (ny, nx) or (ny, nx, channels)."
        )
    return array


def cutout_around(
    image: NDArray[Any], row: float, col: float, size: int, *, fill: float = 0
) -> Cutout:
    """Cut a ``size`` x ``size`` window centred on ``(row, col)``, padding at the edges.

    Parameters
    ----------
    image
        ``(ny, nx)`` or ``(ny, nx, channels)`` image (a field).
    row, col
        The centre, in pixels of ``image`` (e.g. a click); must lie inside the image.
    size
        Side of the window in pixels (>= 2).
    fill
        Value for the parts of the window outside the image (NaN needs a float image).

    Returns
    -------
    Cutout
        The pixel nearest to ``(row, col)`` sits at ``(size // 2, size // 2)``.

    Raises
    ------
    GalamInputError
        When the point lies outside the image or ``size`` < 2.
    """
    array = _check_image(image)
    size = int(size)
    if size < 2:
        raise GalamInputError(f"size: a cutout needs at least 2 pixels a side, got {size}.")
    ny, nx = array.shape[:2]
    if not (math.isfinite(row) and math.isfinite(col)):
        raise GalamInputError(f"cutout centre ({row}, {col}) is not a finite position.")
    if not (-0.5 <= row < ny - 0.5 and -0.5 <= col < nx - 0.5):
        raise GalamInputError(
            f"cutout centre (row {row:.1f}, col {col:.1f}) lies outside the image of "
            f"{ny} rows x {nx} columns."
        )
    r0 = int(math.floor(row + 0.5)) - size // 2
    c0 = int(math.floor(col + 0.5)) - size // 2
    out = _window(array, r0, c0, size, size, fill)
    clipped = r0 < 0 or c0 < 0 or r0 + size > ny or c0 + size > nx
    return Cutout(data=out, origin=(r0, c0), centre=(float(row), float(col)), clipped=clipped)


def _window(array: NDArray[Any], r0: int, c0: int, height: int, width: int, fill: Any):
    ny, nx = array.shape[:2]
    out = np.full((height, width, *array.shape[2:]), fill, dtype=array.dtype)
    src_r0, src_r1 = max(r0, 0), min(r0 + height, ny)
    src_c0, src_c1 = max(c0, 0), min(c0 + width, nx)
    if src_r0 < src_r1 and src_c0 < src_c1:
        out[src_r0 - r0 : src_r1 - r0, src_c0 - c0 : src_c1 - c0] = np.asarray(
            array[src_r0:src_r1, src_c0:src_c1]
        )
    return out


def nonblack_bounding_box(image: NDArray[Any]) -> tuple[slice, slice] | None:
    """Rows and columns spanned by the pixels that are not black (0 or NaN in all channels).

    Returns ``None`` for an image that is all black.
    """
    array = np.asarray(_check_image(image))
    lit = np.isfinite(array) & (array != 0)
    if lit.ndim == 3:
        lit = lit.any(axis=2)
    rows = np.flatnonzero(lit.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(lit.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def resize_nearest(image: NDArray[Any], size: int = MODEL_INPUT_SIZE) -> NDArray[Any]:
    """Resize to ``size`` x ``size`` by nearest-neighbour sampling (values are never mixed).

    Output pixel ``i`` takes input pixel ``floor((i + 0.5) * n / size)``.
    """
    array = np.asarray(_check_image(image))
    ny, nx = array.shape[:2]
    rows = np.minimum(((np.arange(size) + 0.5) * ny / size).astype(np.intp), ny - 1)
    cols = np.minimum(((np.arange(size) + 0.5) * nx / size).astype(np.intp), nx - 1)
    return array[rows[:, None], cols[None, :]]


def crop_and_resize(
    masked_image: NDArray[Any], *, size: int = MODEL_INPUT_SIZE, square: bool = True
) -> NDArray[Any]:
    """Crop the non-black region of a masked cutout and resize it to ``size`` x ``size``.

    Parameters
    ----------
    masked_image
        A cutout whose outside has been set to 0 (e.g. by :meth:`MaskingResult.apply`).
    size
        Output side in pixels (128 for the MMLforGalAM models).
    square
        Make the crop square around the centre of the non-black region (padding with
        black where it reaches past the image), so the axis ratio is kept.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` or ``(size, size, channels)``, same dtype as the input.

    Raises
    ------
    GalamInputError
        When the image is entirely black (nothing to crop).
    """
    array = np.asarray(_check_image(masked_image, "masked image"))
    box = nonblack_bounding_box(array)
    if box is None:
        raise GalamInputError("masked image: every pixel is black; there is no galaxy to crop.")
    rows, cols = box
    if square:
        height, width = rows.stop - rows.start, cols.stop - cols.start
        side = max(height, width)
        r0 = rows.start - (side - height) // 2
        c0 = cols.start - (side - width) // 2
        crop = _window(array, r0, c0, side, side, 0)
    else:
        crop = array[rows, cols]
    return resize_nearest(crop, size)
