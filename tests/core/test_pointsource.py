"""The point-source (star) test: simulated SDSS stars are stars, galaxies are not."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.core.pointsource import (
    SDSS_PSF_FWHM_PX,
    adaptive_moments,
    estimate_psf_fwhm,
    psf_moment_size,
    spike_score,
)
from napari_galam.pipeline.qa import (
    QA_COLUMNS,
    QA_STATUSES,
    QAParameters,
    assess_galaxy,
    image_psf,
    with_field_psf,
)
from napari_galam.simulate.imaging import SDSS_PIXEL_SCALE, moffat_kernel, render_cutout
from napari_galam.simulate.stars import StarTarget, bleed_columns, render_star_cutout


@pytest.fixture(scope="module")
def library():
    from napari_galam.sps.library import load_ssp_library

    return load_ssp_library()


def test_adaptive_moments_of_a_psf_match_the_psf_size():
    kernel = moffat_kernel(3.5, beta=3.0, size=41)
    size, axis_ratio, (cy, cx) = adaptive_moments(kernel, (20.0, 20.0), 1.5)
    assert size == pytest.approx(psf_moment_size(3.5), rel=0.03)
    assert axis_ratio > 0.98 and abs(cy - 20) < 0.05 and abs(cx - 20) < 0.05
    wider = psf_moment_size(5.0)
    assert wider > 1.3 * psf_moment_size(3.5)


def test_bleed_keeps_the_charge_on_the_column():
    image = np.zeros((20, 5))
    image[10, 2] = 50.0
    bled = bleed_columns(image, 10.0)
    assert bled.max() == 10.0 and bled.sum() == pytest.approx(50.0)
    assert np.count_nonzero(bled[:, 2]) == 5 and not bled[:, [0, 1, 3, 4]].any()


def test_spike_score_sees_four_spikes_and_not_a_neighbour():
    yy, xx = np.mgrid[0:128, 0:128]
    star = 100.0 / (1.0 + ((yy - 64) ** 2 + (xx - 64) ** 2) / 9.0) ** 3
    spikes = star.copy()
    spikes[64, :] += 2.0
    spikes[:, 64] += 2.0
    neighbour = star + 5.0 * np.exp(-((yy - 64) ** 2 + (xx - 90) ** 2) / 8.0)
    noise = np.random.default_rng(0).normal(0, 0.05, star.shape)
    assert spike_score(spikes + noise, (64, 64), 6, 30) > 1.2
    assert spike_score(neighbour + noise, (64, 64), 6, 30) < 1.2


def test_spike_score_needs_arms_that_run_on_not_neighbours_at_right_angles():
    yy, xx = np.mgrid[0:128, 0:128]
    star = 100.0 / (1.0 + ((yy - 64) ** 2 + (xx - 64) ** 2) / 9.0) ** 3
    # three compact neighbours at 90-degree steps light one stretch of three arms
    neighbours = star.copy()
    for dy, dx in ((0, 14), (14, 0), (0, -14)):
        neighbours += 5.0 * np.exp(-((yy - 64 - dy) ** 2 + (xx - 64 - dx) ** 2) / 4.0)
    noise = np.random.default_rng(0).normal(0, 0.05, star.shape)
    assert spike_score(neighbours + noise, (64, 64), 6, 30) < 0.3
    neighbours[64, :] += 2.0
    neighbours[:, 64] += 2.0
    assert spike_score(neighbours + noise, (64, 64), 6, 30) > 1.2


def _field_of_stars(fwhm: float, n: int, seed: int = 0) -> np.ndarray:
    """A float image of ``n`` round Moffat stars of ``fwhm`` px on noise."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 1.0, (256, 256))
    kernel = moffat_kernel(fwhm, beta=3.0, size=31)
    for y, x in rng.uniform(30, 226, (n, 2)).astype(int):
        image[y - 15 : y + 16, x - 15 : x + 16] += rng.uniform(300, 800) * kernel / kernel.max()
    return image


def test_the_psf_is_estimated_from_the_stellar_locus_or_left_to_the_default():
    fwhm, n_sources = estimate_psf_fwhm(_field_of_stars(2.5, 8))
    assert fwhm == pytest.approx(2.5, rel=0.15) and n_sources >= 3
    assert estimate_psf_fwhm(_field_of_stars(2.5, 1)) is None  # a lone star: no locus
    lone = _field_of_stars(2.5, 1)
    assert image_psf(lone, QAParameters()) == (SDSS_PSF_FWHM_PX, "SDSS default")
    assert image_psf(lone, QAParameters(psf_fwhm=2.0)) == (2.0, "given")
    field = with_field_psf(_field_of_stars(4.0, 8), QAParameters())
    assert field.psf_fwhm == pytest.approx(4.0, rel=0.15)


@pytest.mark.parametrize(
    "star",
    [
        StarTarget(mag_r=18.5, psf_fwhm_arcsec=1.2),
        StarTarget(mag_r=16.0, psf_fwhm_arcsec=1.6, beta=4.0),
        StarTarget(mag_r=12.0, psf_fwhm_arcsec=1.4, spikes=0.03, spike_angle_deg=45.0),
    ],
    ids=["faint", "bright", "saturated-spikes"],
)
def test_simulated_stars_are_rejected_as_stars(star):
    cutout = render_star_cutout(star, rng=np.random.default_rng(1))
    params = QAParameters(star_check=True, psf_fwhm=star.psf_fwhm_arcsec / SDSS_PIXEL_SCALE)
    qa = assess_galaxy(cutout.rgb, params)
    assert qa.status == "star" and "star" in QA_STATUSES
    assert qa.reason.startswith("point source (star)")
    assert qa.model_input is None
    row = qa.row("s.jpg")
    assert list(row) == list(QA_COLUMNS) and row["status"] == "star"
    off = assess_galaxy(cutout.rgb, QAParameters(star_check=False))
    assert off.status != "star" and off.point_source is None


def test_a_galaxy_is_not_a_star(library):
    from napari_galam.simulate.galaxy import draw_galaxy

    rng = np.random.default_rng(5)
    galaxy = draw_galaxy(rng, library=library)
    cutout = render_cutout(galaxy, rng=rng, library=library, psf_fwhm_arcsec=1.4)
    qa = assess_galaxy(cutout.rgb, QAParameters(star_check=True))
    assert qa.status == "accepted", qa.reason
    assert qa.point_source is not None and qa.point_source.size_ratio > 1.25


def test_a_round_saturated_star_without_bleed_or_spikes_falls_as_the_psf():
    # The plateau of the 8-bit picture, no trail, no spikes: only the wings' profile
    # against the known PSF tells it is a star.
    star = StarTarget(mag_r=13.0, psf_fwhm_arcsec=1.9, beta=2.7)
    cutout = render_star_cutout(star, rng=np.random.default_rng(1))
    known = QAParameters(psf_fwhm=star.psf_fwhm_arcsec / SDSS_PIXEL_SCALE)
    qa = assess_galaxy(cutout.rgb, known)
    assert qa.status == "star" and "PSF's wings" in qa.reason, qa.reason
    measured = qa.point_source
    assert not measured.bleed and measured.plateau_axis_ratio > 0.9
    assert 2.5 <= measured.wing_beta <= 3.5  # the star's own beta, 2.7
    # with no PSF known (a lone cutout) the profile is not judged
    assert assess_galaxy(cutout.rgb, QAParameters()).status != "star"


def test_without_a_known_psf_size_alone_does_not_make_a_star():
    star = StarTarget(mag_r=17.0, psf_fwhm_arcsec=1.2)
    cutout = render_star_cutout(star, rng=np.random.default_rng(2))
    known = QAParameters(psf_fwhm=star.psf_fwhm_arcsec / SDSS_PIXEL_SCALE)
    assert assess_galaxy(cutout.rgb, known).status == "star"
    lone = assess_galaxy(cutout.rgb, QAParameters())
    assert lone.status == "accepted", lone.reason
    assert lone.point_source.psf_source == "SDSS default"


def test_a_galaxy_with_a_clipped_core_is_not_a_star(library):
    # A bright, compact galaxy whose core the 8-bit picture clips: its light outside the
    # plateau is its own profile, shallower than the PSF's wings.
    import dataclasses

    from napari_galam.simulate.galaxy import draw_galaxy

    rng = np.random.default_rng(11)
    galaxy = draw_galaxy(rng, library=library)
    while not 2.0 < galaxy.re_arcsec < 4.0:  # an r = 13 galaxy is this large or more
        galaxy = draw_galaxy(rng, library=library)
    galaxy = dataclasses.replace(galaxy, mag_r=13.0)
    cutout = render_cutout(galaxy, rng=rng, library=library, psf_fwhm_arcsec=1.4)
    qa = assess_galaxy(cutout.rgb, QAParameters(psf_fwhm=1.4 / SDSS_PIXEL_SCALE))
    assert qa.point_source is not None and qa.point_source.n_saturated >= 3
    assert qa.point_source.wing_beta < 2.35 and qa.status != "star", qa.reason
