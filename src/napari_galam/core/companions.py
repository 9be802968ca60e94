"""Companions of the target found in its 180-degree-rotation residual.

Peak-based deblending (:mod:`napari_galam.core.deblend`, the published procedure's
photutils step) can only split a neighbour that makes its own local maximum, with an
island of at least ``n_pixels`` above the saddle, in the smoothed image. A fainter
neighbour on the slope of a brighter target makes neither, but it breaks the target's
point symmetry. Galaxy light profiles are close to point-symmetric about their centre,
so the residual ``I(x) - I(x')`` with ``x'`` the 180-degree rotation of ``x`` about the
target centre holds the neighbour as a positive blob (and its mirror image as a
negative one). This is the symmetric template of the SDSS deblender (Lupton) and the
residual of the CAS asymmetry index (Conselice 2000), used as a detector
(:func:`find_companions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from napari_galam.errors import GalamInputError

__all__ = ["Companions", "find_companions"]

_FOOTPRINT_8 = np.ones((3, 3), dtype=bool)


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


def _no_companions(centre_yx: tuple[float, float] = (float("nan"), float("nan"))) -> Companions:
    """A :class:`Companions` with none found (about ``centre_yx``)."""
    return Companions(
        centre_yx=centre_yx,
        yx=np.empty((0, 2)),
        significance=np.empty(0),
        fraction=np.empty(0),
        n_pixels=np.empty(0, dtype=np.int64),
    )


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

    See the module docstring for the method.

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
    _check_companion_inputs(
        data, region, nsigma, n_pixels, min_separation, min_fraction, max_fraction
    )
    rows_in, cols_in = np.nonzero(region)
    if rows_in.size == 0:
        return _no_companions()
    brightest = _brightest_near(data, region, centre_yx, search_radius)
    if brightest is None:
        return _no_companions()
    cy2, cx2 = _symmetry_centre(data, *brightest, core_radius)
    centre = (cy2 / 2.0, cx2 / 2.0)
    # Work on the bounding box of the region only (the residual is needed nowhere else).
    br0, br1 = int(rows_in.min()), int(rows_in.max()) + 1
    bc0, bc1 = int(cols_in.min()), int(cols_in.max()) + 1
    box = data[br0:br1, bc0:bc1]
    residual = box - _mirror_of_box(data, cy2, cx2, br0, br1, bc0, bc1)
    significance = _residual_significance(
        residual, region[br0:br1, bc0:bc1], noise, (br0, br1, bc0, bc1), structure_noise
    )
    return _significant_components(
        significance,
        residual,
        box,
        (br0, bc0),
        centre,
        nsigma=nsigma,
        n_pixels=n_pixels,
        min_separation=min_separation,
        min_fraction=min_fraction,
        max_fraction=max_fraction,
    )


def _check_companion_inputs(
    data: NDArray[np.float64],
    region: NDArray[np.bool_],
    nsigma: float,
    n_pixels: int,
    min_separation: float,
    min_fraction: float,
    max_fraction: float,
) -> None:
    """Refuse a region of another shape than the image and out-of-range parameters."""
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


def _brightest_near(
    data: NDArray[np.float64],
    region: NDArray[np.bool_],
    centre_yx: tuple[float, float],
    search_radius: int,
) -> tuple[int, int] | None:
    """Row and column of the brightest pixel of ``region`` within ``search_radius`` of
    ``centre_yx`` (clipped to the image), or None when there is no finite one."""
    ny, nx = data.shape
    r0 = int(round(min(max(centre_yx[0], 0), ny - 1)))
    c0 = int(round(min(max(centre_yx[1], 0), nx - 1)))
    wr0, wc0 = max(r0 - search_radius, 0), max(c0 - search_radius, 0)
    window = data[wr0 : r0 + search_radius + 1, wc0 : c0 + search_radius + 1]
    window = np.where(
        region[wr0 : r0 + search_radius + 1, wc0 : c0 + search_radius + 1], window, np.nan
    )
    if not np.isfinite(window).any():
        return None
    pr, pc = np.unravel_index(int(np.nanargmax(window)), window.shape)
    return int(pr) + wr0, int(pc) + wc0


def _residual_significance(
    residual: NDArray[np.float64],
    inside: NDArray[np.bool_],
    noise: NDArray[np.float64] | float,
    bounds: tuple[int, int, int, int],
    structure_noise: bool,
) -> NDArray[np.float64]:
    """The rotation residual in units of its noise, 0 outside the region and where NaN.

    The residual's noise is sqrt(2) x ``noise`` (cut to ``bounds``, the region's
    bounding box ``(row0, row1, col0, col1)``, when it is a map); with
    ``structure_noise`` it is at least the residual's own robust spread (1.4826 x MAD).
    """
    br0, br1, bc0, bc1 = bounds
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
    return np.nan_to_num(significance, nan=0.0, posinf=0.0, neginf=0.0)


def _significant_components(
    significance: NDArray[np.float64],
    residual: NDArray[np.float64],
    box: NDArray[np.float64],
    origin: tuple[int, int],
    centre: tuple[float, float],
    *,
    nsigma: float,
    n_pixels: int,
    min_separation: float,
    min_fraction: float,
    max_fraction: float,
) -> Companions:
    """The residual components that pass the rules of :func:`find_companions`.

    ``significance``, ``residual`` and ``box`` (the smoothed image) cover the region's
    bounding box, whose top-left pixel is ``origin`` (row, col) in the image.
    """
    br0, bc0 = origin
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
