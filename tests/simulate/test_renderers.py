"""Renderers and writers: SDSS cutouts and spectra, CALIFA and J-PAS cubes, in real layouts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from napari_galam.errors import GalamInputError
from napari_galam.simulate.cubes import (
    CALIFA_WAVE,
    fit_gradient,
    narrowband_seds,
    render_califa_cube,
    render_narrowband_cube,
)
from napari_galam.simulate.galaxy import draw_galaxy, uniform_population_galaxy
from napari_galam.simulate.imaging import (
    DiscStructure,
    Neighbour,
    Star,
    apply_disc_structure,
    draw_disc_structure,
    lupton_rgb,
    render_cutout,
)
from napari_galam.simulate.populations import single_ssp_population
from napari_galam.simulate.spectra import MML_WAVE, render_fibre_spectrum, to_linear_grid
from napari_galam.simulate.writers import (
    write_califa_cube,
    write_jpeg,
    write_narrowband_cube,
    write_sdss_spectrum,
)


def test_cutout_with_a_close_neighbour_is_a_blend(library):
    rng = np.random.default_rng(3)
    target = draw_galaxy(rng, library=library)
    companion = draw_galaxy(rng, library=library)
    close = Neighbour(
        companion,
        separation_arcsec=1.2 * (target.re_arcsec + companion.re_arcsec) + 1,
        angle_deg=30.0,
    )
    far_star = Star(x=5.0, y=120.0, mag_r=18.0)
    cutout = render_cutout(target, rng=rng, library=library, neighbours=(close,), stars=(far_star,))
    assert cutout.rgb.shape == (128, 128, 3) and cutout.rgb.dtype == np.uint8
    assert cutout.images.shape == (3, 128, 128)
    truth = cutout.truth
    assert truth.blended
    assert list(truth.sources["kind"]) == ["target", "galaxy", "star"]
    assert truth.sources["blended_with_target"][1] and not truth.sources["blended_with_target"][2]
    assert truth.sources["blended"][0] and truth.sources["blended"][1]
    assert truth.segmentation[64, 64] == 1
    assert abs(truth.ellipse.x - 63.5) < 5 and truth.ellipse.semi_major >= truth.ellipse.semi_minor
    isolated = render_cutout(target, rng=np.random.default_rng(3), library=library)
    assert not isolated.truth.blended
    assert set(np.unique(isolated.truth.segmentation)) == {0, 1}


def _disc_galaxy(library, seed=4):
    rng = np.random.default_rng(seed)
    while True:
        galaxy = draw_galaxy(rng, library=library)
        if galaxy.disc.light_fraction > 0.6 and galaxy.disc.re_arcsec > 3.0:
            return galaxy, rng


def test_spiral_arms_and_clumps_keep_the_light_and_break_the_symmetry(library):
    from napari_galam.simulate.galaxy_maps import light_maps

    galaxy, rng = _disc_galaxy(library)
    centre = (63.5, 63.5)
    maps = light_maps(galaxy, shape=(128, 128), pixel_scale=0.396, centre_xy=centre)
    clumps = np.array([[1.0, 0.3, 1.0, 1.0], [1.5, 2.0, 0.8, 0.5]])
    structure = DiscStructure(
        n_arms=2, pitch_deg=20, amplitude=0.5, clumps=clumps, clump_fraction=0.06
    )
    laid = apply_disc_structure(maps, galaxy, structure, pixel_scale=0.396, centre_xy=centre)
    # Bulge untouched; each disc map keeps its light (so photometry and labels hold).
    np.testing.assert_array_equal(laid[:2], maps[:2])
    np.testing.assert_allclose(laid[2:].sum(axis=(1, 2)).sum(), maps[2:].sum(), rtol=1e-9)
    np.testing.assert_allclose(laid[2].sum(), maps[2].sum() * (1 - 0.06), rtol=1e-9)
    assert laid.min() >= -1e-12 * laid.max()  # light_maps itself rounds to -1e-24

    # A smooth disc is point-symmetric; arms (an even number: still symmetric) plus clumps are not.
    def asymmetry(image):
        return float(np.abs(image - image[::-1, ::-1]).sum() / image.sum())

    smooth, spiral = maps.sum(axis=0), laid.sum(axis=0)
    assert asymmetry(smooth) < 0.01 < asymmetry(spiral)
    # Arms alone modulate the light along a ring by about the amplitude.
    arms = apply_disc_structure(
        maps, galaxy, DiscStructure(amplitude=0.5), pixel_scale=0.396, centre_xy=centre
    )
    ratio = arms[2:].sum(axis=0) / np.maximum(maps[2:].sum(axis=0), 1e-30)
    ring = ratio[40:88, 40:88]
    assert ring.max() > 1.3 and ring.min() < 0.7
    # The rendered cutout carries the pattern; draws are None for discless galaxies.
    drawn = draw_disc_structure(rng, galaxy)
    assert drawn is not None and 2 <= drawn.n_arms <= 4 and 0.1 <= drawn.amplitude <= 0.6
    cutout = render_cutout(
        galaxy, rng=np.random.default_rng(1), library=library, target_structure=drawn
    )
    assert cutout.rgb.shape == (128, 128, 3) and not cutout.truth.blended
    elliptical = dataclasses.replace(
        galaxy,
        bulge=dataclasses.replace(galaxy.bulge, light_fraction=0.9),
        disc=dataclasses.replace(galaxy.disc, light_fraction=0.1),
    )
    assert draw_disc_structure(rng, elliptical) is None
    with pytest.raises(GalamInputError, match="amplitude"):
        DiscStructure(amplitude=1.5)
    with pytest.raises(GalamInputError, match="pitch"):
        DiscStructure(pitch_deg=80)


def test_cutout_colours_and_noise_look_like_sdss(library):
    rng = np.random.default_rng(8)
    galaxy = draw_galaxy(rng, library=library)
    cutout = render_cutout(galaxy, rng=rng, library=library)
    sky = cutout.images[:, :10, :10]
    assert 0.02 < float(np.std(sky[1])) < 0.2  # nanomaggies per pixel
    centre = cutout.rgb[60:68, 60:68].reshape(-1, 3).mean(0)
    corner = cutout.rgb[:10, :10].reshape(-1, 3).mean(0)
    assert centre.sum() > 4 * corner.sum()  # bright galaxy on a dark sky
    # Old, metal-rich galaxies look yellowish (R = i above B = g), young ones blue.
    colours = []
    for age_index in (22, 4):
        population = single_ssp_population(library, age_index=age_index, metal_index=4)
        galaxy = uniform_population_galaxy(population, redshift=0.05, mag_r=15.5)
        rgb = render_cutout(galaxy, rng=np.random.default_rng(0), library=library).rgb
        colours.append(rgb[58:70, 58:70].reshape(-1, 3).astype(float).mean(0))
    old, young = colours
    assert old[0] > old[2] and young[2] > young[0]
    assert lupton_rgb(np.zeros((3, 4, 4))).max() == 0


def test_fibre_spectrum_written_in_sdss_layout(library, tmp_path):
    rng = np.random.default_rng(2)
    galaxy = draw_galaxy(rng, library=library)
    spectrum = render_fibre_spectrum(galaxy, rng=rng, library=library, snr=15.0)
    path = write_sdss_spectrum(tmp_path, spectrum, plate=1234, mjd=56789, fiber=42)
    assert path.name == "spec-1234-56789-0042.fits"
    with fits.open(path) as hdus:
        assert [h.name for h in hdus][:4] == ["PRIMARY", "COADD", "SPECOBJ", "SPZLINE"]
        coadd = Table(hdus["COADD"].data)
        specobj = hdus["SPECOBJ"].data
        np.testing.assert_allclose(np.diff(coadd["loglam"]), 1e-4, atol=2e-6)
        assert 3800 < 10 ** coadd["loglam"][0] < 3810 and 9190 < 10 ** coadd["loglam"][-1] < 9200
        assert {"flux", "ivar", "and_mask", "or_mask", "wdisp", "sky", "model"} <= set(
            coadd.colnames
        )
        assert specobj["Z"][0] == pytest.approx(galaxy.redshift, rel=1e-6)
        assert specobj["CLASS"][0] == "GALAXY" and specobj["ZWARNING"][0] == 0
        assert specobj["SN_MEDIAN_ALL"][0] == pytest.approx(15.0, rel=0.1)
        assert hdus["GALAM_TRUTH"].data["LOG_AGE"][0] == pytest.approx(spectrum.log_age)
    resampled = to_linear_grid(spectrum.loglam, spectrum.flux)
    assert resampled.shape == (4171,) and MML_WAVE[0] == 3830 and MML_WAVE[-1] == 8000


def test_califa_cube_layout_truth_and_gradients(library, califa_galaxy, tmp_path):
    cube = render_califa_cube(califa_galaxy, rng=np.random.default_rng(0), library=library)
    assert cube.flux.shape == (1877, 73, 78)
    path = write_califa_cube(tmp_path / "sim.V500.rscube.fits", cube)
    with fits.open(path) as hdus:
        header = hdus[0].header
        assert header["CRVAL3"] == 3749 and header["CDELT3"] == 2 and header["NAXIS3"] == 1877
        assert hdus["ERROR"].data.shape == hdus["BADPIX"].data.shape == (1877, 73, 78)
        wcs = WCS(header)
        assert wcs.has_celestial and wcs.wcs.spec == 2
        assert hdus["BADPIX"].data[:, 0, 0].all()  # corner outside the hexagon
        assert (
            not hdus["BADPIX"].data[:, 36, 39].any() or hdus["BADPIX"].data[:, 36, 39].mean() < 0.01
        )
        assert hdus["TRUE_LOG_AGE"].data.shape == (73, 78)
        assert hdus["TRUE_LOG_AGE"].header["GRAD_AGE"] == pytest.approx(cube.truth.gradient_log_age)
    truth = cube.truth
    refit = fit_gradient(truth.r_over_re, truth.intrinsic_log_age)
    assert refit == pytest.approx(truth.gradient_log_age)
    # Spaxel S/N near R_e is about the requested one.
    ring = np.abs(truth.r_over_re - 1) < 0.1
    window = (CALIFA_WAVE > 5590) & (CALIFA_WAVE < 5680)
    snr = np.median(cube.flux[window][:, ring] / cube.error[window][:, ring])
    assert 10 < snr < 40
    seds, names, centres = narrowband_seds(cube.wave, cube.flux)
    assert seds.shape[:2] == (73, 78) and 30 <= len(names) <= 37
    assert np.all(np.diff(centres) > 0)


def test_narrowband_cube_layout(library, califa_galaxy, tmp_path):
    cube = render_narrowband_cube(
        califa_galaxy, rng=np.random.default_rng(0), library=library, shape=(48, 48)
    )
    assert cube.flux.shape == (54, 48, 48)
    path = write_narrowband_cube(tmp_path / "jpas.fits", cube)
    with fits.open(path) as hdus:
        filters = Table(hdus["FILTERS"].data)
        assert len(filters) == 54 and {"NAME", "WAVELENGTH", "FWHM"} <= set(filters.colnames)
        assert filters["WAVELENGTH"][0] == pytest.approx(3785, abs=5)
        assert np.allclose(np.diff(filters["WAVELENGTH"]), 100, atol=2)
        assert filters["FWHM"][0] == pytest.approx(145, abs=5)
        assert hdus[0].data.shape == (54, 48, 48) and WCS(hdus[0].header).has_celestial
    with pytest.raises(GalamInputError):
        render_narrowband_cube(
            califa_galaxy, rng=np.random.default_rng(0), library=library, filter_names=("nope-x",)
        )
    with pytest.raises(GalamInputError, match="signal-to-noise"):
        render_narrowband_cube(
            califa_galaxy, rng=np.random.default_rng(0), library=library, snr_at_re=0
        )


def test_jpeg_writer(tmp_path, library):
    from PIL import Image

    rgb = (np.arange(48 * 48 * 3) % 255).astype(np.uint8).reshape(48, 48, 3)
    path = write_jpeg(tmp_path / "c.jpg", rgb)
    with Image.open(path) as image:
        assert image.mode == "RGB" and image.size == (48, 48) and image.format == "JPEG"
    with pytest.raises(GalamInputError):
        write_jpeg(tmp_path / "bad.jpg", rgb[..., 0])


def test_figures_draw_headless(library, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_galam.simulate.datasets import simulate_sdss_galaxy
    from napari_galam.simulate.figures import draw_cutout, draw_spectrum

    sim = simulate_sdss_galaxy(np.random.default_rng(0), library=library)
    fig, (left, right) = plt.subplots(1, 2)
    draw_cutout(left, sim.cutout)
    draw_spectrum(right, sim.spectrum)
    fig.savefig(tmp_path / "f.png")
    plt.close(fig)
    assert (tmp_path / "f.png").stat().st_size > 1000
