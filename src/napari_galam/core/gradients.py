"""Radial gradients of age and metallicity, as in Liew-Cain et al. (2021, Sect. 3.3).

Each spaxel gets a deprojected galactocentric radius from the galaxy's ellipse (centre,
position angle, axis ratio -> inclination) in units of the effective radius R_e, which
is measured on the light with a growth curve in elliptical apertures. The gradient is
the slope of a least-squares line of log age (or [M/H]) against R/R_e within R_e, fitted
on 100 bootstrap samples of 75% of the points; the result is the mean slope and its
standard deviation in dex/R_e. The paper uses galaxies with at least 25 spaxels inside
R_e and at least one outside.

Angles follow OpenCV's ``fitEllipse`` and the masking code: the major axis is rotated by
``angle_deg`` from the +x (column) axis towards the +y (row) axis of the array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from napari_galam.errors import GalamInputError

__all__ = [
    "GalaxyEllipse",
    "GradientFit",
    "inclination_from_axis_ratio",
    "ellipse_from_moments",
    "deprojected_radius",
    "half_light_radius",
    "bootstrap_gradient",
    "resolution_elements",
    "ELEMENT_SIDE_FWHM",
    "MIN_POINTS_WITHIN_RE",
]

#: Liew-Cain et al. (2021) Sect. 3.3: galaxies need >= 25 spaxels within R_e.
MIN_POINTS_WITHIN_RE = 25


@dataclass(frozen=True)
class GalaxyEllipse:
    """The projected shape of a galaxy on the pixel grid.

    Attributes
    ----------
    x, y
        Centre in pixels (column, row).
    angle_deg
        Rotation of the major axis from +x towards +y, in degrees.
    axis_ratio
        Minor over major axis, in (0, 1].
    """

    x: float
    y: float
    angle_deg: float
    axis_ratio: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.x) and np.isfinite(self.y) and np.isfinite(self.angle_deg)):
            raise GalamInputError(
                f"galaxy ellipse: centre ({self.x}, {self.y}) and angle {self.angle_deg} "
                "must be finite numbers."
            )
        if not 0 < self.axis_ratio <= 1:
            raise GalamInputError(
                f"galaxy ellipse: axis ratio {self.axis_ratio} must be in (0, 1] (minor/major)."
            )


def inclination_from_axis_ratio(axis_ratio: float, *, intrinsic_thickness: float = 0.0) -> float:
    """Inclination in degrees (0 = face-on) from the observed axis ratio.

    Uses Hubble's oblate-spheroid relation
    ``cos^2 i = (q^2 - q0^2) / (1 - q0^2)`` with intrinsic thickness ``q0``; ``q0 = 0``
    is the thin-disc case ``cos i = q``. Axis ratios below ``q0`` mean edge-on (90).
    """
    if not 0 < axis_ratio <= 1:
        raise GalamInputError(f"axis ratio {axis_ratio} must be in (0, 1].")
    if not 0 <= intrinsic_thickness < 1:
        raise GalamInputError(f"intrinsic thickness {intrinsic_thickness} must be in [0, 1).")
    q0 = intrinsic_thickness
    cos2 = (axis_ratio**2 - q0**2) / (1 - q0**2)
    return float(np.degrees(np.arccos(np.sqrt(np.clip(cos2, 0.0, 1.0)))))


def ellipse_from_moments(
    image: ArrayLike, *, threshold_fraction: float = 0.05, min_pixels: int = 5
) -> GalaxyEllipse:
    """The galaxy's centre, orientation and axis ratio from the second moments of its light.

    Only the connected region above ``threshold_fraction`` of the peak (after NaNs
    become 0) that holds the most light counts, so a compact bright neighbour, a star or
    noise does not pull the ellipse. Used on the collapsed light of a cube to give the gradients their geometry.

    Raises
    ------
    GalamInputError
        When the image is not 2-D or has too few bright pixels.
    """
    from scipy import ndimage

    data = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if data.ndim != 2:
        raise GalamInputError(f"light image must be 2-D, got shape {data.shape}.")
    peak = data.max() if data.size else 0.0
    if not peak > 0:
        raise GalamInputError("light image has no positive pixel; cannot find the galaxy.")
    labels, n_regions = ndimage.label(data > threshold_fraction * peak)
    light = ndimage.sum_labels(data, labels, index=np.arange(1, n_regions + 1))
    region = labels == 1 + int(np.argmax(light))
    if region.sum() < min_pixels:
        raise GalamInputError(
            f"only {int(region.sum())} pixels above {threshold_fraction:g} of the peak; "
            "the galaxy is too small or too faint for an ellipse."
        )
    rows, cols = np.nonzero(region)
    weights = data[rows, cols]
    total = weights.sum()
    y0, x0 = (weights @ rows) / total, (weights @ cols) / total
    dy, dx = rows - y0, cols - x0
    cxx, cyy, cxy = (
        (weights @ (dx * dx)) / total,
        (weights @ (dy * dy)) / total,
        (weights @ (dx * dy)) / total,
    )
    spread = np.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)
    major, minor = (cxx + cyy) / 2 + spread, (cxx + cyy) / 2 - spread
    angle = 0.5 * np.degrees(np.arctan2(2 * cxy, cxx - cyy))
    ratio = float(np.sqrt(max(minor, 1e-12) / major)) if major > 0 else 1.0
    return GalaxyEllipse(
        x=float(x0), y=float(y0), angle_deg=float(angle), axis_ratio=min(max(ratio, 0.05), 1.0)
    )


def deprojected_radius(
    shape: tuple[int, int],
    ellipse: GalaxyEllipse,
    *,
    intrinsic_thickness: float = 0.0,
) -> NDArray[np.float64]:
    """Deprojected galactocentric radius of every pixel, in pixels along the major axis.

    The offset from the centre is rotated onto the major and minor axes; the minor-axis
    component is stretched by ``1 / cos i`` (``i`` from
    :func:`inclination_from_axis_ratio`), so circles in the disc plane become the
    observed ellipses.
    """
    if len(shape) != 2 or min(shape) < 1:
        raise GalamInputError(f"map shape {shape} must be 2-D and non-empty.")
    incl = np.radians(
        inclination_from_axis_ratio(ellipse.axis_ratio, intrinsic_thickness=intrinsic_thickness)
    )
    cos_i = max(np.cos(incl), 1e-3)
    rows, cols = np.indices(shape, dtype=np.float64)
    dx = cols - ellipse.x
    dy = rows - ellipse.y
    theta = np.radians(ellipse.angle_deg)
    along = dx * np.cos(theta) + dy * np.sin(theta)
    across = -dx * np.sin(theta) + dy * np.cos(theta)
    return np.hypot(along, across / cos_i)


def half_light_radius(
    image: ArrayLike,
    ellipse: GalaxyEllipse,
    *,
    mask: ArrayLike | None = None,
    max_radius: float | None = None,
) -> float:
    """Effective (half-light) radius in pixels from a growth curve in elliptical apertures.

    The total light is the sum of the finite, unmasked pixels within ``max_radius``
    (default: the largest ellipse that fits inside the image); negative sky pixels
    count as they are, so noise averages out. The radius where the cumulative light
    reaches half of the total is interpolated linearly.

    Raises
    ------
    GalamInputError
        When the image is not 2-D or holds no positive light around the centre.
    """
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 2:
        raise GalamInputError(f"light image must be 2-D, got shape {data.shape}.")
    radius = deprojected_radius(data.shape, ellipse)
    good = np.isfinite(data)
    if mask is not None:
        good &= ~np.asarray(mask, dtype=bool)
    if max_radius is None:
        ny, nx = data.shape
        edge = min(ellipse.x, ellipse.y, nx - 1 - ellipse.x, ny - 1 - ellipse.y)
        max_radius = max(edge, 1.0)  # the deprojected radius is >= the distance to the edge
    good &= radius <= max_radius
    r = radius[good]
    flux = data[good]
    if r.size == 0 or flux.sum() <= 0:
        raise GalamInputError(
            "light image has no positive flux inside the galaxy's ellipse; cannot measure R_e."
        )
    order = np.argsort(r, kind="stable")
    r, cumulative = r[order], np.cumsum(flux[order])
    half = 0.5 * cumulative[-1]
    k = int(np.searchsorted(cumulative, half))
    if k == 0:
        return float(r[0])
    r0, r1, c0, c1 = r[k - 1], r[k], cumulative[k - 1], cumulative[k]
    return float(r0 + (r1 - r0) * (half - c0) / (c1 - c0) if c1 > c0 else r1)


@dataclass(frozen=True)
class GradientFit:
    """Bootstrap least-squares fit of a quantity against R/R_e within R_e.

    Attributes
    ----------
    slope, slope_err
        The gradient (dex per R_e): the mean slope of the paper's subsample fits, and its
        1-sigma error: :attr:`slope_err_stat` and :attr:`model_sd` added in quadrature.
    slope_err_stat
        Standard deviation of the slopes of a bootstrap over independent resolution
        elements (drawn with replacement), each spaxel perturbed by its own error when
        one is given.
    model_sd
        The map's model's own error on a gradient (dex/R_e), measured on unseen
        simulated cubes and stored in its model card; 0 when none is known.
    slope_sd
        Standard deviation of the paper's subsample slopes (100 fits of 75% of the
        spaxels). Kept for comparison with Liew-Cain et al. (2021); it is not an error of
        the slope: subsamples of PSF-correlated spaxels scatter far less than the slope
        is wrong (see ``docs/architecture.md``, "Gradient errors").
    intercept, intercept_sd
        Mean and standard deviation of the intercepts (dex at R = 0).
    slopes, intercepts
        The paper's subsample fits (for the thin red lines).
    n_within, n_outside
        Number of finite points within ``max_radius`` (the fit's points) and beyond it.
    n_elements
        Independent resolution elements (or bins) among the points within ``max_radius``.
    radius, values
        All finite points (R/R_e and the quantity), for the grey crosses.
    status
        ``"ok"`` or ``"too_few_points"``; ``reason`` says why.
    """

    slope: float
    slope_sd: float
    intercept: float
    intercept_sd: float
    slopes: NDArray[np.float64]
    intercepts: NDArray[np.float64]
    n_within: int
    n_outside: int
    radius: NDArray[np.float64]
    values: NDArray[np.float64]
    max_radius: float = 1.0
    status: str = "ok"
    reason: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    slope_err: float = np.nan
    slope_err_stat: float = np.nan
    model_sd: float = 0.0
    n_elements: int = 0

    @property
    def ok(self) -> bool:
        """True when the fit was made."""
        return self.status == "ok"

    @property
    def error_note(self) -> str:
        """What the error holds, in words: with the model's own error, or statistical only."""
        if self.model_sd > 0:
            return "incl. the model's own gradient error"
        return "statistical only: no calibrated model error for this map"


#: Side of an independent element in units of the PSF's FWHM. Spaxels of a PSF-convolved
#: map stay correlated over about sqrt(2) FWHM (the PSF convolved with itself), so blocks
#: one FWHM across leave neighbouring blocks correlated: on simulated maps with noise
#: smoothed by PSFs of 2.5-5 px, 1-sigma errors from 1-FWHM blocks held the true slope
#: 43-51% of the time, from 2-FWHM blocks 53-59% (150 maps each; ``tests/core``).
ELEMENT_SIDE_FWHM = 2.0


def resolution_elements(shape: tuple[int, ...], psf_fwhm_pix: float) -> NDArray[np.int64]:
    """Labels of square blocks of :data:`ELEMENT_SIDE_FWHM` PSF FWHMs: independent elements.

    Neighbouring spaxels of a cube share light through the PSF, so a bootstrap must draw
    whole resolution elements, not spaxels.

    Parameters
    ----------
    shape
        The map's shape (ny, nx).
    psf_fwhm_pix
        The PSF's FWHM in pixels (> 0); blocks are at least 1 pixel.

    Returns
    -------
    numpy.ndarray
        Integer labels of the given shape; pixels of one block share a label.
    """
    if not (np.isfinite(psf_fwhm_pix) and psf_fwhm_pix > 0):
        raise GalamInputError(f"PSF FWHM: expected > 0 pixels, got {psf_fwhm_pix}.")
    size = max(ELEMENT_SIDE_FWHM * float(psf_fwhm_pix), 1.0)
    rows, cols = np.indices(shape[-2:])
    block_rows = np.floor(rows / size).astype(np.int64)
    block_cols = np.floor(cols / size).astype(np.int64)
    return block_rows * (int(block_cols.max()) + 1) + block_cols


def bootstrap_gradient(
    radius_re: ArrayLike,
    values: ArrayLike,
    *,
    n_boot: int = 100,
    fraction: float = 0.75,
    max_radius: float = 1.0,
    min_points: int = MIN_POINTS_WITHIN_RE,
    require_outside: bool = True,
    seed: int | np.random.Generator | None = 0,
    errors: ArrayLike | None = None,
    elements: ArrayLike | None = None,
    model_sd: float = 0.0,
) -> GradientFit:
    """Fit ``values`` against ``radius_re`` within R_e, with an error that covers the truth.

    The slope is the paper's (Liew-Cain et al. 2021, Sect. 3.3): the mean of ``n_boot``
    least-squares lines, each through ``fraction`` of the points drawn without
    replacement. Its error is not their scatter (which shrinks with the number of
    PSF-correlated spaxels, not of independent measurements) but the scatter of lines
    through ``n_boot`` bootstrap samples of whole resolution elements (``elements``)
    drawn with replacement, each point moved by a draw from its own error (``errors``),
    added in quadrature to the model's own gradient error (``model_sd``). All lines are
    solved at once from their weighted sums, so 2 x 100 fits of 5000 points take
    milliseconds.

    Parameters
    ----------
    radius_re, values
        Same-shaped arrays (maps or 1-D); NaNs are ignored.
    n_boot, fraction
        Number of bootstrap samples and the share of points in the paper's subsamples
        (paper: 100, 75%).
    max_radius
        Fit only points with ``radius_re <= max_radius`` (paper: 1, i.e. within R_e).
    min_points, require_outside
        The paper's selection: at least 25 points within R_e and one outside.
    seed
        Seed or Generator for the bootstrap draws.
    errors
        1-sigma error of each value (same shape; NaN or None: no draw for that point).
    elements
        Integer label of each point's independent element (same shape): a PSF-sized
        block (:func:`resolution_elements`) or a Voronoi/PowerBin bin. None: every
        point is independent.
    model_sd
        The model's own gradient error in dex/R_e (from its model card), >= 0.

    Returns
    -------
    GradientFit
        With ``status="too_few_points"`` and NaN slopes when the selection fails.
    """
    r = np.asarray(radius_re, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if r.shape != v.shape:
        raise GalamInputError(
            f"radius and values differ in size ({r.size} vs {v.size}); give maps of one shape."
        )
    if n_boot < 2 or not 0 < fraction <= 1:
        raise GalamInputError(f"n_boot={n_boot} must be >= 2 and fraction={fraction} in (0, 1].")
    if not (np.isfinite(model_sd) and model_sd >= 0):
        raise GalamInputError(f"model_sd: expected a finite error >= 0, got {model_sd}.")
    e = _same_size(errors, r.size, "errors", np.float64)
    labels = _same_size(elements, r.size, "elements", np.int64)
    finite = np.isfinite(r) & np.isfinite(v)
    r, v = r[finite], v[finite]
    inside = r <= max_radius
    n_in, n_out = int(inside.sum()), int((~inside).sum())
    problem = _selection_problem(r[inside], n_out, max_radius, min_points, require_outside)
    if problem:
        empty = np.full(0, np.nan)
        return GradientFit(
            np.nan, np.nan, np.nan, np.nan, empty, empty, n_in, n_out, r, v,
            max_radius=max_radius, status="too_few_points", reason=problem,
        )  # fmt: skip
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    slopes, intercepts = _bootstrap_lines(r[inside], v[inside], n_boot, fraction, rng)
    point_errors = None if e is None else np.nan_to_num(e[finite][inside], nan=0.0)
    point_labels = (
        np.arange(n_in)
        if labels is None
        else np.unique(labels[finite][inside], return_inverse=True)[1]
    )
    stat = _element_bootstrap_sd(r[inside], v[inside], point_labels, point_errors, n_boot, rng)
    return GradientFit(
        slope=float(np.nanmean(slopes)),
        slope_sd=float(np.nanstd(slopes, ddof=1)),
        intercept=float(np.nanmean(intercepts)),
        intercept_sd=float(np.nanstd(intercepts, ddof=1)),
        slopes=slopes,
        intercepts=intercepts,
        n_within=n_in,
        n_outside=n_out,
        radius=r,
        values=v,
        max_radius=max_radius,
        slope_err=float(np.hypot(stat, model_sd)),
        slope_err_stat=stat,
        model_sd=float(model_sd),
        n_elements=int(point_labels.max()) + 1,
    )


def _same_size(array: ArrayLike | None, size: int, name: str, dtype: Any) -> NDArray[Any] | None:
    if array is None:
        return None
    flat = np.asarray(array).ravel()
    if flat.size != size:
        raise GalamInputError(
            f"{name} differ in size from the values ({flat.size} vs {size}); give maps of one shape."
        )
    return flat.astype(dtype)


def _element_bootstrap_sd(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    labels: NDArray[np.int64],
    errors: NDArray[np.float64] | None,
    n_boot: int,
    rng: np.random.Generator,
) -> float:
    """SD of the slopes of lines through bootstrap samples of whole elements.

    Each sample draws as many elements as there are, with replacement (a point's weight
    is how often its element was drawn), and moves each point by a Gaussian draw of its
    error.
    """
    n_elements = int(labels.max()) + 1
    if n_elements < 3:
        return float("nan")
    draws = rng.integers(0, n_elements, size=(n_boot, n_elements))
    counts = np.zeros((n_boot, n_elements))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    weights = counts[:, labels]
    sw = weights.sum(axis=1)
    sx = weights @ x
    sxx = weights @ (x * x)
    if errors is None:
        sy, sxy = weights @ y, weights @ (x * y)
    else:
        moved = y + errors * rng.standard_normal((n_boot, y.size))
        sy = (weights * moved).sum(axis=1)
        sxy = (weights * moved) @ x
    with np.errstate(invalid="ignore", divide="ignore"):
        slopes = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
    return float(np.nanstd(slopes, ddof=1))


def _selection_problem(
    r_inside: NDArray[np.float64],
    n_out: int,
    max_radius: float,
    min_points: int,
    require_outside: bool,
) -> str:
    """Why the points fail the paper's selection, or ``""`` when they pass it."""
    n_in = int(r_inside.size)
    if n_in < max(min_points, 3):
        return (
            f"only {n_in} valid spaxels within {max_radius:g} R_e; "
            f"a gradient needs at least {max(min_points, 3)}"
        )
    if require_outside and n_out == 0:
        return f"no valid spaxel beyond {max_radius:g} R_e; the map does not reach R_e"
    if np.ptp(r_inside) == 0:
        return "all spaxels within R_e lie at one radius"
    return ""


def _bootstrap_lines(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    n_boot: int,
    fraction: float,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Slopes and intercepts of ``n_boot`` least-squares lines, each through a random
    ``fraction`` of the points drawn without replacement, solved at once."""
    n_take = max(2, int(round(fraction * x.size)))
    keys = rng.random((n_boot, x.size), dtype=np.float32)
    if n_take < x.size:
        cut = np.partition(keys, n_take - 1, axis=1)[:, n_take - 1 : n_take]
        weights = (keys <= cut).astype(np.float64)
    else:
        weights = np.ones_like(keys, dtype=np.float64)
    # the five sums of each least-squares line at once
    sums = weights @ np.column_stack([np.ones_like(x), x, y, x * x, x * y])
    sw, sx, sy, sxx, sxy = sums.T
    denom = sw * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        slopes = (sw * sxy - sx * sy) / denom
        intercepts = (sy - slopes * sx) / sw
    return slopes, intercepts
