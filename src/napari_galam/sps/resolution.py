"""Spectral resolution of the IFU and fibre layouts, and Gaussian resampling operators.

Two things the simulator and the per-spaxel spectral model must agree on exactly:

- :func:`instrument_sigma_kms`: the instrumental line-spread function of each layout
  (Gaussian sigma in km/s at each observed wavelength), from the surveys' published
  resolutions: CALIFA V500 6.0 A FWHM at every wavelength (Sanchez et al. 2016, A&A
  594, A36); MaNGA R ~ 1400 at 3600 A to ~ 2600 at 10 300 A (Drory et al. 2015, AJ
  149, 77); MUSE WFM R ~ 1770 at 4800 A to ~ 3590 at 9300 A (ESO MUSE User Manual);
  SDSS/BOSS R ~ 1500 at 3800 A to ~ 2500 at 9000 A (Smee et al. 2013, AJ 146, 32).
- :func:`gaussian_operator`: a sparse matrix that convolves spectra sampled on one
  log10(lambda) grid with a Gaussian of a width chosen per output pixel and samples the
  result on another grid. Applied to a flux times a 0/1 weight and to the weight alone
  it gives a normalised convolution: masked pixels and the ends of the observed range
  simply carry no weight.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from napari_galam.errors import GalamInputError

__all__ = [
    "SPEED_OF_LIGHT_KMS",
    "SPECTRAL_LAYOUTS",
    "instrument_sigma_kms",
    "kms_to_dex",
    "gaussian_operator",
    "air_wavelength",
]

SPEED_OF_LIGHT_KMS: float = 299792.458
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: Layouts with a known line-spread function (``generic`` cubes are treated as MUSE-like).
SPECTRAL_LAYOUTS: tuple[str, ...] = ("CALIFA", "MaNGA", "MUSE", "SDSS", "generic")

#: Resolving power R = lambda / FWHM at two wavelengths (A), linear in between.
_RESOLVING_POWER = {
    "MaNGA": ((3600.0, 1400.0), (10300.0, 2600.0)),
    "MUSE": ((4800.0, 1770.0), (9300.0, 3590.0)),
    "SDSS": ((3800.0, 1500.0), (9000.0, 2500.0)),
}
#: CALIFA V500 FWHM (A), constant in wavelength.
_CALIFA_FWHM_A = 6.0


def instrument_sigma_kms(layout: str, wave_a: NDArray[np.floating]) -> NDArray[np.float64]:
    """Instrumental Gaussian sigma (km/s) of ``layout`` at observed wavelengths ``wave_a``.

    ``generic`` cubes (no survey layout) are given MUSE's resolution, the most common
    IFU; their broadening to the common resolution then errs on the side of too little.
    """
    wave = np.asarray(wave_a, dtype=np.float64)
    key = "MUSE" if layout == "generic" else layout
    if key == "CALIFA":
        return SPEED_OF_LIGHT_KMS * _CALIFA_FWHM_A / wave / _FWHM_PER_SIGMA
    if key not in _RESOLVING_POWER:
        raise GalamInputError(
            f"spectral resolution: unknown layout {layout!r}; expected one of "
            f"{', '.join(SPECTRAL_LAYOUTS)}"
        )
    (w0, r0), (w1, r1) = _RESOLVING_POWER[key]
    power = np.interp(wave, [w0, w1], [r0, r1])  # constant beyond the two anchors
    return SPEED_OF_LIGHT_KMS / power / _FWHM_PER_SIGMA


def kms_to_dex(sigma_kms: NDArray[np.floating] | float) -> NDArray[np.float64]:
    """A velocity width (km/s) as a width in log10(lambda)."""
    return np.asarray(sigma_kms, dtype=np.float64) / (SPEED_OF_LIGHT_KMS * np.log(10.0))


def _pixel_widths(loglam: NDArray[np.float64]) -> NDArray[np.float64]:
    """Width of each pixel of a monotonic grid (dex): the distance between mid-points."""
    edges = np.empty(loglam.size + 1)
    edges[1:-1] = 0.5 * (loglam[1:] + loglam[:-1])
    edges[0] = loglam[0] - 0.5 * (loglam[1] - loglam[0])
    edges[-1] = loglam[-1] + 0.5 * (loglam[-1] - loglam[-2])
    return np.diff(edges)


def gaussian_operator(
    in_loglam: NDArray[np.floating],
    out_loglam: NDArray[np.floating],
    sigma_dex: NDArray[np.floating] | float,
    *,
    truncate: float = 4.0,
) -> sparse.csr_matrix:
    """Sparse ``(n_out, n_in)`` matrix: Gaussian convolution then sampling at ``out_loglam``.

    Row ``i`` holds ``exp(-d**2 / 2 s**2) * width_j / (sqrt(2 pi) s)`` for the input
    pixels ``j`` within ``truncate`` sigma of ``out_loglam[i]`` (``d`` their distance in
    dex, ``s = sigma_dex[i]``, floored at 0.6 input pixel so that a narrow kernel still
    averages over pixels). A row's sum is the share of its kernel that the input covers:
    about 1 inside the input range, less at its ends, 0 outside.

    Parameters
    ----------
    in_loglam, out_loglam
        Increasing log10(wavelength) grids (any spacing).
    sigma_dex
        The kernel's sigma (dex) per output pixel, or one value.
    truncate
        Kernel half-width in sigma.
    """
    x = np.asarray(in_loglam, dtype=np.float64)
    y = np.asarray(out_loglam, dtype=np.float64)
    if x.ndim != 1 or x.size < 2 or np.any(np.diff(x) <= 0):
        raise GalamInputError("gaussian_operator: the input grid must increase, with >= 2 pixels")
    widths = _pixel_widths(x)
    local_width = np.interp(y, x, widths)
    sigma = np.maximum(np.broadcast_to(np.asarray(sigma_dex, np.float64), y.shape), 0.6 * local_width)
    lo = np.searchsorted(x, y - truncate * sigma, side="left")
    hi = np.searchsorted(x, y + truncate * sigma, side="right")
    counts = hi - lo
    n_span = int(counts.max()) if counts.size else 0
    if n_span == 0:
        return sparse.csr_matrix((y.size, x.size), dtype=np.float32)
    columns = lo[:, None] + np.arange(n_span)[None, :]
    inside = columns < hi[:, None]
    columns = np.where(inside, columns, 0)
    distance = (x[columns] - y[:, None]) / sigma[:, None]
    weights = np.exp(-0.5 * distance**2) * widths[columns] / (np.sqrt(2.0 * np.pi) * sigma[:, None])
    weights = np.where(inside, weights, 0.0)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sparse.csr_matrix(
        (weights[inside].astype(np.float32), columns[inside], indptr), shape=(y.size, x.size)
    )


def air_wavelength(wave_vacuum_a: NDArray[np.floating]) -> NDArray[np.float64]:
    """Air wavelengths (A) of vacuum wavelengths (the IAU standard of Morton 2000)."""
    wave = np.asarray(wave_vacuum_a, dtype=np.float64)
    s2 = (1e4 / wave) ** 2
    return wave / (1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2))
