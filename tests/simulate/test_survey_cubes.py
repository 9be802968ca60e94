"""CALIFA, MaNGA and MUSE cubes of simulated galaxies at any redshift: renderer and writer.

The command line that writes them is tested in ``tests/cli/test_simulate_layouts_cli.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from napari_galam.errors import GalamInputError
from napari_galam.io.cubes import read_cube, spaxel_spectrum
from napari_galam.progress import run_to_end
from napari_galam.simulate.cubes import CALIFA_WAVE
from napari_galam.simulate.galaxy import distance_modulus, draw_galaxy, kpc_per_arcsec
from napari_galam.simulate.observe import observed_basis
from napari_galam.simulate.spaxel_spectra import layout_wavelengths
from napari_galam.simulate.spectral import broaden_constant_fwhm, log_lambda_library
from napari_galam.simulate.survey_cubes import (
    galaxy_at_redshift,
    layout_spectra,
    manga_bundle,
    manga_shape,
    render_survey_cube,
)
from napari_galam.simulate.survey_datasets import check_redshift, iter_simulate_survey_cubes
from napari_galam.simulate.writers import MANGA_DONOTUSE, MANGA_NOCOV, write_survey_cube
from napari_galam.sps.resolution import air_wavelength


def _galaxy(library, redshift: float, seed: int = 2):
    drawn = draw_galaxy(
        np.random.default_rng(seed), survey="sdss", library=library, family="bulge-disc"
    )
    return galaxy_at_redshift(drawn, redshift)


def test_a_galaxy_moved_in_redshift_keeps_its_size_in_kpc_and_its_luminosity(library):
    near = draw_galaxy(np.random.default_rng(4), survey="sdss", library=library)
    far = galaxy_at_redshift(near, 0.2)
    assert far.redshift == 0.2 and near.redshift < 0.2
    kpc_near = near.re_arcsec * kpc_per_arcsec(near.redshift)
    assert far.re_arcsec * kpc_per_arcsec(0.2) == pytest.approx(kpc_near, rel=1e-6)
    assert far.re_arcsec < near.re_arcsec
    dimming = distance_modulus(0.2) - distance_modulus(near.redshift)
    assert far.mag_r - near.mag_r == pytest.approx(dimming)
    assert far.populations == near.populations and far.family == near.family
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(GalamInputError, match="redshift"):
            galaxy_at_redshift(near, bad)


@pytest.mark.parametrize("redshift", [0.01, 0.1])
def test_the_line_spread_path_agrees_with_the_califa_renderer(library, redshift):
    """CALIFA's 6 A FWHM through the per-pixel operator equals render_califa_cube's
    constant-FWHM convolution where E-MILES has its 2.51 A resolution."""
    galaxy = _galaxy(library, redshift)
    basis = observed_basis(galaxy, library=library, resolution=None, vacuum=False)
    new = layout_spectra(basis, galaxy, "CALIFA", library)
    template = log_lambda_library(library).template_fwhm_a * (1 + redshift)
    old = broaden_constant_fwhm(
        10**basis.loglam,
        basis.spectra,
        fwhm_a=np.sqrt(6.0**2 - template**2),
        out_wave_a=CALIFA_WAVE,
    )
    use = (CALIFA_WAVE > 3560 * (1 + redshift)) & (CALIFA_WAVE < 7400)
    ratio = new.spectra[:, use] / old[:, use] - 1
    assert np.sqrt(np.mean(ratio**2)) < 0.003 and np.abs(ratio).max() < 0.05
    assert not new.no_model.any() and not new.library_limited[use].any()


def test_manga_bundles_follow_the_primary_sample_rule():
    assert manga_bundle(2.0) == 19  # 12.5" across reaches 1.5 R_e = 3"
    assert manga_bundle(5.0) == 37
    assert manga_bundle(30.0) == 61  # the default cap keeps files near 100 MB
    assert manga_bundle(30.0, max_fibres=127) == 127
    assert manga_shape(61) == (43, 49)
    with pytest.raises(GalamInputError, match="bundle_fibres"):
        manga_shape(50)


@pytest.mark.parametrize(("layout", "redshift"), [("califa", 0.45), ("manga", 0.45), ("muse", 0.8)])
def test_channels_without_a_model_are_flagged_not_invented(library, tmp_path, layout, redshift):
    """Beyond z = 0.2 the blue ends fall below E-MILES' 2750 A: flagged bad in the file."""
    galaxy = _galaxy(library, redshift)
    cube = render_survey_cube(
        galaxy, layout=layout, rng=np.random.default_rng(0), library=library, shape=(9, 9)
    )
    air = air_wavelength(cube.wave) if cube.medium == "vacuum" else cube.wave
    rest = air / (1 + redshift)
    assert cube.no_model[rest < 2700].all() and not cube.no_model[rest > 2850].any()
    assert cube.no_model.sum() > 20
    path = write_survey_cube(tmp_path / f"{layout}.fits", cube)
    read = read_cube(path)
    assert read.header["NNOMODEL"] == cube.no_model.sum()
    with fits.open(path) as hdus:  # FITS cannot hold NaN: an undefined gradient is left out
        has_gradient = "GRAD_AGE" in hdus["TRUE_LOG_AGE"].header
        assert has_gradient == np.isfinite(cube.truth.gradient_log_age)
    _, flux, variance = spaxel_spectrum(read, 4, 4)
    assert np.isnan(flux[cube.no_model]).all() and np.isnan(variance[cube.no_model]).all()
    modelled = ~cube.bad[:, 4, 4]
    assert np.isfinite(flux[modelled]).all() and np.median(flux[modelled]) > 0
    raw = np.asarray(read.data)[cube.no_model]
    assert np.all((raw == 0) | np.isnan(raw))  # no flux invented where there is no model


def test_a_manga_file_has_the_logcube_extensions_and_the_bundle_footprint(library, tmp_path):
    galaxy = _galaxy(library, 0.1)
    cube = render_survey_cube(
        galaxy, layout="manga", rng=np.random.default_rng(1), library=library, bundle_fibres=19
    )
    assert cube.flux.shape[1:] == manga_shape(19)
    path = write_survey_cube(tmp_path / "manga.fits", cube)
    with fits.open(path) as hdus:
        names = [hdu.name for hdu in hdus]
        for name in ("FLUX", "IVAR", "MASK", "WAVE", "SPECRES", "GIMG", "RIMG", "IIMG", "RPSF"):
            assert name in names
        assert hdus[0].header["PLATEIFU"] == "9999-1901"
        assert hdus[0].header["RFWHM"] == pytest.approx(cube.psf_fwhm_arcsec)
        mask, ivar = hdus["MASK"].data, hdus["IVAR"].data
        outside = ~cube.footprint
        assert outside.sum() > 50 and cube.footprint.sum() > 300
        assert np.all(mask[:, outside] & MANGA_NOCOV) and np.all(mask[:, outside] & MANGA_DONOTUSE)
        assert np.all(ivar[:, outside] == 0)
        assert not np.any(mask[:, cube.footprint] & MANGA_NOCOV)
        np.testing.assert_allclose(hdus["WAVE"].data, layout_wavelengths("MaNGA")[0])
        assert 1300 < hdus["SPECRES"].data.min() < hdus["SPECRES"].data.max() < 2700
        rimg = hdus["RIMG"].data
        assert np.all(rimg[outside] == 0) and rimg.max() > 0
        assert hdus["RPSF"].data.sum() == pytest.approx(1.0, rel=1e-5)
    read = read_cube(path)
    assert np.asarray(read.mask)[:, outside].all()
    assert np.asarray(read.mask)[:, cube.footprint].mean() < 1e-3


def test_a_folder_of_cubes_and_its_truth_table(library, tmp_path):
    folder = tmp_path / "out"
    options = dict(layout="muse", seed=5, redshift=(0.05, 0.1), shape=(8, 8), library=library)
    table = run_to_end(iter_simulate_survey_cubes(folder, n=2, **options))
    assert sorted(p.name for p in folder.iterdir()) == [
        "muse_5_0000.fits",
        "muse_5_0001.fits",
        "muse_5_truth.ecsv",
    ]
    on_disk = Table.read(folder / "muse_5_truth.ecsv")
    assert list(on_disk["file"]) == ["muse_5_0000.fits", "muse_5_0001.fits"]
    assert on_disk.meta["redshift_range"] == [0.05, 0.1] and on_disk.meta["layout"] == "MUSE"
    assert np.all((on_disk["redshift"] >= 0.05) & (on_disk["redshift"] <= 0.1))
    assert on_disk["redshift"][0] != on_disk["redshift"][1]
    for row in table:
        with fits.open(folder / row["file"]) as hdus:
            truth = hdus["TRUE_LOG_AGE"].header
            assert truth["REDSHIFT"] == pytest.approx(row["redshift"])
            assert truth["TOT_AGE"] == pytest.approx(row["total_log_age"])
            assert truth["GRAD_MH"] == pytest.approx(row["gradient_mh"])
            assert hdus["TRUE_MH"].data.shape == (8, 8)
    # a file is the same for a seed whatever n; files are never replaced
    alone = run_to_end(iter_simulate_survey_cubes(tmp_path / "one", n=1, **options))
    assert alone["redshift"][0] == table["redshift"][0]
    np.testing.assert_array_equal(
        fits.getdata(tmp_path / "one" / "muse_5_0000.fits", "DATA"),
        fits.getdata(folder / "muse_5_0000.fits", "DATA"),
    )
    with pytest.raises(GalamInputError, match="muse_5_0000.fits exists"):
        iter_simulate_survey_cubes(folder, n=2, **options)


def test_bad_values_are_refused(library):
    for redshift in (0.0, 0.25, (0.1, 0.05), float("nan"), "a", (0.1, 0.2, 0.3)):
        with pytest.raises(GalamInputError, match="redshift"):
            check_redshift(redshift)
    assert check_redshift(0.2) == (0.2, 0.2)
    galaxy = _galaxy(library, 0.05)
    rng = np.random.default_rng(0)
    with pytest.raises(GalamInputError, match="layout"):
        render_survey_cube(galaxy, layout="sdss", rng=rng, library=library)
    with pytest.raises(GalamInputError, match="bundle"):
        render_survey_cube(galaxy, layout="muse", rng=rng, library=library, bundle_fibres=19)
    with pytest.raises(GalamInputError, match="shape"):
        render_survey_cube(galaxy, layout="muse", rng=rng, library=library, shape=(3, 40))
    with pytest.raises(GalamInputError, match="signal-to-noise"):
        render_survey_cube(galaxy, layout="califa", rng=rng, library=library, snr_at_re=0.0)
