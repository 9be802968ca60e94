"""Filter curves: SDSS ugriz from speclite and a J-PAS-like set of 54 narrow bands.

The narrow bands follow the J-PAS description used by Liew-Cain et al. (2021, Sect. 2):
54 filters 100 Angstrom apart, FWHM 145 Angstrom, central wavelengths 3785-9085 Angstrom
(covering 3785-9100 Angstrom). Real J-PAS curves are not shipped by speclite, so each
band here is an idealised, smooth top-hat: a box of width 145 Angstrom convolved with a
Gaussian of sigma 10 Angstrom,

    R(lam) = 0.5 * [erf((lam - c + 72.5) / (sqrt(2) * 10)) - erf((lam - c - 72.5) / (sqrt(2) * 10))],

whose half-maximum points are exactly c +/- 72.5 Angstrom (FWHM 145 Angstrom), whose
edges rise from 10% to 90% in 26 Angstrom, like the steep sides of interference
filters, and whose peak transmission is 1 (AB magnitudes do not depend on it). The
curves are tabulated every 1 Angstrom out to 5 sigma beyond the edges and registered
with speclite under the group name ``galam_jpas`` with band names ``J0378`` ... ``J0908``
(central wavelength in nm, rounded down), so that after :func:`jpas_filters` has run,
``speclite.filters.load_filter("galam_jpas-J0378")`` finds them too.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
import speclite.filters
from numpy.typing import NDArray
from scipy.special import erf

from napari_galam.errors import GalamInputError

__all__ = [
    "JPAS_EDGE_SIGMA",
    "JPAS_FWHM",
    "JPAS_GROUP",
    "SDSS_BANDS",
    "jpas_band_names",
    "jpas_centres",
    "jpas_filters",
    "jpas_response",
    "load_filters",
    "sdss_filters",
]

#: speclite group name of the J-PAS-like narrow bands.
JPAS_GROUP = "galam_jpas"
#: FWHM of every narrow band, Angstrom (Liew-Cain et al. 2021, Sect. 2).
JPAS_FWHM = 145.0
#: Spacing of the narrow bands, Angstrom.
JPAS_SPACING = 100.0
#: Central wavelength of the bluest narrow band, Angstrom.
JPAS_FIRST_CENTRE = 3785.0
#: Number of narrow bands.
JPAS_COUNT = 54
#: Gaussian sigma (Angstrom) that smooths the edges of the top-hat.
JPAS_EDGE_SIGMA = 10.0
#: The SDSS bands, in speclite's names.
SDSS_BANDS = tuple(f"sdss2010-{band}" for band in "ugriz")


def jpas_centres() -> NDArray[np.float64]:
    """Central wavelengths of the 54 J-PAS-like narrow bands.

    Returns
    -------
    ndarray, shape (54,)
        3785, 3885, ..., 9085 Angstrom.
    """
    return JPAS_FIRST_CENTRE + JPAS_SPACING * np.arange(JPAS_COUNT)


def jpas_band_names() -> tuple[str, ...]:
    """Canonical speclite names of the narrow bands, ``galam_jpas-J0378`` ... ``-J0908``."""
    return tuple(f"{JPAS_GROUP}-J{int(centre // 10):04d}" for centre in jpas_centres())


def jpas_response(
    wave: NDArray[np.floating], centre: float, *, fwhm: float = JPAS_FWHM
) -> NDArray[np.float64]:
    """Smooth top-hat response of one narrow band (see the module docstring).

    Parameters
    ----------
    wave : ndarray
        Wavelengths in Angstrom.
    centre : float
        Central wavelength in Angstrom.
    fwhm : float, optional
        Full width at half maximum in Angstrom; default 145.

    Returns
    -------
    ndarray
        Transmission between 0 and 1 at ``wave``.
    """
    wave = np.asarray(wave, dtype=np.float64)
    scale = np.sqrt(2.0) * JPAS_EDGE_SIGMA
    half = 0.5 * fwhm
    return 0.5 * (erf((wave - centre + half) / scale) - erf((wave - centre - half) / scale))


@functools.cache
def jpas_filters() -> speclite.filters.FilterSequence:
    """The 54 J-PAS-like narrow bands as a speclite ``FilterSequence`` (built once).

    Returns
    -------
    speclite.filters.FilterSequence
        Bands ordered by wavelength, named ``galam_jpas-J0378`` ... ``galam_jpas-J0908``;
        building them registers them in speclite's filter cache.
    """
    reach = 0.5 * JPAS_FWHM + 5.0 * JPAS_EDGE_SIGMA
    responses = []
    for centre, name in zip(jpas_centres(), jpas_band_names(), strict=True):
        wave = np.arange(centre - reach, centre + reach + 0.5, 1.0)
        response = jpas_response(wave, centre)
        response[[0, -1]] = 0.0  # speclite wants the curve to end at zero
        meta = {
            "group_name": JPAS_GROUP,
            "band_name": name.split("-", 1)[1],
            "url": "",
            "description": (
                f"J-PAS-like narrow band, centre {centre:.0f} A, FWHM {JPAS_FWHM:.0f} A, "
                f"top-hat with Gaussian edges (sigma {JPAS_EDGE_SIGMA:.0f} A); "
                "napari-galam, after Liew-Cain et al. (2021) Sect. 2"
            ),
        }
        responses.append(speclite.filters.FilterResponse(wave, response, meta))
    return speclite.filters.FilterSequence(responses)


def sdss_filters() -> speclite.filters.FilterSequence:
    """The SDSS u, g, r, i, z curves shipped by speclite (``sdss2010-*``, with atmosphere).

    Returns
    -------
    speclite.filters.FilterSequence
        The five bands in the order u, g, r, i, z.
    """
    return speclite.filters.load_filters(*SDSS_BANDS)


def _known_names_message() -> str:
    jpas = jpas_band_names()
    return (
        f"known filters: {', '.join(SDSS_BANDS)}; {jpas[0]} ... {jpas[-1]} (54 narrow bands, "
        f"or '{JPAS_GROUP}-*' for all); and any speclite name '<group>-<band>' or "
        f"'<group>-*' with group in {', '.join(speclite.filters.filter_group_names)}"
    )


def load_filters(names: str | Iterable[str]) -> speclite.filters.FilterSequence:
    """Load filters by name, the project's narrow bands included.

    Parameters
    ----------
    names : str or iterable of str
        speclite names ``"<group>-<band>"`` (e.g. ``"sdss2010-r"``, ``"galam_jpas-J0658"``)
        or whole groups ``"<group>-*"`` (e.g. ``"galam_jpas-*"``, ``"sdss2010-*"``).

    Returns
    -------
    speclite.filters.FilterSequence
        The filters in the order given.

    Raises
    ------
    GalamInputError
        If a name is unknown or no name is given; the message lists the known ones.
    """
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise GalamInputError(f"filters: no filter name given; {_known_names_message()}")
    jpas = jpas_filters()  # registers the narrow bands with speclite
    responses = []
    for name in names:
        if not isinstance(name, str):
            raise GalamInputError(f"filters: {name!r} is not a filter name")
        if name == f"{JPAS_GROUP}-*":
            responses.extend(jpas)
            continue
        try:
            if name.endswith("-*"):
                responses.extend(speclite.filters.load_filters(name))
            else:
                responses.append(speclite.filters.load_filter(name))
        except (ValueError, OSError) as error:
            raise GalamInputError(
                f"filters: unknown filter {name!r}; {_known_names_message()}"
            ) from error
    return speclite.filters.FilterSequence(responses)
