"""FITS cutouts in g, r and i become the gri colour composite the models were trained on.

The image models read 8-bit colour cutouts made the way SDSS ImgCutout makes its JPEGs
(FORMATS.md): i -> R, r -> G, g -> B with the asinh stretch of Lupton et al. (2004).
The training cutouts of the shipped models are rendered by
``napari_galam.simulate.imaging.lupton_rgb`` from images in nanomaggies (band multipliers
g 2.0, r 1.2, i 0.85, softening ``q = 8``, stretch 0.4). This module makes the same
picture from FITS data with astropy's :func:`astropy.visualization.make_lupton_rgb`,
whose constants differ: its slope is ``0.1 / asinh(0.1 Q)`` where the simulator's is
``1 / q``. Taking ``Q = 10 sinh(0.1 q)`` and ``stretch = Q * 0.4 / q`` makes the two
mappings one and the same function, so a FITS stack of a simulated galaxy gives its
training JPEG (to rounding; ``tests/io/test_images.py`` checks it).

Accepted layouts, all in nanomaggies like SDSS frames (other units are stretched as if
they were):

* one FITS file with a 3-D stack whose planes are named by ``FILTERn``/``BANDn``
  keywords (:func:`napari_galam.io.images.read_fits_image` reads the names);
* one FITS file with one 2-D image HDU per band, each with a ``FILTER`` (or ``BAND``)
  keyword;
* three single-band FITS files of one galaxy side by side, named ``NAME-g.fits``,
  ``NAME-r.fits`` and ``NAME-i.fits`` (``_`` or ``.`` before the band too), whose
  ``FILTER`` keywords, when present, agree with their names.

A single-band image without its two siblings is refused with a message saying that the
models need g, r and i bands. :func:`read_model_cutout` is what the batch prediction
reads: JPEG/PNG colour cutouts as they are, FITS through the composite.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from napari_galam.errors import GalamInputError
from napari_galam.io.fits import DiskArray, check_not_truncated, scan_fits
from napari_galam.io.images import (
    MAX_IMAGE_PIXELS,
    CutoutImage,
    celestial_or_none,
    is_fits_path,
    read_cutout,
    read_fits_image,
)

__all__ = [
    "GRI",
    "GRI_BAND_SCALES",
    "SIMULATOR_Q",
    "SIMULATOR_STRETCH",
    "ASTROPY_Q",
    "ASTROPY_STRETCH",
    "NEEDS_GRI",
    "sdss_band",
    "band_of_file_name",
    "gri_composite",
    "read_gri_planes",
    "read_gri_cutout",
    "read_model_cutout",
    "merge_band_files",
]

#: The bands of the composite, in the order of :func:`gri_composite`'s arguments.
GRI: tuple[str, str, str] = ("g", "r", "i")
#: Multipliers of the g, r and i images before the stretch (the simulator's colour balance).
GRI_BAND_SCALES: tuple[float, float, float] = (2.0, 1.2, 0.85)
#: Softening and linear stretch of the simulator's asinh mapping (its training cutouts).
SIMULATOR_Q: float = 8.0
SIMULATOR_STRETCH: float = 0.4
#: The same mapping in the constants of astropy's ``make_lupton_rgb``.
ASTROPY_Q: float = float(10.0 * np.sinh(0.1 * SIMULATOR_Q))
ASTROPY_STRETCH: float = ASTROPY_Q * SIMULATOR_STRETCH / SIMULATOR_Q
#: The phrase every "this image lacks bands" message carries (rows, notifications).
NEEDS_GRI = "needs g, r and i bands"

_BAND_FILE = re.compile(r"^(?P<name>.+)[-_.](?P<band>[gri])$", re.IGNORECASE)
_HOW_TO = (
    "give a 3-band FITS stack (a 3-D image with FILTER1..3 = g, r, i, or one image HDU "
    "per band with a FILTER keyword) or three files NAME-g.fits, NAME-r.fits, "
    "NAME-i.fits side by side"
)


def sdss_band(name: Any) -> str | None:
    """The SDSS band a filter name means (``"g"``, ``"r"``, ``"i"``, ``"u"``, ``"z"``) or None.

    Accepts the spellings found in headers: ``g``, ``G``, ``g'``, ``gp``, ``SDSS g``,
    ``sdss_g``, ``g-band``.
    """
    if name is None:
        return None
    words = [
        w
        for w in re.sub(r"[^a-z]", " ", str(name).lower()).split()
        if w not in ("sdss", "band", "filter", "prime")
    ]
    if len(words) != 1:
        return None
    word = words[0].removesuffix("band")
    if len(word) == 2 and word[1] == "p":
        word = word[0]
    return word if word in ("u", "g", "r", "i", "z") else None


def band_of_file_name(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(galaxy name, band)`` of a file named ``NAME-g.fits`` (or ``_g``/``.g``), else None."""
    path = Path(path)
    if not is_fits_path(path):
        return None
    stem = CutoutImage(data=np.empty(0), path=path, kind="grey").name
    match = _BAND_FILE.match(stem)
    if match is None:
        return None
    return match["name"], match["band"].lower()


def _header_band(header: Any) -> str | None:
    for key in ("FILTER", "BAND", "FILTNAM", "FILTER1"):
        if header is not None and key in header:
            return sdss_band(header[key])
    return None


def gri_composite(
    image_g: NDArray[Any], image_r: NDArray[Any], image_i: NDArray[Any]
) -> NDArray[np.uint8]:
    """The 8-bit gri colour composite (i -> R, r -> G, g -> B) of three band images.

    Parameters
    ----------
    image_g, image_r, image_i
        2-D images of one shape, sky-subtracted, in nanomaggies per pixel. NaN (blank)
        pixels are black.

    Returns
    -------
    (ny, nx, 3) uint8
        Made with :func:`astropy.visualization.make_lupton_rgb` at :data:`ASTROPY_Q` and
        :data:`ASTROPY_STRETCH`, which is the simulator's mapping (see the module notes).
    """
    from astropy.visualization import make_lupton_rgb

    planes = [np.asarray(image, dtype=np.float64) for image in (image_g, image_r, image_i)]
    if planes[0].ndim != 2 or any(p.shape != planes[0].shape for p in planes):
        raise GalamInputError(
            "gri composite: expected three 2-D band images of one shape, got "
            + ", ".join(str(p.shape) for p in planes)
        )
    g, r, i = (
        np.nan_to_num(p, nan=0.0, posinf=0.0, neginf=0.0) * scale
        for p, scale in zip(planes, GRI_BAND_SCALES, strict=True)
    )
    try:
        normalised = make_lupton_rgb(
            i, r, g, stretch=ASTROPY_STRETCH, Q=ASTROPY_Q, output_dtype=np.float64
        )
    except TypeError:  # pragma: no cover - astropy < 7 has no output_dtype: 8-bit, truncated
        return make_lupton_rgb(i, r, g, stretch=ASTROPY_STRETCH, Q=ASTROPY_Q)
    return np.round(np.clip(normalised, 0.0, 1.0) * 255.0).astype(np.uint8)


def _bands_of_cube(cutout: CutoutImage) -> dict[str, NDArray[Any]]:
    bands: dict[str, NDArray[Any]] = {}
    for plane, name in zip(cutout.data, cutout.band_names, strict=True):
        band = sdss_band(name)
        if band is not None and band not in bands:
            bands[band] = plane
    return bands


def _bands_of_extensions(path: Path) -> tuple[dict[str, NDArray[Any]], Any] | None:
    """The g, r, i images of a file with one 2-D image HDU per band (None: not that)."""
    scan = scan_fits(path)
    named = [
        (band, hdu)
        for hdu in scan.hdus
        if hdu.is_image and hdu.ndim == 2
        for band in [_header_band(hdu.header)]
        if band is not None
    ]
    if len(named) < 2:
        return None
    chosen = {band: hdu for band, hdu in reversed(named) if band in GRI}
    total = sum(int(np.prod(hdu.shape)) for hdu in chosen.values())
    if total > MAX_IMAGE_PIXELS:
        raise GalamInputError(
            f"{path}: the band images hold {total:,} pixels; a cutout may have at most "
            f"{MAX_IMAGE_PIXELS:,} (crop it first)."
        )
    arrays = {band: DiskArray.from_hdu(scan, hdu) for band, hdu in chosen.items()}
    check_not_truncated(scan, list(arrays.values()))
    bands = {band: np.array(a.load(), dtype=np.float32) for band, a in arrays.items()}
    header = chosen.get("r", next(iter(chosen.values()), scan.hdus[0])).header
    found = ", ".join(band for band, _ in named)
    if set(bands) != set(GRI):
        raise GalamInputError(
            f"{path}: image extensions in bands {found}; prediction {NEEDS_GRI} ({_HOW_TO})."
        )
    return bands, header


def _sibling_bands(path: Path, band: str | None) -> dict[str, Path] | None:
    """The ``NAME-g/-r/-i`` files beside ``path`` (None when it is not one of three)."""
    parsed = band_of_file_name(path)
    if parsed is None:
        return None
    name, own = parsed
    if band is not None and band != own:
        raise GalamInputError(
            f"{path}: the file name says band {own} but its FILTER keyword says {band}."
        )
    suffix = path.name[len(name) + 2 :]
    separator = path.name[len(name)]
    siblings = {}
    for other in GRI:
        candidates = [
            path.with_name(f"{name}{separator}{b}{suffix}") for b in (other, other.upper())
        ]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            return None
        siblings[other] = found
    return siblings


def read_gri_planes(path: str | os.PathLike) -> tuple[dict[str, NDArray[Any]], Any, Any]:
    """The g, r and i images of a FITS cutout, whichever accepted layout it has.

    Parameters
    ----------
    path
        A 3-band FITS stack, a file with one image HDU per band, or one of three
        ``NAME-g/-r/-i.fits`` files (its siblings are read too).

    Returns
    -------
    bands, header, wcs
        ``{"g": ..., "r": ..., "i": ...}`` float32 images of one shape; the header and
        celestial WCS of the r image (or of the stack).

    Raises
    ------
    GalamInputError
        When a band is missing (the message says the models need g, r and i bands and
        how to give them), the images differ in shape, or a file cannot be read.
    """
    path = Path(path)
    extensions = _bands_of_extensions(path)
    if extensions is not None:
        bands, header = extensions
        return _same_shape(path, bands), header, celestial_or_none(header)
    cutout = read_fits_image(path)
    if cutout.kind == "multiband":
        bands = _bands_of_cube(cutout)
        if set(GRI) <= set(bands):
            return _same_shape(path, {b: bands[b] for b in GRI}), cutout.header, cutout.wcs
        named = ", ".join(cutout.band_names)
        raise GalamInputError(
            f"{path}: a stack of {cutout.data.shape[0]} planes named {named}; prediction "
            f"{NEEDS_GRI} ({_HOW_TO})."
        )
    own_band = _header_band(cutout.header)
    siblings = _sibling_bands(path, own_band)
    if siblings is None:
        named = band_of_file_name(path)
        band = own_band or (named[1] if named else None)
        what = f"band {band}" if band else "band unknown"
        raise GalamInputError(
            f"{path}: a single-band image ({what}); prediction {NEEDS_GRI} ({_HOW_TO})."
        )
    images = {
        band: (cutout if file == path else read_fits_image(file)) for band, file in siblings.items()
    }
    for band, image in images.items():
        header_band = _header_band(image.header)
        if image.kind != "grey" or (header_band is not None and header_band != band):
            raise GalamInputError(
                f"{image.path}: expected a single {band}-band image beside {path.name}, "
                f"found a {image.kind} image{f' in band {header_band}' if header_band else ''}."
            )
    planes = _same_shape(path, {band: image.data for band, image in images.items()})
    return planes, images["r"].header, images["r"].wcs


def _same_shape(path: Path, bands: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    shapes = {band: np.shape(image) for band, image in bands.items()}
    if len(set(shapes.values())) != 1:
        listed = ", ".join(f"{band} {shape}" for band, shape in shapes.items())
        raise GalamInputError(f"{path}: the g, r and i images differ in shape ({listed}).")
    return bands


def read_gri_cutout(path: str | os.PathLike) -> CutoutImage:
    """A FITS cutout in g, r and i as the models' 8-bit gri composite (``kind="rgb"``).

    The header and WCS are the r image's; ``band_names`` are ``("g", "r", "i")``.
    See :func:`read_gri_planes` for the layouts and errors.
    """
    path = Path(path)
    bands, header, wcs = read_gri_planes(path)
    rgb = gri_composite(bands["g"], bands["r"], bands["i"])
    return CutoutImage(data=rgb, path=path, kind="rgb", header=header, wcs=wcs, band_names=GRI)


def read_model_cutout(path: str | os.PathLike) -> CutoutImage:
    """A cutout as the image models take it: an 8-bit gri colour picture.

    JPEG/PNG colour cutouts are read as they are (:func:`read_cutout`); FITS cutouts
    become the gri composite (:func:`read_gri_cutout`).

    Raises
    ------
    GalamInputError
        For a grey JPEG/PNG or a FITS image without all of g, r and i: the message says
        the models need g, r and i bands. Any reader error as it is.
    """
    path = Path(path)
    if is_fits_path(path):
        return read_gri_cutout(path)
    cutout = read_cutout(path)
    if cutout.kind != "rgb":
        raise GalamInputError(
            f"{path}: a grey {cutout.data.shape[1]}x{cutout.data.shape[0]} image; the "
            f"prediction {NEEDS_GRI} (a colour gri composite, i -> R, r -> G, g -> B)."
        )
    return cutout


def merge_band_files(files: Sequence[Path]) -> tuple[list[Path], dict[Path, str]]:
    """Fold each complete ``NAME-g/-r/-i.fits`` triple of ``files`` into one input.

    Returns
    -------
    kept, names
        ``files`` without the g and i members of complete triples (order kept), and the
        galaxy name of each triple's r file, which stands for the three
        (:func:`read_gri_planes` finds its siblings).
    """
    by_galaxy: dict[tuple[Path, str], dict[str, Path]] = {}
    for file in files:
        parsed = band_of_file_name(file)
        if parsed is not None:
            by_galaxy.setdefault((file.parent, parsed[0]), {})[parsed[1]] = file
    names: dict[Path, str] = {}
    dropped: set[Path] = set()
    for (_, name), members in by_galaxy.items():
        if set(members) == set(GRI):
            names[members["r"]] = name
            dropped.update((members["g"], members["i"]))
    return [f for f in files if f not in dropped], names
