"""Errors of the per-spaxel spectral model made to hold on IFU cubes: a scale and a floor.

``spaxel-spectra`` learns its variance, and has it scaled, on spectra of its own
simulator (:mod:`napari_galam.simulate.spaxel_spectra`). Its maps are of cubes, whose
spaxels a galaxy's structure, PSF, dust and lines make in ways those spectra do not; on
cubes of the galaxy simulator (:func:`napari_galam.simulate.samples.simulated_califa_cube`)
its 1-sigma errors held the truth 54-79% of the time depending on the family, and at
S/N >= 40 as little as 31%: the network's own error shrinks with the noise, but its
errors from the recipe (a population mix it reads a little wrongly) do not.

So the card may carry ``calibration.uncertainty.cube``: per quantity a ``scale`` and a
``floor`` (dex) giving the error of a cube's spaxel as
``sqrt((scale * sigma)^2 + floor^2)``, ``sigma`` being the spectra-calibrated error.
:func:`fit_cube_terms` chooses them on calibration cubes the test cubes never share
(``scripts/calibrate_spectral_gradient_errors.py --write-card``), so that 68% and 95%
intervals hold in every bin of the spectral S/N. Without the section the errors are the
spectra-calibrated ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError

__all__ = [
    "CUBE_SNR_EDGES",
    "cube_terms",
    "apply_cube_terms",
    "fit_cube_terms",
]

#: Bins of the spectral S/N (per pixel) the cube terms are fitted and judged in.
CUBE_SNR_EDGES: tuple[float, ...] = (3.0, 10.0, 20.0, 40.0, float("inf"))
_QUANTITIES = ("log_age", "mh")
_NOMINAL = (0.6827, 0.9545)
_Z95 = 1.959964


def cube_terms(uncertainty: dict[str, Any], name: str) -> tuple[NDArray[np.float32], ...]:
    """The card's cube ``scale`` and ``floor`` per quantity (log age, [M/H]).

    ``uncertainty`` is the card's ``calibration.uncertainty``; without a ``cube``
    section the scale is 1 and the floor 0 (the spectra-calibrated errors).

    Raises
    ------
    GalamInputError
        When the section is there but not positive finite scales and non-negative
        finite floors for both quantities (names the model ``name``).
    """
    section = uncertainty.get("cube")
    if section is None:
        return np.ones(2, np.float32), np.zeros(2, np.float32)
    try:
        scale = np.array([float(section[q]["scale"]) for q in _QUANTITIES], np.float32)
        floor = np.array([float(section[q]["floor"]) for q in _QUANTITIES], np.float32)
    except (KeyError, TypeError, ValueError):
        scale = floor = np.full(2, np.nan, np.float32)
    if not (np.all(np.isfinite(scale) & (scale > 0)) and np.all(np.isfinite(floor) & (floor >= 0))):
        raise GalamInputError(
            f"model card of {name!r}: calibration.uncertainty.cube must give a positive "
            "'scale' and a non-negative 'floor' for log_age and mh; rerun "
            "scripts/calibrate_spectral_gradient_errors.py --write-card"
        )
    return scale, floor


def apply_cube_terms(sigma: Any, scale: Any, floor: Any) -> NDArray[np.float32]:
    """``sqrt((scale * sigma)^2 + floor^2)`` per quantity (the last axis of ``sigma``)."""
    sigma = np.asarray(sigma, np.float64)
    out = np.hypot(sigma * np.asarray(scale, np.float64), np.asarray(floor, np.float64))
    return out.astype(np.float32)


def _misfit(error: NDArray, sigma: NDArray, bins: list[NDArray[np.bool_]]) -> float:
    """Sum over S/N bins of the squared distances of 68% and 95% coverage from nominal."""
    total = 0.0
    for select in bins:
        e, s = error[select], sigma[select]
        total += (np.mean(e <= s) - _NOMINAL[0]) ** 2 + (np.mean(e <= _Z95 * s) - _NOMINAL[1]) ** 2
    return total


def fit_cube_terms(
    error: Any,
    sigma: Any,
    snr: Any,
    *,
    edges: Sequence[float] = CUBE_SNR_EDGES,
    scales: Sequence[float] | None = None,
    floors: Sequence[float] | None = None,
    min_per_bin: int = 500,
) -> dict[str, dict[str, float]]:
    """The cube ``scale`` and ``floor`` of each quantity, fitted on calibration spaxels.

    Parameters
    ----------
    error, sigma
        ``(n, 2)`` model minus truth and the spectra-calibrated errors (log age, [M/H])
        of the calibration cubes' mapped spaxels.
    snr
        ``(n,)`` their spectral S/N.
    edges
        S/N bins; bins with fewer than ``min_per_bin`` spaxels are left out of the fit.
    scales, floors
        The grid searched (default scales 0.5-2.0 in steps of 0.02, floors 0-0.25 dex in
        steps of 0.005).

    Returns
    -------
    dict
        ``{"log_age": {"scale", "floor"}, "mh": {...}}``: the pair whose 68% and 95%
        coverage, bin by bin, lies closest to nominal (least squares over the bins).
    """
    error = np.abs(np.asarray(error, np.float64))
    sigma = np.asarray(sigma, np.float64)
    snr = np.asarray(snr, np.float64)
    scales = np.arange(0.5, 2.0001, 0.02) if scales is None else np.asarray(scales, float)
    floors = np.arange(0.0, 0.2501, 0.005) if floors is None else np.asarray(floors, float)
    good = np.all(np.isfinite(error) & np.isfinite(sigma), axis=1) & np.isfinite(snr)
    if not good.any():
        raise GalamInputError("fit_cube_terms: no calibration spaxel with an error and a S/N")
    error, sigma, snr = error[good], sigma[good], snr[good]
    bins = [(snr >= lo) & (snr < hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    bins = [b for b in bins if b.sum() >= min_per_bin] or [np.ones(snr.size, bool)]
    out: dict[str, dict[str, float]] = {}
    for k, key in enumerate(_QUANTITIES):
        best = (np.inf, 1.0, 0.0)
        for s in scales:
            for f in floors:
                misfit = _misfit(error[:, k], np.hypot(s * sigma[:, k], f), bins)
                if misfit < best[0]:
                    best = (misfit, float(s), float(f))
        out[key] = {"scale": round(best[1], 4), "floor": round(best[2], 4)}
    return out
