"""Blend detection: photutils segmentation and deblending, peaks and saddle points.

MMLforGalAM (Sect. 2.2.2) rejects a cutout as blended when more than one source is
found inside the masked target after photutils deblending. The defaults here are the
released pipeline's: a median ``Background2D`` (box about 50 px for a 128 px cutout), a
detection threshold of 1.5 times the background RMS, a Gaussian smoothing kernel (FWHM
3 px, 5x5), ``detect_sources`` with 10 connected pixels and ``deblend_sources`` with 90
exponential levels and contrast 1e-6.

Deblending is the slow step (about 57 ms per 128 px cutout with 90 levels), so
:func:`deblend_segments` re-implements photutils' multi-threshold + watershed deblending
for the segments that matter, exactly (the same thresholds, markers, watershed and
contrast rule, checked against ``photutils.segmentation.deblend_sources`` in the tests),
but skips every level at which no split is possible: at a threshold ``t`` a segment can
only have two components if two of its separate local-maximum plateaus are above ``t``,
so the levels above the second-highest plateau are never labelled, and a segment with a
single plateau is never deblended at all.

Saddle points are where two touching deblended sources meet at the highest level: for
each pair of adjacent pixels on the border of two segments the pair connects at the
lower of the two smoothed values; the saddle is the border pair with the highest such
value (the level at which the two sources merge into one).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from napari_galam.errors import GalamInputError

__all__ = [
    "DeblendResult",
    "DEBLEND_STATUSES",
    "MAX_DEBLEND_PIXELS",
    "to_single_band",
    "estimate_background",
    "smooth_image",
    "deblend_segments",
    "find_peaks_of_segments",
    "find_saddle_points",
    "detect_blends",
    "Companions",
    "find_companions",
    "smoothed_noise",
]

#: Images larger than this are refused (take a cutout first).
MAX_DEBLEND_PIXELS = 4096 * 4096

DEBLEND_STATUSES = {
    "ok": "sources detected and deblended",
    "no_source": "no source above the detection threshold",
    "flat": "the image has no contrast or no finite pixels",
}

_FOOTPRINT_8 = np.ones((3, 3), dtype=bool)
_FOOTPRINT_4 = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class DeblendResult:
    """Segmentation, deblending and the blend decision for one cutout.

    Attributes
    ----------
    status, reason
        ``"ok"`` or a key of :data:`DEBLEND_STATUSES`; ``reason`` says why in words.
    segments
        ``(ny, nx)`` int32 deblended segmentation (0 = background), labels 1..n.
    target_labels
        Labels of the deblended sources whose peak lies inside the target mask (all
        sources when no mask was given).
    blended
        True when more than one deblended source lies inside the target.
    peak_yx, peak_level, peak_label
        The brightest pixel (row, col) of each deblended source in the smoothed image,
        its smoothed value and its label.
    saddle_yx, saddle_level, saddle_labels
        One saddle point per pair of touching deblended sources: position (row, col),
        smoothed value, and the two labels ``(a, b)`` with ``a < b``.
    smoothed
        Background-subtracted, smoothed image used for detection and deblending.
    threshold
        The detection threshold image (``nsigma`` x background RMS).
    n_detected
        Number of segments before deblending.
    """

    status: str
    reason: str
    segments: NDArray[np.int32] = field(repr=False)
    target_labels: tuple[int, ...]
    blended: bool
    peak_yx: NDArray[np.float64] = field(repr=False)
    peak_level: NDArray[np.float64] = field(repr=False)
    peak_label: NDArray[np.int64] = field(repr=False)
    saddle_yx: NDArray[np.float64] = field(repr=False)
    saddle_level: NDArray[np.float64] = field(repr=False)
    saddle_labels: NDArray[np.int64] = field(repr=False)
    smoothed: NDArray[np.float64] = field(repr=False)
    threshold: NDArray[np.float64] = field(repr=False)
    n_detected: int = 0

    @property
    def n_sources(self) -> int:
        """Number of deblended sources inside the target."""
        return len(self.target_labels)

    @property
    def n_segments(self) -> int:
        """Number of deblended sources in the whole cutout."""
        return int(self.peak_label.size)


def to_single_band(image: Any, *, max_pixels: int = MAX_DEBLEND_PIXELS) -> NDArray[np.float64]:
    """Return a float64 single-band copy of a cutout (RGB images become luma grey).

    Raises
    ------
    GalamInputError
        For shapes that are not a 2-D image or an ``(ny, nx, 3|4)`` colour image, images
        smaller than 2x2, or larger than ``max_pixels``.
    """
    array = np.asarray(image)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise GalamInputError(f"image: expected a numeric array, got dtype {array.dtype}.")
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    elif array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise GalamInputError(
            f"image: shape {np.shape(image)} is not a cutout; expected (ny, nx) or (ny, nx, 3)."
        )
    if min(array.shape) < 2:
        raise GalamInputError(f"image: shape {array.shape} is too small (at least 2x2).")
    if array.size > max_pixels:
        raise GalamInputError(
            f"image: {array.shape[1]}x{array.shape[0]} pixels is a field, not a cutout "
            f"(limit {max_pixels}); take a cutout around the galaxy first."
        )
    return np.array(array, dtype=np.float64)


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


@functools.lru_cache(maxsize=16)
def _gaussian_kernel(fwhm: float, size: int) -> NDArray[np.float64]:
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

    kernel = _gaussian_kernel(float(fwhm), int(size))
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
    kernel = _gaussian_kernel(fwhm, size)
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


def _plateau_values(data: NDArray[np.float64], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Values of the separate local-maximum plateaus of ``data`` inside ``mask``, descending.

    A pixel is a local maximum when no 8-neighbour inside the mask is higher. Adjacent
    local maxima have equal values, so each 8-connected group is one plateau.
    """
    masked = np.where(mask, data, -np.inf)
    is_max = mask & (masked >= ndimage.maximum_filter(masked, footprint=_FOOTPRINT_8))
    groups, n_groups = ndimage.label(is_max, structure=_FOOTPRINT_8)
    if n_groups == 0:
        return np.empty(0)
    return np.sort(_label_maxima(masked, groups, n_groups))[::-1]


def _label_maxima(
    data: NDArray[np.float64], labels: NDArray[np.integer], n_labels: int
) -> NDArray[np.float64]:
    """Maximum of ``data`` over each label 1..n_labels (-inf for an empty label).

    ``ndimage.maximum`` sorts the whole image for this; an unbuffered ufunc maximum is a
    single pass.
    """
    maxima = np.full(n_labels + 1, -np.inf)
    np.maximum.at(maxima, labels.ravel(), data.ravel())
    return maxima[1:]


def _level_segments(
    data: NDArray[np.float64], mask: NDArray[np.bool_], threshold: float, n_pixels: int, footprint
) -> NDArray[np.int32] | None:
    """Components of ``data > threshold`` in ``mask`` with >= n_pixels; None if fewer than 2."""
    above = (data > threshold) & mask
    labels, n = ndimage.label(above, structure=footprint)
    if n < 2:
        return None
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= n_pixels
    keep[0] = False
    if np.count_nonzero(keep) < 2:
        return None
    if not keep[1:].all():
        labels = np.where(keep[labels], labels, 0)
    return labels


def _thresholds(
    source_min: float, source_max: float, n_levels: int, mode: str
) -> NDArray[np.float64]:
    linear = np.linspace(source_min, source_max, n_levels + 2)
    if mode == "linear":
        return linear[1:-1]
    normalised = (linear - source_min) / (source_max - source_min)
    if mode == "sinh":
        a = 0.25
        levels = np.sinh(normalised / a) / np.sinh(1.0 / a)
        return (levels * (source_max - source_min) + source_min)[1:-1]
    return (source_min * (source_max / source_min) ** normalised)[1:-1]


def _markers(
    data: NDArray[np.float64],
    mask: NDArray[np.bool_],
    thresholds: NDArray[np.float64],
    second_plateau: float,
    n_pixels: int,
    footprint,
) -> NDArray[np.int32] | None:
    markers = None
    for level in thresholds:
        if level >= second_plateau:
            break  # thresholds increase: no level above can have two components
        upper = _level_segments(data, mask, level, n_pixels, footprint)
        if upper is None:
            continue
        if markers is None:
            markers = upper
            continue
        both = (markers > 0) & (upper > 0)
        n_upper = int(upper.max()) + 1
        pairs = np.unique(markers[both].astype(np.int64) * n_upper + upper[both])
        children = np.bincount(pairs // n_upper, minlength=int(markers.max()) + 1)
        split = children >= 2
        if split.any():
            splitting = split[markers]
            new = ((markers > 0) & ~splitting) | (splitting & (upper > 0))
            markers = ndimage.label(new, structure=footprint)[0]
    return markers


def _deblend_one(
    data: NDArray[np.float64],
    segment_mask: NDArray[np.bool_],
    *,
    n_pixels: int,
    n_levels: int,
    contrast: float,
    mode: str,
    footprint,
) -> NDArray[np.int32] | None:
    """Deblend one segment (cutout arrays); labels 1..k, or None when it stays whole."""
    from skimage.segmentation import watershed

    values = data[segment_mask]
    source_min, source_max = float(np.nanmin(values)), float(np.nanmax(values))
    source_sum = float(np.nansum(values))
    if source_min == source_max:
        return None
    plateaus = _plateau_values(data, segment_mask)
    if plateaus.size < 2:
        return None  # a single plateau can never split
    if mode == "exponential" and source_min <= 0:
        mode = "linear"
    markers = _markers(
        data,
        segment_mask,
        _thresholds(source_min, source_max, n_levels, mode),
        plateaus[1],
        n_pixels,
        footprint,
    )
    if markers is None:
        return None
    if mode != "linear" and np.unique(markers).size - 1 > 200:
        markers = _markers(
            data,
            segment_mask,
            _thresholds(source_min, source_max, n_levels, "linear"),
            plateaus[1],
            n_pixels,
            footprint,
        )
        if markers is None:
            return None
    while True:
        markers = watershed(-data, markers, mask=segment_mask, connectivity=footprint)
        labels = np.unique(markers)
        labels = labels[labels != 0]
        if labels.size == 1:
            break
        flux_fraction = ndimage.sum_labels(data, markers, index=labels) / source_sum
        if not np.any(flux_fraction < contrast):
            break
        markers[markers == labels[np.argmin(flux_fraction)]] = 0
    labels = np.unique(markers)
    labels = labels[labels != 0]
    if labels.size == 1:
        return None
    relabel = np.zeros(int(labels.max()) + 1, dtype=np.int32)
    relabel[labels] = np.arange(1, labels.size + 1, dtype=np.int32)
    return relabel[markers]


def deblend_segments(
    data: NDArray[np.float64],
    segments: NDArray[np.integer],
    *,
    labels: Any = None,
    n_pixels: int = 10,
    n_levels: int = 90,
    contrast: float = 1e-6,
    mode: str = "exponential",
    connectivity: int = 8,
) -> NDArray[np.int32]:
    """Deblend segments exactly as ``photutils.segmentation.deblend_sources``, faster.

    Parameters
    ----------
    data
        The (smoothed) image the segments were detected on.
    segments
        Integer segmentation image (0 = background), as from ``detect_sources``.
    labels
        Labels to deblend (default: all). Others are kept as they are.
    n_pixels, n_levels, contrast, mode, connectivity
        As in photutils (``n_pixels``: minimum pixels per source; ``n_levels``:
        number of thresholds; ``contrast``: minimum flux fraction; ``mode``:
        ``"exponential"``, ``"linear"`` or ``"sinh"``; ``connectivity``: 4 or 8).

    Returns
    -------
    numpy.ndarray
        int32 segmentation with consecutive labels, numbered as photutils numbers them
        (untouched segments first, in label order, then the children of each deblended
        segment).
    """
    if n_levels < 1:
        raise GalamInputError(f"n_levels: must be >= 1, got {n_levels}.")
    if not 0 <= contrast <= 1:
        raise GalamInputError(f"contrast: must be between 0 and 1, got {contrast}.")
    if n_pixels < 1:
        raise GalamInputError(f"n_pixels: must be >= 1, got {n_pixels}.")
    if mode not in ("exponential", "linear", "sinh"):
        raise GalamInputError(f"mode: expected exponential, linear or sinh, got {mode!r}.")
    if connectivity not in (4, 8):
        raise GalamInputError(f"connectivity: must be 4 or 8, got {connectivity}.")
    footprint = _FOOTPRINT_8 if connectivity == 8 else _FOOTPRINT_4
    segments = np.asarray(segments)
    out = segments.astype(np.int32, copy=True)
    if contrast == 1 or not segments.any():
        return _relabel_consecutive(out)
    max_label = int(segments.max())
    areas = np.bincount(segments.ravel(), minlength=max_label + 1)
    slices = ndimage.find_objects(segments)
    wanted = np.arange(1, max_label + 1) if labels is None else np.atleast_1d(labels)
    for label in sorted(int(v) for v in wanted):
        if label < 1 or label >= areas.size or areas[label] < 2 * n_pixels:
            continue
        box = slices[label - 1]
        if box is None:
            continue
        segment_mask = segments[box] == label
        children = _deblend_one(
            data[box],
            segment_mask,
            n_pixels=n_pixels,
            n_levels=n_levels,
            contrast=contrast,
            mode=mode,
            footprint=footprint,
        )
        if children is None:
            continue
        child_mask = children > 0
        out[box][child_mask] = children[child_mask] + max_label
        max_label += int(children.max())
    return _relabel_consecutive(out)


def _relabel_consecutive(segments: NDArray[np.int32]) -> NDArray[np.int32]:
    present = np.unique(segments)
    present = present[present != 0]
    if present.size == 0 or (present[0] == 1 and present[-1] == present.size):
        return segments
    relabel = np.zeros(int(present[-1]) + 1, dtype=np.int32)
    relabel[present] = np.arange(1, present.size + 1, dtype=np.int32)
    return relabel[segments]


def find_peaks_of_segments(
    smoothed: NDArray[np.float64], segments: NDArray[np.integer]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Brightest pixel of every segment.

    Returns
    -------
    peak_yx, peak_level, peak_label
        ``(n, 2)`` row/col positions, the smoothed values there, and the labels.
    """
    labels = np.unique(segments)
    labels = labels[labels != 0].astype(np.int64)
    if labels.size == 0:
        return np.empty((0, 2)), np.empty(0), labels
    filled = np.where(np.isfinite(smoothed), smoothed, -np.inf).ravel()
    flat_labels = np.asarray(segments).ravel()
    maxima = np.full(int(labels.max()) + 1, -np.inf)
    np.maximum.at(maxima, flat_labels, filled)
    maxima[0] = np.inf  # the background never holds a peak
    # The first pixel (row-major) at its segment's maximum.
    at_max = np.flatnonzero(filled == maxima[flat_labels])
    first_labels, first = np.unique(flat_labels[at_max], return_index=True)
    where = dict(zip(first_labels.tolist(), at_max[first].tolist(), strict=True))
    flat_index = np.array([where[int(label)] for label in labels], dtype=np.int64)
    rows, cols = np.divmod(flat_index, segments.shape[1])
    peak_yx = np.column_stack([rows, cols]).astype(np.float64).reshape(-1, 2)
    return peak_yx, np.asarray(smoothed[rows, cols], dtype=np.float64), labels


def find_saddle_points(
    smoothed: NDArray[np.float64], segments: NDArray[np.integer]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Saddle point between each pair of touching segments.

    Two 8-adjacent pixels with different non-zero labels join at the lower of their two
    values; the saddle of the pair of labels is the border pair that joins highest, and
    its position is the lower pixel of that pair.

    Returns
    -------
    saddle_yx, saddle_level, saddle_labels
        ``(m, 2)`` row/col positions, levels and ``(m, 2)`` label pairs ``(a < b)``,
        sorted by label pair.
    """
    labels = np.asarray(segments)
    values = np.where(np.isfinite(smoothed), smoothed, -np.inf)
    ny, nx = labels.shape
    rows_all, cols_all = np.indices(labels.shape)
    pair_a, pair_b, level, rr, cc = [], [], [], [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        first = (slice(0, ny - dy), slice(max(0, -dx), nx - max(0, dx)))
        second = (slice(dy, ny), slice(max(0, dx), nx + min(0, dx)))
        la, lb = labels[first], labels[second]
        touching = (la > 0) & (lb > 0) & (la != lb)
        if not touching.any():
            continue
        va, vb = values[first][touching], values[second][touching]
        a_lower = va <= vb
        pair_a.append(np.minimum(la[touching], lb[touching]))
        pair_b.append(np.maximum(la[touching], lb[touching]))
        level.append(np.where(a_lower, va, vb))
        rr.append(np.where(a_lower, rows_all[first][touching], rows_all[second][touching]))
        cc.append(np.where(a_lower, cols_all[first][touching], cols_all[second][touching]))
    if not pair_a:
        return np.empty((0, 2)), np.empty(0), np.empty((0, 2), dtype=np.int64)
    a = np.concatenate(pair_a).astype(np.int64)
    b = np.concatenate(pair_b).astype(np.int64)
    lev = np.concatenate(level)
    r = np.concatenate(rr)
    c = np.concatenate(cc)
    # Sort by pair, then by level descending; the first row of each pair is its saddle.
    order = np.lexsort((-lev, b, a))
    a, b, lev, r, c = a[order], b[order], lev[order], r[order], c[order]
    first_of_pair = np.ones(a.size, dtype=bool)
    first_of_pair[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return (
        np.column_stack([r[first_of_pair], c[first_of_pair]]).astype(np.float64),
        lev[first_of_pair].astype(np.float64),
        np.column_stack([a[first_of_pair], b[first_of_pair]]),
    )


def detect_blends(
    image: NDArray[Any],
    *,
    target_mask: NDArray[np.bool_] | None = None,
    box_size: int | None = None,
    nsigma: float = 1.5,
    kernel_fwhm: float = 3.0,
    kernel_size: int = 5,
    n_pixels: int = 10,
    n_levels: int = 90,
    contrast: float = 1e-6,
    mode: str = "exponential",
    deblend_all: bool = False,
    method: str = "fast",
    max_pixels: int = MAX_DEBLEND_PIXELS,
) -> DeblendResult:
    """Detect and deblend the sources of a cutout and decide whether its target is blended.

    Parameters
    ----------
    image
        ``(ny, nx)`` single band (NaN allowed) or ``(ny, nx, 3)`` RGB (converted to grey).
    target_mask
        Boolean mask of the target galaxy (e.g. :attr:`MaskingResult.mask`). Only the
        segments that overlap it are deblended, and only the deblended sources whose
        peak lies inside it count for the blend decision. ``None``: the whole image.
    box_size
        Background box in pixels (default: 50 px per 128 px of image).
    nsigma
        Detection threshold in units of the background RMS (default 1.5).
    kernel_fwhm, kernel_size
        Gaussian smoothing kernel (default FWHM 3 px, 5x5).
    n_pixels, n_levels, contrast, mode
        ``detect_sources``/``deblend_sources`` parameters (defaults 10, 90, 1e-6,
        exponential, as the released pipeline).
    deblend_all
        Deblend every segment, not only those overlapping the target (for display).
    method
        ``"fast"`` (this module's exact re-implementation) or ``"photutils"``.
    max_pixels
        Larger images are refused.

    Returns
    -------
    DeblendResult
    """
    from photutils.segmentation import deblend_sources, detect_sources

    data = to_single_band(image, max_pixels=max_pixels)
    if nsigma <= 0 or not math.isfinite(nsigma):
        raise GalamInputError(f"nsigma: must be a positive number, got {nsigma}.")
    if method not in ("fast", "photutils"):
        raise GalamInputError(f"method: expected 'fast' or 'photutils', got {method!r}.")
    if target_mask is not None:
        target_mask = np.asarray(target_mask, dtype=bool)
        if target_mask.shape != data.shape:
            raise GalamInputError(
                f"target_mask: shape {target_mask.shape} does not match the image {data.shape}."
            )
    empty = DeblendResult(
        status="flat",
        reason="",
        segments=np.zeros(data.shape, dtype=np.int32),
        target_labels=(),
        blended=False,
        peak_yx=np.empty((0, 2)),
        peak_level=np.empty(0),
        peak_label=np.empty(0, dtype=np.int64),
        saddle_yx=np.empty((0, 2)),
        saddle_level=np.empty(0),
        saddle_labels=np.empty((0, 2), dtype=np.int64),
        smoothed=np.zeros(data.shape),
        threshold=np.zeros(data.shape),
    )
    finite = np.isfinite(data)
    if np.count_nonzero(finite) < 2 or np.nanmax(data) == np.nanmin(data):
        what = "no finite pixels" if not finite.any() else "all pixels are equal"
        return _replace(empty, status="flat", reason=f"flat image: {what}")
    background, rms = estimate_background(data, box_size=box_size)
    smoothed = smooth_image(data - background, fwhm=kernel_fwhm, size=kernel_size)
    threshold = nsigma * rms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detected = detect_sources(smoothed, threshold, n_pixels=n_pixels)
    if detected is None:
        return _replace(
            empty,
            status="no_source",
            reason=f"no source of {n_pixels}+ pixels above {nsigma} x background RMS",
            smoothed=smoothed,
            threshold=threshold,
        )
    parents = np.asarray(detected.data)
    if target_mask is None or deblend_all:
        to_deblend = None
    else:
        to_deblend = np.unique(parents[target_mask])
        to_deblend = to_deblend[to_deblend != 0]
    if to_deblend is not None and to_deblend.size == 0:
        segments = _relabel_consecutive(parents.astype(np.int32))
    elif method == "fast":
        segments = deblend_segments(
            smoothed,
            parents,
            labels=to_deblend,
            n_pixels=n_pixels,
            n_levels=n_levels,
            contrast=contrast,
            mode=mode,
        )
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            segments = np.asarray(
                deblend_sources(
                    smoothed,
                    detected,
                    n_pixels,
                    labels=to_deblend,
                    n_levels=n_levels,
                    contrast=contrast,
                    mode=mode,
                    progress_bar=False,
                ).data,
                dtype=np.int32,
            )
    peak_yx, peak_level, peak_label = find_peaks_of_segments(smoothed, segments)
    saddle_yx, saddle_level, saddle_labels = find_saddle_points(smoothed, segments)
    if target_mask is None:
        target_labels = tuple(int(v) for v in peak_label)
    else:
        rows, cols = peak_yx[:, 0].astype(int), peak_yx[:, 1].astype(int)
        inside = target_mask[rows, cols]
        target_labels = tuple(int(v) for v in peak_label[inside])
    return DeblendResult(
        status="ok",
        reason="",
        segments=segments,
        target_labels=target_labels,
        blended=len(target_labels) > 1,
        peak_yx=peak_yx,
        peak_level=peak_level,
        peak_label=peak_label,
        saddle_yx=saddle_yx,
        saddle_level=saddle_level,
        saddle_labels=saddle_labels,
        smoothed=smoothed,
        threshold=threshold,
        n_detected=int(detected.n_labels),
    )


def _replace(result: DeblendResult, **changes: Any) -> DeblendResult:
    from dataclasses import replace

    return replace(result, **changes)


@dataclass(frozen=True)
class Companions:
    """Companions of the target found in its 180-degree-rotation residual.

    Attributes
    ----------
    centre_yx
        The symmetry centre used (row, col), on a half-pixel grid; NaN when not run.
    yx
        ``(k, 2)`` row/col of the residual peak of each companion.
    significance
        Peak residual in units of its noise (sqrt(2) x the smoothed image's noise).
    fraction
        Fraction of the light at the companion's peak that is not point-symmetric
        about the target centre (residual over the smoothed image there).
    n_pixels
        Pixels of each residual component.
    """

    centre_yx: tuple[float, float]
    yx: NDArray[np.float64] = field(repr=False)
    significance: NDArray[np.float64] = field(repr=False)
    fraction: NDArray[np.float64] = field(repr=False)
    n_pixels: NDArray[np.int64] = field(repr=False)

    @property
    def n_companions(self) -> int:
        """Number of companions found."""
        return int(self.significance.size)


def _no_companions(centre_yx=(float("nan"), float("nan"))) -> Companions:
    return Companions(
        centre_yx=centre_yx,
        yx=np.empty((0, 2)),
        significance=np.empty(0),
        fraction=np.empty(0),
        n_pixels=np.empty(0, dtype=np.int64),
    )


def _rotated_180(data: NDArray[np.float64], cy2: int, cx2: int) -> NDArray[np.float64]:
    """``data`` rotated by 180 degrees about (cy2 / 2, cx2 / 2); NaN where nothing maps."""
    ny, nx = data.shape
    rows = cy2 - np.arange(ny)
    cols = cx2 - np.arange(nx)
    ok_r = (rows >= 0) & (rows < ny)
    ok_c = (cols >= 0) & (cols < nx)
    out = np.full(data.shape, np.nan)
    out[np.ix_(ok_r, ok_c)] = data[np.ix_(rows[ok_r], cols[ok_c])]
    return out


def _mirror_of_box(
    data: NDArray[np.float64], cy2: int, cx2: int, r0: int, r1: int, c0: int, c1: int
) -> NDArray[np.float64]:
    """``data[r0:r1, c0:c1]`` of the image rotated by 180 degrees about (cy2/2, cx2/2)."""
    ny, nx = data.shape
    rows = cy2 - np.arange(r0, r1)
    cols = cx2 - np.arange(c0, c1)
    ok_r = (rows >= 0) & (rows < ny)
    ok_c = (cols >= 0) & (cols < nx)
    out = np.full((r1 - r0, c1 - c0), np.nan)
    out[np.ix_(ok_r, ok_c)] = data[np.ix_(rows[ok_r], cols[ok_c])]
    return out


def _symmetry_centre(
    data: NDArray[np.float64], pr: int, pc: int, core_radius: float
) -> tuple[int, int]:
    """Twice the (row, col) of the half-pixel centre near (pr, pc) with the smallest
    mean absolute 180-degree residual within ``core_radius`` (as the CAS asymmetry)."""
    ny, nx = data.shape
    reach = int(math.ceil(core_radius)) + 2
    pad = reach + 2
    padded = np.zeros((ny + 2 * pad, nx + 2 * pad))
    known = np.zeros(padded.shape, dtype=bool)
    finite = np.isfinite(data)
    padded[pad:-pad, pad:-pad] = np.where(finite, data, 0.0)
    known[pad:-pad, pad:-pad] = True
    rr0, rr1 = max(pr - reach, 0), min(pr + reach + 1, ny)
    cc0, cc1 = max(pc - reach, 0), min(pc + reach + 1, nx)
    here = padded[rr0 + pad : rr1 + pad, cc0 + pad : cc1 + pad]
    rows = np.arange(rr0, rr1)[:, None]
    cols = np.arange(cc0, cc1)[None, :]
    best = (np.inf, 2 * pr, 2 * pc)
    for dy2 in (-2, -1, 0, 1, 2):
        cy2 = 2 * pr + dy2
        # mirror rows cy2 - r for r in rr0..rr1-1, i.e. a reversed slice
        mr0, mr1 = cy2 - rr1 + 1 + pad, cy2 - rr0 + 1 + pad
        for dx2 in (-2, -1, 0, 1, 2):
            cx2 = 2 * pc + dx2
            mc0, mc1 = cx2 - cc1 + 1 + pad, cx2 - cc0 + 1 + pad
            mirror = padded[mr0:mr1, mc0:mc1][::-1, ::-1]
            core = (rows - cy2 / 2.0) ** 2 + (cols - cx2 / 2.0) ** 2 <= core_radius**2
            core &= known[mr0:mr1, mc0:mc1][::-1, ::-1]
            count = int(np.count_nonzero(core))
            if count == 0:
                continue
            cost = float(np.abs(here - mirror)[core].sum()) / count
            if cost < best[0]:
                best = (cost, cy2, cx2)
    return best[1], best[2]


def find_companions(
    smoothed: NDArray[np.float64],
    noise: NDArray[np.float64] | float,
    region: NDArray[np.bool_],
    centre_yx: tuple[float, float],
    *,
    nsigma: float = 3.0,
    n_pixels: int = 10,
    min_separation: float = 6.0,
    min_fraction: float = 0.3,
    max_fraction: float = math.inf,
    search_radius: int = 3,
    core_radius: float = 4.0,
    structure_noise: bool = False,
) -> Companions:
    """Find companions of the target that have no peak of their own (rotation residual).

    Peak-based deblending (the seed's photutils step) can only split a neighbour that
    makes its own local maximum, with an island of at least ``n_pixels`` above the
    saddle, in the smoothed image. A fainter neighbour on the slope of a brighter target
    makes neither, but it breaks the target's point symmetry. Galaxy light profiles are
    close to point-symmetric about their centre, so the residual ``I(x) - I(x')`` with
    ``x'`` the 180-degree rotation of ``x`` about the target centre holds the neighbour
    as a positive blob (and its mirror image as a negative one). This is the symmetric
    template of the SDSS deblender (Lupton) and the residual of the CAS asymmetry index
    (Conselice 2000), used as a detector.

    The symmetry centre is chosen on a half-pixel grid near the brightest pixel close
    to ``centre_yx``, minimising the absolute residual within ``core_radius`` (as the
    asymmetry index does). A companion is a connected component of the residual above
    ``nsigma`` times its noise, inside ``region``, of at least ``n_pixels`` pixels,
    whose residual peak lies at least ``min_separation`` pixels from the centre (closer
    residuals are centring and sampling errors of the core, not neighbours: the
    benchmark's blends are more than 2 PSF FWHM apart), and where at least
    ``min_fraction`` of the light at that peak is not symmetric (real galaxies' own
    asymmetries, spiral arms and clumps, are a smaller share of their local light), and
    at most ``max_fraction``: a residual larger than the light itself means the mirror
    pixel is below the background, i.e. noise in the outskirts, not a neighbour.

    Parameters
    ----------
    smoothed
        Background-subtracted, smoothed image (as :attr:`DeblendResult.smoothed`).
    noise
        Noise of ``smoothed`` per pixel (a map or a number).
    region
        Boolean: where to look (the target's masking region).
    centre_yx
        Approximate target centre (row, col), e.g. the masking ellipse's centre.
    nsigma, n_pixels, min_separation, min_fraction, max_fraction
        Detection threshold (residual noise units), minimum size (pixels), minimum
        distance from the centre (pixels), lowest and highest asymmetric share of the
        light at the residual peak.
    search_radius, core_radius
        Pixels around ``centre_yx`` searched for the brightest pixel, and radius of the
        core whose residual fixes the symmetry centre.

    Returns
    -------
    Companions
    """
    data = np.asarray(smoothed, dtype=np.float64)
    region = np.asarray(region, dtype=bool)
    if region.shape != data.shape:
        raise GalamInputError(
            f"region: shape {region.shape} does not match the image {data.shape}."
        )
    if not (
        nsigma > 0 and 0 <= min_fraction <= max_fraction and n_pixels >= 1 and min_separation >= 0
    ):
        raise GalamInputError(
            "companions: nsigma and n_pixels must be > 0, min_separation >= 0 and "
            f"0 <= min_fraction <= max_fraction (got {nsigma}, {n_pixels}, "
            f"{min_separation}, {min_fraction}, {max_fraction})."
        )
    ny, nx = data.shape
    rows_in, cols_in = np.nonzero(region)
    if rows_in.size == 0:
        return _no_companions()
    r0 = int(round(min(max(centre_yx[0], 0), ny - 1)))
    c0 = int(round(min(max(centre_yx[1], 0), nx - 1)))
    wr0, wc0 = max(r0 - search_radius, 0), max(c0 - search_radius, 0)
    window = data[wr0 : r0 + search_radius + 1, wc0 : c0 + search_radius + 1]
    window = np.where(
        region[wr0 : r0 + search_radius + 1, wc0 : c0 + search_radius + 1], window, np.nan
    )
    if not np.isfinite(window).any():
        return _no_companions()
    pr, pc = np.unravel_index(int(np.nanargmax(window)), window.shape)
    pr, pc = int(pr) + wr0, int(pc) + wc0
    cy2, cx2 = _symmetry_centre(data, pr, pc, core_radius)
    centre = (cy2 / 2.0, cx2 / 2.0)
    # Work on the bounding box of the region only (the residual is needed nowhere else).
    br0, br1 = int(rows_in.min()), int(rows_in.max()) + 1
    bc0, bc1 = int(cols_in.min()), int(cols_in.max()) + 1
    box = data[br0:br1, bc0:bc1]
    inside = region[br0:br1, bc0:bc1]
    residual = box - _mirror_of_box(data, cy2, cx2, br0, br1, bc0, bc1)
    valid = inside & np.isfinite(residual)
    sigma = math.sqrt(2.0) * np.asarray(noise, dtype=np.float64)
    if sigma.ndim == 2:
        sigma = sigma[br0:br1, bc0:bc1]
    if structure_noise:
        values = residual[valid]
        if values.size:
            spread = 1.4826 * float(np.median(np.abs(values - np.median(values))))
            sigma = np.maximum(sigma, spread)
    with np.errstate(invalid="ignore", divide="ignore"):
        significance = np.where(valid, residual / sigma, 0.0)
    significance = np.nan_to_num(significance, nan=0.0, posinf=0.0, neginf=0.0)
    labels, n = ndimage.label(significance > nsigma, structure=_FOOTPRINT_8)
    if n == 0:
        return _no_companions(centre)
    index = np.arange(1, n + 1)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    peaks = ndimage.maximum_position(significance, labels, index=index)
    found_yx, found_sig, found_frac, found_n = [], [], [], []
    for (row, col), size in zip(peaks, sizes, strict=True):
        if size < n_pixels:
            continue
        if math.hypot(row + br0 - centre[0], col + bc0 - centre[1]) < min_separation:
            continue
        light = box[row, col]
        fraction = residual[row, col] / light if light > 0 else 0.0
        if not min_fraction <= fraction <= max_fraction:
            continue
        found_yx.append((float(row + br0), float(col + bc0)))
        found_sig.append(float(significance[row, col]))
        found_frac.append(float(fraction))
        found_n.append(int(size))
    if not found_yx:
        return _no_companions(centre)
    return Companions(
        centre_yx=centre,
        yx=np.asarray(found_yx, dtype=np.float64).reshape(-1, 2),
        significance=np.asarray(found_sig),
        fraction=np.asarray(found_frac),
        n_pixels=np.asarray(found_n, dtype=np.int64),
    )


def smoothed_noise(rms: Any, *, kernel_fwhm: float = 3.0, kernel_size: int = 5) -> Any:
    """Noise of the smoothed image from the per-pixel background RMS (white noise)."""
    kernel = _gaussian_kernel(float(kernel_fwhm), int(kernel_size))
    return np.asarray(rms, dtype=np.float64) * float(np.sqrt(np.sum(kernel**2)))
