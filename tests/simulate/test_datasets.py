"""HDF5 datasets, the dataset card, determinism, the CLI and the sample-data objects."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from napari_galam.cli import main
from napari_galam.errors import GalamInputError
from napari_galam.progress import run_to_end
from napari_galam.simulate.datasets import (
    iter_simulate_cutouts,
    simulate_dataset,
    simulate_sdss_galaxy,
)


def test_sdss_galaxy_is_deterministic_for_a_seed(library):
    first = simulate_sdss_galaxy(np.random.default_rng(21), library=library)
    second = simulate_sdss_galaxy(np.random.default_rng(21), library=library)
    np.testing.assert_array_equal(first.cutout.rgb, second.cutout.rgb)
    np.testing.assert_array_equal(first.spectrum.flux, second.spectrum.flux)
    assert first.spectrum.log_age == second.spectrum.log_age
    other = simulate_sdss_galaxy(np.random.default_rng(22), library=library)
    assert not np.array_equal(first.cutout.rgb, other.cutout.rgb)


def test_cutout_dataset_layout_card_and_determinism(library, tmp_path):
    path = tmp_path / "train.h5"
    steps = []
    card = run_to_end(
        iter_simulate_cutouts(path, n=4, seed=5, library=library), on_progress=steps.append
    )
    assert [step.done for step in steps] == [1, 2, 3, 4]
    assert card["n"] == 4
    assert not (tmp_path / "train.h5.part").exists()
    with h5py.File(path) as handle:
        assert handle["images/rgb"].shape == (4, 128, 128, 3)
        assert handle["images/rgb"].dtype == np.uint8
        assert handle["images/rgb"].compression == "gzip"
        assert handle["spectra/flux"].shape == (4, 4171)
        assert handle["spectra/loglam_flux"].shape == (4, handle["spectra/loglam"].shape[0])
        assert handle["truth/segmentation"].shape == (4, 128, 128)
        log_age = handle["labels/log_age"][:]
        mh = handle["labels/mh"][:]
        assert np.all((log_age > 7.7) & (log_age < 10.3)) and np.all((mh > -1.8) & (mh < 0.3))
        card = dict(handle.attrs)
        assert card["seed"] == 5 and card["n"] == 4 and card["kind"] == "cutouts"
        assert "redshift" in json.loads(card["parameter_ranges"])
        first_rgb = handle["images/rgb"][:]
    on_disk = json.loads((tmp_path / "train.json").read_text())
    assert on_disk["generator_version"] and on_disk["sizes"]["spectrum_1a"] == 4171
    again = tmp_path / "again.h5"
    simulate_dataset(again, n=4, seed=5, library=library)
    with h5py.File(again) as handle:
        np.testing.assert_array_equal(handle["images/rgb"][:], first_rgb)
        np.testing.assert_array_equal(handle["labels/log_age"][:], log_age)


def test_cube_dataset_without_cubes(library, tmp_path):
    path = tmp_path / "cubes.h5"
    card = simulate_dataset(path, kind="cubes", n=1, seed=3, library=library, store_cubes=False)
    assert card["kind"] == "cubes"
    with h5py.File(path) as handle:
        assert "cubes/flux" not in handle
        assert handle["maps/log_age"].shape == (1, 73, 78)
        n_filters = handle["seds/filter_names"].shape[0]
        assert handle["seds/flux"].shape == (1, 73, 78, n_filters)
        assert np.isfinite(handle["gradients/gradient_log_age"][0])


def test_dataset_parameters_are_validated(tmp_path):
    with pytest.raises(GalamInputError, match="positive number"):
        simulate_dataset(tmp_path / "x.h5", n=0)
    with pytest.raises(GalamInputError, match="kind"):
        simulate_dataset(tmp_path / "x.h5", kind="movies", n=1)
    with pytest.raises(GalamInputError, match="does not exist"):
        simulate_dataset(tmp_path / "missing" / "x.h5", n=1)


def test_galam_simulate_command(tmp_path, capsys):
    out = tmp_path / "cli.h5"
    assert main(["simulate", "-n", "2", "--seed", "1", "-o", str(out), "--quiet"]) == 0
    assert out.exists() and (tmp_path / "cli.json").exists()
    assert main(["simulate", "-n", "-3", "-o", str(out), "--quiet"]) == 2
    assert "positive number" in capsys.readouterr().err


def test_sample_data_objects():
    from napari_galam.simulate.samples import simulated_jpas_cube, simulated_sdss_field

    field = simulated_sdss_field(0, shape=(256, 256), n_galaxies=6, n_stars=2)
    assert field.rgb.shape == (256, 256, 3)
    assert len(field.truth.sources) == 8
    assert field.truth.sources["blended"].any()
    cube = simulated_jpas_cube(0)
    assert cube.flux.shape == (54, 96, 96)


def test_simulate_imports_neither_tensorflow_nor_napari():
    code = (
        "import sys, napari_galam.simulate.datasets, napari_galam.simulate.samples, "
        "napari_galam.simulate.writers, napari_galam._cli.simulate; "
        "assert 'tensorflow' not in sys.modules and 'napari' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
