"""Sample data: real galaxies that ship with packages this plugin already depends on.

* The Hubble Deep Field from scikit-image: a real deep field full of galaxies, some of
  them blended; the test bed for masking and clicking.
* Real SDSS DR18 spectra shipped by pPXF (NGC 3522, an elliptical, and NGC 3073, a
  dwarf lenticular), opened in the Spectrum dock.
"""

from __future__ import annotations

from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import Any

from napari_galam._layerdata import spectrum_layer_data
from napari_galam.errors import GalamInputError
from napari_galam.io.spectra import read_sdss_spectrum

__all__ = [
    "hubble_deep_field",
    "ppxf_spectrum_path",
    "sample_hubble_deep_field",
    "sample_sdss_spectrum_ngc3522",
    "sample_sdss_spectrum_ngc3073",
]


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
    metadata = {"source": "Hubble Deep Field (Williams et al. 1996), via scikit-image"}
    return [
        (
            hubble_deep_field(),
            {"name": "Hubble Deep Field", "rgb": True, "metadata": metadata},
            "image",
        )
    ]


def _spectrum_sample(name: str) -> list[Any]:
    from napari_galam._reader import _open_spectrum_dock

    spectrum = read_sdss_spectrum(ppxf_spectrum_path(name))
    spectrum = replace(spectrum, meta={**spectrum.meta, "NAME": f"{name} (SDSS DR18)"})
    layer = spectrum_layer_data(spectrum)
    _open_spectrum_dock()
    return [layer]


def sample_sdss_spectrum_ngc3522() -> list[Any]:
    """napari sample: the SDSS DR18 spectrum of NGC 3522, shown in the Spectrum dock."""
    return _spectrum_sample("NGC3522")


def sample_sdss_spectrum_ngc3073() -> list[Any]:
    """napari sample: the SDSS DR18 spectrum of NGC 3073, shown in the Spectrum dock."""
    return _spectrum_sample("NGC3073")
