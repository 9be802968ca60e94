"""specutils in and out: ``specutils.Spectrum`` through the reader, the export and the
prediction API keeps its flux, wavelength and uncertainty.

specutils (with gwcs, asdf, ndcube) is imported inside the tests, not at collection:
importing it adds about 80 MB to the pytest process, whose peak memory the child
processes of ``test_hostile_memory.py`` inherit on Linux.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import pytest
from astropy.nddata import InverseVariance, StdDevUncertainty

from napari_galam.errors import GalamInputError
from napari_galam.io.spectra import Spectrum1D, read_sdss_spectrum, real_sdss_spectra
from napari_galam.io.specutils_bridge import (
    cube_to_specutils,
    from_specutils,
    model_input_of,
    to_specutils,
    write_spectrum,
)


def _specutils_spectrum(**kwargs: Any) -> Any:
    from specutils import Spectrum

    return Spectrum(**kwargs)


FLAM = u.Unit("erg / (s cm2 Angstrom)")


def _spectrum(unit_axis: u.Unit = u.AA, redshift: float = 0.0) -> Any:
    rng = np.random.default_rng(3)
    wave = np.logspace(np.log10(3800.0), np.log10(9200.0), 3000)
    flux = (4.0 + np.sin(wave / 90.0) + rng.normal(0, 0.05, wave.size)) * 1e-17
    sigma = np.full(wave.size, 0.05e-17) * (1 + wave / 1e4)
    return _specutils_spectrum(
        flux=flux * FLAM,
        spectral_axis=(wave * u.AA).to(unit_axis),
        uncertainty=StdDevUncertainty(sigma * FLAM),
        redshift=redshift,
    )


def _assert_same(back: Any, original: Any) -> None:
    np.testing.assert_allclose(
        back.spectral_axis.to_value(u.AA), original.spectral_axis.to_value(u.AA), rtol=1e-9
    )
    np.testing.assert_allclose(
        back.flux.to_value(original.flux.unit), original.flux.value, rtol=1e-6
    )
    sigma = back.uncertainty.represent_as(StdDevUncertainty).quantity
    expected = original.uncertainty.represent_as(StdDevUncertainty).quantity
    np.testing.assert_allclose(sigma.to_value(expected.unit), expected.value, rtol=1e-5)


def test_a_specutils_file_round_trips_through_the_reader(tmp_path: Path) -> None:
    original = _spectrum(u.nm)  # specutils' own writer, wavelength in nm
    original.write(tmp_path / "mine.fits", format="tabular-fits")
    read = read_sdss_spectrum(tmp_path / "mine.fits")
    assert read.layout == "one-table"
    assert read.wave[0] == pytest.approx(3800.0)  # nm -> Angstrom
    assert read.flux[0] == pytest.approx(original.flux[0].value * 1e17, rel=1e-5)  # 1e-17 units
    _assert_same(to_specutils(read), original)


def test_from_and_to_specutils_keep_everything() -> None:
    original = _spectrum(u.AA, redshift=0.07)
    ours = from_specutils(original)
    assert isinstance(ours, Spectrum1D)
    assert ours.redshift == pytest.approx(0.07)
    back = to_specutils(ours)
    _assert_same(back, original)
    assert float(back.redshift.value) == pytest.approx(0.07)
    # a frequency axis comes back as increasing wavelengths; a mask as ivar 0
    masked = _specutils_spectrum(
        flux=original.flux[::-1],
        spectral_axis=original.spectral_axis.to(u.THz, equivalencies=u.spectral())[::-1],
        uncertainty=InverseVariance(np.full(original.flux.size, 1e34) * FLAM**-2),
        mask=np.arange(original.flux.size) < 10,
    )
    converted = from_specutils(masked, redshift=0.1)
    assert np.all(np.diff(converted.wave) > 0)
    assert converted.redshift == 0.1
    assert np.count_nonzero(converted.ivar == 0) == 10
    with pytest.raises(GalamInputError, match="expected a specutils Spectrum"):
        from_specutils(np.zeros(3))


def test_the_dock_export_is_read_by_specutils_and_by_the_reader(tmp_path: Path) -> None:
    real = read_sdss_spectrum(real_sdss_spectra()["NGC3522"])
    from specutils import Spectrum

    path = write_spectrum(real, tmp_path / "export.fits")
    opened = Spectrum.read(path)
    good = real.ivar > 0
    assert opened.flux.unit.is_equivalent(FLAM)
    np.testing.assert_allclose(opened.flux.value, real.flux, rtol=1e-6)
    np.testing.assert_allclose(opened.spectral_axis.to_value(u.AA), real.wave, rtol=1e-9)
    np.testing.assert_allclose(
        opened.uncertainty.array[good], 1 / np.sqrt(real.ivar[good]), rtol=1e-5
    )
    back = read_sdss_spectrum(path)
    assert back.redshift == pytest.approx(real.redshift)
    np.testing.assert_allclose(back.ivar, real.ivar, rtol=1e-5)
    np.testing.assert_allclose(back.flux, real.flux, rtol=1e-6)


def test_model_input_is_the_same_from_a_specutils_spectrum() -> None:
    real = read_sdss_spectrum(real_sdss_spectra()["NGC3522"])
    spectrum = to_specutils(real)
    for frame in ("rest", "observed"):
        np.testing.assert_allclose(
            model_input_of(spectrum, frame), model_input_of(real, frame), atol=1e-6
        )
    unknown = _specutils_spectrum(flux=spectrum.flux, spectral_axis=real.wave * u.AA)  # no redshift
    with pytest.raises(GalamInputError, match="redshift"):
        model_input_of(unknown, "rest")


def test_a_cube_window_becomes_a_3d_spectrum(tmp_path: Path) -> None:
    from survey_files import write_califa_cube

    from napari_galam.io.cubes import read_cube, spaxel_spectrum

    cube = read_cube(write_califa_cube(tmp_path / "NGC0001.V500.rscube.fits.gz").path)
    spectrum = cube_to_specutils(cube, rows=slice(2, 5), cols=slice(3, 7))
    assert spectrum.flux.shape == (3, 4, cube.shape[0])
    wave, flux, variance = spaxel_spectrum(cube, 3, 4)
    np.testing.assert_allclose(spectrum.spectral_axis.to_value(u.AA), wave)
    good = np.isfinite(flux)
    np.testing.assert_allclose(spectrum.flux.value[1, 1][good], flux[good], rtol=1e-6)
    assert spectrum.mask[1, 1][~good].all()


@pytest.mark.tensorflow
def test_predict_galaxies_takes_specutils_spectra() -> None:
    from napari_galam.models.inference import predict_galaxies, spectrum_frame
    from napari_galam.models.registry import available_models

    if "spectra-only" not in available_models():
        pytest.skip("no shipped spectra-only model")
    real = read_sdss_spectrum(real_sdss_spectra()["NGC3522"])
    arrays = model_input_of(real, spectrum_frame())[None]
    from_arrays = predict_galaxies(spectra=arrays, model="spectra-only")
    from_objects = predict_galaxies(spectra=[to_specutils(real)], model="spectra-only")
    np.testing.assert_allclose(from_objects.log_age, from_arrays.log_age, atol=1e-6)
    np.testing.assert_allclose(from_objects.mh, from_arrays.mh, atol=1e-6)
