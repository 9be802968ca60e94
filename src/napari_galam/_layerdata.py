"""Layer metadata keys and layer-data tuples from what the readers return (no napari import).

Every ``galam_*`` key a layer's metadata may carry is defined here, once, so docks
share layers without importing each other.

Used by the napari reader and the sample-data contributions, so that a file opened by
drag-and-drop and a sample look and behave the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_galam.io.images import CutoutImage
from napari_galam.io.quality import input_problems
from napari_galam.io.spectra import SdssSpectrum

__all__ = [
    "CUBE_KEY",
    "ELLIPSE_KEY",
    "GRADIENT_ERRORS_KEY",
    "MAPS_KEY",
    "RE_KEY",
    "TRUTH_KEY",
    "NARROWBAND_KEY",
    "PROBLEMS_KEY",
    "SPECTRUM_KEY",
    "cube_layer_data",
    "cutout_layer_data",
    "narrowband_layer_data",
    "spectrum_layer_data",
    "robust_limits",
]

#: Layer-metadata key under which a spectrum object is stored. napari has no spectrum
#: layer, so a spectrum opens as an empty points layer carrying it in its metadata;
#: the Spectrum dock plots every such layer.
SPECTRUM_KEY = "galam_spectrum"

#: Layer-metadata key under which an opened cube (:class:`io.cubes.SpectralCube`) is
#: stored, so that docks can reach its wavelengths, variance and mask.
CUBE_KEY = "galam_cube"

#: Layer-metadata key under which a narrow-band stack (:class:`io.narrowband.NarrowBandStack`)
#: is stored.
NARROWBAND_KEY = "galam_narrowband"

#: Key of the :class:`pipeline.maps.SpaxelMaps` behind a maps layer (Spaxel maps dock).
MAPS_KEY = "galam_maps"

#: Key of a galaxy's ellipse (dict of ``x, y, angle_deg, axis_ratio``) on a map layer,
#: read by the Gradients dock.
ELLIPSE_KEY = "galam_ellipse"

#: Key of a galaxy's half-light radius in pixels on a map layer (Gradients dock).
RE_KEY = "galam_r_e_pix"

#: Key of a map layer's :class:`pipeline.gradient_errors.GradientErrorContext` (the
#: model's own gradient error, the spatial resolution, per-spaxel errors, bins), read by
#: the Gradients dock to quote a slope's error.
GRADIENT_ERRORS_KEY = "galam_gradient_errors"

#: Key of the simulator's truth (labels, positions) on a simulated sample layer.
TRUTH_KEY = "galam_truth"

#: Key of the reasons the models cannot use a layer's cutout or spectrum (a list of
#: str from :func:`napari_galam.io.quality.input_problems`; empty when none).
PROBLEMS_KEY = "galam_problems"

LayerData = tuple[Any, dict[str, Any], str]


def robust_limits(data: Any, lo: float = 0.5, hi: float = 99.5) -> tuple[float, float]:
    """Contrast limits from percentiles of the finite pixels (sky to bright cores)."""
    values = np.asarray(data, dtype=np.float32)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (0.0, 1.0)
    if finite.size > 1_000_000:
        finite = finite[:: finite.size // 1_000_000 + 1]
    low, high = np.percentile(finite, [lo, hi])
    if not high > low:
        high = low + 1.0
    return (float(low), float(high))


def cutout_layer_data(cutout: CutoutImage) -> list[LayerData]:
    """Layer data for a cutout: one RGB/grey image, or one layer per band."""
    metadata: dict[str, Any] = {
        "path": str(cutout.path),
        "kind": cutout.kind,
        PROBLEMS_KEY: input_problems(cutout),
    }
    if cutout.header is not None:
        metadata["fits_header"] = cutout.header
    if cutout.wcs is not None:
        metadata["wcs"] = cutout.wcs
    if cutout.kind == "rgb":
        return [(cutout.data, {"name": cutout.name, "rgb": True, "metadata": metadata}, "image")]
    if cutout.kind == "grey":
        kwargs: dict[str, Any] = {"name": cutout.name, "metadata": metadata, "colormap": "gray"}
        if cutout.data.dtype != np.uint8:
            kwargs["contrast_limits"] = robust_limits(cutout.data)
        return [(cutout.data, kwargs, "image")]
    # multi-band: one additive layer per band, coloured blue -> red with wavelength order
    colormaps = ["blue", "green", "red", "magenta", "cyan", "yellow"]
    n = cutout.data.shape[0]
    kwargs = {
        "channel_axis": 0,
        "name": [f"{cutout.name} [{band}]" for band in cutout.band_names],
        "metadata": [dict(metadata, band=band) for band in cutout.band_names],
        "colormap": [colormaps[i % len(colormaps)] for i in range(n)],
        "blending": "additive",
        "contrast_limits": [robust_limits(plane) for plane in cutout.data],
    }
    return [(cutout.data, kwargs, "image")]


def spectrum_layer_data(spectrum: SdssSpectrum) -> LayerData:
    """Layer data for a spectrum: an empty points layer carrying the spectrum."""
    metadata = {
        SPECTRUM_KEY: spectrum,
        "path": str(spectrum.path),
        PROBLEMS_KEY: input_problems(spectrum),
    }
    return (
        np.empty((0, 2)),
        {"name": f"spectrum {spectrum.name}", "metadata": metadata, "ndim": 2},
        "points",
    )


def cube_layer_data(cube: Any) -> LayerData:
    """Layer data for a spectral cube: a lazy image with a labelled wavelength axis.

    On a linear wavelength grid the first axis is scaled to Angstrom, so the dims
    slider reads wavelengths; otherwise it counts channels and ``metadata["wave"]``
    maps them to Angstrom. Contrast limits come from the middle channel alone, so
    nothing else is read from disk.
    """
    wave = np.asarray(cube.wave, dtype=np.float64)
    steps = np.diff(wave)
    linear = wave.size > 1 and np.allclose(steps, steps[0], rtol=1e-6)
    middle = np.asarray(cube.data[wave.size // 2], dtype=np.float32)
    metadata = {
        CUBE_KEY: cube,
        "path": str(cube.path),
        "wave": wave,
        "unit": str(cube.unit) if cube.unit is not None else "",
        "layout": cube.layout,
    }
    if cube.celestial_wcs is not None:
        metadata["wcs"] = cube.celestial_wcs
    kwargs: dict[str, Any] = {
        "name": cube.name,
        "metadata": metadata,
        "colormap": "inferno",
        "contrast_limits": robust_limits(middle),
        "axis_labels": ("wavelength [Å]" if linear else "channel", "y", "x"),
    }
    if linear:
        kwargs["scale"] = (float(steps[0]), 1.0, 1.0)
        kwargs["translate"] = (float(wave[0]), 0.0, 0.0)
    return (cube.data, kwargs, "image")


def narrowband_layer_data(stack: Any) -> LayerData:
    """Layer data for a narrow-band stack: one plane per filter, filters in the metadata."""
    n_filters = len(stack.filter_names)
    middle = np.asarray(stack.data[n_filters // 2], dtype=np.float32)
    metadata = {
        NARROWBAND_KEY: stack,
        "paths": [str(p) for p in stack.paths],
        "filter_names": list(stack.filter_names),
        "wave": np.asarray(stack.wavelength, dtype=np.float64),
        "unit": str(stack.unit) if stack.unit is not None else "",
        "layout": stack.layout,
    }
    if stack.celestial_wcs is not None:
        metadata["wcs"] = stack.celestial_wcs
    first = stack.paths[0]
    name = first.name.split(".fit")[0] if len(stack.paths) == 1 else f"{first.parent.name} stack"
    kwargs = {
        "name": name,
        "metadata": metadata,
        "colormap": "inferno",
        "contrast_limits": robust_limits(middle),
        "axis_labels": ("filter", "y", "x"),
    }
    return (stack.data, kwargs, "image")
