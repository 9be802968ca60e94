"""Inputs that read fine but are wrong for the models: reasons to reject or flag them.

A reader answers "is this file what it claims to be"; this module answers "can the
models make sense of it". Each function returns a list of reasons, empty when nothing is
wrong, so that the batch commands can put them in a row and the docks can show them:

* :func:`spectrum_problems`: no pixel with a positive inverse variance, no finite
  flux, or a flux that is negative over most of the good pixels (a sky-subtraction
  failure or a sign error; the models were trained on galaxies' positive flux);
* :func:`spectrum_unusable`: the first two of those, which leave nothing to predict from;
* :func:`spectrum_flags`: why a spectrum the models can still read lies outside their
  training data (mostly negative flux, a redshift the pipeline flags or one outside the
  model card's range): short out-of-distribution reasons for a prediction that is still
  made (``galam predict``, the Galaxy age & [M/H] dock);
* :func:`cutout_problems`: a saturated, flat-topped core (many pixels at the largest
  value the data type holds, or sharing exactly the image's maximum in a float image);
* :func:`input_problems`: either of the above, by the type of what was read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "NEGATIVE_FLUX_FRACTION",
    "SATURATED_MIN_PIXELS",
    "spectrum_problems",
    "spectrum_unusable",
    "spectrum_flags",
    "cutout_problems",
    "input_problems",
    "ZWARNING_BITS",
]

#: The words of the redshift-range flag; a galaxy's image models carry this flag of its
#: spectrum too (the galaxy, not only its spectrum, lies outside the training redshifts).
OUTSIDE_TRAINING_REDSHIFTS = "outside the training redshifts"

#: A spectrum is flagged when more than this fraction of its good pixels is negative.
NEGATIVE_FLUX_FRACTION = 0.5

#: A cutout is flagged when at least this many pixels of its central half sit at the
#: saturation level (a 3 x 3 block; a single hot pixel is the QA's business).
SATURATED_MIN_PIXELS = 9


def spectrum_problems(spectrum: Any) -> list[str]:
    """Reasons the models cannot use a spectrum (``SdssSpectrum`` or ``Spectrum1D``).

    Parameters
    ----------
    spectrum
        Anything with ``flux`` and ``ivar`` arrays (and optionally ``path`` or
        ``name``, used in the messages).

    Returns
    -------
    list of str
        Empty when the spectrum looks usable: :func:`spectrum_unusable`, else the
        flux negative in more than :data:`NEGATIVE_FLUX_FRACTION` of the good pixels.
    """
    unusable = spectrum_unusable(spectrum)
    if unusable:
        return unusable
    negative = _negative_flux(spectrum)
    if negative is None:
        return []
    share, median = negative
    return [
        f"{_label(spectrum)}: the flux is negative in {share:.0%} of the good pixels (median "
        f"{median:.3g}); expected a galaxy's positive flux density (a failed sky "
        "subtraction or a sign error?)."
    ]


def spectrum_unusable(spectrum: Any) -> list[str]:
    """Reasons a spectrum leaves nothing to predict from: no finite flux, no good pixel.

    Parameters
    ----------
    spectrum
        Anything with ``flux`` and ``ivar`` arrays (and optionally ``path`` or
        ``name``, used in the messages).

    Returns
    -------
    list of str
        Empty when some pixel has a finite flux and a positive inverse variance.
    """
    label = _label(spectrum)
    flux = np.asarray(spectrum.flux, dtype=np.float64)
    ivar = np.asarray(spectrum.ivar, dtype=np.float64)
    finite = np.isfinite(flux)
    if not finite.any():
        return [f"{label}: no finite flux value; expected a measured spectrum."]
    if not (finite & np.isfinite(ivar) & (ivar > 0)).any():
        return [
            f"{label}: no pixel has a positive inverse variance (every pixel is flagged "
            "bad); expected a spectrum with measured pixels."
        ]
    return []


def _negative_flux(spectrum: Any) -> tuple[float, float] | None:
    """(share, median) of the good pixels' flux when it is mostly negative, else None."""
    flux = np.asarray(spectrum.flux, dtype=np.float64)
    ivar = np.asarray(spectrum.ivar, dtype=np.float64)
    good = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    if not good.any():
        return None
    share = float(np.mean(flux[good] < 0))
    return (share, float(np.median(flux[good]))) if share > NEGATIVE_FLUX_FRACTION else None


def spectrum_flags(spectrum: Any, z_range: tuple[float, float] | None) -> list[str]:
    """Why a spectrum the models can read lies outside their training data.

    The prediction is still made; these are its out-of-distribution reasons, short
    fragments without the file's name (the row or the layer says which spectrum):

    * the flux negative in more than :data:`NEGATIVE_FLUX_FRACTION` of the good pixels;
    * a redshift the pipeline flags (``ZWARNING`` bits, spelled out);
    * a redshift outside ``z_range`` (worded as the model's own check,
      :func:`napari_galam.models.galaxy_uncertainty.ood_reasons`).

    Parameters
    ----------
    spectrum
        Anything with ``flux``, ``ivar`` and ``redshift`` (NaN: unknown, not flagged
        here; a rest-frame model refuses it), optionally ``meta["ZWARNING"]``.
    z_range
        ``(low, high)``: the redshifts the model was trained on (its card); None when the
        card does not say.

    Returns
    -------
    list of str
        Empty when nothing is out of the ordinary.
    """
    flags = []
    negative = _negative_flux(spectrum)
    if negative is not None:
        flags.append(
            f"negative flux in {negative[0]:.0%} of the good pixels (median "
            f"{negative[1]:.3g}; a failed sky subtraction or a sign error?)"
        )
    z = float(getattr(spectrum, "redshift", float("nan")))
    if not np.isfinite(z):
        return flags
    warning, bits = _redshift_warning(spectrum)
    if warning:
        flags.append(
            f"SDSS ZWARNING = {warning} ({', '.join(bits)}): the redshift z = {z:.4g} is unreliable"
        )
    if z_range is not None and not z_range[0] <= z <= z_range[1]:
        flags.append(f"z = {z:.3g} {OUTSIDE_TRAINING_REDSHIFTS} {z_range[0]:g}-{z_range[1]:g}")
    return flags


def _saturation_level(data: NDArray[Any]) -> tuple[float, bool]:
    """The saturation level of ``data`` and whether it is the dtype's own maximum."""
    if data.dtype.kind in "iu":
        return float(np.iinfo(data.dtype).max), True
    finite = data[np.isfinite(data)]
    return (float(finite.max()) if finite.size else float("nan")), False


def cutout_problems(image: Any) -> list[str]:
    """Reasons the models cannot use a cutout: a saturated, flat-topped core.

    Parameters
    ----------
    image
        A :class:`~napari_galam.io.images.CutoutImage` (or anything with ``data`` and
        ``kind``), or a bare array (``(ny, nx)`` or ``(ny, nx, 3)``).

    Returns
    -------
    list of str
        Empty when no saturated core is found. Integer images are saturated at their
        dtype's maximum (255 for 8-bit JPEG/PNG; in all three channels of a colour
        image, white); float images (FITS) where at least
        :data:`SATURATED_MIN_PIXELS` pixels of the central half share exactly the
        image's maximum (a clipped core), or reach the header's ``SATURATE`` value.
    """
    data = np.asarray(getattr(image, "data", image))
    kind = getattr(image, "kind", "rgb" if data.ndim == 3 and data.shape[-1] == 3 else "grey")
    if kind == "multiband":
        data = np.moveaxis(data, 0, -1)
    label = _label(image)
    level, is_dtype_max = _saturation_level(data)
    header = getattr(image, "header", None)
    if header is not None and not is_dtype_max:
        try:
            level = min(level, float(header["SATURATE"]))
        except (KeyError, TypeError, ValueError):
            pass
    if not np.isfinite(level):
        return []
    ny, nx = data.shape[:2]
    core = data[ny // 4 : ny - ny // 4, nx // 4 : nx - nx // 4]
    saturated = core >= level
    if saturated.ndim == 3:
        # An 8-bit colour composite is clipped where all three channels are at the top
        # (white). One channel at 255 is the asinh composite's normal top: it scales a
        # bright pixel so that its largest channel is 255 and keeps its colour, as in
        # 12% of the simulated training cutouts (tests/io/test_images.py). A band of a
        # float stack is clipped on its own.
        saturated = saturated.all(axis=-1) if is_dtype_max else saturated.any(axis=-1)
    count = int(saturated.sum())
    if count < SATURATED_MIN_PIXELS:
        return []
    finite = data[np.isfinite(data)]
    if not is_dtype_max and finite.size and float(np.median(finite)) >= level:
        return []  # a flat image, not a clipped core
    value = f"{level:.0f}" if is_dtype_max else f"{level:.4g}"
    return [
        f"{label}: saturated core: {count} pixels of the central region sit at {value} "
        f"({'the largest value of ' + str(data.dtype) if is_dtype_max else 'the maximum'}), "
        "a flat-topped profile the models were not trained on; expected an unsaturated "
        "galaxy."
    ]


def input_problems(obj: Any) -> list[str]:
    """Reasons the models cannot use what a reader returned (spectrum or cutout).

    Spectra (objects with ``flux`` and ``ivar``) go to :func:`spectrum_problems`,
    cutouts (objects with ``data`` and ``kind``, or arrays) to :func:`cutout_problems`;
    anything else has no problems this module knows of.
    """
    if hasattr(obj, "flux") and hasattr(obj, "ivar"):
        return spectrum_problems(obj)
    if isinstance(obj, np.ndarray) or (hasattr(obj, "data") and hasattr(obj, "kind")):
        return cutout_problems(obj)
    return []


#: The SDSS/BOSS ``ZWARNING`` bits (idlspec2d's spec1d bitmask), by bit number.
ZWARNING_BITS = {
    0: "SKY", 1: "LITTLE_COVERAGE", 2: "SMALL_DELTA_CHI2", 3: "NEGATIVE_MODEL",
    4: "MANY_OUTLIERS", 5: "Z_FITLIMIT", 6: "NEGATIVE_EMISSION", 7: "UNPLUGGED",
    8: "BAD_TARGET", 9: "NODATA",
}  # fmt: skip


def _redshift_warning(spectrum: Any) -> tuple[int, list[str]]:
    """The spectrum's ``ZWARNING`` (0: none or unknown) and the names of its bits."""
    meta = getattr(spectrum, "meta", None) or {}
    try:
        warning = int(meta.get("ZWARNING", 0) or 0)
    except (TypeError, ValueError):
        warning = 0
    return warning, [ZWARNING_BITS.get(b, f"bit {b}") for b in range(32) if warning & (1 << b)]


def _label(obj: Any) -> str:
    path = getattr(obj, "path", None)
    if path is not None:
        return str(path)
    name = getattr(obj, "name", None)
    return str(name) if name else "the input"
