"""The input of the per-spaxel spectral model: any IFU or fibre spectrum on one rest grid.

One network reads CALIFA V500, MaNGA, MUSE and SDSS-like spectra at any redshift, so
each spectrum is brought to one common form first, by exactly the same code in training
(``scripts/train_spaxel_spectra.py``) and in mapping (:mod:`napari_galam.pipeline.maps`):

1. **Rest frame, air wavelengths.** ``lambda_rest = lambda_air / (1 + z)``.
2. **One common resolution.** Every spectrum is convolved up to a Gaussian
   line-spread function of :data:`COMMON_SIGMA_KMS` = 220 km/s (in velocity, i.e.
   constant in log-lambda). The coarsest instrument of the four is CALIFA V500 at its
   blue end: 6 A FWHM at 3745 A is sigma = 204 km/s
   (:func:`napari_galam.sps.resolution.instrument_sigma_kms`); MaNGA (<= 91 km/s),
   MUSE (<= 72 km/s) and SDSS (<= 85 km/s) are finer everywhere, so all four can be
   degraded to 220 km/s and none needs to be sharpened. The resolution is constant in
   velocity, so a redshift (which stretches an instrument's A-FWHM but keeps its
   velocity width) does not change it either. The stars' own velocity dispersion
   (0-350 km/s) adds on top; it is not known per spaxel before a kinematic fit, so the
   network is trained over that range instead.
3. **One fixed grid.** :data:`MODEL_LOGLAM`: log10(lambda) from 3500 to 9000 A in steps
   of 3.5e-4 dex (242 km/s, two pixels per FWHM of the common resolution), 1173 pixels.
   Steps 2 and 3 are one sparse matrix per cube (:func:`spectral_input_plan`), applied
   as a normalised convolution: a masked pixel, a strong sky line (:data:`SKY_LINES_A`)
   or the end of the observed range carries no weight.
4. **Normalised.** Divided by the median flux in rest 5070-5950 A (the band that
   defines the light weights of the labels); by the median over all covered pixels
   when that band is not covered.
5. **Two channels.** ``x[..., 0]`` the normalised flux (0 where not covered),
   ``x[..., 1]`` the weight: the covered share of each model pixel's kernel (0 outside
   the observed range, on masked pixels and sky lines; pixels under half covered are 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from napari_galam.errors import GalamInputError
from napari_galam.sps.resolution import (
    air_wavelength,
    gaussian_operator,
    instrument_sigma_kms,
    kms_to_dex,
)

__all__ = [
    "COMMON_SIGMA_KMS",
    "MODEL_LOG_STEP",
    "MODEL_LOGLAM",
    "MIN_COVERAGE",
    "SKY_LINES_A",
    "SpectralInputPlan",
    "SpectralInputs",
    "spectral_input_plan",
    "spectral_inputs",
]

#: The common resolution (Gaussian sigma, km/s) every spectrum is degraded to.
COMMON_SIGMA_KMS: float = 220.0
#: Step of the model grid (dex).
MODEL_LOG_STEP: float = 3.5e-4
#: log10(rest wavelength / A) of the model's input pixels (3500-9000 A).
MODEL_LOGLAM: NDArray[np.float64] = np.log10(3500.0) + MODEL_LOG_STEP * np.arange(
    int(np.floor((np.log10(9000.0) - np.log10(3500.0)) / MODEL_LOG_STEP)) + 1
)
#: A spectrum must cover at least this share of the model grid to be mapped.
MIN_COVERAGE: float = 0.35
#: Strong night-sky emission lines (air, A; Osterbrock et al. 1996, PASP 108, 277) whose
#: residuals are left out: [O I], Na D and the strongest OH lines in 6800-9000 A.
SKY_LINES_A: tuple[float, ...] = (
    5577.34, 5889.95, 5895.92, 6300.30, 6363.78, 6863.96, 7276.41, 7340.89, 7750.64,
    7794.11, 7913.71, 7993.33, 8344.60, 8399.17, 8430.17, 8827.10, 8885.85, 8919.63,
)  # fmt: skip
#: Half width (A) left out around each sky line.
SKY_HALF_WIDTH_A: float = 4.0
#: Sigma (km/s) of the averaging over one model pixel (a box of 242 km/s).
_PIXEL_SIGMA_KMS = MODEL_LOG_STEP * np.log(10.0) * 299792.458 / np.sqrt(12.0)
_NORM_BAND_A = (5070.0, 5950.0)
#: A model pixel whose kernel is covered less than this is treated as not observed.
_MIN_PIXEL_WEIGHT = 0.5


@dataclass(frozen=True)
class SpectralInputPlan:
    """How one observed wavelength axis maps onto the model grid (one per cube).

    Attributes
    ----------
    operator
        Sparse ``(n_model, n_obs)`` convolution to the common resolution and resampling.
    sky
        ``(n_obs,)`` True on the observed pixels near a strong sky line.
    redshift, layout
        What the plan was made for.
    reachable
        Share of the model grid the observed range can cover at all.
    """

    operator: sparse.csr_matrix
    sky: NDArray[np.bool_]
    redshift: float
    layout: str
    reachable: float


@dataclass(frozen=True)
class SpectralInputs:
    """Model inputs of a batch of spectra.

    Attributes
    ----------
    x
        ``(n, n_model, 2)`` float32: normalised flux and weight.
    snr
        ``(n,)`` median S/N per observed pixel over the usable pixels (NaN without
        variance).
    coverage
        ``(n,)`` share of the model grid with weight.
    usable
        ``(n,)`` True where the spectrum can be given to the model (enough coverage,
        positive normalisation).
    """

    x: NDArray[np.float32]
    snr: NDArray[np.float32]
    coverage: NDArray[np.float32]
    usable: NDArray[np.bool_]


def spectral_input_plan(
    wave_a: NDArray[np.floating],
    *,
    redshift: float,
    layout: str,
    medium: str = "air",
    what: str = "spectrum",
) -> SpectralInputPlan:
    """Build the sparse operator from an observed wavelength axis to the model grid.

    Parameters
    ----------
    wave_a
        Observed wavelengths (A), increasing.
    redshift
        The galaxy's redshift (0 <= z < 1).
    layout
        ``CALIFA``, ``MaNGA``, ``MUSE``, ``SDSS`` or ``generic``: its instrumental
        resolution is topped up to :data:`COMMON_SIGMA_KMS`.
    medium
        ``"vacuum"`` wavelengths are converted to air first (the library's medium).
    what
        Names the data in error messages (e.g. the cube's file).

    Raises
    ------
    GalamInputError
        When the axis is not increasing and finite, or the redshift is out of range.
    """
    wave = np.asarray(wave_a, dtype=np.float64)
    if wave.ndim != 1 or wave.size < 2 or not np.all(np.isfinite(wave)) or np.any(np.diff(wave) <= 0):
        raise GalamInputError(
            f"{what}: the wavelength axis must be finite and increasing with at least two "
            "pixels to be mapped by the spectral model"
        )
    if not 0.0 <= redshift < 1.0:
        raise GalamInputError(f"{what}: redshift {redshift} is outside 0 <= z < 1")
    air = air_wavelength(wave) if medium == "vacuum" else wave
    rest_loglam = np.log10(air) - np.log10(1.0 + redshift)
    observed_at_model = 10.0 ** (MODEL_LOGLAM + np.log10(1.0 + redshift))
    instrument = instrument_sigma_kms(layout, observed_at_model)
    added = np.sqrt(np.clip(COMMON_SIGMA_KMS**2 - instrument**2, 0.0, None) + _PIXEL_SIGMA_KMS**2)
    operator = gaussian_operator(rest_loglam, MODEL_LOGLAM, kms_to_dex(added))
    sky = np.zeros(wave.size, dtype=bool)
    for line in SKY_LINES_A:
        sky |= np.abs(air - line) <= SKY_HALF_WIDTH_A
    inside = (MODEL_LOGLAM >= rest_loglam[0]) & (MODEL_LOGLAM <= rest_loglam[-1])
    return SpectralInputPlan(operator.tocsr(), sky, float(redshift), layout, float(inside.mean()))


def _row_nanmedian(values: NDArray[np.floating]) -> NDArray[np.float64]:
    """Median of each row over its finite values (NaN for a row without any).

    One sort of the whole block; ``numpy.nanmedian`` along rows loops in Python.
    """
    finite = np.isfinite(values)
    count = finite.sum(axis=1)
    ordered = np.sort(np.where(finite, values, np.inf), axis=1)
    rows = np.arange(values.shape[0])
    low = np.clip((count - 1) // 2, 0, None)
    high = np.clip(count // 2, 0, values.shape[1] - 1)
    with np.errstate(invalid="ignore"):
        middle = 0.5 * (ordered[rows, low].astype(np.float64) + ordered[rows, high])
    return np.where(count > 0, middle, np.nan)


def _median_snr(flux: NDArray[np.float32], variance: Any, good: NDArray[np.bool_]) -> NDArray[np.float32]:
    if variance is None:
        return np.full(flux.shape[0], np.nan, np.float32)
    every = slice(None, None, 3)  # every third pixel: the same median, a third of the sort
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(good[:, every], flux[:, every] / np.sqrt(variance[:, every]), np.nan)
    return _row_nanmedian(ratio).astype(np.float32)


def _normalisation(flux: NDArray[np.float64], weight: NDArray[np.float64]) -> NDArray[np.float64]:
    """Median covered flux in the rest 5070-5950 A band, else over all covered pixels."""
    wave = 10.0**MODEL_LOGLAM
    band = (wave >= _NORM_BAND_A[0]) & (wave <= _NORM_BAND_A[1])
    covered = weight > 0
    norm = _row_nanmedian(np.where(covered[:, band], flux[:, band], np.nan))
    other = covered[:, band].mean(axis=1) < 0.5
    if other.any():
        norm[other] = _row_nanmedian(np.where(covered[other], flux[other], np.nan))
    return norm


def spectral_inputs(
    plan: SpectralInputPlan,
    flux: NDArray[np.floating],
    variance: NDArray[np.floating] | None = None,
    mask: NDArray[np.bool_] | None = None,
) -> SpectralInputs:
    """Turn observed spectra ``(n, n_obs)`` into model inputs (see the module docstring).

    ``variance`` (same shape; non-finite or <= 0 means unusable) and ``mask`` (True =
    bad) are optional. A spectrum is ``usable`` when at least :data:`MIN_COVERAGE` of
    the model grid has weight and its normalising flux is positive.
    """
    data = np.atleast_2d(np.asarray(flux, dtype=np.float32))
    good = np.isfinite(data) & ~plan.sky[None, :]
    var = None
    if variance is not None:
        var = np.atleast_2d(np.asarray(variance, dtype=np.float32))
        good &= np.isfinite(var) & (var > 0)
    if mask is not None:
        good &= ~np.atleast_2d(np.asarray(mask, dtype=bool))
    snr = _median_snr(data, var, good)
    weight = np.asarray(plan.operator @ good.T.astype(np.float32)).T.astype(np.float64)
    summed = np.asarray(plan.operator @ np.where(good, data, 0.0).T).T.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        spectrum = np.where(weight >= _MIN_PIXEL_WEIGHT, summed / weight, 0.0)
    weight = np.where(weight >= _MIN_PIXEL_WEIGHT, np.clip(weight, 0.0, 1.0), 0.0)
    norm = _normalisation(spectrum, weight)
    coverage = (weight > 0).mean(axis=1)
    usable = (coverage >= MIN_COVERAGE) & np.isfinite(norm) & (norm > 0)
    safe = np.where(usable, norm, 1.0)[:, None]
    x = np.zeros((data.shape[0], MODEL_LOGLAM.size, 2), dtype=np.float32)
    x[..., 0] = np.where(usable[:, None], np.clip(spectrum / safe, -2.0, 10.0), 0.0)
    x[..., 1] = np.where(usable[:, None], weight, 0.0)
    return SpectralInputs(x, snr, coverage.astype(np.float32), usable)
