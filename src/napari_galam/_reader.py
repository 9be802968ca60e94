"""The napari reader contribution: cutouts (JPEG/PNG/FITS), SDSS spectra, IFU cubes and
narrow-band stacks.

``napari_get_reader`` claims files by name (JPEG, PNG, FITS) and returns ``None`` for
anything else. Cubes and narrow-band stacks open through
:func:`napari_galam.io.sources.open_source`, the function mapping uses too. A claimed file that turns out to be damaged is answered by a napari
notification naming the file and the problem, never by a traceback: the reader then
returns napari's "nothing to add" sentinel so the viewer carries on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_galam._layerdata import (
    CUBE_KEY,
    PROBLEMS_KEY,
    SPECTRUM_KEY,
    cube_layer_data,
    cutout_layer_data,
    narrowband_layer_data,
    spectrum_layer_data,
)
from napari_galam.errors import GalamInputError
from napari_galam.io.composite import GRI, gri_composite, sdss_band
from napari_galam.io.cubes import detect_cube_layout
from napari_galam.io.fits import check_file
from napari_galam.io.images import (
    RASTER_SUFFIXES,
    SDSS_PIXEL_SCALE,
    CutoutImage,
    is_fits_path,
    read_cutout,
    sdss_cutout_assumption,
)
from napari_galam.io.narrowband import NarrowBandStack
from napari_galam.io.sources import open_source, sniff_source
from napari_galam.io.spectra import looks_like_sdss_spectrum, read_sdss_spectrum

__all__ = ["napari_get_reader", "read_galam_files", "read_path", "SDSS_ASSUMED_KEY"]

#: Layer-metadata key of the sentence saying why an image is taken as SDSS gri at
#: 0.396"/px (the Galaxy age & [M/H] dock shows it once).
SDSS_ASSUMED_KEY = "sdss_assumed"

PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]


def _handles(path: str | os.PathLike) -> bool:
    """Claim files by name only: a FIFO, a symlink loop or a folder named ``x.fits`` is
    claimed too (never opened here), so that the user hears what is wrong with it."""
    name = str(path).lower().rstrip("/" + os.sep)
    return name.endswith(RASTER_SUFFIXES) or is_fits_path(name)


def napari_get_reader(path: PathOrPaths) -> Callable[..., list[Any]] | None:
    """Return :func:`read_galam_files` when every path is a file this plugin reads."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(_handles(p) for p in paths):
        return None
    return read_galam_files


def _source_layer_data(path_or_paths: PathOrPaths) -> Any:
    """Open an IFU cube or a narrow-band stack (:func:`open_source`) as one layer."""
    source = open_source(path_or_paths)
    if isinstance(source, NarrowBandStack):
        return narrowband_layer_data(source)
    return cube_layer_data(source)


def read_path(path: str | os.PathLike) -> list[Any]:
    """Read one file into layer-data tuples; raise GalamInputError when it is bad.

    The file's type is checked before anything opens it (a FIFO would block). A FITS
    file whose headers point to a cube layout opens through the cube reader, so a
    broken cube is reported with the cube reader's own reason.
    """
    path = Path(path)
    if is_fits_path(path):
        check_file(path, "a FITS file (cutout, SDSS spectrum, cube or narrow-band stack)")
        if looks_like_sdss_spectrum(path):
            return [spectrum_layer_data(read_sdss_spectrum(path))]
        if sniff_source(path) is not None or detect_cube_layout(path) is not None:
            return [_source_layer_data(path)]
    return _cutout_layers(read_cutout(path))


def _cutout_layers(cutout: CutoutImage) -> list[Any]:
    """A cutout's layers; an SDSS-size JPEG is marked SDSS-like, a gri stack gets its
    gri composite (the models' picture) as one more layer."""
    layers = cutout_layer_data(cutout)
    assumption = sdss_cutout_assumption(cutout)
    if assumption:
        layers[0][1]["metadata"].update({"sdss_like": True, SDSS_ASSUMED_KEY: assumption})
    if cutout.kind == "multiband":
        layers.extend(_gri_layer(cutout))
    return layers


def _gri_layer(cutout: CutoutImage) -> list[Any]:
    """The gri composite of a stack with g, r and i planes (none otherwise).

    It is SDSS-like when its WCS says 0.396"/px (within 10%), not when it says another
    scale, and unknown without a WCS.
    """
    planes = {}
    for plane, name in zip(cutout.data, cutout.band_names, strict=True):
        band = sdss_band(name)
        if band in GRI and band not in planes:
            planes[band] = plane
    if set(planes) != set(GRI):
        return []
    metadata: dict[str, Any] = {"path": str(cutout.path), "kind": "rgb", "bands": GRI}
    scale = _pixel_scale_arcsec(cutout.wcs)
    if scale is not None:
        metadata["sdss_like"] = bool(abs(scale / SDSS_PIXEL_SCALE - 1.0) < 0.1)
    if cutout.header is not None:
        metadata["fits_header"] = cutout.header
    if cutout.wcs is not None:
        metadata["wcs"] = cutout.wcs
    rgb = gri_composite(planes["g"], planes["r"], planes["i"])
    return [(rgb, {"name": f"{cutout.name} gri", "rgb": True, "metadata": metadata}, "image")]


def _pixel_scale_arcsec(wcs: Any) -> float | None:
    if wcs is None:
        return None
    from astropy.wcs.utils import proj_plane_pixel_scales

    try:
        scales = proj_plane_pixel_scales(wcs) * 3600.0
    except Exception:  # noqa: BLE001 - a broken WCS says nothing about the scale
        return None
    value = float(np.mean(np.abs(scales[:2])))
    return value if np.isfinite(value) and value > 0 else None


def _notify_error(message: str) -> None:
    try:
        from napari.utils.notifications import show_error
    except ImportError:  # pragma: no cover - napari is a dependency
        raise GalamInputError(message) from None
    show_error(message)


def _notify_problems(layers: list[Any]) -> None:
    """One warning per opened file the models cannot use (saturated, negative flux)."""
    from napari.utils.notifications import show_warning

    seen: set[str] = set()
    for layer in layers:
        metadata = layer[1].get("metadata", {}) if len(layer) > 1 else {}
        if isinstance(metadata, list):  # one metadata dict per band of a multi-band image
            metadata = metadata[0] if metadata else {}
        problems = metadata.get(PROBLEMS_KEY) or []
        if problems and metadata.get("path") not in seen:
            seen.add(metadata.get("path"))
            show_warning(
                "napari-galam opened it, but the models cannot use it: " + " ".join(problems)
            )


def _read_one(path: str | os.PathLike) -> list[Any]:
    """:func:`read_path`, with every failure turned into one error notification."""
    try:
        return read_path(path)
    except GalamInputError as exc:
        _notify_error(f"napari-galam could not open {exc}")
    except Exception as exc:  # noqa: BLE001 - a reader bug must not become a traceback
        _notify_error(
            f"napari-galam could not open {path}: unexpected {type(exc).__name__}: {exc} "
            "(please report this file)."
        )
    return []


def _open_spectrum_dock() -> None:
    """Show the Spectrum dock in the current viewer, if there is a Qt window."""
    try:
        import napari

        viewer = napari.current_viewer()
        if viewer is not None and getattr(viewer, "window", None) is not None:
            viewer.window.add_plugin_dock_widget("napari-galam", "Spectrum")
    except Exception:  # noqa: BLE001 - the plot is a convenience, never a failure
        return


def read_galam_files(path: PathOrPaths, **_: Any) -> list[Any]:
    """Read the given files; report bad ones as notifications and keep the good ones."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers: list[Any] = []
    if len(paths) > 1 and sniff_source(paths) == "narrowband":
        # one image per filter, opened together: one stack, not N unrelated images
        try:
            return [_source_layer_data(paths)]
        except GalamInputError as exc:
            _notify_error(f"napari-galam could not open {exc}")
            return [(None,)]
    for one in paths:
        layers.extend(_read_one(one))
    _notify_problems(layers)
    if any(
        SPECTRUM_KEY in layer[1].get("metadata", {}) or CUBE_KEY in layer[1].get("metadata", {})
        for layer in layers
        if len(layer) > 1
    ):
        _open_spectrum_dock()
    return layers or [(None,)]
