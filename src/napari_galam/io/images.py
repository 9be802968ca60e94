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
from napari_galam.io.fits import DiskArray, check_file, check_not_truncated, scan_fits

__all__ = [
    "CutoutImage",
    "RASTER_SUFFIXES",
    "FITS_SUFFIXES",
    "read_cutout",
    "read_raster",
    "read_fits_image",
    "is_fits_path",
    "celestial_or_none",
    "sdss_cutout_assumption",
    "SDSS_CUTOUT_SIZE",
    "SDSS_PIXEL_SCALE",
    "MAX_IMAGE_PIXELS",
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
    raster_info
        For JPEG/PNG: ``format`` (Pillow's name, e.g. ``"JPEG"``) and ``exif`` (whether
        the file carries EXIF metadata, as camera pictures do); empty for FITS.
    """

    data: NDArray[Any]
    path: Path
    kind: str
    header: Any = None
    wcs: Any = None
    band_names: tuple[str, ...] = field(default_factory=tuple)
    raster_info: dict[str, Any] = field(default_factory=dict, compare=False)

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


#: Most pixels (raster) or values (FITS) a cutout may have: a 7000 x 7000 image. Larger
#: images are refused from their declared size before they are decoded, which is what
#: stops PNG/JPEG decompression bombs and FITS headers declaring huge images.
MAX_IMAGE_PIXELS = 50_000_000


def _check_pixel_count(path: Path, count: int, description: str) -> None:
    if count > MAX_IMAGE_PIXELS:
        raise GalamInputError(
            f"{path}: the file declares {description} = {count:,} pixels; a cutout may have "
            f"at most {MAX_IMAGE_PIXELS:,} (a decompression bomb, or an image far larger "
            "than a galaxy cutout: crop it first)."
        )


def read_raster(path: str | os.PathLike) -> CutoutImage:
    """Read an 8- or 16-bit JPEG or PNG as a numpy array.

    RGBA images lose their alpha channel; palette images are converted to RGB; grey
    images stay 2-D. The declared size is checked against :data:`MAX_IMAGE_PIXELS`
    before any pixel is decoded.
    """
    path = Path(path)
    check_file(path, "a JPEG or PNG image")
    data, info = _decode_raster(path)
    if data.ndim == 3 and data.shape[2] == 3:
        kind = "rgb"
    elif data.ndim == 2:
        kind = "grey"
    else:
        raise GalamInputError(f"{path}: unexpected image shape {data.shape}.")
    if min(data.shape[:2]) < 2:
        raise GalamInputError(
            f"{path}: image is {data.shape[1]}x{data.shape[0]} pixels; a cutout needs at least 2x2."
        )
    return CutoutImage(data=data, path=path, kind=kind, raster_info=info)


def _decode_raster(path: Path) -> tuple[NDArray[Any], dict[str, Any]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                _check_pixel_count(path, width * height, f"{width} x {height}")
                img.load()
                info = {"format": img.format or "", "exif": bool(img.info.get("exif"))}
                if img.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr", "1"):
                    img = img.convert("RGB" if img.mode != "1" else "L")
                return np.asarray(img), info
    except GalamInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise GalamInputError(
            f"{path}: the image declares more pixels than a cutout may have ({exc}); "
            "a decompression bomb, or an image to crop first."
        ) from exc
    except UnidentifiedImageError as exc:
        raise GalamInputError(
            f"{path}: not a readable JPEG/PNG image (the file's content is not an image)."
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise GalamInputError(f"{path}: damaged or truncated image ({exc}).") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many other types
        raise GalamInputError(
            f"{path}: damaged image ({type(exc).__name__}: {exc}); expected a JPEG or PNG."
        ) from exc


#: Side of an SDSS ImgCutout cutout as the MMLforGalAM paper takes it (pixels).
SDSS_CUTOUT_SIZE = 128
#: SDSS imaging pixel scale at ImgCutout's scale 1 (arcsec per pixel; FORMATS.md).
SDSS_PIXEL_SCALE = 0.396


def sdss_cutout_assumption(cutout: CutoutImage) -> str:
    """Why a cutout is taken as SDSS gri at 0.396"/px, or "" when it is not.

    A 128 x 128 8-bit colour JPEG without EXIF metadata is what SkyServer's ImgCutout
    delivers (i -> R, r -> G, g -> B, 0.396"/px at scale 1), the very input of the
    MMLforGalAM paper; nothing else in such a file says otherwise.
    """
    info = cutout.raster_info
    if (
        cutout.kind != "rgb"
        or cutout.data.dtype != np.uint8
        or cutout.data.shape[:2] != (SDSS_CUTOUT_SIZE, SDSS_CUTOUT_SIZE)
        or info.get("format") != "JPEG"
        or info.get("exif")
    ):
        return ""
    return (
        f"'{cutout.name}' is taken as an SDSS gri cutout at {SDSS_PIXEL_SCALE}\"/px "
        f"(i -> R, r -> G, g -> B): a {SDSS_CUTOUT_SIZE}x{SDSS_CUTOUT_SIZE} colour JPEG "
        "without metadata is what SDSS ImgCutout delivers, the models' input."
    )


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
    are kept. Blank values become NaN. Headers are checked by the lazy FITS layer
    (:func:`napari_galam.io.fits.scan_fits`) and the declared size against
    :data:`MAX_IMAGE_PIXELS` before any data are read or decompressed.
    """
    path = Path(path)
    scan = scan_fits(path)
    hdu = next((h for h in scan.hdus if h.is_image and h.ndim >= 2), None)
    if hdu is None:
        raise GalamInputError(
            f"{path}: no 2-D or 3-D image in this FITS file (HDUs: {scan.listing()})."
        )
    shape = hdu.shape
    if len(shape) > 3:
        raise GalamInputError(
            f"{path}: image with {len(shape)} dimensions; expected a 2-D image or a "
            "3-D multi-band stack."
        )
    if len(shape) == 3 and shape[0] > 16:
        raise GalamInputError(_not_a_cutout_cube_message(path, shape))
    _check_pixel_count(path, int(np.prod(shape)), " x ".join(str(n) for n in shape[::-1]))
    array = DiskArray.from_hdu(scan, hdu)
    check_not_truncated(scan, [array])
    data = np.array(array.load(), dtype=np.float32)
    header = hdu.header.copy()
    if data.ndim == 2:
        kind, band_names = "grey", ()
    else:
        kind, band_names = "multiband", _band_names(header, data.shape[0])
    if min(data.shape[-2:]) < 2:
        raise GalamInputError(f"{path}: image of shape {data.shape} is too small for a cutout.")
    return CutoutImage(
        data=data,
        path=path,
        kind=kind,
        header=header,
        wcs=celestial_or_none(header),
        band_names=band_names,
    )


def _not_a_cutout_cube_message(path: Path, shape: tuple[int, ...]) -> str:
    """Why a 3-D image with many planes is not read: the cube reader's own reason."""
    from napari_galam.io.cubes import read_cube

    try:
        read_cube(path)
    except GalamInputError as exc:
        return f"{exc} (a 3-D image of {shape[0]} planes is not a multi-band cutout either)"
    return (
        f"{path}: a spectral cube of {shape[0]} planes, not a multi-band cutout (at most "
        "16 planes); open it as a cube."
    )


def celestial_or_none(header: Any) -> Any:
    """The celestial WCS of a header, or None when it has none or a broken one."""
    from astropy.wcs import WCS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            candidate = WCS(header).celestial
        if candidate.has_celestial:
            return candidate
    except Exception:  # noqa: BLE001 - a broken WCS must not stop the image opening
        return None
    return None
