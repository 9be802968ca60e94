"""Model-input preprocessing in pure numpy: spectra, cutout images and narrow-band SEDs.

These functions turn what a user has (an observed spectrum on any wavelength grid, a gri
cutout as ``uint8``, per-spaxel fluxes through narrow-band filters) into exactly the arrays
the Keras models in :mod:`napari_galam.models` were trained on. They live in ``core/``
so the napari process can prepare and show model inputs without importing TensorFlow;
the model worker calls the same functions, so there is one definition of each step.

- Spectra (Wang et al. 2025, Sect. 2.2.1): linear interpolation onto a 1 Å grid over
  3830-8000 Å (4171 points, :data:`SPECTRUM_WAVELENGTH`), then min-max normalisation of
  each spectrum to [0, 1]. The paper keeps the observed frame; this package's shipped
  spectra-only model reads the rest frame instead (:func:`rest_frame_spectrum`: divide
  the wavelengths by 1 + z, then the same steps on 1 Å over 3800-7000 Å,
  :data:`REST_WAVELENGTH`, which every SDSS spectrum at z <= 0.3 covers), because a
  network trained on simulated galaxies had to learn every line at every redshift and
  did so worst where few training galaxies were (z < 0.02, where the real test spectra
  are). Which frame a model takes is written in its model card (``input.frame``).
- Images (Sect. 2.2.2 ends with 128 x 128 x 3 cutouts): ``uint8`` values scaled to
  [0, 1] as ``float32``; the compact model configuration works on 64 x 64 images, which
  are made by averaging 2 x 2 pixel blocks (any integer factor works the same way).
- SEDs (Liew-Cain et al. 2021, Sect. 2.2): fluxes per filter, divided by their mean over
  the filters so that only the shape of the SED (its colours) reaches the network, not
  the galaxy's brightness or distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError

__all__ = [
    "SPECTRUM_WAVELENGTH",
    "SPECTRUM_WAVE_MIN",
    "SPECTRUM_WAVE_MAX",
    "N_SPECTRUM_POINTS",
    "REST_WAVELENGTH",
    "REST_WAVE_MIN",
    "REST_WAVE_MAX",
    "N_REST_POINTS",
    "SPECTRUM_FRAMES",
    "CUTOUT_SIZE",
    "resample_spectrum",
    "minmax_normalise",
    "preprocess_spectrum",
    "preprocess_spectra",
    "rest_frame_spectrum",
    "rest_frame_spectra",
    "model_spectrum",
    "preprocess_images",
    "normalise_seds",
]

#: First and last wavelength (Å) of the model spectrum grid (Wang et al. 2025, Sect. 2.2.1).
SPECTRUM_WAVE_MIN: float = 3830.0
SPECTRUM_WAVE_MAX: float = 8000.0
#: The 1 Å grid, 3830-8000 Å inclusive: 4171 points.
SPECTRUM_WAVELENGTH: NDArray[np.float64] = np.arange(
    SPECTRUM_WAVE_MIN, SPECTRUM_WAVE_MAX + 0.5, 1.0, dtype=np.float64
)
N_SPECTRUM_POINTS: int = int(SPECTRUM_WAVELENGTH.size)
#: Rest-frame grid (Å): covered by SDSS's 3800-9200 Å at every 0.002 <= z <= 0.3; it holds
#: the 4000 Å break, the Balmer lines up to H-alpha, Mg b, Fe 5270/5335 and Na D.
REST_WAVE_MIN: float = 3800.0
REST_WAVE_MAX: float = 7000.0
REST_WAVELENGTH: NDArray[np.float64] = np.arange(
    REST_WAVE_MIN, REST_WAVE_MAX + 0.5, 1.0, dtype=np.float64
)
N_REST_POINTS: int = int(REST_WAVELENGTH.size)
#: How far (Å) a spectrum may stop short of either end of the rest grid: SDSS spectra
#: often lose their first good pixels to about 3825 Å observed (NGC 3522's starts at
#: 3811 Å in the rest frame); the gap is padded with the edge value.
REST_EDGE_TOLERANCE: float = 25.0
#: Spectrum frames a model card's ``input.frame`` may name, with their grids.
SPECTRUM_FRAMES: dict[str, NDArray[np.float64]] = {
    "observed": SPECTRUM_WAVELENGTH,
    "rest": REST_WAVELENGTH,
}
#: Side, in pixels, of the cutouts the paper's models take (128 x 128 x 3).
CUTOUT_SIZE: int = 128


def resample_spectrum(
    wavelength: NDArray[Any],
    flux: NDArray[Any],
    *,
    grid: NDArray[Any] | None = None,
) -> NDArray[np.float64]:
    """Interpolate a spectrum linearly onto the model wavelength grid.

    Parameters
    ----------
    wavelength : (n,) array
        Wavelengths in Å (observed frame, as in the paper), strictly increasing.
    flux : (n,) array
        Flux at those wavelengths; non-finite values are dropped before interpolating.
    grid : array, optional
        Target grid; :data:`SPECTRUM_WAVELENGTH` by default.

    Returns
    -------
    (m,) float64 array
        The flux on ``grid``. Grid points outside the spectrum's coverage take the
        nearest edge value (the paper's spectra cover the whole grid; short spectra are
        padded rather than rejected so that the caller decides).
    """
    wave = np.asarray(wavelength, dtype=np.float64)
    values = np.asarray(flux, dtype=np.float64)
    target = SPECTRUM_WAVELENGTH if grid is None else np.asarray(grid, dtype=np.float64)
    if wave.ndim != 1 or values.shape != wave.shape:
        raise GalamInputError(
            f"spectrum: wavelength and flux must be 1-D arrays of one length, got shapes "
            f"{wave.shape} and {values.shape}"
        )
    good = np.isfinite(wave) & np.isfinite(values)
    if np.count_nonzero(good) < 2:
        raise GalamInputError("spectrum: fewer than two finite (wavelength, flux) points")
    wave, values = wave[good], values[good]
    if np.any(np.diff(wave) <= 0):
        raise GalamInputError("spectrum: wavelengths must be strictly increasing")
    return np.interp(target, wave, values)


def minmax_normalise(values: NDArray[Any], *, axis: int = -1) -> NDArray[np.float32]:
    """Scale each spectrum along ``axis`` to [0, 1] (min-max normalisation).

    A flat spectrum (max == min) becomes all zeros rather than NaN. Applying the
    function twice gives the same result as applying it once.

    Parameters
    ----------
    values : array
        One spectrum or a stack of spectra; must be finite.
    axis : int
        The wavelength axis.

    Returns
    -------
    float32 array of the same shape.
    """
    data = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise GalamInputError(
            "spectrum: min-max normalisation needs finite values (NaN or inf found)"
        )
    low = data.min(axis=axis, keepdims=True)
    span = data.max(axis=axis, keepdims=True) - low
    safe = np.where(span > 0, span, 1.0)
    return ((data - low) / safe).astype(np.float32)


def preprocess_spectrum(wavelength: NDArray[Any], flux: NDArray[Any]) -> NDArray[np.float32]:
    """Resample one spectrum onto the 4171-point grid and min-max normalise it.

    Parameters
    ----------
    wavelength, flux : (n,) arrays
        The spectrum (Å, any flux unit).

    Returns
    -------
    (4171,) float32 array in [0, 1]: the input of M1 (spectra-only model).
    """
    return minmax_normalise(resample_spectrum(wavelength, flux))


def preprocess_spectra(spectra: NDArray[Any], *, frame: str = "observed") -> NDArray[np.float32]:
    """Check and min-max normalise spectra that are already on a model grid.

    Parameters
    ----------
    spectra : (n, m) or (m,) array
        Spectra on :data:`SPECTRUM_WAVELENGTH` (``frame="observed"``, m = 4171, the
        layout the simulator writes) or :data:`REST_WAVELENGTH` (``"rest"``, m = 3201).
    frame : str
        ``"observed"`` or ``"rest"``.

    Returns
    -------
    (n, m) float32 array in [0, 1].
    """
    grid = _frame_grid(frame)
    data = np.asarray(spectra)
    if data.ndim == 1:
        data = data[np.newaxis]
    if data.ndim != 2 or data.shape[1] != grid.size:
        how = (
            "rest_frame_spectrum(wavelength, flux, redshift)"
            if frame == "rest"
            else "preprocess_spectrum(wavelength, flux)"
        )
        raise GalamInputError(
            f"spectra: expected shape (n, {grid.size}) on the {frame}-frame 1 Å grid "
            f"{grid[0]:.0f}-{grid[-1]:.0f} Å, got {data.shape}; resample with {how} first"
        )
    return minmax_normalise(data, axis=1)


def _frame_grid(frame: str) -> NDArray[np.float64]:
    try:
        return SPECTRUM_FRAMES[frame]
    except KeyError:
        raise GalamInputError(
            f"spectrum frame {frame!r}: expected one of {', '.join(SPECTRUM_FRAMES)}"
        ) from None


def _check_redshift(redshift: Any) -> float:
    try:
        z = float(redshift)
    except (TypeError, ValueError):
        z = float("nan")
    if not (np.isfinite(z) and -0.01 < z < 1.0):
        raise GalamInputError(
            f"spectrum: the rest-frame model needs the galaxy's redshift (-0.01 < z < 1), "
            f"got {redshift!r}"
        )
    return z


def rest_frame_spectrum(
    wavelength: NDArray[Any], flux: NDArray[Any], redshift: float
) -> NDArray[np.float32]:
    """De-redshift one observed spectrum onto :data:`REST_WAVELENGTH` and min-max it.

    Parameters
    ----------
    wavelength, flux : (n,) arrays
        The observed spectrum (Å, any flux unit).
    redshift : float
        The galaxy's redshift (SDSS's ``Z``).

    Returns
    -------
    (3201,) float32 array in [0, 1].

    Raises
    ------
    GalamInputError
        No usable redshift, or the spectrum does not cover 3800-7000 Å in the rest frame
        to within :data:`REST_EDGE_TOLERANCE` (shorter gaps take the edge value, as
        :func:`resample_spectrum` pads).
    """
    z = _check_redshift(redshift)
    wave = np.asarray(wavelength, dtype=np.float64) / (1.0 + z)
    finite = wave[np.isfinite(wave)]
    if finite.size and (
        finite.min() > REST_WAVE_MIN + REST_EDGE_TOLERANCE
        or finite.max() < REST_WAVE_MAX - REST_EDGE_TOLERANCE
    ):
        raise GalamInputError(
            f"spectrum: at z = {z:.4f} it covers {finite.min():.0f}-{finite.max():.0f} Å in "
            f"the rest frame; the rest-frame model needs {REST_WAVE_MIN:.0f}-"
            f"{REST_WAVE_MAX:.0f} Å"
        )
    return minmax_normalise(resample_spectrum(wave, flux, grid=REST_WAVELENGTH))


def rest_frame_spectra(
    wavelength: NDArray[Any], fluxes: NDArray[Any], redshifts: NDArray[Any]
) -> NDArray[np.float32]:
    """:func:`rest_frame_spectrum` for ``(n, m)`` fluxes on one observed grid."""
    wave = np.asarray(wavelength, dtype=np.float64)
    values = np.asarray(fluxes)
    z = np.asarray(redshifts, dtype=np.float64).reshape(-1)
    if values.ndim != 2 or values.shape[0] != z.size:
        raise GalamInputError(
            f"spectra: {values.shape} fluxes for {z.size} redshifts; give one row per galaxy"
        )
    out = np.empty((z.size, N_REST_POINTS), dtype=np.float32)
    for i in range(z.size):
        out[i] = rest_frame_spectrum(wave, values[i], z[i])
    return out


def model_spectrum(
    wavelength: NDArray[Any],
    flux: NDArray[Any],
    *,
    redshift: float | None = None,
    frame: str = "observed",
) -> NDArray[np.float32]:
    """The input of a spectrum model that reads ``frame`` (from its card's ``input.frame``)."""
    if _frame_grid(frame) is REST_WAVELENGTH:
        return rest_frame_spectrum(wavelength, flux, redshift)  # type: ignore[arg-type]
    return preprocess_spectrum(wavelength, flux)


def preprocess_images(images: NDArray[Any], *, size: int = CUTOUT_SIZE) -> NDArray[np.float32]:
    """Scale gri cutouts to [0, 1] float32 and shrink them to ``size`` x ``size``.

    Parameters
    ----------
    images : (n, h, w, 3) or (h, w, 3) array
        ``uint8`` cutouts (0-255), or floats already in [0, 1]. ``h`` and ``w`` must be
        equal and an integer multiple of ``size`` (128 -> 128 or 64 for the shipped
        configurations).
    size : int
        Side of the model input; blocks of ``h // size`` pixels are averaged.

    Returns
    -------
    (n, size, size, 3) float32 array in [0, 1].
    """
    data = np.asarray(images)
    if data.ndim == 3:
        data = data[np.newaxis]
    if data.ndim != 4 or data.shape[-1] != 3:
        raise GalamInputError(
            f"images: expected (n, height, width, 3) gri cutouts, got shape {data.shape}"
        )
    n, height, width, _ = data.shape
    if height != width or size <= 0 or height % size != 0:
        raise GalamInputError(
            f"images: expected square cutouts whose side is a multiple of {size} "
            f"(e.g. {CUTOUT_SIZE} x {CUTOUT_SIZE}), got {height} x {width}"
        )
    factor = height // size
    if data.dtype == np.uint8:
        if factor == 1:
            return data.astype(np.float32) * np.float32(1.0 / 255.0)
        # Add the factor x factor strided sub-images in integers, then scale once: about
        # 7x faster than converting to float and averaging 2 x 2 blocks.
        sums = np.zeros((n, size, size, 3), dtype=np.uint32 if factor > 16 else np.uint16)
        for dy in range(factor):
            for dx in range(factor):
                sums += data[:, dy::factor, dx::factor]
        return sums.astype(np.float32) * np.float32(1.0 / (255.0 * factor * factor))
    if np.issubdtype(data.dtype, np.floating):
        scaled = data.astype(np.float32, copy=True)
        if not np.all(np.isfinite(scaled)):
            raise GalamInputError("images: NaN or inf in the image values")
        if scaled.size and (scaled.min() < 0.0 or scaled.max() > 1.0):
            raise GalamInputError(
                "images: float images must already be scaled to [0, 1]; pass uint8 cutouts "
                "(0-255) otherwise"
            )
    else:
        raise GalamInputError(f"images: expected uint8 or float values, got {data.dtype}")
    if factor == 1:
        return np.ascontiguousarray(scaled)
    blocks = scaled.reshape(n, size, factor, size, factor, 3)
    return blocks.mean(axis=(2, 4), dtype=np.float32)


def normalise_seds(seds: NDArray[Any]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Divide each SED by its mean flux over the filters; flag the unusable ones.

    Parameters
    ----------
    seds : (..., n_filters) array
        Linear fluxes per narrow-band filter (any unit; f_lambda or f_nu, the same one
        the model was trained with). Any leading shape: one spaxel, a list, or a map.

    Returns
    -------
    normalised : (..., n_filters) float32 array
        The SED shapes; unusable SEDs are set to zero.
    valid : (...) bool array
        False where an SED has a non-finite value or a non-positive mean flux (masked,
        empty or off-galaxy spaxels); predictions there should be NaN.
    """
    data = np.asarray(seds, dtype=np.float64)
    if data.ndim < 1 or data.shape[-1] < 2:
        raise GalamInputError(
            f"SEDs: expected an array (..., n_filters) with at least 2 filters, got shape {data.shape}"
        )
    finite = np.all(np.isfinite(data), axis=-1)
    mean = np.mean(np.where(np.isfinite(data), data, 0.0), axis=-1)
    valid = finite & (mean > 0)
    scale = np.where(valid, mean, 1.0)[..., np.newaxis]
    normalised = np.where(valid[..., np.newaxis], data / scale, 0.0).astype(np.float32)
    return normalised, valid
