"""Is the target a star? Size, shape, saturated core and diffraction spikes against the PSF.

A star is a point source: its image is the PSF. :func:`measure_point_source` measures the
target at the centre of a cutout in the ways that tell a point source from a galaxy,
and :func:`point_source_reason` decides:

* **size** -- adaptive (Gaussian-weighted, iterated) second moments of the target's
  light, as a ratio to the same moments of a Moffat PSF of the image's FWHM
  (``size_ratio``: 1 for a star, above 1 for a resolved galaxy), and the moments' axis
  ratio (a PSF is round). 8-bit pictures are first brought back to linear flux by
  inverting the asinh stretch of SDSS's colour composites (Lupton et al. 2004, the
  ImgCutout JPEGs the models were trained on), so that the size is the light's and not
  the stretch's.
* **saturated core** -- a plateau of pixels at the picture's maximum at the target's
  peak. Its moments are those of the plateau, so the size test is replaced by the
  steepness of the picture's grey level just outside the plateau (a PSF's wings fall as
  ``r^(-2 beta)``, far faster than a galaxy's). It is measured on the stretched picture,
  not the linearised flux: an image that is not an SDSS asinh composite (the Hubble
  Deep Field's) would otherwise look steeper than it is.
* **diffraction spikes** -- narrow rays at 90-degree steps around the target: the light
  of an annulus, folded at 90 degrees, with at least three of the four arms above
  their surroundings at the same angle.

All thresholds are :func:`point_source_reason`'s arguments; the galaxy QA passes its
:class:`napari_galam.pipeline.qa_parameters.QAParameters`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "SDSS_PSF_FWHM_PX",
    "PointSource",
    "linear_flux",
    "adaptive_moments",
    "psf_moment_size",
    "spike_score",
    "compact_source_sizes",
    "estimate_psf_fwhm",
    "measure_point_source",
    "point_source_reason",
]

#: SDSS median r-band seeing, 1.4 arcsec, in SDSS pixels of 0.396 arcsec.
SDSS_PSF_FWHM_PX: float = 1.4 / 0.396

#: Softening and non-linearity of SDSS's asinh colour composites (the values of
#: :func:`napari_galam.simulate.imaging.lupton_rgb`).
_ASINH_STRETCH, _ASINH_Q = 0.4, 8.0

#: Smallest axis ratio of a saturated star's moments (a bleed trail stretches them;
#: an edge-on galaxy's saturated bulge along a column is far flatter).
_MIN_CORE_AXIS_RATIO = 0.4

#: Axis ratio above which a saturated core with steep wings (1.25 times the wing-slope
#: limit) is a star's without a bleed trail or spikes: an 8-bit picture clips a bright
#: star's core round, while the saturated cores of compact galaxies are elongated.
_ROUND_CORE_AXIS_RATIO = 0.95

#: Shortest length (pixels) of the annulus searched for diffraction spikes.
_SPIKE_MIN_LENGTH = 12.0

#: An unsaturated source more than this many times the PSF's size is extended (a galaxy,
#: whatever lies on its rays): its spikes are not measured (they cost most of the test).
_SPIKE_SEARCH_MAX_SIZE_RATIO = 2.5

#: Smallest PSF FWHM (pixels) whose wings outside a saturated core are measured: a
#: Nyquist-sampled PSF (see :func:`_wing_beta`).
_MIN_SAMPLED_FWHM = 2.0

#: Smallest axis ratio of a saturated plateau without a bleed trail that is a star's
#: (a PSF clipped at one level is round; pixelisation of a plateau of a few pixels, and
#: a bleed in one band too short to count as a trail, flatten it a little).
_MIN_PLATEAU_AXIS_RATIO = 0.6


@dataclass(frozen=True)
class PointSource:
    """Measurements of a cutout's central source against the PSF.

    Attributes
    ----------
    psf_fwhm_px
        The PSF FWHM the measurement was made against, pixels.
    size_ratio
        Adaptive-moment size (square root of the trace) of the target over the PSF's;
        NaN when the moments did not converge or the core is saturated.
    axis_ratio
        Minor over major axis of the adaptive moments (NaN as above).
    n_saturated
        Pixels of the saturated plateau at the target's peak (0: none).
    bleed
        The plateau runs along a column at least 1.3 times (and 3 px) as far as along
        its row (a CCD's bleed trail).
    wing_slope
        Logarithmic slope of the picture's grey level just outside the saturated
        plateau (NaN without one); on SDSS-like asinh pictures a star's is below about
        -0.6, a galaxy's above.
    spikes
        Contrast of the third-strongest of four diffraction-spike arms, in units of the
        annulus' noise (0: none found).
    peak_yx
        Position of the target's peak, (row, col).
    psf_source
        Where the PSF FWHM came from, in words (e.g. "given", "SDSS default").
    wing_beta
        The Moffat exponent the linear light just outside the saturated plateau falls
        with for the PSF's FWHM (NaN without a plateau, or see :func:`_wing_beta`): a
        star's PSF gives 2.5-4.7, a galaxy's saturated core less.
    plateau_axis_ratio
        Minor over major axis of the saturated plateau (NaN without one).
    """

    psf_fwhm_px: float
    size_ratio: float
    axis_ratio: float
    n_saturated: int
    bleed: bool
    wing_slope: float
    spikes: float
    peak_yx: tuple[float, float]
    psf_source: str = "given"
    wing_beta: float = float("nan")
    plateau_axis_ratio: float = float("nan")


def linear_flux(image: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """A single-band linear-flux image of a cutout, and its saturated pixels.

    8-bit images (``uint8``, grey or RGB) are taken as SDSS asinh composites: the mean of
    the channels is inverted to linear intensity; a pixel with a channel at 250 or more is
    saturated. Other images are used as they are (the mean of their channels); a pixel
    equal to the image's maximum is saturated when at least 4 share it (a flat top).
    """
    array = np.asarray(image)
    data = array[..., :3].astype(np.float64) if array.ndim == 3 else array.astype(np.float64)
    top = data.max(axis=-1) if data.ndim == 3 else data
    grey = data.mean(axis=-1) if data.ndim == 3 else data
    if array.dtype == np.uint8:
        linear = _ASINH_STRETCH / _ASINH_Q * np.sinh(_ASINH_Q * grey / 255.0)
        return linear, top >= 250
    finite = np.isfinite(top)
    peak = np.max(top[finite]) if finite.any() else np.nan
    saturated = finite & (top == peak)
    if np.count_nonzero(saturated) < 4:
        saturated[:] = False
    return np.where(np.isfinite(grey), grey, 0.0), saturated


def adaptive_moments(
    image: NDArray[np.float64],
    centre_yx: tuple[float, float],
    sigma: float,
    *,
    max_iterations: int = 30,
) -> tuple[float, float, tuple[float, float]] | None:
    """Gaussian-weighted second moments iterated until the weight matches the source.

    Returns ``(size, axis_ratio, centre_yx)``: size is the square root of the trace of
    the moment matrix (pixels; sigma * sqrt(2) for a round Gaussian); ``None`` when the
    iteration leaves the image or diverges.
    """
    ny, nx = image.shape
    cy, cx = centre_yx
    moments = np.diag([sigma**2, sigma**2])
    ys, xs = np.mgrid[0:ny, 0:nx].astype(np.float64)
    for _ in range(max_iterations):
        inverse = np.linalg.inv(moments)
        dy, dx = ys - cy, xs - cx
        r2 = inverse[0, 0] * dy * dy + 2 * inverse[0, 1] * dy * dx + inverse[1, 1] * dx * dx
        weight = np.exp(-0.5 * r2) * image
        total = weight.sum()
        if not total > 0:
            return None
        new_cy, new_cx = (weight * ys).sum() / total, (weight * xs).sum() / total
        dy, dx = ys - new_cy, xs - new_cx
        new = (
            2.0
            * np.array(
                [
                    [(weight * dy * dy).sum(), (weight * dy * dx).sum()],
                    [(weight * dy * dx).sum(), (weight * dx * dx).sum()],
                ]
            )
            / total
        )
        if not (np.all(np.isfinite(new)) and np.linalg.det(new) > 0 and np.trace(new) > 0.01):
            return None
        if math.hypot(new_cy - centre_yx[0], new_cx - centre_yx[1]) > 3.0 * sigma + 2.0:
            return None
        change = abs(np.trace(new) - np.trace(moments)) / np.trace(moments)
        moments, cy, cx = new, new_cy, new_cx
        if change < 1e-4:
            break
    values = np.linalg.eigvalsh(moments)
    return float(np.sqrt(values.sum())), float(np.sqrt(values[0] / values[1])), (cy, cx)


@functools.lru_cache(maxsize=256)
def psf_moment_size(fwhm_px: float, beta: float = 3.0) -> float:
    """Adaptive-moment size of a Moffat PSF of ``fwhm_px`` (see :func:`adaptive_moments`)."""
    alpha = fwhm_px / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    half = int(math.ceil(6.0 * fwhm_px)) + 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    r2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    psf = (1.0 + r2 / alpha**2) ** (-beta)
    found = adaptive_moments(psf, (float(half), float(half)), fwhm_px / 2.3548)
    return found[0] if found is not None else fwhm_px / 2.3548 * math.sqrt(2.0)


def _stamp(
    image: NDArray[Any], centre_yx: tuple[float, float], half: float
) -> tuple[NDArray[Any], tuple[float, float]]:
    """The part of ``image`` within ``half`` pixels of ``centre_yx`` (a square, clipped at
    the border), and the centre in the stamp's pixels."""
    ny, nx = image.shape[:2]
    cy, cx = centre_yx
    y0 = min(max(int(math.floor(cy - half)), 0), ny)
    x0 = min(max(int(math.floor(cx - half)), 0), nx)
    y1 = max(min(int(math.ceil(cy + half)) + 1, ny), y0)
    x1 = max(min(int(math.ceil(cx + half)) + 1, nx), x0)
    return image[y0:y1, x0:x1], (cy - y0, cx - x0)


def _sorted_masked_medians(
    sorted_values: NDArray[np.float64], masks: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Median of ``sorted_values[row]`` for each row of ``masks``, and the row's count.

    ``sorted_values`` is ascending, so the median is found by rank: the mean of the
    ``(n - 1) // 2``-th and ``n // 2``-th selected values, as :func:`numpy.median` gives.
    Rows selecting nothing return the first value (their count says they are empty).
    """
    counts = masks.sum(axis=1)
    ranks = np.cumsum(masks, axis=1, dtype=np.int32)
    low = np.argmax(ranks > ((counts - 1) // 2)[:, None], axis=1)
    high = np.argmax(ranks > (counts // 2)[:, None], axis=1)
    return 0.5 * (sorted_values[low] + sorted_values[high]), counts


def spike_score(
    image: NDArray[np.float64],
    centre_yx: tuple[float, float],
    inner: float,
    outer: float,
    *,
    width: float = 1.0,
    n_segments: int = 3,
) -> float:
    """Contrast of four continuous diffraction spikes at 90-degree steps around ``centre_yx``.

    Each pixel of the annulus ``inner <= r < outer`` is put in units of its 1-pixel
    ring's noise above the ring's median (clipped to -3..20). For every direction
    (1-degree steps) the ray is cut into ``n_segments`` equal lengths; a segment's
    contrast is the median of its pixels within ``max(0.75, 0.4 width)`` px of the ray
    (a spike is as wide as the PSF, ``width`` its FWHM) minus the median of those
    ``max(3, 1.5 width)`` to twice that beside it (medians: a neighbour on a ray covers few of its pixels),
    and the ray's contrast is its weakest segment's, since a spike runs unbroken from
    the core outwards while a neighbour galaxy lights up one stretch of the ray. The
    score is, over the directions folded at 90 degrees, the best third-largest contrast
    of the four arms: at least three arms must show the spike.
    """
    image, centre_yx = _stamp(image, centre_yx, outer + 1.0)
    ny, nx = image.shape
    ys, xs = np.mgrid[0:ny, 0:nx].astype(np.float64)
    dy, dx = ys - centre_yx[0], xs - centre_yx[1]
    radius = np.hypot(dy, dx)
    ring = (radius >= inner) & (radius < outer)
    if np.count_nonzero(ring) < 200:
        return 0.0
    rings = np.floor(radius[ring]).astype(int)
    values = image[ring]
    median = np.zeros(rings.max() + 1)
    spread = np.ones(rings.max() + 1)
    for index in np.unique(rings):
        members = values[rings == index]
        median[index] = np.median(members)
        spread[index] = 1.4826 * np.median(np.abs(members - median[index])) + 1e-12
    signal = np.clip((values - median[rings]) / spread[rings], -3.0, 20.0)
    r, theta = radius[ring], np.arctan2(dy[ring], dx[ring])
    on_width, off_from = max(0.75, 0.4 * width), max(3.0, 1.5 * width)
    segment = np.minimum(((r - inner) / (outer - inner) * n_segments).astype(int), n_segments - 1)
    angles = np.radians(np.arange(360.0))
    cos_a = np.cos(angles).astype(np.float32)[:, None]
    sin_a = np.sin(angles).astype(np.float32)[:, None]
    x_all = (r * np.cos(theta)).astype(np.float32)
    y_all = (r * np.sin(theta)).astype(np.float32)
    contrast = np.full(360, np.inf)
    usable = np.ones(360, dtype=bool)
    for part in range(n_segments):
        # All 360 directions at once over this segment's pixels, sorted by signal so that
        # a masked median is a rank lookup (the same numbers as a median per direction).
        members = segment == part
        order = np.argsort(signal[members], kind="stable")
        part_signal = signal[members][order]
        x, y = x_all[members][order], y_all[members][order]
        across = np.abs(y[None, :] * cos_a - x[None, :] * sin_a)
        ahead = (x[None, :] * cos_a + y[None, :] * sin_a) > 0
        on = ahead & (across <= on_width)
        off = ahead & (across >= off_from) & (across <= 2.0 * off_from)
        on_median, n_on = _sorted_masked_medians(part_signal, on)
        off_median, n_off = _sorted_masked_medians(part_signal, off)
        usable &= (n_on >= 3) & (n_off >= 6)
        contrast = np.minimum(contrast, on_median - off_median)
    contrast = np.where(usable, contrast, 0.0)
    third = np.sort(contrast.reshape(4, 90), axis=0)[1]
    return float(max(third.max(), 0.0))


def _fwhm_of_moment_size(size: float) -> float:
    """The FWHM of the Moffat PSF whose adaptive-moment size is ``size`` (pixels)."""
    fwhms = np.geomspace(0.5, 30.0, 60)
    sizes = np.array([psf_moment_size(float(fwhm)) for fwhm in fwhms])
    return float(np.interp(size, sizes, fwhms))


def compact_source_sizes(
    image: NDArray[Any],
    exclude: NDArray[np.bool_] | None = None,
    *,
    min_snr: float = 10.0,
    max_sources: int = 200,
    edge: int = 8,
) -> NDArray[np.float64]:
    """Adaptive-moment sizes (pixels) of the round, unsaturated sources of an image.

    Peaks of the lightly smoothed linear flux (:func:`linear_flux`) at least ``min_snr``
    times the smoothed sky's noise above the sky, away from the border, from saturated pixels and
    from ``exclude`` (the target), brightest first; each is measured on a 31 x 31 px
    stamp and kept when its moments converge near the peak and are rounder than 0.7.
    """
    from scipy import ndimage

    linear, saturated = linear_flux(image)
    level = float(np.median(linear))
    smoothed = ndimage.gaussian_filter(linear - level, 1.0)
    noise = 1.4826 * float(np.median(np.abs(smoothed - np.median(smoothed)))) + 1e-12
    peaks = (smoothed == ndimage.maximum_filter(smoothed, size=7)) & (smoothed > min_snr * noise)
    blocked = ndimage.binary_dilation(saturated, iterations=4)
    if exclude is not None:
        blocked |= ndimage.binary_dilation(exclude, iterations=4)
    ny, nx = linear.shape
    ys, xs = np.nonzero(peaks & ~blocked)
    inside = (ys >= edge) & (ys < ny - edge) & (xs >= edge) & (xs < nx - edge)
    ys, xs = ys[inside], xs[inside]
    order = np.argsort(-smoothed[ys, xs])[:max_sources]
    sizes = []
    for y, x in zip(ys[order], xs[order], strict=True):
        y0, x0 = max(y - 15, 0), max(x - 15, 0)
        stamp = linear[y0 : y + 16, x0 : x + 16] - level
        found = adaptive_moments(stamp, (float(y - y0), float(x - x0)), 1.0)
        if found is None:
            continue
        size, axis_ratio, (cy, cx) = found
        if axis_ratio >= 0.7 and math.hypot(cy - (y - y0), cx - (x - x0)) <= 1.5:
            sizes.append(size)
    return np.sort(np.asarray(sizes, dtype=np.float64))


def estimate_psf_fwhm(
    image: NDArray[Any],
    exclude: NDArray[np.bool_] | None = None,
    *,
    min_sources: int = 3,
    tolerance: float = 0.15,
) -> tuple[float, int] | None:
    """The PSF FWHM (pixels) of an image from its stellar locus, or ``None``.

    The stellar locus is the smallest set of ``min_sources`` or more
    :func:`compact_source_sizes` within ``tolerance`` of one another (stars all have the
    PSF's size; galaxies are larger, each its own). Returns ``(fwhm, n_sources)``;
    ``None`` when no such set exists (a cutout with no other point source).
    """
    sizes = compact_source_sizes(image, exclude)
    for start in range(max(sizes.size - min_sources + 1, 0)):
        members = sizes[(sizes >= sizes[start]) & (sizes <= sizes[start] * (1.0 + tolerance))]
        if members.size >= min_sources:
            return _fwhm_of_moment_size(float(np.median(members))), int(members.size)
    return None


def _target_peak(
    smoothed: NDArray[np.float64], region: NDArray[np.bool_], centre_yx: tuple[float, float]
) -> tuple[int, int]:
    """The brightest smoothed pixel of ``region`` within 4 px of the region's centre
    (the whole region when none is that close)."""
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return int(round(centre_yx[0])), int(round(centre_yx[1]))
    near = np.hypot(ys - centre_yx[0], xs - centre_yx[1]) <= 4.0
    if near.any():
        ys, xs = ys[near], xs[near]
    best = int(np.argmax(smoothed[ys, xs]))
    return int(ys[best]), int(xs[best])


def _background(linear: NDArray[np.float64], sky: NDArray[np.bool_]) -> tuple[float, float]:
    """Clipped mean and robust spread of the sky pixels (all pixels when there are few).

    The mean, not the median: the inverted stretch is convex, so the sky's noise has a
    positive mean above its median, and moments sum the light linearly.
    """
    values = linear[sky] if np.count_nonzero(sky) >= 100 else linear.ravel()
    median = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - median))) + 1e-12
    kept = values[np.abs(values - median) <= 5.0 * spread]
    return float(kept.mean()) if kept.size else median, spread


def _plateau(saturated: NDArray[np.bool_], peak: tuple[int, int]) -> NDArray[np.bool_]:
    """The connected saturated pixels at (or next to) ``peak``."""
    from scipy import ndimage

    labels, _ = ndimage.label(saturated, structure=np.ones((3, 3)))
    window = labels[max(peak[0] - 2, 0) : peak[0] + 3, max(peak[1] - 2, 0) : peak[1] + 3]
    found = np.unique(window[window > 0])
    return np.isin(labels, found) if found.size else np.zeros_like(saturated)


def _ring_profile(
    image: NDArray[np.float64],
    plateau: NDArray[np.bool_],
    centre_yx: tuple[float, float],
    noise: float,
    length: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Radii and medians of the 1-px rings of ``image`` (background-free) outside the
    plateau, from its edge out ``length`` pixels, kept while above 3 ``noise``."""
    ys, xs = np.nonzero(plateau)
    # A bleed trail lengthens the plateau along its column: its narrower extent is the core's.
    edge = 0.5 * float(min(np.ptp(ys), np.ptp(xs)) + 1)
    image, (cy, cx) = _stamp(image, centre_yx, edge + length + 3.0)
    plateau, _ = _stamp(plateau, centre_yx, edge + length + 3.0)
    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    radius = np.hypot(yy - cy, xx - cx)
    radii, levels = [], []
    for r in np.arange(edge + 1.0, edge + 1.0 + length, 1.0):
        ring = (radius >= r - 0.5) & (radius < r + 0.5) & ~plateau
        if np.count_nonzero(ring) < 4:
            continue
        level = float(np.median(image[ring]))
        if level > 3.0 * noise:
            radii.append(r)
            levels.append(level)
    return np.asarray(radii), np.asarray(levels)


def _wing_slope(
    grey: NDArray[np.float64],
    plateau: NDArray[np.bool_],
    centre_yx: tuple[float, float],
    noise: float,
    psf_fwhm_px: float,
) -> float:
    """Log-log slope of the ring medians of ``grey`` (the picture's grey level,
    background-free) from the plateau's edge out one PSF FWHM."""
    radii, levels = _ring_profile(grey, plateau, centre_yx, noise, max(psf_fwhm_px, 3.0))
    if radii.size < 3:
        return float("nan")
    return float(np.polyfit(np.log(radii), np.log(levels), 1)[0])


def _wing_beta(
    linear: NDArray[np.float64],
    plateau: NDArray[np.bool_],
    centre_yx: tuple[float, float],
    noise: float,
    psf_fwhm_px: float,
) -> float:
    """The Moffat exponent the linear light outside the plateau falls with, for the PSF's
    FWHM: the slope of log(flux) against log(1 + r^2 / alpha^2) over two FWHM from the
    plateau's edge (alpha: a Moffat of ``psf_fwhm_px`` and beta 3). A star gives its PSF's
    beta (2.5-4.7 on ground-based images); a galaxy's saturated core, whose own light
    spreads beyond the PSF, a smaller one. NaN with fewer than 4 rings above the noise, or
    for a PSF under 2 px (not Nyquist-sampled: two FWHM are then 3 or 4 pixels of the
    stretched picture's steepest part, and say nothing about the wings)."""
    if psf_fwhm_px < _MIN_SAMPLED_FWHM:
        return float("nan")
    radii, levels = _ring_profile(linear, plateau, centre_yx, noise, max(2.0 * psf_fwhm_px, 4.0))
    if radii.size < 4:
        return float("nan")
    alpha = psf_fwhm_px / (2.0 * math.sqrt(2.0 ** (1.0 / 3.0) - 1.0))
    return float(-np.polyfit(np.log1p((radii / alpha) ** 2), np.log(levels), 1)[0])


def _plateau_axis_ratio(plateau: NDArray[np.bool_]) -> float:
    """Minor over major axis of the plateau's pixel moments (1: round)."""
    ys, xs = np.nonzero(plateau)
    cov = np.cov(np.vstack([ys, xs]).astype(np.float64)) + np.eye(2) / 12.0
    low, high = np.linalg.eigvalsh(cov)
    return float(math.sqrt(max(low, 0.0) / high))


def measure_point_source(
    image: NDArray[Any],
    region: NDArray[np.bool_],
    smoothed: NDArray[np.float64],
    sky: NDArray[np.bool_],
    centre_yx: tuple[float, float],
    psf_fwhm_px: float = SDSS_PSF_FWHM_PX,
    psf_source: str = "given",
) -> PointSource:
    """Measure the source at ``centre_yx`` against a PSF of ``psf_fwhm_px``.

    Parameters
    ----------
    image
        The cutout as given to the QA (8-bit RGB, grey, or linear float).
    region
        Pixels of the target (its deblended segments inside the masking ellipse).
    smoothed
        The smoothed, background-subtracted image of the detection (finds the peak).
    sky
        Pixels of no source (the background's median and noise).
    centre_yx
        Where the target is (the masking ellipse's centre), (row, col).
    psf_fwhm_px
        The image's PSF FWHM, pixels.
    psf_source
        Where ``psf_fwhm_px`` came from, in words (for the reason).
    """
    linear, saturated = linear_flux(image)
    level, noise = _background(linear, sky)
    linear = linear - level
    peak = _target_peak(smoothed, region, centre_yx)
    plateau = _plateau(saturated, peak)
    n_saturated = int(np.count_nonzero(plateau))
    size_ratio = axis_ratio = wing = beta = plateau_ratio = float("nan")
    centre = (float(peak[0]), float(peak[1]))
    bleed = False
    if n_saturated >= 3:
        ys, xs = np.nonzero(plateau)
        bleed = bool(np.ptp(ys) + 1 >= 1.3 * (np.ptp(xs) + 1) and np.ptp(ys) - np.ptp(xs) >= 3)
        centre = (float(ys.mean()), float(xs.mean()))
        grey = np.asarray(image, dtype=np.float64)
        grey = grey[..., :3].mean(axis=-1) if grey.ndim == 3 else grey
        grey_level, grey_noise = _background(grey, sky)
        wing = _wing_slope(grey - grey_level, plateau, centre, grey_noise, psf_fwhm_px)
        beta = _wing_beta(linear, plateau, centre, noise, psf_fwhm_px)
        plateau_ratio = _plateau_axis_ratio(plateau)
    # The moments on a stamp around the target: the Gaussian weight of a source up to
    # the spike search's largest size is negligible beyond it.
    stamp, stamp_centre = _stamp(
        np.where(np.isfinite(linear), linear, 0.0),
        centre,
        6.0 * psf_fwhm_px + math.sqrt(n_saturated) + 4.0,
    )
    found = adaptive_moments(stamp, stamp_centre, psf_fwhm_px / 2.3548)
    if found is not None:
        size, axis_ratio, (cy, cx) = found
        size_ratio = size / psf_moment_size(psf_fwhm_px)
        if n_saturated < 3:
            centre = (cy + centre[0] - stamp_centre[0], cx + centre[1] - stamp_centre[1])
    inner = 1.5 * psf_fwhm_px + math.sqrt(n_saturated)
    outer = inner + max(4.0 * psf_fwhm_px, _SPIKE_MIN_LENGTH)
    spikes = float("nan")  # not looked for around an unsaturated, clearly extended source
    if n_saturated >= 3 or not size_ratio > _SPIKE_SEARCH_MAX_SIZE_RATIO:
        spikes = spike_score(linear, centre, inner, outer, width=psf_fwhm_px)
    return PointSource(
        psf_fwhm_px=float(psf_fwhm_px),
        size_ratio=float(size_ratio),
        axis_ratio=float(axis_ratio),
        n_saturated=n_saturated,
        bleed=bleed,
        wing_slope=float(wing),
        spikes=float(spikes),
        peak_yx=centre,
        psf_source=psf_source,
        wing_beta=float(beta),
        plateau_axis_ratio=float(plateau_ratio),
    )


def point_source_reason(
    measured: PointSource,
    *,
    max_size_ratio: float,
    min_axis_ratio: float,
    max_wing_slope: float,
    min_spikes: float,
    min_wing_beta: float = 2.35,
    psf_known: bool = True,
) -> str | None:
    """Why the measured source is a star (``None``: it is not), in words with the numbers.

    A star has diffraction spikes (``spikes >= min_spikes``), or a saturated core whose
    light falls off as steeply as a PSF's (``wing_slope <= max_wing_slope``) with a
    bleed trail or spikes of at least 0.8 ``min_spikes`` (a steep saturated core alone
    is also a compact galaxy's on a sharper image than SDSS's), or a round one falling
    1.25 times as steeply. With a known PSF (``psf_known``: given, or measured on the
    image's stellar locus) also: a saturated core, round or with a bleed trail, whose
    linear light outside falls as a Moffat of the PSF's FWHM with ``wing_beta >=
    min_wing_beta``, or an unsaturated image the PSF's size and round
    (``size_ratio <= max_size_ratio`` and ``axis_ratio >= min_axis_ratio``). Without
    one (a lone cutout, SDSS's median seeing assumed) size says little: a compact
    galaxy in good seeing is as small as a star in median seeing.
    """
    fwhm = f"PSF FWHM {measured.psf_fwhm_px:.1f} px, {measured.psf_source}"
    if measured.spikes >= min_spikes:
        return f"point source (star): diffraction spikes ({measured.spikes:.1f} sigma)"
    saturated = measured.n_saturated >= 3
    corroborated = measured.bleed or measured.spikes >= 0.8 * min_spikes
    steep = saturated and measured.wing_slope <= max_wing_slope
    if steep and corroborated and measured.axis_ratio >= _MIN_CORE_AXIS_RATIO:
        trail = "a bleed trail" if measured.bleed else f"spikes ({measured.spikes:.1f} sigma)"
        return (
            f"point source (star): saturated core of {measured.n_saturated} px with {trail}, "
            f"whose light falls as r^{measured.wing_slope:.1f} ({fwhm})"
        )
    round_core = measured.axis_ratio >= _ROUND_CORE_AXIS_RATIO
    if saturated and round_core and measured.wing_slope <= 1.25 * max_wing_slope:
        return (
            f"point source (star): round saturated core of {measured.n_saturated} px (axis "
            f"ratio {measured.axis_ratio:.2f}) whose light falls as "
            f"r^{measured.wing_slope:.1f} ({fwhm})"
        )
    if not psf_known:
        return None
    plateau_shape = measured.bleed or measured.plateau_axis_ratio >= _MIN_PLATEAU_AXIS_RATIO
    if saturated and plateau_shape and measured.wing_beta >= min_wing_beta:
        shape = "with a bleed trail" if measured.bleed else "round"
        return (
            f"point source (star): saturated core of {measured.n_saturated} px ({shape}) whose "
            f"light falls as the PSF's wings (Moffat beta {measured.wing_beta:.1f}; {fwhm})"
        )
    if measured.size_ratio <= max_size_ratio and measured.axis_ratio >= min_axis_ratio:
        core = f"saturated core of {measured.n_saturated} px, " if saturated else ""
        return (
            f"point source (star): {core}size {measured.size_ratio:.2f}x the PSF's, axis ratio "
            f"{measured.axis_ratio:.2f} ({fwhm})"
        )
    return None
