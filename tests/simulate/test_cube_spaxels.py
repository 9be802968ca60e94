"""Spaxels of simulated survey cubes as training spectra (``train_spaxel_spectra.py --cube-spaxels``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_galam.core.spectral_input import spectral_inputs
from napari_galam.errors import GalamInputError
from napari_galam.io.cubes import read_cube
from napari_galam.pipeline.spectral_maps import _plan_for, _read_rows
from napari_galam.simulate.cube_spaxels import cube_spaxel_set, draw_training_cube
from napari_galam.simulate.datasets import galaxy_rngs
from napari_galam.simulate.writers import write_survey_cube

DRAW = {"redshift_range": (0.02, 0.08), "snr_range": (15.0, 30.0), "emission_fraction": 0.5}


@pytest.mark.parametrize("layout", ["manga", "muse"])
def test_a_training_spaxel_is_what_galam_map_reads_from_the_written_file(library, tmp_path, layout):
    """The inputs equal those the maps make of the same spaxel of the cube's file, and the
    labels are the cube's PSF-blurred truth there."""
    seed = 41
    got = cube_spaxel_set(
        layout, 1, seed, families=("quenched",), per_cube=40, library=library, **DRAW
    )
    drawn = draw_training_cube(
        galaxy_rngs(seed, 1)[0], layout, ("quenched",), library=library, **DRAW
    )
    path = tmp_path / f"{layout}.fits"
    write_survey_cube(path, drawn.cube)
    cube = read_cube(path)
    plan, z, _, _ = _plan_for(cube, None)
    assert z == pytest.approx(drawn.redshift, abs=1e-6)
    index, ys, xs = got["spaxel"].T
    assert len(ys) == 40 and np.all(index == 0) and len(set(zip(ys, xs))) == 40
    for row in np.unique(ys):
        flux, variance, mask = _read_rows(cube, slice(row, row + 1))
        inputs = spectral_inputs(plan, flux, variance, mask)
        for k in np.nonzero(ys == row)[0]:
            x = xs[k]
            np.testing.assert_allclose(got["x"][k], inputs.x[x].astype(np.float16), atol=2e-3)
            assert got["snr"][k] == pytest.approx(inputs.snr[x], rel=1e-4)
    truth = drawn.cube.truth
    np.testing.assert_allclose(got["y"][:, 0], truth.log_age[ys, xs], rtol=1e-6)
    np.testing.assert_allclose(got["y"][:, 1], truth.mh[ys, xs], rtol=1e-6)
    assert np.all(got["snr"] >= 3.0) and np.all(got["layout"] == drawn.cube.layout)


def test_a_family_left_out_is_never_drawn(library):
    got = cube_spaxel_set(
        "manga", 6, 7, families=("delayed", "bursty"), per_cube=5, library=library, **DRAW
    )
    assert set(got["family"]) <= {"delayed", "bursty"} and len(set(got["family"])) == 2
    assert len(np.unique(got["spaxel"][:, 0])) == 6
    assert got["x"].dtype == np.float16 and got["x"].shape[1:] == (got["x"].shape[1], 2)
    assert np.all(np.isfinite(got["y"])) and set(got["lines"]) == {True, False}


def test_bad_requests_are_refused(library):
    with pytest.raises(GalamInputError, match="n_cubes"):
        cube_spaxel_set("manga", 0, 1, library=library)
    with pytest.raises(GalamInputError, match="per_cube"):
        cube_spaxel_set("manga", 1, 1, per_cube=0, library=library)
    with pytest.raises(GalamInputError):
        cube_spaxel_set("sdss", 1, 1, library=library)
