"""The single-stellar-population (SSP) library shipped with napari-galam.

The file ``napari_galam/data/emiles_ssp.npz`` holds 150 E-MILES SSP spectra
(Vazdekis et al. 2016; 25 ages x 6 [M/H], unimodal IMF 1.3, baseFe), trimmed to
2750-11300 Angstrom in the rest frame, in pPXF's ``sps_lib`` layout, so that
``ppxf.sps_util.sps_lib(ssp_library_path(), velscale, fwhm_gal)`` reads it as it is.
``scripts/build_ssp_library.py`` made it; ``data/EMILES_README.md`` says where it comes
from and how to cite it.

:func:`load_ssp_library` returns it as an :class:`SSPLibrary`, and that object carries
the label convention of the whole project: a mixture of SSPs with given *mass* weights
has the luminosity-weighted log age and [M/H] that pPXF reports when its templates are
normalised to a mean of one in the 5070-5950 Angstrom band (the FWHM of the V band), i.e.
the weight of each SSP is its mass times its mean flux per unit mass in that band.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from napari_galam.errors import GalamInputError

__all__ = [
    "LIGHT_WEIGHT_BAND",
    "SSPLibrary",
    "load_ssp_library",
    "ssp_library_path",
]

#: Rest-frame band (Angstrom) in which pPXF normalises templates for light weights.
LIGHT_WEIGHT_BAND: tuple[float, float] = (5070.0, 5950.0)

_SHIPPED_NPZ = Path(__file__).resolve().parent.parent / "data" / "emiles_ssp.npz"


def ssp_library_path() -> Path:
    """Return the path of the shipped SSP library npz (pPXF ``sps_lib`` format).

    Returns
    -------
    pathlib.Path
        ``.../napari_galam/data/emiles_ssp.npz``; pass it to ``ppxf.sps_util.sps_lib``.
    """
    return _SHIPPED_NPZ


def _read_only(array: NDArray) -> NDArray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class SSPLibrary:
    """A grid of SSP spectra, ages and metallicities.

    Attributes
    ----------
    wave : ndarray, shape (npix,)
        Rest-frame wavelength in Angstrom (float64; linear, 0.9 Angstrom steps for E-MILES).
    templates : ndarray, shape (npix, n_ages, n_metals)
        float32 spectra in L_sun / Angstrom per M_sun of initial stellar mass (E-MILES units).
    ages_gyr : ndarray, shape (n_ages,)
        SSP ages in Gyr.
    metals : ndarray, shape (n_metals,)
        SSP total metallicities [M/H] (dex).
    masses : ndarray, shape (n_ages, n_metals)
        Mass in living stars plus remnants per unit initial mass (Vazdekis et al. 2012).
    fwhm : ndarray, shape (npix,)
        Instrumental FWHM of the spectra in Angstrom at each wavelength.
    ir_extrapolated : ndarray of bool, shape (n_ages, n_metals), or None
        SSPs whose spectrum above 8950 Angstrom is not E-MILES' own (it has none for the
        youngest ages) but the continuum of the youngest complete SSP of the same [M/H],
        scaled to match at 8750-8950 Angstrom; None if the file does not say.
    source : str
        Where the arrays were read from.

    All arrays are read-only: the library is cached and shared.
    """

    wave: NDArray[np.float64]
    templates: NDArray[np.float32]
    ages_gyr: NDArray[np.float64]
    metals: NDArray[np.float64]
    masses: NDArray[np.float64]
    fwhm: NDArray[np.float64]
    ir_extrapolated: NDArray[np.bool_] | None = None
    source: str = ""

    @property
    def log_ages(self) -> NDArray[np.float64]:
        """log10 of the SSP ages in years, shape (n_ages,)."""
        return np.log10(self.ages_gyr) + 9.0

    @property
    def n_ages(self) -> int:
        """Number of ages in the grid."""
        return int(self.ages_gyr.size)

    @property
    def n_metals(self) -> int:
        """Number of metallicities in the grid."""
        return int(self.metals.size)

    @property
    def npix(self) -> int:
        """Number of wavelength pixels."""
        return int(self.wave.size)

    def band_luminosity(
        self, lo: float = LIGHT_WEIGHT_BAND[0], hi: float = LIGHT_WEIGHT_BAND[1]
    ) -> NDArray[np.float64]:
        """Mean flux per unit initial mass of every SSP in a rest-frame band.

        Parameters
        ----------
        lo, hi : float
            Band limits in Angstrom (inclusive); default 5070-5950, pPXF's band for light
            weights.

        Returns
        -------
        ndarray, shape (n_ages, n_metals)
            Mean of each template over the pixels with ``lo <= wave <= hi``.

        Raises
        ------
        GalamInputError
            If the band holds no pixel of the library.
        """
        band = (self.wave >= lo) & (self.wave <= hi)
        if not band.any():
            raise GalamInputError(
                f"band {lo}-{hi} Angstrom: no pixel of the SSP library "
                f"({self.wave[0]:.0f}-{self.wave[-1]:.0f} Angstrom) falls inside it"
            )
        return self.templates[band].mean(axis=0, dtype=np.float64)

    def _check_weights(self, weights: ArrayLike, name: str = "weights") -> NDArray[np.float64]:
        weights = np.asarray(weights, dtype=np.float64)
        grid = (self.n_ages, self.n_metals)
        if weights.ndim < 2 or weights.shape[-2:] != grid:
            raise GalamInputError(
                f"{name}: expected shape (..., {grid[0]}, {grid[1]}) (ages x metallicities), "
                f"got {weights.shape}"
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise GalamInputError(f"{name}: weights must be finite and non-negative")
        return weights

    def luminosity_weighted_labels(
        self,
        weights: ArrayLike,
        *,
        band: tuple[float, float] = LIGHT_WEIGHT_BAND,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Luminosity-weighted log age and [M/H] of mixtures of SSPs.

        Parameters
        ----------
        weights : array_like, shape (..., n_ages, n_metals)
            Initial stellar mass in each SSP (any overall normalisation): the coefficients
            by which the templates are multiplied and summed.
        band : (float, float), optional
            Rest-frame band (Angstrom) defining the light weights; default 5070-5950.

        Returns
        -------
        log_age : ndarray, shape (...)
            ``sum(w_L * log10(age / yr)) / sum(w_L)`` with ``w_L = weights * L_band``.
        mh : ndarray, shape (...)
            ``sum(w_L * [M/H]) / sum(w_L)``.

        Raises
        ------
        GalamInputError
            If the weights have the wrong trailing shape, are negative or not finite, or
            some mixture has zero total weight.
        """
        weights = self._check_weights(weights)
        light = weights * self.band_luminosity(*band)
        total = light.sum(axis=(-2, -1))
        if np.any(total <= 0):
            raise GalamInputError("weights: every mixture needs a positive total weight")
        log_age = np.einsum("...ij,i->...", light, self.log_ages) / total
        mh = np.einsum("...ij,j->...", light, self.metals) / total
        return log_age, mh

    def mix_spectra(self, weights: ArrayLike) -> NDArray[np.float64]:
        """Spectra of mixtures of SSPs: ``sum_ij weights[..., i, j] * templates[:, i, j]``.

        Parameters
        ----------
        weights : array_like, shape (..., n_ages, n_metals)
            Initial stellar mass (M_sun) in each SSP.

        Returns
        -------
        ndarray, shape (..., npix)
            Spectra in L_sun / Angstrom (float64), one matrix product for all mixtures.
        """
        weights = self._check_weights(weights)
        flat = weights.reshape(*weights.shape[:-2], self.n_ages * self.n_metals)
        return flat @ self.templates.reshape(self.npix, -1).T.astype(np.float64)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> SSPLibrary:
    with np.load(path) as npz:
        missing = {"templates", "lam", "fwhm", "ages", "metals", "masses"} - set(npz.files)
        if missing:
            raise GalamInputError(f"{path}: not a pPXF sps_lib npz, missing {sorted(missing)}")
        templates = npz["templates"].astype(np.float32, copy=False)
        wave = npz["lam"].astype(np.float64)
        fwhm = np.broadcast_to(npz["fwhm"], wave.shape).astype(np.float64)
        library = SSPLibrary(
            wave=_read_only(wave),
            templates=_read_only(templates),
            ages_gyr=_read_only(npz["ages"].astype(np.float64)),
            metals=_read_only(npz["metals"].astype(np.float64)),
            masses=_read_only(npz["masses"].astype(np.float64)),
            fwhm=_read_only(fwhm),
            ir_extrapolated=(
                _read_only(npz["ir_extrapolated"].astype(bool))
                if "ir_extrapolated" in npz.files
                else None
            ),
            source=path,
        )
    if library.templates.shape != (library.npix, library.n_ages, library.n_metals):
        raise GalamInputError(
            f"{path}: templates have shape {library.templates.shape}, expected "
            f"({library.npix}, {library.n_ages}, {library.n_metals})"
        )
    return library


def load_ssp_library(path: str | Path | None = None) -> SSPLibrary:
    """Load an SSP library in pPXF ``sps_lib`` npz format (cached).

    Parameters
    ----------
    path : str or Path, optional
        npz file with keys ``templates, lam, fwhm, ages, metals, masses``; default the
        E-MILES library shipped with the package (:func:`ssp_library_path`).

    Returns
    -------
    SSPLibrary
        The library, with read-only arrays; repeated calls return the same object.

    Raises
    ------
    GalamInputError
        If the file lacks one of the keys or its arrays do not agree in shape.
    """
    path = ssp_library_path() if path is None else Path(path)
    if not path.is_file():
        raise GalamInputError(f"{path}: SSP library file not found")
    return _load_cached(str(path.resolve()))
