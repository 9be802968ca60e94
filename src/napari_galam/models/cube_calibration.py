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

One scale and floor fitted on CALIFA-like cubes did not carry to other instruments: on
MUSE and MaNGA cubes the high-S/N spaxels' 1-sigma errors held the truth 80-84% of the
time, and the errors without cube terms were too narrow on CALIFA cubes and about right on
MUSE ones. So the section may also carry factors that vary with the spectral S/N
(``by_snr_scale``: ``{"snr": nodes, "log_age": factors, "mh": factors}``, interpolated
linearly in log S/N and held at the end nodes beyond them), giving a spaxel's error as
``factor(S/N) * hypot(scale * sigma, floor)``, and, in ``by_layout``, a scale, floor and
factors of their own for each instrument layout the cube readers name (``CALIFA``,
``MaNGA``, ``MUSE``); cubes of any other layout get the pooled ones
(:func:`cube_terms_for`; :func:`fit_cube_section` fits them all).

Each entry may also give, per quantity, ``z95``: the half-width of the 95% interval in
units of the final error (:func:`~napari_galam.models.uncertainty.interval_factor` on the
same calibration spaxels). The terms above make the 1-sigma errors hold 68%; whether
1.96 of them then hold 95% depends on the tails of the errors, which differ between
instruments and between families the network has and has not seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamError, GalamInputError
from napari_galam.models.uncertainty import Z_95

__all__ = [
    "CUBE_SNR_EDGES",
    "CubeTerms",
    "cube_terms",
    "cube_terms_for",
    "apply_cube_terms",
    "fit_cube_terms",
    "fit_cube_section",
]

#: Bins of the spectral S/N (per pixel) the cube terms are fitted and judged in.
CUBE_SNR_EDGES: tuple[float, ...] = (3.0, 10.0, 20.0, 40.0, float("inf"))
_QUANTITIES = ("log_age", "mh")
_NOMINAL = (0.6827, 0.9545)
_Z95 = Z_95


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


@dataclass(frozen=True)
class CubeTerms:
    """A card's cube terms for one layout: ``factor(snr) * hypot(scale * sigma, floor)``.

    ``snr_nodes`` (increasing, positive) and ``snr_factor`` (``(n_nodes, 2)``) are empty
    and None without S/N factors; a spaxel of unknown or non-positive S/N gets factor 1.
    """

    scale: NDArray[np.float32]
    floor: NDArray[np.float32]
    snr_nodes: tuple[float, ...] = ()
    snr_factor: NDArray[np.float64] | None = None
    #: half-width of the 95% interval in errors, per quantity (1.96: Gaussian errors)
    z95: tuple[float, float] = (_Z95, _Z95)

    def factors(self, snr: Any, n: int) -> NDArray[np.float64]:
        """``(n, 2)`` S/N factors of ``n`` spaxels (``snr`` None: all 1)."""
        out = np.ones((n, 2), np.float64)
        if self.snr_factor is None or snr is None:
            return out
        q = np.asarray(snr, np.float64).reshape(-1)
        with np.errstate(invalid="ignore"):
            known = np.isfinite(q) & (q > 0)
        nodes = np.log(np.asarray(self.snr_nodes, np.float64))
        for k in range(2):
            out[known, k] = np.interp(np.log(q[known]), nodes, self.snr_factor[:, k])
        return out

    def apply(self, sigma: Any, snr: Any = None) -> NDArray[np.float32]:
        """The cube errors of spectra-calibrated ``(n, 2)`` errors ``sigma``."""
        sigma = np.asarray(sigma, np.float64).reshape(-1, 2)
        out = np.hypot(sigma * self.scale, self.floor) * self.factors(snr, sigma.shape[0])
        return out.astype(np.float32)

    def undo(self, errors: Any, snr: Any = None) -> NDArray[np.float64]:
        """The spectra-calibrated errors behind ``(n, 2)`` cube ``errors`` (inverse of apply)."""
        errors = np.asarray(errors, np.float64).reshape(-1, 2)
        errors = errors / self.factors(snr, errors.shape[0])
        floor = np.asarray(self.floor, np.float64)
        return np.sqrt(np.clip(errors**2 - floor**2, 0.0, None)) / self.scale

    def describe(self) -> dict[str, Any]:
        """JSON-ready form (to record which terms made some maps)."""
        out: dict[str, Any] = {
            q: {"scale": float(self.scale[k]), "floor": float(self.floor[k])}
            for k, q in enumerate(_QUANTITIES)
        }
        if self.z95 != (_Z95, _Z95):
            for k, q in enumerate(_QUANTITIES):
                out[q]["z95"] = float(self.z95[k])
        if self.snr_factor is not None:
            out["by_snr_scale"] = _curve_entry(list(self.snr_nodes), self.snr_factor)
        return out

    @classmethod
    def from_description(cls, entry: dict[str, Any]) -> CubeTerms:
        """Inverse of :meth:`describe`."""
        return _entry_terms(entry, "recorded cube terms", "cube")


def _curve_entry(nodes: list[float], table: Any) -> dict[str, list[float]]:
    table = np.asarray(table, np.float64)
    return {
        "snr": [round(float(v), 3) for v in nodes],
        **{q: [round(float(v), 4) for v in table[:, k]] for k, q in enumerate(_QUANTITIES)},
    }


def _curve(entry: Any, name: str, where: str) -> tuple[tuple[float, ...], Any]:
    """Nodes and ``(n, 2)`` factors of one S/N curve of the cube section, checked."""
    try:
        nodes = np.array([float(v) for v in entry["snr"]], np.float64)
        table = np.column_stack([[float(v) for v in entry[q]] for q in _QUANTITIES])
    except (KeyError, TypeError, ValueError):
        nodes, table = np.zeros(0), np.zeros((0, 2))
    fine = (
        nodes.size >= 1
        and table.shape == (nodes.size, 2)
        and bool(np.all(np.isfinite(nodes) & (nodes > 0)))
        and bool(np.all(np.diff(nodes) > 0))
        and bool(np.all(np.isfinite(table) & (table > 0)))
    )
    if not fine:
        raise GalamInputError(
            f"model card of {name!r}: calibration.uncertainty.{where} must give "
            "increasing positive 'snr' nodes and as many positive 'log_age' and 'mh' "
            "factors; rerun scripts/evaluate_spaxel_spectra_layouts.py --fit-shipped"
        )
    return tuple(float(v) for v in nodes), table


def cube_terms_for(uncertainty: dict[str, Any], name: str, layout: str | None = None) -> CubeTerms:
    """The cube terms of a card (``calibration.uncertainty``) for cubes of ``layout``.

    The layout's own entry (``cube.by_layout[layout]``: scale, floor and optional S/N
    factors) when the card has one, else the pooled scale, floor and ``by_snr_scale``.
    Every entry of the section is checked, so a broken card is refused whatever the
    layout.

    Raises
    ------
    GalamInputError
        As :func:`cube_terms`, or when an S/N curve or a layout's entry is unusable
        (names the model).
    """
    pooled = _entry_terms(uncertainty.get("cube"), name, "cube")
    section = uncertainty.get("cube") or {}
    by_layout = section.get("by_layout") or {} if isinstance(section, dict) else {}
    if not isinstance(by_layout, dict):
        raise GalamInputError(
            f"model card of {name!r}: calibration.uncertainty.cube.by_layout must map "
            "layout names to cube terms"
        )
    own = {str(k): _entry_terms(v, name, f"cube.by_layout.{k}") for k, v in by_layout.items()}
    return own.get(str(layout), pooled) if layout is not None else pooled


def _entry_terms(entry: Any, name: str, where: str) -> CubeTerms:
    """Scale, floor and optional S/N factors of one entry of the cube section, checked."""
    if entry is None:
        return CubeTerms(np.ones(2, np.float32), np.zeros(2, np.float32))
    try:
        scale, floor = cube_terms({"cube": entry}, name)
    except GalamInputError:
        raise GalamInputError(
            f"model card of {name!r}: calibration.uncertainty.{where} must give a positive "
            "'scale' and a non-negative 'floor' for log_age and mh; rerun "
            "scripts/evaluate_spaxel_spectra_layouts.py --fit-shipped"
        ) from None
    from napari_galam.models.uncertainty import interval_95_factors

    try:
        z95 = interval_95_factors(entry, f"model card of {name!r}: calibration.uncertainty.{where}")
    except GalamError as exc:
        raise GalamInputError(str(exc)) from None
    z95_pair = (float(z95[0]), float(z95[1]))
    curve = entry.get("by_snr_scale") if isinstance(entry, dict) else None
    if curve is None:
        return CubeTerms(scale, floor, z95=z95_pair)
    nodes, table = _curve(curve, name, f"{where}.by_snr_scale")
    return CubeTerms(scale, floor, nodes, table, z95=z95_pair)


def apply_cube_terms(sigma: Any, scale: Any, floor: Any) -> NDArray[np.float32]:
    """``sqrt((scale * sigma)^2 + floor^2)`` per quantity (the last axis of ``sigma``)."""
    sigma = np.asarray(sigma, np.float64)
    out = np.hypot(sigma * np.asarray(scale, np.float64), np.asarray(floor, np.float64))
    return out.astype(np.float32)


def _misfit(
    error: NDArray, sigma: NDArray, bins: list[NDArray[np.bool_]], levels: str = "68+95"
) -> float:
    """Sum over S/N bins of the squared distances of 68% (and, with ``levels="68+95"``,
    95% at 1.96 sigma) coverage from nominal."""
    total = 0.0
    for select in bins:
        e, s = error[select], sigma[select]
        total += (np.mean(e <= s) - _NOMINAL[0]) ** 2
        if levels == "68+95":
            total += (np.mean(e <= _Z95 * s) - _NOMINAL[1]) ** 2
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
    levels: str = "68+95",
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
    levels
        ``"68"``: fit the 68% coverage alone (the 95% interval gets its own ``z95``);
        ``"68+95"``: the 68% and the 95% at 1.96 sigma together.

    Returns
    -------
    dict
        ``{"log_age": {"scale", "floor"}, "mh": {...}}``: the pair whose coverage, bin by
        bin, lies closest to nominal (least squares over the bins).
    """
    if levels not in ("68", "68+95"):
        raise GalamInputError(f"fit_cube_terms: levels must be '68' or '68+95', not {levels!r}")
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
                misfit = _misfit(error[:, k], np.hypot(s * sigma[:, k], f), bins, levels)
                if misfit < best[0]:
                    best = (misfit, float(s), float(f))
        out[key] = {"scale": round(best[1], 4), "floor": round(best[2], 4)}
    return out


def fit_cube_section(
    error: Any,
    sigma: Any,
    snr: Any,
    layouts: Any,
    *,
    min_spaxels: int = 3000,
    levels: str = "68+95",
) -> dict[str, Any]:
    """The cube section of a card: pooled terms and each layout's own.

    For all calibration spaxels together, and for each layout with at least twice
    ``min_spaxels`` of them: a scale and floor per quantity (:func:`fit_cube_terms`),
    then on top of them S/N factors
    (:func:`~napari_galam.models.sed_uncertainty.fit_snr_curve`: windows a factor 2 wide
    from S/N 3 with at least ``min_spaxels`` each, a factor per window placed at its
    median S/N), then the half-width of the 95% interval in those errors (``z95``).
    ``levels`` says what the scale, floor and factors aim at: ``"68+95"`` (the default)
    68% and 95% at 1.96 sigma together, which leaves them about 2 points wide on the
    calibration cubes; ``"68"`` 68% alone, exact on the calibration cubes. The shipped
    terms keep ``"68+95"`` because cubes unlike the calibration ones err more: aimed at
    68% alone, the errors held 64.5% of 450 held-out-family cubes' spaxels, 64.9% of 96
    survey draws and 57.5-61.8% on MUSE cubes, against 67.1%, 67.1% and 60.2-65.1%.

    Parameters
    ----------
    error, sigma
        ``(n, 2)`` model minus truth and the spectra-calibrated errors (log age, [M/H]).
    snr, layouts
        ``(n,)`` spectral S/N and layout name of each calibration spaxel.

    Returns
    -------
    dict
        ``{"log_age", "mh", "by_snr_scale", "by_layout": {layout: {"log_age", "mh",
        "by_snr_scale"}}}``.
    """
    from napari_galam.models.sed_uncertainty import fit_snr_curve
    from napari_galam.models.uncertainty import interval_factor

    error = np.asarray(error, np.float64)
    sigma = np.asarray(sigma, np.float64)
    snr = np.asarray(snr, np.float64)
    layouts = np.asarray(layouts).astype(str)
    good = np.all(np.isfinite(error) & np.isfinite(sigma) & (sigma > 0), axis=1)
    good &= np.isfinite(snr) & (snr >= CUBE_SNR_EDGES[0])
    if not good.any():
        raise GalamInputError("fit_cube_section: no calibration spaxel with an error and a S/N")

    def fit(select: NDArray[np.bool_]) -> dict[str, Any]:
        terms = fit_cube_terms(error[select], sigma[select], snr[select], levels=levels)
        base = _entry_terms(terms, "fit", "cube").apply(sigma[select])
        nodes, table = fit_snr_curve(
            error[select], base, snr[select], min_spaxels=min_spaxels, levels=levels
        )
        entry = {**terms, "by_snr_scale": _curve_entry(nodes, table)}
        final = _entry_terms(entry, "fit", "cube").apply(sigma[select], snr[select])
        for k, q in enumerate(_QUANTITIES):
            entry[q] = {**entry[q], "z95": round(interval_factor(error[select, k], final[:, k]), 4)}
        return entry

    out = fit(good)
    out["by_layout"] = {
        layout: fit(good & (layouts == layout))
        for layout in sorted(set(layouts[good].tolist()))
        if np.sum(good & (layouts == layout)) >= 2 * min_spaxels
    }
    return out
