"""Sample data: real galaxies that ship with packages this plugin already depends on.

* The Hubble Deep Field from scikit-image: a real deep field full of galaxies, some of
  them blended; the test bed for masking and clicking.
* Real SDSS DR18 spectra shipped by pPXF (NGC 3522, an elliptical, and NGC 3073, a
  dwarf lenticular), opened in the Spectrum dock.
* Simulated data with known truth (the synthetic universe, :mod:`napari_galam.simulate`):
  an SDSS-like field with blends, a CALIFA-like IFU cube and a J-PAS-like narrow-band
  cube. The cubes are written once to a cache folder in the real file layouts and
  opened through the same readers as real files; their truth maps ride along in the
  layer metadata under ``"galam_truth"``.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from napari_galam._layerdata import (
    TRUTH_KEY,
    cube_layer_data,
    narrowband_layer_data,
    spectrum_layer_data,
)
from napari_galam.errors import GalamInputError
from napari_galam.io.spectra import read_sdss_spectrum

__all__ = [
    "hubble_deep_field",
    "ppxf_spectrum_path",
    "sample_hubble_deep_field",
    "sample_sdss_spectrum_ngc3522",
    "sample_sdss_spectrum_ngc3073",
    "sample_sdss_spectrum_ngc4636",
    "sample_simulated_sdss_field",
    "sample_simulated_califa_cube",
    "sample_simulated_jpas_cube",
    "simulated_cube_path",
]

#: Layer-metadata key holding the simulator's truth of a simulated sample.


def hubble_deep_field() -> Any:
    """The Hubble Deep Field colour image shipped by scikit-image, (872, 1000, 3) uint8."""
    from skimage import data

    return data.hubble_deep_field()


def ppxf_spectrum_path(name: str) -> Path:
    """Path of a real SDSS spectrum shipped inside the installed pPXF package."""
    path = Path(str(files("ppxf") / "spectra" / f"{name}_SDSS_DR18.fits"))
    if not path.exists():
        raise GalamInputError(
            f"{path}: the installed pPXF does not ship this spectrum; "
            "napari-galam needs ppxf >= 9 (pip install -U ppxf)."
        )
    return path


def sample_hubble_deep_field() -> list[Any]:
    """napari sample: the Hubble Deep Field as an RGB image layer."""
    metadata = {
        "source": "Hubble Deep Field (Williams et al. 1996), via scikit-image",
        "sdss_like": False,  # HST WFPC2 colours and resolution, not SDSS gri at 0.396"/px
    }
    return [
        (
            hubble_deep_field(),
            {"name": "Hubble Deep Field", "rgb": True, "metadata": metadata},
            "image",
        )
    ]


def _spectrum_sample(name: str, release: str = "DR18") -> list[Any]:
    from napari_galam._reader import _open_spectrum_dock
    from napari_galam.io.spectra import real_sdss_spectra

    path = ppxf_spectrum_path(name) if release == "DR18" else real_sdss_spectra()[name]
    spectrum = read_sdss_spectrum(path)
    spectrum = replace(spectrum, meta={**spectrum.meta, "NAME": f"{name} (SDSS {release})"})
    layer = spectrum_layer_data(spectrum)
    _open_spectrum_dock()
    return [layer]


def sample_sdss_spectrum_ngc3522() -> list[Any]:
    """napari sample: the SDSS DR18 spectrum of NGC 3522, shown in the Spectrum dock."""
    return _spectrum_sample("NGC3522")


def sample_sdss_spectrum_ngc3073() -> list[Any]:
    """napari sample: the SDSS DR18 spectrum of NGC 3073, shown in the Spectrum dock."""
    return _spectrum_sample("NGC3073")


def sample_sdss_spectrum_ngc4636() -> list[Any]:
    """napari sample: the SDSS DR12 spectrum of NGC 4636 (shipped), in the Spectrum dock."""
    return _spectrum_sample("NGC4636", release="DR12")


def sample_simulated_sdss_field() -> list[Any]:
    """napari sample: a simulated SDSS gri field (0.396"/px) with blends and stars."""
    from napari_galam.simulate.samples import simulated_sdss_field

    field = simulated_sdss_field(seed=0)
    metadata = {
        "source": "napari-galam simulated SDSS-like field, seed 0",
        "sdss_like": True,
        "pixel_scale_arcsec": 0.396,
        TRUTH_KEY: field.truth,
    }
    return [
        (field.rgb, {"name": "simulated SDSS field", "rgb": True, "metadata": metadata}, "image")
    ]


def simulated_cube_path(kind: str, seed: int = 0) -> Path:
    """Write (once) a simulated ``califa`` or ``jpas`` cube to the cache and return its path."""
    from napari_galam import __version__
    from napari_galam.simulate import samples, writers

    folder = Path(tempfile.gettempdir()) / f"napari-galam-{__version__}-samples"
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "califa":
        path = folder / f"simulated{seed}.V500.rscube.fits"
        if not path.exists():
            writers.write_califa_cube(path, samples.simulated_califa_cube(seed), overwrite=True)
    elif kind == "jpas":
        path = folder / f"simulated{seed}.jpas.fits"
        if not path.exists():
            writers.write_narrowband_cube(path, samples.simulated_jpas_cube(seed), overwrite=True)
    else:
        raise GalamInputError(f"unknown simulated cube kind {kind!r}; use 'califa' or 'jpas'.")
    return path


def _truth_from_file(path: Path) -> dict[str, Any]:
    """The truth maps the simulator stored beside the cube (extensions named TRUE_*)."""
    from astropy.io import fits

    truth: dict[str, Any] = {}
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            if hdu.name.startswith("TRUE") and hdu.data is not None:
                truth[hdu.name] = hdu.data.copy()
            for key in ("RE_PIX", "GRAD_AGE", "GRAD_MH", "PA_PIX", "AXRATIO", "INCL"):
                if key in hdu.header:
                    truth.setdefault(key, hdu.header[key])
    return truth


def sample_simulated_califa_cube() -> list[Any]:
    """napari sample: a simulated CALIFA V500-like cube (1877 x 73 x 78), with truth maps."""
    from napari_galam.io.cubes import read_cube

    path = simulated_cube_path("califa")
    data, kwargs, kind = cube_layer_data(read_cube(path))
    kwargs["name"] = "simulated CALIFA cube"
    kwargs["metadata"][TRUTH_KEY] = _truth_from_file(path)
    return [(data, kwargs, kind)]


def sample_simulated_jpas_cube() -> list[Any]:
    """napari sample: a simulated J-PAS-like 54-filter cube, with truth maps."""
    from napari_galam.io.narrowband import read_narrowband

    path = simulated_cube_path("jpas")
    data, kwargs, kind = narrowband_layer_data(read_narrowband(path))
    kwargs["name"] = "simulated J-PAS cube"
    kwargs["metadata"][TRUTH_KEY] = _truth_from_file(path)
    return [(data, kwargs, kind)]
