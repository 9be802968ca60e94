"""The SDSS spectrum reader on the real DR18 spectra pPXF ships and on written files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

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


# --------------------------------------------------------------------------------------
# BOSS / eBOSS / SDSS-V spectra: the redshift from HDU 2 (SPALL)


def write_boss_spectrum(
    path: Path, *, z: float, zwarning: int = 0, z_noqso: float | None = None,
    zwarning_noqso: int = 0, lowercase: bool = False,
) -> Path:  # fmt: skip
    """A BOSS ``spec-PLATE-MJD-FIBER.fits`` after the data model: HDU 1 COADD, HDU 2 the
    spAll row (SPALL), HDU 3 SPZLINE."""
    loglam = np.arange(3.5523, 4.0170, 1e-4)
    n = loglam.size
    flux = 4.0 + np.sin(loglam * 50)
    coadd = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="flux", format="E", array=flux),
            fits.Column(name="loglam", format="E", array=loglam),
            fits.Column(name="ivar", format="E", array=np.full(n, 4.0)),
            fits.Column(name="and_mask", format="J", array=np.zeros(n)),
            fits.Column(name="or_mask", format="J", array=np.zeros(n)),
            fits.Column(name="wdisp", format="E", array=np.ones(n)),
            fits.Column(name="sky", format="E", array=np.zeros(n)),
            fits.Column(name="model", format="E", array=flux),
        ],
        name="COADD",
    )
    row = [
        ("PLATE", "J", 3586), ("MJD", "J", 55181), ("FIBERID", "J", 1),
        ("CLASS", "6A", "GALAXY"), ("Z", "E", z), ("Z_ERR", "E", 1e-4),
        ("ZWARNING", "J", zwarning), ("PLUG_RA", "D", 150.1), ("PLUG_DEC", "D", 2.2),
    ]  # fmt: skip
    if z_noqso is not None:
        row += [("Z_NOQSO", "E", z_noqso), ("ZWARNING_NOQSO", "J", zwarning_noqso)]
    spall = fits.BinTableHDU.from_columns(
        [
            fits.Column(name=name.lower() if lowercase else name, format=f, array=np.array([v]))
            for name, f, v in row
        ],
        name="SPALL",
    )
    zline = fits.BinTableHDU.from_columns(
        [fits.Column(name="LINENAME", format="13A", array=np.array(["Ha"]))], name="SPZLINE"
    )
    fits.HDUList([fits.PrimaryHDU(), coadd, spall, zline]).writeto(path)
    return path


def test_boss_spectrum_keeps_its_redshift(tmp_path: Path) -> None:
    from napari_galam.io.quality import spectrum_flags

    path = write_boss_spectrum(tmp_path / "spec-3586-55181-0001.fits", z=0.589)
    spectrum = read_sdss_spectrum(path)
    assert spectrum.layout == "boss"
    assert spectrum.redshift == pytest.approx(0.589, abs=1e-6)
    assert spectrum.redshift_warning == 0 and spectrum.meta["CLASS"] == "GALAXY"
    problems = spectrum_flags(spectrum, (0.002, 0.3))
    assert problems == ["z = 0.589 outside the training redshifts 0.002-0.3"]
    assert spectrum_flags(spectrum, None) == []


def test_boss_lowercase_columns_and_z_noqso(tmp_path: Path) -> None:
    from napari_galam.io.quality import spectrum_flags

    lower = read_sdss_spectrum(
        write_boss_spectrum(tmp_path / "spec-lower.fits", z=0.12, lowercase=True)
    )
    assert lower.redshift == pytest.approx(0.12, abs=1e-6)
    # Z flagged, the galaxy-only fit not: Z_NOQSO is the galaxy's redshift
    noqso = read_sdss_spectrum(
        write_boss_spectrum(tmp_path / "spec-noqso.fits", z=2.1, zwarning=4, z_noqso=0.25)
    )
    assert noqso.redshift == pytest.approx(0.25, abs=1e-6)
    assert noqso.meta["REDSHIFT_COLUMN"] == "Z_NOQSO" and noqso.redshift_warning == 0
    flagged = read_sdss_spectrum(
        write_boss_spectrum(tmp_path / "spec-flag.fits", z=0.1, zwarning=4 | 16)
    )
    assert flagged.redshift_warning == 20
    (problem,) = spectrum_flags(flagged, (0.002, 0.3))
    assert "ZWARNING = 20 (SMALL_DELTA_CHI2, MANY_OUTLIERS)" in problem


def test_shipped_spectra_model_card_says_its_redshift_range() -> None:
    from napari_galam.models.registry import available_models, training_redshift_range

    if "spectra-only" not in available_models():
        pytest.skip("no shipped spectra-only model")
    low, high = training_redshift_range("spectra-only")
    assert 0 < low < 0.01 and 0.2 <= high <= 0.5
