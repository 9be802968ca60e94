"""The detection image: background and RMS maps, Gaussian smoothing and its noise.

Blend detection (:mod:`napari_galam.core.deblend`) subtracts a median background and
smooths the cutout before it thresholds at a multiple of the background RMS, as the
published procedure (MMLforGalAM, Sect. 2.2.2) does with photutils: a median
``Background2D`` (box about 50 px for a 128 px cutout) and a Gaussian kernel of FWHM
3 px on 5x5 pixels. Both are re-implemented here exactly, faster (the tests compare
them with photutils and astropy). :func:`smoothed_noise` turns the background RMS into
the noise of the smoothed image, which the rotation-residual companion search
(:mod:`napari_galam.core.companions`) needs.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = [
    "estimate_background",
    "gaussian_kernel",
    "smooth_image",
    "smoothed_noise",
]


# --------------------------------------------------------------------------------------
# Background and RMS (photutils Background2D with a median estimator)


def estimate_background(
    data: NDArray[np.float64], *, box_size: int | None = None, filter_size: int = 3
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Median background and background RMS maps, as photutils ``Background2D`` makes them.

    ``Background2D(data, box_size, filter_size=..., bkg_estimator=MedianBackground())``
    with its defaults (3-sigma clipping with at most 10 iterations, standard-deviation
    RMS, boxes with more than 10% of their pixels clipped or masked left out and filled
    by inverse-distance weighting, a nan-median filter of the mesh, bicubic zoom) gives
    the same maps; it is re-implemented (:func:`_background_meshes`, :func:`_zoom_mesh`)
    because for a 128 px cutout photutils spends about 7 ms on it, over half of the
    whole blend detection, mostly in per-call overheads. The tests compare the two.

    Parameters
    ----------
    data
        Single-band image; NaN pixels are masked.
    box_size
        Box size in pixels; default ``round(50 * min(ny, nx) / 128)`` (50 px for 128 px),
        at least 8 and at most the image size.
    filter_size
        Median filter size applied to the low-resolution maps.

    Returns
    -------
    background, rms
        Two arrays of the shape of ``data``. When no box has enough unclipped pixels,
        sigma-clipped global values are used instead.
    """
    ny, nx = data.shape
    if box_size is None:
        box_size = int(round(50 * min(ny, nx) / 128))
    box_size = int(min(max(box_size, 8), ny, nx))
    try:
        bkg_mesh, rms_mesh = _background_meshes(data, box_size, filter_size)
    except ValueError:
        values = data[np.isfinite(data)]
        if values.size == 0:
            background, rms = float("nan"), float("nan")
        else:
            _, background, rms = _clipped_stats(values, maxiters=5)  # sigma_clipped_stats
        return np.full(data.shape, background), np.full(data.shape, rms)
    background = _zoom_mesh(bkg_mesh, box_size, data.shape)
    rms = _zoom_mesh(rms_mesh, box_size, data.shape)
    return background, rms


def _clipped_stats(
    values: NDArray[np.float64], sigma: float = 3.0, maxiters: int = 10
) -> tuple[int, float, float]:
    """Number kept, median and standard deviation after astropy's fast sigma clipping.

    astropy's C clipper repeats: median and population standard deviation of the kept
    values, keep those within ``median +- sigma * std``, until nothing changes, nothing
    is left or ``maxiters`` passes are done; the final bounds are then applied to all
    values. The kept values are always a contiguous run of the sorted values, so one
    sort and running sums (of values less their median, against cancellation) make each
    pass two binary searches and a few scalar operations.
    """
    ordered = np.sort(values)
    shift = float(ordered[ordered.size // 2])
    centred = ordered - shift
    sums = np.concatenate(([0.0], np.cumsum(centred)))
    squares = np.concatenate(([0.0], np.cumsum(centred * centred)))

    def median_of(first: int, stop: int) -> float:
        count, half = stop - first, first + (stop - first) // 2
        if count % 2:
            return float(ordered[half])
        return 0.5 * (float(ordered[half]) + float(ordered[half - 1]))

    def std_of(first: int, stop: int) -> float:
        count = stop - first
        mean = (sums[stop] - sums[first]) / count
        return math.sqrt(max((squares[stop] - squares[first]) / count - mean * mean, 0.0))

    first, stop = 0, ordered.size
    lower = upper = 0.0
    for _ in range(maxiters):
        median, std = median_of(first, stop), std_of(first, stop)
        lower, upper = median - sigma * std, median + sigma * std
        new_first = int(np.searchsorted(ordered, lower, side="left"))
        new_stop = int(np.searchsorted(ordered, upper, side="right"))
        new_first, new_stop = max(new_first, first), min(new_stop, stop)
        if new_stop - new_first in (stop - first, 0):
            break
        first, stop = new_first, new_stop
    first = int(np.searchsorted(ordered, lower, side="left"))
    stop = int(np.searchsorted(ordered, upper, side="right"))
    if stop <= first:
        return 0, float("nan"), float("nan")
    return stop - first, median_of(first, stop), std_of(first, stop)


def _background_meshes(
    data: NDArray[np.float64], box_size: int, filter_size: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Low-resolution background and RMS meshes of ``Background2D`` (see above).

    Boxes tile the image from the origin; the last row and column of boxes hold what is
    left over (photutils counts their pixels against a full box, so they are usually
    left out and filled). Raises ``ValueError`` when no box is usable, as photutils does.
    """
    ny, nx = data.shape
    rows = list(range(0, ny - box_size + 1, box_size))
    cols = list(range(0, nx - box_size + 1, box_size))
    if rows[-1] + box_size < ny:
        rows.append(rows[-1] + box_size)
    if cols[-1] + box_size < nx:
        cols.append(cols[-1] + box_size)
    threshold = (1 - 10.0 / 100.0) * (box_size * box_size)  # exclude_percentile 10
    bkg = np.full((len(rows), len(cols)), np.nan)
    rms = np.full_like(bkg, np.nan)
    for i, y0 in enumerate(rows):
        for j, x0 in enumerate(cols):
            box = data[y0 : y0 + box_size, x0 : x0 + box_size].ravel()
            box = box[np.isfinite(box)]
            if box.size <= threshold:
                continue
            n_good, median, std = _clipped_stats(box)
            if n_good > threshold:
                bkg[i, j], rms[i, j] = median, std
    good = np.isfinite(bkg)
    if not good.any():
        raise ValueError("no box has enough unclipped pixels")
    if not good.all():
        _fill_mesh_holes(bkg, good)
        _fill_mesh_holes(rms, good)
    return _nan_median_filter(bkg, filter_size), _nan_median_filter(rms, filter_size)


def _nan_median_filter(mesh: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """``generic_filter(mesh, nanmedian, size, mode="constant", cval=nan)``, vectorised."""
    if size <= 1:
        return mesh
    pad, (ny, nx) = size // 2, mesh.shape
    padded = np.full((ny + 2 * pad, nx + 2 * pad), np.nan)
    padded[pad : pad + ny, pad : pad + nx] = mesh
    windows = [padded[i : i + ny, j : j + nx] for i in range(size) for j in range(size)]
    ordered = np.sort(np.stack(windows), axis=0)  # NaNs sort last
    count = np.count_nonzero(np.isfinite(ordered), axis=0)
    low = np.take_along_axis(ordered, (np.maximum(count - 1, 0) // 2)[None], axis=0)[0]
    high = np.take_along_axis(ordered, (count // 2)[None], axis=0)[0]
    median = np.where(count % 2 == 1, low, 0.5 * (low + high))
    median[count == 0] = np.nan
    return median


def _fill_mesh_holes(mesh: NDArray[np.float64], good: NDArray[np.bool_]) -> None:
    """Fill the left-out boxes as photutils does: inverse-distance weighting (power 1)
    over the 10 nearest good boxes, in place."""
    points = np.argwhere(good).astype(np.float64)
    holes = np.argwhere(~good)
    if len(points) > 10:
        from photutils.utils import ShepardIDWInterpolator

        mesh[~good] = ShepardIDWInterpolator(points, mesh[good])(
            holes, n_neighbors=10, power=1.0, eps=0.0
        )
        return
    distance = np.hypot(
        holes[:, None, 0] - points[None, :, 0], holes[:, None, 1] - points[None, :, 1]
    )
    weights = 1.0 / distance
    mesh[~good] = (weights @ mesh[good]) / weights.sum(axis=1)


@functools.lru_cache(maxsize=16)
def _zoom_basis(
    mesh_shape: tuple[int, int], box_size: int, shape: tuple[int, int]
) -> NDArray[np.float64]:
    """Responses of photutils' bicubic mesh zoom to each unit mesh value.

    ``Background2D`` turns its low-resolution mesh into a full image with
    ``scipy.ndimage.zoom(mesh, box_size, order=3, mode="reflect", grid_mode=True)``,
    cropped to the image and clipped to the mesh range. Zooming is linear in the mesh,
    so the image is a weighted sum of these per-cell responses: computing them once per
    (mesh, box, image) shape replaces two spline zooms per cutout by one tensor product.
    """
    n_cells = mesh_shape[0] * mesh_shape[1]
    basis = np.empty((n_cells, *shape))
    for k in range(n_cells):
        unit = np.zeros(mesh_shape)
        unit.flat[k] = 1.0
        zoomed = ndimage.zoom(unit, box_size, order=3, mode="reflect", grid_mode=True)
        basis[k] = zoomed[: shape[0], : shape[1]]
    basis.setflags(write=False)
    return basis


def _zoom_mesh(
    mesh: NDArray[np.float64], box_size: int, shape: tuple[int, int]
) -> NDArray[np.float64]:
    """Full-size image of a background mesh, as photutils' default interpolator makes it."""
    lo, hi = float(np.min(mesh)), float(np.max(mesh))
    if hi == lo:
        return np.full(shape, lo)
    basis = _zoom_basis(mesh.shape, int(box_size), tuple(shape))
    image = np.tensordot(mesh.ravel(), basis, axes=1)
    return np.clip(image, lo, hi, out=image)


# --------------------------------------------------------------------------------------
# Smoothing


@functools.lru_cache(maxsize=16)
def gaussian_kernel(fwhm: float, size: int) -> NDArray[np.float64]:
    """photutils' normalised, pixel-integrated 2-D Gaussian kernel (read-only, cached).

    Parameters
    ----------
    fwhm
        Full width at half maximum in pixels.
    size
        Kernel size in pixels (``size`` x ``size``).

    Returns
    -------
    numpy.ndarray
        The kernel as float64.
    """
    from photutils.segmentation import make_2dgaussian_kernel

    kernel = np.asarray(make_2dgaussian_kernel(fwhm, size=size).array, dtype=np.float64)
    kernel.setflags(write=False)
    return kernel


def smooth_image(data: NDArray[np.float64], *, fwhm: float = 3.0, size: int = 5) -> NDArray:
    """Convolve with a normalised 2-D Gaussian kernel (photutils ``make_2dgaussian_kernel``).

    NaN pixels are interpolated from their neighbours (astropy ``convolve``). Without
    NaNs the kernel, a pixel-integrated Gaussian, is an outer product of two 1-D
    kernels, and two 1-D passes give astropy's result (zero fill beyond the edges) to
    rounding in half the time.
    """
    from astropy.convolution import convolve

    kernel = gaussian_kernel(float(fwhm), int(size))
    if np.isfinite(data).all():
        column, row = _separable_kernel(float(fwhm), int(size))
        if column is not None:
            passed = ndimage.correlate1d(data, column, axis=0, mode="constant", cval=0.0)
            return ndimage.correlate1d(passed, row, axis=1, mode="constant", cval=0.0)
    with warnings.catch_warnings():
        # Blank regions wider than the kernel stay NaN; they are never detected.
        warnings.simplefilter("ignore")
        smoothed = convolve(data, kernel, normalize_kernel=True)
    return np.asarray(smoothed, dtype=np.float64)


@functools.lru_cache(maxsize=16)
def _separable_kernel(fwhm: float, size: int) -> tuple[Any, Any]:
    """The two 1-D factors of the smoothing kernel, or (None, None) if it has none."""
    kernel = gaussian_kernel(fwhm, size)
    u, singular, vt = np.linalg.svd(kernel)
    column, row = u[:, 0] * np.sqrt(singular[0]), vt[0] * np.sqrt(singular[0])
    if column.sum() < 0:
        column, row = -column, -row
    if np.abs(np.outer(column, row) - kernel).max() > 1e-12 * kernel.max():
        return None, None
    column = column / kernel.sum()  # as astropy's normalize_kernel
    column.setflags(write=False)
    row.setflags(write=False)
    return column, row


def smoothed_noise(rms: Any, *, kernel_fwhm: float = 3.0, kernel_size: int = 5) -> Any:
    """Noise of the smoothed image from the per-pixel background RMS (white noise).

    Parameters
    ----------
    rms
        Background RMS (a map or a number), e.g. ``DeblendResult.threshold / nsigma``.
    kernel_fwhm, kernel_size
        The smoothing kernel of :func:`smooth_image`.

    Returns
    -------
    numpy.ndarray
        ``rms`` times the square root of the sum of the squared kernel.
    """
    kernel = gaussian_kernel(float(kernel_fwhm), int(kernel_size))
    return np.asarray(rms, dtype=np.float64) * float(np.sqrt(np.sum(kernel**2)))
