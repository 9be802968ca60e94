"""Blend detection: photutils segmentation and deblending, peaks and saddle points.

MMLforGalAM (Sect. 2.2.2) rejects a cutout as blended when more than one source is
found inside the masked target after photutils deblending. The defaults here are the
released pipeline's: a median ``Background2D`` (box about 50 px for a 128 px cutout), a
detection threshold of 1.5 times the background RMS, a Gaussian smoothing kernel (FWHM
3 px, 5x5), ``detect_sources`` with 10 connected pixels and ``deblend_sources`` with 90
exponential levels and contrast 1e-6. The background and the smoothing are
:mod:`napari_galam.core.background`; companions that make no peak of their own are
found by :mod:`napari_galam.core.companions`.

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

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from napari_galam.core.background import estimate_background, smooth_image
from napari_galam.errors import GalamInputError

__all__ = [
    "DeblendResult",
    "DEBLEND_STATUSES",
    "MAX_DEBLEND_PIXELS",
    "to_single_band",
    "deblend_segments",
    "find_peaks_of_segments",
    "find_saddle_points",
    "detect_blends",
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


# --------------------------------------------------------------------------------------
# Deblending (photutils deblend_sources, exactly)


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


# --------------------------------------------------------------------------------------
# The blend decision


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
    from photutils.segmentation import detect_sources

    data = to_single_band(image, max_pixels=max_pixels)
    target_mask = _checked_detection_inputs(data, target_mask, nsigma, method)
    empty = _empty_result(data.shape)
    finite = np.isfinite(data)
    if np.count_nonzero(finite) < 2 or np.nanmax(data) == np.nanmin(data):
        what = "no finite pixels" if not finite.any() else "all pixels are equal"
        return replace(empty, status="flat", reason=f"flat image: {what}")
    background, rms = estimate_background(data, box_size=box_size)
    smoothed = smooth_image(data - background, fwhm=kernel_fwhm, size=kernel_size)
    threshold = nsigma * rms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detected = detect_sources(smoothed, threshold, n_pixels=n_pixels)
    if detected is None:
        return replace(
            empty,
            status="no_source",
            reason=f"no source of {n_pixels}+ pixels above {nsigma} x background RMS",
            smoothed=smoothed,
            threshold=threshold,
        )
    segments = _deblend_detected(
        smoothed,
        detected,
        None if deblend_all else target_mask,
        method=method,
        n_pixels=n_pixels,
        n_levels=n_levels,
        contrast=contrast,
        mode=mode,
    )
    return _described_segments(
        segments, smoothed, threshold, target_mask, n_detected=int(detected.n_labels)
    )


def _described_segments(
    segments: NDArray[np.int32],
    smoothed: NDArray[np.float64],
    threshold: NDArray[np.float64],
    target_mask: NDArray[np.bool_] | None,
    *,
    n_detected: int,
) -> DeblendResult:
    """The ``"ok"`` result: peaks and saddles of the segments and the blend decision."""
    peak_yx, peak_level, peak_label = find_peaks_of_segments(smoothed, segments)
    saddle_yx, saddle_level, saddle_labels = find_saddle_points(smoothed, segments)
    target_labels = _labels_peaking_inside(peak_yx, peak_label, target_mask)
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
        n_detected=n_detected,
    )


def _checked_detection_inputs(
    data: NDArray[np.float64], target_mask: Any, nsigma: float, method: str
) -> NDArray[np.bool_] | None:
    """Refuse a bad ``nsigma``, ``method`` or mask shape; the mask as booleans (or None)."""
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
    return target_mask


def _empty_result(shape: tuple[int, ...]) -> DeblendResult:
    """A result with no segment, peak or saddle, for images where nothing is detected."""
    return DeblendResult(
        status="flat",
        reason="",
        segments=np.zeros(shape, dtype=np.int32),
        target_labels=(),
        blended=False,
        peak_yx=np.empty((0, 2)),
        peak_level=np.empty(0),
        peak_label=np.empty(0, dtype=np.int64),
        saddle_yx=np.empty((0, 2)),
        saddle_level=np.empty(0),
        saddle_labels=np.empty((0, 2), dtype=np.int64),
        smoothed=np.zeros(shape),
        threshold=np.zeros(shape),
    )


def _deblend_detected(
    smoothed: NDArray[np.float64],
    detected: Any,
    deblend_mask: NDArray[np.bool_] | None,
    *,
    method: str,
    n_pixels: int,
    n_levels: int,
    contrast: float,
    mode: str,
) -> NDArray[np.int32]:
    """Deblend the detected segments that overlap ``deblend_mask`` (all when None).

    ``detected`` is photutils' ``SegmentationImage``; ``method`` picks this module's
    :func:`deblend_segments` (``"fast"``) or ``photutils.segmentation.deblend_sources``.
    """
    from photutils.segmentation import deblend_sources

    parents = np.asarray(detected.data)
    if deblend_mask is None:
        to_deblend = None
    else:
        to_deblend = np.unique(parents[deblend_mask])
        to_deblend = to_deblend[to_deblend != 0]
    if to_deblend is not None and to_deblend.size == 0:
        return _relabel_consecutive(parents.astype(np.int32))
    if method == "fast":
        return deblend_segments(
            smoothed,
            parents,
            labels=to_deblend,
            n_pixels=n_pixels,
            n_levels=n_levels,
            contrast=contrast,
            mode=mode,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(
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


def _labels_peaking_inside(
    peak_yx: NDArray[np.float64],
    peak_label: NDArray[np.int64],
    target_mask: NDArray[np.bool_] | None,
) -> tuple[int, ...]:
    """Labels of the sources whose peak lies inside ``target_mask`` (all when None)."""
    if target_mask is None:
        return tuple(int(v) for v in peak_label)
    rows, cols = peak_yx[:, 0].astype(int), peak_yx[:, 1].astype(int)
    inside = target_mask[rows, cols]
    return tuple(int(v) for v in peak_label[inside])
