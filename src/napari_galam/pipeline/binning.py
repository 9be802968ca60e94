"""Bin the spaxels of an IFU cube to a target S/N with PowerBin, and sum their spectra.

The full-spectrum fits of :mod:`napari_galam.pipeline.fit` need a S/N of a few tens per
spectral pixel; most spaxels of a cube are far below it. :func:`cube_snr_map` measures
each spaxel's S/N per pixel in the middle fifth of the spectrum (median flux over the
median error, or over the DER_SNR noise estimate when the cube has no variance), reading
the cube by blocks of rows. :func:`bin_cube` keeps the spaxels above a S/N floor and
groups them with ``powerbin.PowerBin`` (Cappellari 2025, MNRAS 544, 1432: centroidal
power diagrams, the successor of Voronoi binning) so that each bin's S/N^2, the sum of
its spaxels' S/N^2 for independent noise, is close to the target's square. Most spaxels
already above the target stay alone, but not all: PowerBin pairs a few of them (about 3%
on smooth simulated galaxies) with fainter neighbours, so a bin map is not a per-spaxel
map even where every spaxel reaches the target. :func:`bin_spectrum` sums the spectra of
one bin.

The model maps of :mod:`napari_galam.pipeline.maps` bin with either binner
(:data:`BINNINGS`): :func:`spaxel_bins` gives their bin labels from Voronoi binning
(:func:`napari_galam.core.spaxels.voronoi_bins`) or from PowerBin (:func:`bin_cube`), on
the S/N the mapping model measures.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.core.spaxels import VoronoiBins, voronoi_bins
from napari_galam.errors import GalamInputError
from napari_galam.progress import Progress, ProgressGenerator

__all__ = [
    "BINNINGS",
    "BINNING_LABELS",
    "CubeBins",
    "cube_snr_map",
    "iter_cube_snr_map",
    "bin_cube",
    "bin_spectrum",
    "check_binning",
    "spaxel_bins",
]

#: Rows of the cube read at a time when measuring the S/N.
_ROWS_PER_BLOCK = 16
#: The binners of model maps with a target S/N (``galam map --binning``; the first is the
#: default).
BINNINGS = ("voronoi", "powerbin")
#: Each binner's name in messages.
BINNING_LABELS = {"voronoi": "Voronoi binning", "powerbin": "PowerBin binning"}


@dataclass(frozen=True, eq=False)
class CubeBins:
    """Spatial bins of a cube's spaxels.

    Attributes
    ----------
    bin_id
        ``(ny, nx)`` bin of each spaxel; -1 for spaxels left out (below ``min_snr``).
    snr
        ``(ny, nx)`` S/N per spectral pixel of each spaxel (NaN without signal).
    bin_snr
        ``(n_bins,)`` expected S/N of each bin (square root of the summed S/N^2).
    target_snr, min_snr
        The binning's target and floor.
    """

    bin_id: NDArray[np.int32]
    snr: NDArray[np.float32]
    bin_snr: NDArray[np.float64]
    target_snr: float
    min_snr: float

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.bin_snr.size)

    def spaxels(self, index: int) -> tuple[tuple[int, int], ...]:
        """The ``(y, x)`` spaxels of bin ``index``, row by row."""
        ys, xs = np.nonzero(self.bin_id == index)
        return tuple((int(y), int(x)) for y, x in zip(ys, xs, strict=True))

    def fingerprint(self) -> str:
        """A short hash of the bin map (a rerun with other bins is another run)."""
        return hashlib.sha256(np.ascontiguousarray(self.bin_id).tobytes()).hexdigest()[:16]


def _der_snr_noise(flux: NDArray[np.float64]) -> NDArray[np.float64]:
    """Noise per pixel estimated from the flux alone along axis 0 (DER_SNR, Stoehr et al.
    2008): 1.482602 / sqrt(6) times the median of |2 f_i - f_(i-2) - f_(i+2)|."""
    second = np.abs(2.0 * flux[2:-2] - flux[:-4] - flux[4:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # spaxels without any flux
        return 1.482602 / np.sqrt(6.0) * np.nanmedian(second, axis=0)


def _block_snr(flux: NDArray[np.float64], variance: NDArray[np.float64] | None) -> NDArray:
    """Median S/N per pixel of each spaxel of a block ``(n_wave, rows, nx)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN spaxels
        signal = np.nanmedian(flux, axis=0)
        if variance is not None:
            good = np.isfinite(variance) & (variance > 0) & (variance < 1e30)
            sigma = np.sqrt(np.where(good, variance, np.nan))
            noise = np.nanmedian(np.where(np.isfinite(flux), sigma, np.nan), axis=0)
        else:
            noise = _der_snr_noise(flux)
        snr = signal / noise
    return np.where(np.isfinite(snr) & (noise > 0), snr, np.nan)


def iter_cube_snr_map(cube: Any) -> ProgressGenerator[NDArray[np.float32]]:
    """The S/N per spectral pixel of every spaxel of ``cube`` (a ``SpectralCube``).

    Measured in the middle fifth of the spectrum; masked pixels are left out. Yields
    ``Progress("S/N", rows_done, ny)`` and returns the ``(ny, nx)`` map.
    """
    n_wave, ny, nx = cube.shape
    window = slice(int(0.4 * n_wave), max(int(0.6 * n_wave), int(0.4 * n_wave) + 8))
    snr = np.full((ny, nx), np.nan, dtype=np.float32)
    yield Progress("S/N", 0, ny)
    for start in range(0, ny, _ROWS_PER_BLOCK):
        rows = slice(start, min(ny, start + _ROWS_PER_BLOCK))
        flux = np.array(cube.data[window, rows, :], dtype=np.float64)
        variance = None
        if cube.variance is not None:
            variance = np.array(cube.variance[window, rows, :], dtype=np.float64)
        if cube.mask is not None:
            flux[np.asarray(cube.mask[window, rows, :], dtype=bool)] = np.nan
        snr[rows] = _block_snr(flux, variance)
        yield Progress("S/N", rows.stop, ny)
    return snr


def cube_snr_map(cube: Any) -> NDArray[np.float32]:
    """Run :func:`iter_cube_snr_map` to the end."""
    from napari_galam.progress import run_to_end

    return run_to_end(iter_cube_snr_map(cube))


def bin_cube(snr: NDArray[np.floating], *, target_snr: float, min_snr: float = 3.0) -> CubeBins:
    """Bin the spaxels with S/N >= ``min_snr`` to ``target_snr`` with PowerBin.

    Parameters
    ----------
    snr
        ``(ny, nx)`` S/N per spectral pixel (from :func:`cube_snr_map`).
    target_snr
        The S/N each bin should reach.
    min_snr
        Spaxels below it are left out (bin -1).

    Raises
    ------
    GalamInputError
        When the target is not positive or no spaxel reaches ``min_snr``.
    """
    if not (np.isfinite(target_snr) and target_snr > 0):
        raise GalamInputError(f"target S/N: expected a positive number, got {target_snr}.")
    snr = np.asarray(snr, dtype=np.float64)
    keep = np.isfinite(snr) & (snr >= min_snr)
    if not keep.any():
        finite = snr[np.isfinite(snr)]
        best = f"{finite.max():.2f}" if finite.size else "none"
        raise GalamInputError(
            f"no spaxel reaches S/N {min_snr:g} per pixel (the best has {best}); lower the "
            "minimum S/N."
        )
    ys, xs = np.nonzero(keep)
    capacity = snr[keep] ** 2
    # PowerBin refuses a field where every spaxel is above the target: each is its own bin
    if ys.size < 4 or capacity.sum() <= target_snr**2 or np.all(capacity > target_snr**2):
        labels = np.zeros(ys.size, int) if capacity.sum() <= target_snr**2 else np.arange(ys.size)
    else:
        labels = _powerbin_labels(xs, ys, capacity, target_snr)
    # number the bins from the top row down, so that bin ids do not depend on PowerBin's order
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    renumber = np.empty(order.size, int)
    renumber[order] = np.arange(order.size)
    labels = renumber[np.searchsorted(np.unique(labels), labels)]
    bin_id = np.full(snr.shape, -1, dtype=np.int32)
    bin_id[ys, xs] = labels
    bin_snr = np.sqrt(np.bincount(labels, weights=capacity))
    return CubeBins(bin_id, snr.astype(np.float32), bin_snr, float(target_snr), float(min_snr))


def _powerbin_labels(
    xs: NDArray[np.intp], ys: NDArray[np.intp], capacity: NDArray[np.float64], target_snr: float
) -> NDArray[np.intp]:
    """PowerBin's bin of each spaxel (additive capacity S/N^2, target S/N^2)."""
    import contextlib
    import io

    from powerbin import PowerBin

    xy = np.column_stack([xs, ys]).astype(float)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rms of bins when all are single
        binning = PowerBin(xy, capacity, float(target_snr) ** 2, pixelsize=1.0, verbose=0)
    return np.asarray(binning.bin_num, dtype=np.intp)


def check_binning(binning: str) -> str:
    """``binning`` itself when it is one of :data:`BINNINGS`.

    Raises
    ------
    GalamInputError
        For any other name (the message lists the binners there are).
    """
    if binning not in BINNINGS:
        raise GalamInputError(f"unknown binning {binning!r}; use one of {', '.join(BINNINGS)}")
    return binning


def spaxel_bins(
    signal: NDArray[np.floating],
    snr: NDArray[np.floating],
    *,
    target_snr: float,
    min_snr: float,
    binning: str = "voronoi",
    what: str = "cube",
) -> VoronoiBins:
    """Bin a map's spaxels to ``target_snr`` for a model that reads each bin's mean.

    Both binners see the same spaxels and the same S/N: ``snr`` is the S/N the mapping
    model itself measures, per observed pixel for ``spaxel-spectra`` (the median over
    the usable pixels, :func:`napari_galam.core.spectral_input.spectral_inputs`) and per
    band for ``sed-cnn`` (the median over the bands,
    :attr:`napari_galam.core.spaxels.SpaxelSEDs.snr`), not the middle-fifth S/N of
    :func:`cube_snr_map` that the pPXF bins use, so that a target S/N means the same with
    either binner. Each spaxel's noise is
    ``signal / snr``. Voronoi binning (:func:`~napari_galam.core.spaxels.voronoi_bins`)
    grows bins until sum(signal) / sqrt(sum(noise^2)), the S/N of their mean, reaches
    the target; PowerBin (:func:`bin_cube`) until the sum of their S/N^2, the S/N of an
    optimally weighted sum, does, so its bins are a little smaller. Either way the S/N
    returned for a bin is the S/N of its mean, the input the model is given.

    Parameters
    ----------
    signal
        ``(ny, nx)`` mean flux of each spaxel (NaN: left out).
    snr
        ``(ny, nx)`` S/N of each spaxel (NaN: left out).
    target_snr, min_snr
        The S/N each bin should reach, and the floor below which spaxels are left out.
    binning
        One of :data:`BINNINGS`.
    what
        The cube's name for error messages (a file or layer name).

    Returns
    -------
    VoronoiBins
        ``bin_id`` (-1: left out) and each bin's S/N and number of spaxels. PowerBin's
        bins are numbered in the order of their first spaxel, row by row; Voronoi bins
        keep vorbin's numbering. Both are deterministic.

    Raises
    ------
    GalamInputError
        For an unknown ``binning``, or when the binner cannot reach the target (all the
        spaxels together are below it, or the binner fails); the message names ``what``.
    """
    check_binning(binning)
    signal = np.asarray(signal, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = signal / np.asarray(snr, dtype=np.float64)
    if binning == "voronoi":
        try:
            return voronoi_bins(signal, noise, target_snr=target_snr, min_snr=min_snr)
        except ValueError as exc:  # vorbin: the whole field does not reach the target
            raise GalamInputError(
                f"{what}: cannot Voronoi-bin to S/N {target_snr:g}: "
                f"{str(exc).strip().splitlines()[0]}"
            ) from None
    return _powerbin_spaxel_bins(signal, noise, target_snr, min_snr, what)


def _powerbin_spaxel_bins(
    signal: NDArray[np.float64],
    noise: NDArray[np.float64],
    target_snr: float,
    min_snr: float,
    what: str,
) -> VoronoiBins:
    """:func:`spaxel_bins` with PowerBin, on the spaxels Voronoi binning would take."""
    if not (np.isfinite(target_snr) and target_snr > 0):
        raise GalamInputError(f"target S/N must be positive, got {target_snr}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = signal / noise
    use = np.isfinite(snr) & (noise > 0) & (snr >= min_snr)  # as voronoi_bins
    if not use.any():
        return VoronoiBins(np.full(signal.shape, -1, np.int32), np.zeros(0), np.zeros(0, np.int64))
    reach = float(np.sqrt(np.sum(snr[use] ** 2)))
    if not reach >= target_snr:
        raise GalamInputError(
            f"{what}: cannot bin to S/N {target_snr:g} with PowerBin: its {int(use.sum())} "
            f"spaxels above S/N {min_snr:g} reach S/N {reach:.1f} together"
        )
    try:
        bin_id = bin_cube(np.where(use, snr, np.nan), target_snr=target_snr, min_snr=min_snr).bin_id
    except Exception as exc:  # noqa: BLE001 - PowerBin's own failures (a line of spaxels)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise GalamInputError(
            f"{what}: PowerBin could not bin its {int(use.sum())} spaxels to S/N "
            f"{target_snr:g}: {type(exc).__name__}: {detail}"
        ) from exc
    labels = bin_id[bin_id >= 0]
    total = np.bincount(labels, weights=signal[bin_id >= 0])
    variance = np.bincount(labels, weights=noise[bin_id >= 0] ** 2)
    counts = np.bincount(labels).astype(np.int64)
    return VoronoiBins(bin_id, total / np.sqrt(variance), counts)


def bin_spectrum(
    flux: NDArray[np.floating],
    variance: NDArray[np.floating] | None,
    bad: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """The summed spectrum of the spaxels of one bin and its 1-sigma noise.

    Parameters
    ----------
    flux, variance
        ``(n_wave, n_spaxels)``; variance may be None.
    bad
        ``(n_wave, n_spaxels)`` True where a pixel is bad (NaN flux counts as bad too).

    Returns
    -------
    flux, noise
        The sum over the good spaxels scaled to all spaxels (NaN where fewer than half
        of them are good) and its noise (None without variance).
    """
    flux = np.asarray(flux, dtype=np.float64)
    good = np.isfinite(flux)
    if bad is not None:
        good &= ~np.asarray(bad, dtype=bool)
    if variance is not None:
        variance = np.asarray(variance, dtype=np.float64)
        good &= np.isfinite(variance) & (variance > 0) & (variance < 1e30)
    n_good = good.sum(axis=1)
    n_all = flux.shape[1]
    enough = n_good >= max(1, n_all / 2)
    scale = np.where(enough, n_all / np.maximum(n_good, 1), np.nan)
    total = np.where(good, flux, 0.0).sum(axis=1) * scale
    if variance is None:
        return total, None
    noise = np.sqrt(np.where(good, variance, 0.0).sum(axis=1)) * scale
    return total, noise
