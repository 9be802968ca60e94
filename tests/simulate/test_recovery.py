"""pPXF run on simulated fibre spectra recovers their labels: spectra and labels agree.

Slow (tens of seconds per fit on a shared 2-core machine): the full numbers, noiseless
and at S/N 10, come from ``benchmarks/bench_simulate.py --recovery 20``.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.simulate.galaxy import draw_galaxy
from napari_galam.simulate.spectra import render_fibre_spectrum


@pytest.mark.slow
def test_ppxf_recovers_labels_of_noiseless_spectra(library):
    reference_fit = pytest.importorskip("napari_galam.sps.reference_fit")
    differences = []
    for seed in range(20):
        rng = np.random.default_rng(500 + seed)
        galaxy = draw_galaxy(rng, library=library, dust=False)
        spectrum = render_fibre_spectrum(galaxy, rng=rng, library=library, snr=20.0)
        wave = spectrum.wave
        model = spectrum.model.astype(float)
        fit = reference_fit.fit_population(
            wave,
            model,
            # Weights only (the spectrum has no noise); a given noise makes pPXF much faster.
            noise=0.05 * np.sqrt(np.clip(model, 1e-3, None)),
            redshift=galaxy.redshift,
            fwhm_gal=wave / 2000.0,
            vacuum=True,
        )
        differences.append((fit.log_age - spectrum.log_age, fit.mh - spectrum.mh))
    median_abs = np.median(np.abs(differences), axis=0)
    assert median_abs[0] <= 0.05, f"log age: median |delta| = {median_abs[0]:.3f} dex"
    assert median_abs[1] <= 0.05, f"[M/H]: median |delta| = {median_abs[1]:.3f} dex"
