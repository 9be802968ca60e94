"""The nuisances of real spectra the simulator can add: emission lines, calibration, nearby galaxies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_galam.errors import GalamInputError
from napari_galam.simulate.galaxy import draw_galaxy
from napari_galam.simulate.spectra import (
    EMISSION_LINES_VACUUM_A,
    calibration_error_factor,
    draw_emission_lines,
    emission_line_spectrum,
    render_fibre_spectrum,
)


def test_emission_lines_have_the_drawn_halpha_equivalent_width():
    loglam = np.round(3.58 + 1e-4 * np.arange(3838), 4)
    wave = 10.0**loglam
    continuum = np.full(wave.size, 4.0)
    lines = draw_emission_lines(
        np.random.default_rng(0), log_age=8.6, mh=-0.3, ebv=0.1, stellar_sigma_kms=90.0
    )
    assert lines.kind == "star-forming" and lines.ew_halpha > 5.0
    z = 0.05
    spectrum = emission_line_spectrum(loglam, continuum, lines, redshift=z)
    centre = EMISSION_LINES_VACUUM_A["Ha"] * (1 + z)
    # H-alpha alone: +-15 A around it ([N II] sits 15-21 A away at this z, and is narrow).
    near = np.abs(wave - centre) < 12.0
    flux = np.sum(spectrum[near] * np.gradient(wave)[near])
    assert flux / continuum[0] / (1 + z) == pytest.approx(lines.ew_halpha, rel=0.03)
    # Balmer decrement: reddened above case B's 2.86 because E(B-V) > 0.
    assert lines.relative_flux["Ha"] == 1.0
    assert 1.0 / lines.relative_flux["Hb"] > 2.86
    # Fixed doublet ratios.
    ratio = lines.relative_flux["[OIII]5008"] / lines.relative_flux["[OIII]4960"]
    assert ratio == pytest.approx(2.98, rel=0.02)


def test_old_galaxies_are_mostly_retired_and_weak():
    rng = np.random.default_rng(1)
    drawn = [
        draw_emission_lines(rng, log_age=10.0, mh=0.1, ebv=0.0, stellar_sigma_kms=250.0)
        for _ in range(200)
    ]
    retired = [d for d in drawn if d.kind == "retired"]
    assert len(retired) > 170  # P(star-forming) = 6.5% at log age 10
    assert max(d.ew_halpha for d in retired) <= 10**0.5 + 1e-9
    # LINER-like: [N II] stronger than H-alpha on average.
    assert np.median([d.relative_flux["[NII]6585"] for d in retired]) > 1.0


def test_emission_and_calibration_leave_the_labels_alone(library):
    galaxy = draw_galaxy(np.random.default_rng(4), library=library)
    plain = render_fibre_spectrum(galaxy, rng=np.random.default_rng(5), library=library, snr=20)
    dressed = render_fibre_spectrum(
        galaxy,
        rng=np.random.default_rng(5),
        library=library,
        snr=20,
        emission=True,
        calibration_rms=0.03,
    )
    assert dressed.log_age == plain.log_age and dressed.mh == plain.mh
    assert dressed.emission is not None and plain.emission is None
    assert not np.allclose(dressed.model, plain.model)
    with pytest.raises(GalamInputError, match="calibration_rms"):
        render_fibre_spectrum(
            galaxy, rng=np.random.default_rng(5), library=library, snr=20, calibration_rms=-0.1
        )


def test_calibration_error_is_smooth_with_the_requested_rms():
    loglam = np.linspace(3.58, 3.96, 3838)
    rms = [
        np.std(calibration_error_factor(loglam, np.random.default_rng(seed), 0.03))
        for seed in range(300)
    ]
    assert np.sqrt(np.mean(np.square(rms))) == pytest.approx(0.03, rel=0.25)
    factor = calibration_error_factor(loglam, np.random.default_rng(0), 0.03)
    assert np.max(np.abs(np.diff(factor))) < 1e-3  # smooth: no pixel-to-pixel structure


def test_nearby_fraction_puts_galaxies_at_low_redshift(library):
    rng = np.random.default_rng(2)
    default = [draw_galaxy(rng, library=library).redshift for _ in range(150)]
    nearby = [draw_galaxy(rng, library=library, nearby_fraction=1.0) for _ in range(60)]
    assert np.mean(np.array(default) < 0.02) < 0.1
    assert all(0.002 <= g.redshift < 0.02 for g in nearby)
    assert all(10.0 <= g.mag_r <= 17.77 for g in nearby)
    with pytest.raises(GalamInputError, match="nearby_fraction"):
        draw_galaxy(rng, library=library, nearby_fraction=1.5)


def test_strong_halpha_sets_the_minmax_scale_as_in_real_star_forming_spectra(library):
    """Why the lines matter: with min-max normalisation a strong line squashes the continuum."""
    from napari_galam.core.preprocess import preprocess_spectrum

    galaxy = dataclasses.replace(
        draw_galaxy(np.random.default_rng(6), library=library), redshift=0.004
    )
    spectra = []
    for emission in (False, True):
        rng = np.random.default_rng(7)
        while True:
            spec = render_fibre_spectrum(
                galaxy, rng=rng, library=library, snr=40, emission=emission
            )
            if not emission or spec.emission.ew_halpha > 20:
                break
        good = spec.ivar > 0
        spectra.append(preprocess_spectrum(spec.wave[good], spec.flux[good]))
    assert np.median(spectra[1]) < 0.8 * np.median(spectra[0])


def test_broad_populations_reach_the_young_and_old_ends_of_the_grid(library):
    from napari_galam.simulate.observe import fibre_light

    def fibre_ages(**options):
        rng = np.random.default_rng(9)
        ages = []
        for _ in range(60):
            galaxy = draw_galaxy(rng, library=library, **options)
            light = fibre_light(galaxy)
            ages.append(float(light @ galaxy.basis_log_ages / light.sum()))
        return np.array(ages)

    narrow, broad = fibre_ages(), fibre_ages(broad_populations=1.0)
    assert broad.min() < 8.4 and broad.max() > 10.0
    assert np.ptp(broad) > np.ptp(narrow) + 0.4
    # Off by default: the same generator gives the same galaxies as before the option.
    again = draw_galaxy(np.random.default_rng(9), library=library, broad_populations=0.0)
    before = draw_galaxy(np.random.default_rng(9), library=library)
    assert (again.redshift, again.mag_r, again.theta_deg) == (
        before.redshift,
        before.mag_r,
        before.theta_deg,
    )
    np.testing.assert_array_equal(again.basis_log_ages, before.basis_log_ages)
