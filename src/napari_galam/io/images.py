"""Read galaxy cutouts: 8-bit JPEG/PNG colour composites and FITS images.

SDSS cutouts come as JPEG composites (i -> R, r -> G, g -> B, asinh stretch; see
FORMATS.md) or as FITS frames in nanomaggies with a celestial WCS. Both open here into a
:class:`CutoutImage` that keeps what a person needs to trust the pixels: the FITS header,
the celestial WCS and, for multi-band FITS cubes, the band names.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError

__all__ = [
    "CutoutImage",
    "RASTER_SUFFIXES",
    "FITS_SUFFIXES",
    "read_cutout",
    "read_raster",
    "read_fits_image",
    "is_fits_path",
]

RASTER_SUFFIXES = (".jpg", ".jpeg", ".png")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


def is_fits_path(path: str | os.PathLike) -> bool:
    """Return True when the file name ends like a FITS file (plain or gzipped)."""
    return str(path).lower().endswith(FITS_SUFFIXES)


@dataclass(frozen=True)
class CutoutImage:
    """A galaxy cutout or field as read from disk.

    Attributes
    ----------
    data
        ``(ny, nx, 3)`` uint8 for colour composites, ``(ny, nx)`` for a single band,
        ``(n_bands, ny, nx)`` for a multi-band FITS cube. FITS data are float32 with
        NaN where the file had blanks.
    path
        The file the image was read from.
    kind
        ``"rgb"``, ``"grey"`` or ``"multiband"``.
    header
        The FITS header of the image HDU (``None`` for JPEG/PNG).
    wcs
        The celestial :class:`astropy.wcs.WCS` (``None`` when the file has none).
    band_names
        One name per band for multi-band data (from ``FILTERn``/``BANDn`` keywords or
        ``band0``, ``band1``...); empty otherwise.
    """

    data: NDArray[Any]
    path: Path
    kind: str
    header: Any = None
    wcs: Any = None
    band_names: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        """The file name without its FITS/raster suffix, for layer names."""
        name = self.path.name
        for suffix in sorted(RASTER_SUFFIXES + FITS_SUFFIXES, key=len, reverse=True):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return self.path.stem


def read_cutout(path: str | os.PathLike) -> CutoutImage:
    """Read a galaxy cutout from a JPEG, PNG or FITS file.

    Parameters
    ----------
    path
        A ``.jpg``/``.jpeg``/``.png`` colour or grey image, or a ``.fits`` file (gzipped
        too) whose first image HDU is 2-D or 3-D.

    Returns
    -------
    CutoutImage

    Raises
    ------
    GalamInputError
        When the file is missing, empty, truncated, not an image, or of a shape that is
        not a cutout. The message names the file.
    """
    path = Path(path)
    if is_fits_path(path):
        return read_fits_image(path)
    if path.suffix.lower() in RASTER_SUFFIXES:
        return read_raster(path)
    raise GalamInputError(
        f"{path}: not a cutout file; expected one of {', '.join(RASTER_SUFFIXES + FITS_SUFFIXES)}."
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise GalamInputError(f"{path}: file not found.")
    if path.is_dir():
        raise GalamInputError(f"{path}: is a folder, expected an image file.")
    if path.stat().st_size == 0:
        raise GalamInputError(f"{path}: the file is empty (0 bytes).")


def read_raster(path: str | os.PathLike) -> CutoutImage:
    """Read an 8- or 16-bit JPEG or PNG as a numpy array.

    RGBA images lose their alpha channel; palette images are converted to RGB; grey
    images stay 2-D.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr"):
                img = img.convert("RGB")
            data = np.asarray(img)
    except UnidentifiedImageError as exc:
        raise GalamInputError(
            f"{path}: not a readable JPEG/PNG image (the file's content is not an image)."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise GalamInputError(f"{path}: damaged or truncated image ({exc}).") from exc
    if data.ndim == 3 and data.shape[2] == 3:
        kind = "rgb"
    elif data.ndim == 2:
        kind = "grey"
    else:  # pragma: no cover - Pillow modes converted above
        raise GalamInputError(f"{path}: unexpected image shape {data.shape}.")
    if min(data.shape[:2]) < 2:
        raise GalamInputError(
            f"{path}: image is {data.shape[1]}x{data.shape[0]} pixels; a cutout needs at least 2x2."
        )
    return CutoutImage(data=data, path=path, kind=kind)


def _band_names(header: Any, n_bands: int) -> tuple[str, ...]:
    names = []
    for i in range(n_bands):
        value = None
        for key in (f"FILTER{i + 1}", f"BAND{i + 1}", f"FILTER{i}", f"BAND{i}"):
            if key in header:
                value = str(header[key]).strip()
                break
        names.append(value or f"band{i}")
    return tuple(names)


def read_fits_image(path: str | os.PathLike) -> CutoutImage:
    """Read the first image HDU of a FITS file as a cutout.

    2-D images become ``kind="grey"``; 3-D images with a small first axis (<= 16
    planes, e.g. g, r, i) become ``kind="multiband"``. The header and the celestial WCS
    are kept. Blank values become NaN.
    """
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", category=fits.verify.VerifyWarning)
            warnings.simplefilter("ignore", category=FITSFixedWarning)
            with fits.open(path, memmap=False) as hdul:
                hdu = next(
                    (h for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2),
                    None,
                )
                if hdu is None:
                    raise GalamInputError(
                        f"{path}: no 2-D or 3-D image in this FITS file "
                        f"(HDUs: {', '.join(h.name or '?' for h in hdul)})."
                    )
                header = hdu.header.copy()
                data = hdu.data
                if data is None:
                    raise GalamInputError(f"{path}: the image HDU has no data.")
                data = np.array(data, dtype=np.float32)
    except GalamInputError:
        raise
    except (OSError, ValueError, TypeError, IndexError, fits.verify.VerifyError) as exc:
        raise GalamInputError(
            f"{path}: not a valid FITS image (truncated or not FITS: {exc})."
        ) from exc
    except fits.verify.VerifyWarning as exc:
        raise GalamInputError(f"{path}: damaged FITS file ({exc}).") from exc

    if data.ndim == 2:
        kind, band_names = "grey", ()
    elif data.ndim == 3 and data.shape[0] <= 16:
        kind, band_names = "multiband", _band_names(header, data.shape[0])
    elif data.ndim == 3:
        raise GalamInputError(
            f"{path}: 3-D image with {data.shape[0]} planes looks like a spectral cube, "
            "not a multi-band cutout; open it as a cube."
        )
    else:
        raise GalamInputError(
            f"{path}: image with {data.ndim} dimensions; expected a 2-D image or a "
            "3-D multi-band stack."
        )
    if min(data.shape[-2:]) < 2:
        raise GalamInputError(f"{path}: image of shape {data.shape} is too small for a cutout.")
    wcs = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            candidate = WCS(header).celestial
        if candidate.has_celestial:
            wcs = candidate
    except Exception:  # noqa: BLE001 - a broken WCS must not stop the image opening
        wcs = None
    return CutoutImage(
        data=data, path=path, kind=kind, header=header, wcs=wcs, band_names=band_names
    )
