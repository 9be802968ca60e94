"""Grouping inputs into galaxies and predicting a catalogue (stand-in model for wiring)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from napari_galam.errors import GalamInputError
from napari_galam.pipeline.catalogue import collect_inputs, iter_predict_catalogue
from napari_galam.progress import run_to_end


@pytest.fixture
def galaxy_files(tmp_path: Path, sdss_spectrum_file):
    from napari_galam.pipeline.qa import assess_galaxy
    from napari_galam.simulate.datasets import simulate_sdss_galaxy
    from napari_galam.simulate.writers import write_jpeg

    rng = np.random.default_rng(4)
    rgb = next(  # an isolated simulated SDSS galaxy that the QA accepts
        g.cutout.rgb
        for g in (simulate_sdss_galaxy(rng, blend_probability=0.0) for _ in range(10))
        if assess_galaxy(g.cutout.rgb).status == "accepted"
    )
    write_jpeg(tmp_path / "GAL1.jpg", rgb)
    write_jpeg(tmp_path / "GAL2.jpg", rgb)
    sdss_spectrum_file("GAL1.fits")  # same stem as GAL1.jpg: one galaxy
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "notes.txt").write_text("ignored")
    return tmp_path


def fake_predict(images=None, spectra=None, model="auto"):
    data = spectra if spectra is not None else images
    n = len(data)
    return SimpleNamespace(log_age=np.full(n, 9.5), mh=np.full(n, -0.1), model=model)


def test_files_pair_by_stem_and_every_input_gets_a_row(galaxy_files: Path) -> None:
    inputs = collect_inputs([galaxy_files])
    by_source = {g.source: g for g in inputs}
    assert set(by_source) == {"GAL1", "GAL2", "broken"}
    assert by_source["GAL1"].image and by_source["GAL1"].spectrum
    progress = []
    rows = run_to_end(iter_predict_catalogue(inputs, fake_predict), on_progress=progress.append)
    assert len(progress) == 3
    rows = {r["source"]: r for r in rows}
    assert rows["GAL1"]["model"] == "spectra-only"  # auto prefers the spectrum
    assert rows["GAL2"]["model"] == "mmlforgalam" and rows["GAL2"]["status"] == "ok"
    assert rows["broken"]["status"] == "rejected" and "broken.png" in rows["broken"]["reason"]
    assert rows["GAL2"]["log_age"] == pytest.approx(9.5)


def test_catalogue_columns_and_errors(galaxy_files: Path) -> None:
    catalogue = galaxy_files / "cat.csv"
    catalogue.write_text("source,image,spectrum\nA,GAL2.jpg,\nB,,GAL1.fits\n")
    inputs = collect_inputs([catalogue])
    assert [(g.source, bool(g.image), bool(g.spectrum)) for g in inputs] == [
        ("A", True, False),
        ("B", False, True),
    ]
    rows = run_to_end(iter_predict_catalogue(inputs, fake_predict, model="image-only"))
    assert rows[0]["status"] == "ok"
    assert rows[1]["status"] == "rejected" and "needs an image" in rows[1]["reason"]
    bad = galaxy_files / "bad.csv"
    bad.write_text("name,ra\nx,1\n")
    with pytest.raises(GalamInputError, match="bad.csv.*column 'image'"):
        collect_inputs([bad])
    with pytest.raises(GalamInputError, match="no cutouts or spectra"):
        collect_inputs([galaxy_files / "notes.txt"])
