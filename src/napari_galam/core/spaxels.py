"""Per-spaxel narrow-band SEDs from IFU cubes, their S/N, and Voronoi binning.

Liew-Cain et al. (2021, Sect. 2) turn each CALIFA spectrum into a J-PAS-like SED by
synthetic photometry (spectrum x filter response). Here that is one matrix product per
block of spaxels: the filter matrix of :mod:`napari_galam.sps.photometry` applied to the
cube's spectral axis, with bad pixels left out of each band's weighted mean and the
variance propagated. Cubes can be numpy, memmap or dask arrays of shape
``(n_wave, ny, nx)``; only a block of rows is in memory at a time.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.progress import Progress, ProgressGenerator, run_to_end

__all__ = [
    "SpaxelSEDs",
    "VoronoiBins",
    "iter_cube_to_seds",
    "cube_to_seds",
    "voronoi_bins",
    "bin_seds",
    "filters_within",
]


@dataclass(frozen=True)
class SpaxelSEDs:
    """Narrow-band SEDs of every spaxel.

    Attributes
    ----------
    flux
        ``(n_filters, ny, nx)`` mean f_lambda in each band (units of the cube), NaN where
        a band has no good pixel.
    error
        ``(n_filters, ny, nx)`` 1-sigma errors (NaN when the cube has no variance).
    snr
        ``(ny, nx)`` median over bands of flux / error (NaN without variance).
    band_names, band_centres
        The filters, in the order of the first axis.
    """

    flux: NDArray[np.float32]
    error: NDArray[np.float32]
    snr: NDArray[np.float32]
    band_names: tuple[str, ...]
    band_centres: NDArray[np.float64]

    @property
    def valid(self) -> NDArray[np.bool_]:
        """Spaxels with a finite value in every band."""
        return np.all(np.isfinite(self.flux), axis=0)


def filters_within(
    wave: NDArray[np.float64], filters: Any, *, exclude: Sequence[str] = ()
) -> list[str]:
    """Names of the filters fully covered by ``wave``, minus ``exclude``.

    Liew-Cain et al. keep the 36 J-PAS filters inside CALIFA's range and drop the two
    around H-alpha; pass those names as ``exclude``.
    """
    names = []
    for response in filters:
        curve_wave = np.asarray(response.wavelength)
        if wave[0] <= curve_wave[0] and wave[-1] >= curve_wave[-1]:
            if response.name not in exclude:
                names.append(response.name)
    return names


def _validate_cube(data: Any, wave: NDArray[np.float64], what: str) -> None:
    if getattr(data, "ndim", 0) != 3:
        raise GalamInputError(
            f"{what}: a cube must be 3-D (n_wave, ny, nx), got shape {getattr(data, 'shape', None)}."
        )
    if data.shape[0] != wave.size:
        raise GalamInputError(
            f"{what}: the cube has {data.shape[0]} channels but the wavelength axis "
            f"has {wave.size}."
        )


def iter_cube_to_seds(
    wave: Any,
    data: Any,
    filters: Any,
    *,
    variance: Any = None,
    mask: Any = None,
    rows_per_block: int | None = None,
    what: str = "cube",
) -> ProgressGenerator[SpaxelSEDs]:
    """Compute :class:`SpaxelSEDs` block by block; yield ``Progress("photometry", rows, ny)``.

    Returns the SEDs. See :func:`cube_to_seds` for the parameters.
    """
    from napari_galam.sps.photometry import filter_matrix

    wave = np.asarray(wave, dtype=np.float64)
    _validate_cube(data, wave, what)
    sequence = list(filters)
    if not sequence:
        raise GalamInputError(f"{what}: no filters given for the SEDs.")
    matrix = filter_matrix(wave, filters, outside="raise")  # (n_f, n_wave)
    n_f = matrix.shape[0]
    _, ny, nx = data.shape
    if rows_per_block is None:  # about 64 MB of float32 per block
        rows_per_block = max(1, int(16e6 // max(1, wave.size * nx)))
    flux = np.full((n_f, ny, nx), np.nan, dtype=np.float32)
    error = np.full((n_f, ny, nx), np.nan, dtype=np.float32)
    squared = matrix**2
    for start in range(0, ny, rows_per_block):
        stop = min(ny, start + rows_per_block)
        block = np.asarray(data[:, start:stop, :], dtype=np.float64)
        good = np.isfinite(block)
        if mask is not None:
            good &= ~np.asarray(mask[:, start:stop, :], dtype=bool)
        var = None
        if variance is not None:
            var = np.asarray(variance[:, start:stop, :], dtype=np.float64)
            good &= np.isfinite(var) & (var > 0)
        values = np.where(good, block, 0.0).reshape(wave.size, -1)
        weights = good.reshape(wave.size, -1).astype(np.float64)
        norm = matrix @ weights  # share of each band's response on good pixels
        with np.errstate(invalid="ignore", divide="ignore"):
            band_flux = (matrix @ values) / norm
            covered = norm > 0.9  # a band missing >10% of its response is not measured
            band_flux[~covered] = np.nan
            flux[:, start:stop, :] = band_flux.reshape(n_f, stop - start, nx)
            if var is not None:
                var_flat = np.where(good, var, 0.0).reshape(wave.size, -1)
                band_err = np.sqrt(squared @ var_flat) / norm
                band_err[~covered] = np.nan
                error[:, start:stop, :] = band_err.reshape(n_f, stop - start, nx)
        yield Progress("photometry", stop, ny)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN spaxels
        snr = np.nanmedian(flux / error, axis=0).astype(np.float32)
    return SpaxelSEDs(
        flux=flux,
        error=error,
        snr=snr,
        band_names=tuple(f.name for f in sequence),
        band_centres=np.array([float(f.effective_wavelength.value) for f in sequence]),
    )


def cube_to_seds(
    wave: Any,
    data: Any,
    filters: Any,
    *,
    variance: Any = None,
    mask: Any = None,
    rows_per_block: int | None = None,
    what: str = "cube",
) -> SpaxelSEDs:
    """Synthetic narrow-band photometry of every spaxel of a cube.

    Parameters
    ----------
    wave
        ``(n_wave,)`` wavelengths in Angstrom, in the filters' frame (observed).
    data
        ``(n_wave, ny, nx)`` flux densities (numpy, memmap or dask).
    filters
        A speclite FilterSequence fully covered by ``wave``
        (see :func:`filters_within`).
    variance, mask
        Optional cubes of the same shape (``mask`` True = bad).
    rows_per_block
        Rows of spaxels processed at once (default: about 64 MB per block).
    what
        The cube's name for error messages (a file or layer name).

    Returns
    -------
    SpaxelSEDs
    """
    return run_to_end(
        iter_cube_to_seds(
            wave, data, filters, variance=variance, mask=mask,
            rows_per_block=rows_per_block, what=what,
        )
    )  # fmt: skip


@dataclass(frozen=True)
class VoronoiBins:
    """Bins of the spaxels above a S/N floor: Voronoi bins (Cappellari & Copin 2003), or
    PowerBin's from :func:`napari_galam.pipeline.binning.spaxel_bins`.

    ``bin_id`` is ``(ny, nx)`` with -1 for spaxels left out; ``snr`` the S/N of each bin.
    """

    bin_id: NDArray[np.int32]
    snr: NDArray[np.float64]
    n_spaxels: NDArray[np.int64]

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.snr.size)


def voronoi_bins(
    signal: NDArray[Any],
    noise: NDArray[Any],
    *,
    target_snr: float,
    min_snr: float = 1.0,
) -> VoronoiBins:
    """Bin spaxels to ``target_snr`` with the ``vorbin`` package.

    Spaxels with S/N below ``min_snr`` or non-finite values are left out (bin -1). When
    every spaxel already reaches the target, each is its own bin.
    """
    signal = np.asarray(signal, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if signal.shape != noise.shape or signal.ndim != 2:
        raise GalamInputError(
            f"signal and noise maps must be 2-D and of one shape, got {signal.shape} and "
            f"{noise.shape}."
        )
    if not target_snr > 0:
        raise GalamInputError(f"target S/N must be positive, got {target_snr}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = signal / noise
    use = np.isfinite(snr) & (noise > 0) & (snr >= min_snr)
    bin_id = np.full(signal.shape, -1, dtype=np.int32)
    if not use.any():
        return VoronoiBins(bin_id, np.zeros(0), np.zeros(0, dtype=np.int64))
    rows, cols = np.nonzero(use)
    if np.all(snr[use] >= target_snr):
        bin_id[rows, cols] = np.arange(rows.size, dtype=np.int32)
        return VoronoiBins(bin_id, snr[use], np.ones(rows.size, dtype=np.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vorbin warns on import that PowerBin succeeds it
        from vorbin.voronoi_2d_binning import voronoi_2d_binning

        numbers, *_rest, bin_snr, n_pix, _scale = voronoi_2d_binning(
            cols.astype(float), rows.astype(float), signal[use], noise[use], target_snr,
            plot=False, quiet=True, pixelsize=1.0,
        )  # fmt: skip
    bin_id[rows, cols] = numbers.astype(np.int32)
    return VoronoiBins(bin_id, np.asarray(bin_snr, float), np.asarray(n_pix, np.int64))


def bin_seds(seds: SpaxelSEDs, bins: VoronoiBins) -> NDArray[np.float32]:
    """SEDs averaged over each bin (Voronoi or PowerBin): ``(n_bins, n_filters)``."""
    flat_ids = bins.bin_id.ravel()
    keep = flat_ids >= 0
    flux = seds.flux.reshape(seds.flux.shape[0], -1)[:, keep]
    out = np.zeros((bins.n_bins, flux.shape[0]))
    counts = np.bincount(flat_ids[keep], minlength=bins.n_bins).astype(float)
    for k in range(flux.shape[0]):
        out[:, k] = np.bincount(
            flat_ids[keep], weights=np.nan_to_num(flux[k]), minlength=bins.n_bins
        )
    return (out / np.maximum(counts, 1)[:, None]).astype(np.float32)
