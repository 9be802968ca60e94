"""Nebular emission lines in simulated IFU cubes (CALIFA-like and survey layouts).

Emission-on and emission-off cubes of one galaxy are rendered at a high S/N, so their
difference is the lines (plus a little noise: the two draw different noise).
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from napari_galam.cli import main
from napari_galam.simulate.cubes import narrowband_seds, render_califa_cube
from napari_galam.simulate.datasets import simulate_dataset
from napari_galam.simulate.galaxy import GalaxyModel, SersicComponent, disc_axis_ratio
from napari_galam.simulate.populations import composite_population
from napari_galam.simulate.survey_cubes import render_survey_cube
from napari_galam.simulate.writers import write_survey_cube
from napari_galam.sps.resolution import SPEED_OF_LIGHT_KMS, instrument_sigma_kms

#: H-alpha's rest wavelength in air and in vacuum (A).
HALPHA_AIR, HALPHA_VACUUM = 6562.80, 6564.61


def _galaxy(library, young_fraction: float, *, redshift: float = 0.02) -> GalaxyModel:
    """An old bulge (10 Gyr) and a disc carrying ``young_fraction`` of the light, young
    (400 Myr) unless the fraction is 0 (then an old disc holds half the light)."""
    old = composite_population(library, log_age=10.0, mh=0.1)
    young = composite_population(library, log_age=8.6, mh=-0.3)
    disc_population = young if young_fraction > 0 else old
    disc_light = young_fraction if young_fraction > 0 else 0.5
    return GalaxyModel(
        redshift=redshift,
        mag_r=14.0,
        theta_deg=20.0,
        inclination_deg=40.0,
        bulge=SersicComponent(4.0, 2.0, 0.8, 1.0 - disc_light, old, old, ebv=0.05),
        disc=SersicComponent(
            1.0, 10.0, disc_axis_ratio(40.0), disc_light, disc_population, disc_population, ebv=0.2
        ),
        velocity_dispersion_kms=120.0,
    )


def _califa_pair(library, galaxy, seed: int = 1):
    """The same galaxy rendered with and without emission lines at S/N 300 at R_e."""
    options = {"library": library, "shape": (41, 41), "snr_at_re": 300.0}
    on = render_califa_cube(galaxy, rng=np.random.default_rng(seed), emission=True, **options)
    off = render_califa_cube(galaxy, rng=np.random.default_rng(seed), **options)
    return on, off


def test_young_spaxels_have_halpha_in_emission_at_the_cubes_redshift_in_air(library):
    galaxy = _galaxy(library, 0.4)
    on, off = _califa_pair(library, galaxy)
    lines = on.emission
    assert lines is not None and off.emission is None
    centre = HALPHA_AIR * (1 + galaxy.redshift)
    near = np.abs(on.wave - centre) < 8.0  # H-alpha without [N II] (15-21 A away)
    lines_only = on.flux - off.flux
    young = on.truth.log_age < 9.0
    old = on.truth.log_age > 9.8
    assert young.sum() > 500 and old.sum() > 5
    summed = lines_only[:, young].sum(axis=1)
    centroid = np.sum(on.wave[near] * summed[near]) / summed[near].sum()
    assert centroid == pytest.approx(centre, abs=0.3)  # vacuum would be 1.8 A redder
    # Each young spaxel's line over its continuum is the EW the emission records (where
    # the continuum's S/N per channel exceeds 20, so that noise does not blur it).
    side = np.abs(on.wave - centre) < 100
    continuum = np.median(off.flux[side], axis=0)
    measured = lines_only[near].sum(axis=0) * 2.0 / continuum / (1 + galaxy.redshift)
    clear = young & (np.median(off.flux[side] / off.error[side], axis=0) > 20)
    assert clear.sum() > 100
    np.testing.assert_allclose(measured[clear], lines.ew_halpha[clear], rtol=0.08)
    assert np.median(lines.ew_halpha[young]) > 20.0
    # The old bulge has weak, LINER-like lines: little H-alpha, [N II] above it.
    assert np.median(lines.ew_halpha[old]) < 4.0
    ratio = lines.line_flux[lines.line_names.index("[NII]6585")] / np.where(
        lines.line_flux[lines.line_names.index("Ha")] > 0,
        lines.line_flux[lines.line_names.index("Ha")],
        np.nan,
    )
    assert np.median(ratio[young]) < 0.5 < 0.8 < np.median(ratio[old])
    # The truth stays that of the stars.
    np.testing.assert_array_equal(on.truth.log_age, off.truth.log_age)


def test_integrated_halpha_grows_with_the_young_light(library):
    fluxes = []
    for young_fraction in (0.0, 0.2, 0.5, 0.8):
        galaxy = _galaxy(library, young_fraction)
        on, off = _califa_pair(library, galaxy)
        near = np.abs(on.wave - HALPHA_AIR * (1 + galaxy.redshift)) < 8.0
        good = ~on.badpix[near].any(axis=0)
        measured = float((on.flux - off.flux)[near][:, good].sum() * 2.0)
        recorded = float(on.emission.line_flux[on.emission.line_names.index("Ha")][good].sum())
        assert measured == pytest.approx(recorded, rel=0.03)
        fluxes.append(measured)
        if young_fraction == 0.0:
            assert on.emission.ew_halpha_at_re < 3.5  # only the retired, LINER-like lines
    assert np.all(np.diff(fluxes) > 0) and fluxes[-1] > 20 * fluxes[0]


def test_the_narrowband_filter_holding_halpha_sees_the_line(library):
    galaxy = _galaxy(library, 0.6)
    on, off = _califa_pair(library, galaxy)
    seds_on, names, centres = narrowband_seds(on.wave, on.flux)
    seds_off, _, _ = narrowband_seds(off.wave, off.flux)
    # The brightest spaxel with strong lines.
    strong = np.where(on.emission.ew_halpha > 30.0, seds_off.mean(axis=-1), -np.inf)
    y, x = np.unravel_index(np.argmax(strong), strong.shape)
    assert np.isfinite(strong[y, x])
    excess = seds_on[y, x] / seds_off[y, x] - 1.0
    halpha = int(np.argmin(np.abs(centres - HALPHA_AIR * (1 + galaxy.redshift))))
    assert excess[halpha] > 0.2 and int(np.argmax(excess)) == halpha
    assert np.median(np.abs(excess)) < 0.01  # most filters see only continuum


def test_without_emission_the_cubes_are_todays(library, califa_galaxy):
    """Values of the renderer before emission existed (same seed, same draws)."""
    rng = np.random.default_rng(0)
    cube = render_califa_cube(califa_galaxy, rng=rng, library=library, shape=(25, 27))
    assert cube.emission is None
    assert float(cube.flux.astype(np.float64).sum()) == pytest.approx(1034629.568, rel=1e-6)
    dead = np.flatnonzero(cube.badpix)
    assert dead.size == 28 and dead[:4].tolist() == [19684, 21246, 58608, 133603]
    assert int(rng.integers(1 << 30)) == 1554334  # no extra draws from the generator
    again = render_califa_cube(
        califa_galaxy, rng=np.random.default_rng(0), library=library, shape=(25, 27),
        emission=False,
    )  # fmt: skip
    for name in ("flux", "error", "badpix"):
        np.testing.assert_array_equal(getattr(again, name), getattr(cube, name))


@pytest.mark.parametrize(
    ("layout", "redshift", "rest"), [("manga", 0.155, HALPHA_VACUUM), ("muse", 0.1, HALPHA_AIR)]
)
def test_survey_cubes_have_lines_in_their_medium_through_their_line_spread(
    library, tmp_path, layout, redshift, rest
):
    galaxy = _galaxy(library, 0.8, redshift=redshift)
    options = {"layout": layout, "library": library, "shape": (21, 21), "snr_at_re": 300.0}
    on = render_survey_cube(galaxy, rng=np.random.default_rng(3), emission=True, **options)
    off = render_survey_cube(galaxy, rng=np.random.default_rng(3), **options)
    plain = render_survey_cube(galaxy, rng=np.random.default_rng(3), emission=False, **options)
    np.testing.assert_array_equal(plain.flux, off.flux)
    centre = rest * (1 + redshift)
    young = on.truth.log_age < 9.0
    summed = (on.flux - off.flux)[:, young].sum(axis=1)
    near = np.abs(on.wave - centre) < 8.0
    centroid = np.sum(on.wave[near] * summed[near]) / summed[near].sum()
    assert centroid == pytest.approx(centre, abs=0.3)
    # Width: the gas dispersion and the instrument's line-spread function in quadrature.
    sigma_kms = np.hypot(on.emission.sigma_kms, instrument_sigma_kms(on.layout, centre))
    expected = centre * sigma_kms / SPEED_OF_LIGHT_KMS
    width = np.sqrt(np.sum((on.wave[near] - centroid) ** 2 * summed[near]) / summed[near].sum())
    assert width == pytest.approx(expected, rel=0.1)
    # The S/N at R_e is the continuum's (at z = 0.155 H-beta falls into MaNGA's S/N window
    # at 5590-5680 A): far from every line the errors are unchanged.
    quiet = np.abs(on.wave[:, None] - on.emission.centres_a[None, :]).min(axis=1) > 50.0
    assert quiet.sum() > 0.5 * on.wave.size
    np.testing.assert_array_equal(on.error[quiet], off.error[quiet])
    with fits.open(write_survey_cube(tmp_path / "on.fits", on)) as hdus:
        ew = hdus["EMLINE_EW"]
        np.testing.assert_array_equal(ew.data, on.emission.ew_halpha)
        assert ew.header["EW_HA_RE"] == pytest.approx(on.emission.ew_halpha_at_re)
        np.testing.assert_array_equal(hdus["TRUE_LOG_AGE"].data, off.truth.log_age)
    with fits.open(write_survey_cube(tmp_path / "off.fits", off)) as hdus:
        assert "EMLINE_EW" not in hdus


def test_cube_datasets_store_the_halpha_ew_only_with_emission(library, tmp_path):
    plain = tmp_path / "plain.h5"
    card = simulate_dataset(plain, kind="cubes", n=1, seed=3, library=library, store_cubes=False)
    assert card["emission_lines"] is False
    lines = tmp_path / "lines.h5"
    args = ["simulate", "--kind", "cubes", "-n", "1", "--seed", "3", "--family", "bulge-disc"]
    # galam simulate draws lines by default, as the shipped SED CNN was trained
    assert main([*args, "--no-cubes", "-o", str(lines), "--quiet"]) == 0
    stellar = tmp_path / "stellar.h5"
    assert main([*args, "--no-cubes", "--no-cube-emission", "-o", str(stellar), "--quiet"]) == 0
    with h5py.File(stellar) as handle:
        assert not handle.attrs["emission_lines"] and "maps/halpha_ew" not in handle
    with h5py.File(plain) as without, h5py.File(lines) as with_lines:
        assert with_lines.attrs["emission_lines"] and not without.attrs["emission_lines"]
        assert "maps/halpha_ew" not in without and without["truth/halpha_ew_at_re"][0] == 0
        ew = with_lines["maps/halpha_ew"][0]
        assert ew.shape == (73, 78) and ew.max() > 0
        assert with_lines["truth/halpha_ew_at_re"][0] > 0
        for name in ("maps/log_age", "maps/mh", "gradients/gradient_log_age"):
            np.testing.assert_array_equal(with_lines[name][()], without[name][()])
        assert not np.array_equal(with_lines["seds/flux"][()], without["seds/flux"][()])


def test_galam_simulate_layout_with_cube_emission_writes_the_ew_map(tmp_path):
    out = tmp_path / "muse"
    args = ["simulate", "--kind", "cubes", "--layout", "muse", "-n", "1", "--seed", "2"]
    assert main([*args, "--shape", "9,9", "--cube-emission", "-o", str(out), "--quiet"]) == 0
    table = Table.read(out / "muse_2_truth.ecsv")
    assert table.meta["emission_lines"] is True and table["halpha_ew_at_re"][0] > 0.2
    with fits.open(out / "muse_2_0000.fits") as hdus:
        assert hdus["EMLINE_EW"].data.shape == (9, 9)
        assert hdus["EMLINE_EW"].header["EW_HA_RE"] == pytest.approx(table["halpha_ew_at_re"][0])


def test_cube_datasets_draw_the_snr_at_re_in_the_range_asked(library, tmp_path):
    """``--snr-range`` for cubes: every cube's S/N at R_e lies in it, the same galaxies are
    drawn (only the noise level changes), and the default keeps the training range."""
    args = ["simulate", "--kind", "cubes", "-n", "3", "--seed", "5", "--no-cubes", "--quiet"]
    default, faint = tmp_path / "default.h5", tmp_path / "faint.h5"
    assert main([*args, "-o", str(default)]) == 0
    assert main([*args, "--snr-range", "10:12", "-o", str(faint)]) == 0
    with h5py.File(default) as full, h5py.File(faint) as low:
        snr_default, snr_faint = full["truth/snr_at_re"][()], low["truth/snr_at_re"][()]
        assert np.all((snr_default >= 10) & (snr_default <= 40))
        assert np.all((snr_faint >= 10) & (snr_faint <= 12))
        np.testing.assert_array_equal(full["maps/mh"][()], low["maps/mh"][()])
        median_snr = [np.nanmedian(h["seds/snr"][()]) for h in (full, low)]
        assert median_snr[1] < median_snr[0]
        assert json.loads(low.attrs["snr_at_re_range"]) == [10.0, 12.0]
