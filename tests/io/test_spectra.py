"""The SDSS spectrum reader on the real DR18 spectra pPXF ships and on written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_galam._sample_data import ppxf_spectrum_path
from napari_galam.errors import GalamInputError
from napari_galam.io.spectra import looks_like_sdss_spectrum, read_sdss_spectrum


@pytest.mark.parametrize(("name", "z"), [("NGC3522", 0.00402), ("NGC3073", 0.00391)])
def test_reads_real_sdss_dr18_spectra(name: str, z: float) -> None:
    path = ppxf_spectrum_path(name)
    assert looks_like_sdss_spectrum(path)
    spectrum = read_sdss_spectrum(path)
    assert spectrum.layout == "sdss-dr8+"
    assert spectrum.redshift == pytest.approx(z, abs=2e-4)
    assert 3700 < spectrum.wave[0] < 3900 and 9100 < spectrum.wave[-1] < 9300
    steps = np.diff(np.log10(spectrum.wave))  # float32 loglam in the file: 1e-4 +- rounding
    assert np.mean(steps) == pytest.approx(1e-4, rel=1e-3)
    np.testing.assert_allclose(steps, 1e-4, rtol=0.01)
    assert 5 < spectrum.snr_median < 200
    assert spectrum.flux.size == spectrum.ivar.size == spectrum.wave.size


def test_reads_written_dr8_layout(sdss_spectrum_file) -> None:
    path = sdss_spectrum_file(redshift=0.1, snr=25.0)
    spectrum = read_sdss_spectrum(path)
    assert spectrum.redshift == pytest.approx(0.1)
    assert spectrum.snr_median == pytest.approx(25.0, rel=0.1)
    assert spectrum.meta["CLASS"] == "GALAXY"
    assert spectrum.name == "spec-1234-56789-0042"
    np.testing.assert_allclose(spectrum.rest_wave, spectrum.wave / 1.1)


def test_reads_old_ppxf_reduced_layout(tmp_path: Path) -> None:
    from astropy.io import fits

    wave = np.linspace(3800, 9200, 500)
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="flux", format="E", array=np.ones(500, np.float32)),
            fits.Column(name="wavelength", format="E", array=wave.astype(np.float32)),
            fits.Column(name="inverse_variance", format="E", array=np.full(500, 4.0, np.float32)),
        ]
    )
    table.header["Z"] = 0.0042
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(tmp_path / "NGC3522_SDSS_DR8.fits")
    spectrum = read_sdss_spectrum(tmp_path / "NGC3522_SDSS_DR8.fits")
    assert spectrum.layout == "ppxf-reduced"
    assert spectrum.redshift == pytest.approx(0.0042)
    assert spectrum.snr_median == pytest.approx(2.0)


def test_missing_wavelength_column_is_named(sdss_spectrum_file) -> None:
    path = sdss_spectrum_file("spec-nowave.fits", drop_columns=("loglam",))
    with pytest.raises(
        GalamInputError, match=r"spec-nowave\.fits.*no wavelength \(loglam\) column"
    ):
        read_sdss_spectrum(path)


def test_bad_pixels_get_zero_ivar(sdss_spectrum_file) -> None:
    from astropy.io import fits

    path = sdss_spectrum_file()
    with fits.open(path, mode="update") as hdul:
        hdul["COADD"].data["ivar"][:10] = np.nan
        hdul["COADD"].data["flux"][10:20] = np.inf
    spectrum = read_sdss_spectrum(path)
    assert np.all(spectrum.ivar[:20] == 0) and np.all(spectrum.ivar[20:] > 0)


def test_truncated_and_foreign_files_are_refused(sdss_spectrum_file, tmp_path: Path) -> None:
    good = sdss_spectrum_file()
    truncated = tmp_path / "spec-cut.fits"
    truncated.write_bytes(good.read_bytes()[:4000])
    with pytest.raises(GalamInputError, match=r"spec-cut\.fits"):
        read_sdss_spectrum(truncated)
    text = tmp_path / "spec-text.fits"
    text.write_text("hello")
    with pytest.raises(GalamInputError, match=r"spec-text\.fits"):
        read_sdss_spectrum(text)
    assert not looks_like_sdss_spectrum(text)
    image = tmp_path / "image.fits"
    from astropy.io import fits

    fits.PrimaryHDU(np.zeros((4, 4))).writeto(image)
    assert not looks_like_sdss_spectrum(image)
    with pytest.raises(GalamInputError, match=r"image\.fits: not an SDSS spectrum"):
        read_sdss_spectrum(image)


def test_real_spectra_available_offline_are_found_and_read():
    from napari_galam.io.spectra import real_sdss_spectra

    found = real_sdss_spectra()
    assert set(found) == {"NGC3073", "NGC3522", "NGC4636"}
    ngc4636 = read_sdss_spectrum(found["NGC4636"])
    assert ngc4636.redshift == pytest.approx(0.00303, abs=1e-4)
    assert ngc4636.snr_median > 40 and ngc4636.wave.size == 3838
