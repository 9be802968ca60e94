"""Batch galaxy QA: verdicts, table, contact sheets, resuming and unreadable files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_galam.cli import main
from napari_galam.errors import GalamInputError
from napari_galam.pipeline.qa import (
    QA_COLUMNS,
    QA_STATUSES,
    QAParameters,
    assess_galaxy,
    iter_qa,
    list_qa_inputs,
    run_qa,
)


def blob(shape, row, col, amplitude, radius, axis_ratio=1.0, angle_deg=0.0):
    rows, cols = np.indices(shape, dtype=float)
    theta = np.radians(angle_deg)
    dx, dy = cols - col, rows - row
    along = dx * np.cos(theta) + dy * np.sin(theta)
    across = (-dx * np.sin(theta) + dy * np.cos(theta)) / axis_ratio
    return amplitude * np.exp(-((np.hypot(along, across) / radius) ** 0.8))


def single(seed=0):
    rng = np.random.default_rng(seed)
    return blob((128, 128), 64, 64, 150, 5, 0.6, 30) + rng.normal(0, 1, (128, 128))


def pair(seed=0):
    rng = np.random.default_rng(seed)
    image = blob((128, 128), 64, 58, 150, 5) + blob((128, 128), 64, 72, 80, 4)
    return image + rng.normal(0, 1, (128, 128))


@pytest.fixture
def cutout_folder(tmp_path):
    from astropy.io import fits
    from PIL import Image

    folder = tmp_path / "cutouts"
    folder.mkdir()
    for i in range(4):
        image = single(i) if i % 2 == 0 else pair(i)
        rgb = np.clip(np.stack([image * 1.5] * 3, axis=-1), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"gal{i}.png")
    fits.writeto(folder / "gal_fits.fits", single(9).astype(np.float32))
    fits.writeto(folder / "flat.fits", np.zeros((64, 64), dtype=np.float32))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    return folder


def test_assess_galaxy_verdicts():
    accepted = assess_galaxy(single())
    assert accepted.status == "accepted" and accepted.reason == ""
    assert accepted.model_input.shape == (128, 128)
    blended = assess_galaxy(pair())
    assert blended.status == "blended" and "2 deblended sources" in blended.reason
    row = blended.row("x.png")
    assert list(row) == list(QA_COLUMNS) and row["blended"] is True and row["n_sources"] == 2
    flat = assess_galaxy(np.ones((32, 32)))
    assert flat.status == "flat" and flat.deblend is None and flat.model_input is None
    assert assess_galaxy(pair(), QAParameters(method="photutils")).status == "blended"


def test_galam_qa_writes_table_and_sheets_and_resumes(cutout_folder, tmp_path, capsys):
    out = tmp_path / "qa"
    status = main(["qa", str(cutout_folder), "--out", str(out), "--quiet"])
    assert status == 0
    from astropy.table import Table

    table = Table.read(out / "qa.ecsv", format="ascii.ecsv")
    assert len(table) == 7 and list(table.colnames) == list(QA_COLUMNS)
    by_name = {str(row["file"]).rsplit("/", 1)[-1]: row for row in table}
    assert by_name["broken.jpg"]["status"] == "unreadable"
    assert "broken.jpg" in by_name["broken.jpg"]["reason"]
    assert by_name["flat.fits"]["status"] == "flat"
    assert by_name["gal0.png"]["status"] == "accepted"
    assert by_name["gal1.png"]["status"] == "blended" and by_name["gal1.png"]["blended"]
    assert by_name["gal_fits.fits"]["status"] == "accepted"
    assert abs(by_name["gal_fits.fits"]["x"] - 64) < 1.5
    assert table.meta["parameters"]["n_levels"] == 90
    csv = Table.read(out / "qa.csv", format="csv")
    assert len(csv) == 7
    sheet = out / "contact_sheets" / "page_0001.png"
    assert sheet.stat().st_size > 10_000
    from PIL import Image

    with Image.open(sheet) as png:
        assert png.size[0] > 500
    # A rerun skips everything that is done.
    steps = list(iter_qa(cutout_folder, out))
    assert len(steps) == 7 and all(step.skipped for step in steps)


def test_interrupted_run_resumes_without_redoing(cutout_folder, tmp_path):
    out = tmp_path / "qa"
    files = list_qa_inputs(cutout_folder)
    run = iter_qa(files, out, contact_sheets=False)
    first = [next(run), next(run), next(run)]
    run.close()  # interrupted after three files
    lines = (out / "qa_partial.jsonl").read_text().splitlines()
    assert len(lines) == 3 and not (out / "qa.ecsv").exists()
    # A line cut short by a crash is ignored and that file redone.
    with open(out / "qa_partial.jsonl", "a") as handle:
        handle.write('{"file": "half')
    steps = list(iter_qa(files, out, contact_sheets=True))
    assert sum(step.skipped for step in steps) == 3
    assert {s.row["file"] for s in steps if s.skipped} == {s.row["file"] for s in first}
    table = run_qa(files, out)
    assert len(table) == len(files)
    assert (out / "contact_sheets" / "page_0001.png").exists()
    rows = [json.loads(x) for x in (out / "qa_partial.jsonl").read_text().splitlines()[:3]]
    assert all("status" in row for row in rows)


def test_catalogue_input_and_errors(cutout_folder, tmp_path):
    catalogue = tmp_path / "cat.csv"
    catalogue.write_text("file,ra\ncutouts/gal0.png,1.0\ncutouts/missing.png,2.0\n")
    table = run_qa(catalogue, tmp_path / "out", contact_sheets=False)
    assert list(table["status"]) == ["accepted", "unreadable"]
    assert "not found" in table["reason"][1]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,ra\na,1\n")
    with pytest.raises(GalamInputError, match="column 'file'"):
        list_qa_inputs(bad)
    with pytest.raises(GalamInputError, match="no such"):
        list_qa_inputs(tmp_path / "nothing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["qa", str(empty), "--out", str(tmp_path / "o2"), "--quiet"]) == 2


def test_two_workers_give_the_same_table(cutout_folder, tmp_path):
    one = run_qa(cutout_folder, tmp_path / "one", contact_sheets=False)
    two = run_qa(cutout_folder, tmp_path / "two", contact_sheets=False, workers=2)
    assert list(one["status"]) == list(two["status"])
    np.testing.assert_allclose(one["x"], two["x"], equal_nan=True)


def test_simulated_hdf5_dataset_is_a_source(tmp_path):
    import h5py

    path = tmp_path / "sim.h5"
    images = [single(0), pair(1), np.zeros((128, 128))]
    rgb = np.stack([np.clip(np.stack([im * 1.5] * 3, -1), 0, 255) for im in images])
    with h5py.File(path, "w") as handle:
        handle.create_dataset("images/rgb", data=rgb.astype(np.uint8))
    items = list_qa_inputs(path)
    assert [str(p) for p in items] == [f"{path}#0", f"{path}#1", f"{path}#2"]
    table = run_qa(path, tmp_path / "out")
    assert list(table["status"]) == ["accepted", "blended", "flat"]
    assert (tmp_path / "out" / "contact_sheets" / "page_0001.png").exists()
    empty = tmp_path / "other.h5"
    with h5py.File(empty, "w") as handle:
        handle.create_dataset("spectra/flux", data=np.zeros((2, 5)))
    with pytest.raises(GalamInputError, match="images/rgb"):
        list_qa_inputs(empty)


def faint_companion(amplitude=30.0, seed=3):
    rng = np.random.default_rng(seed)
    image = blob((128, 128), 63.5, 63.5, 200.0, 8.0, 0.75, 30.0)
    image = image + blob((128, 128), 72.5, 54.5, amplitude, 3.0)
    return image + rng.normal(0, 1, (128, 128))


def test_companion_check_is_a_parameter_and_off_gives_the_seed():
    from napari_galam.pipeline.qa import QAParameters

    image = faint_companion()
    seed = assess_galaxy(image)  # default: the paper's procedure
    assert seed.status == "accepted" and seed.companions is None
    checked = assess_galaxy(image, QAParameters(companion_check=True))
    assert checked.status == "blended"
    assert "rotation residual" in checked.reason
    assert checked.companions.n_companions == 1
    row = checked.row("x.fits")
    assert row["n_companions"] == 1 and row["blended"] is True
    # The companion check leaves the mask (the seed's contour ellipse) as it was.
    assert seed.shape is not None
    assert np.array_equal(seed.masking.mask, checked.masking.mask)


def test_galam_qa_companion_check_flag(tmp_path, capsys):
    from astropy.io import fits

    folder = tmp_path / "in"
    folder.mkdir()
    fits.writeto(folder / "companion.fits", faint_companion().astype(np.float32))
    assert main(["qa", str(folder), "--out", str(tmp_path / "a"), "--quiet", "--no-sheets"]) == 0
    assert "accepted 1" in capsys.readouterr().out
    out = tmp_path / "b"
    assert main(["qa", str(folder), "--out", str(out), "--quiet", "--companion-check"]) == 0
    assert "blended 1" in capsys.readouterr().out
    assert (out / "contact_sheets" / "page_0001.png").exists()
    assert main(["qa", str(folder), "--out", str(out), "--companion-nsigma", "0"]) != 0
    assert "--companion-nsigma: must be > 0" in capsys.readouterr().err


def test_an_ellipse_over_black_pixels_is_a_status_not_a_crash():
    # A bright galaxy beside a black hole in the picture: the ellipse around the centre
    # holds only zeros (the crash found on the Hubble Deep Field at row 753, col 566).
    from skimage import data

    from napari_galam.core.cutout import cutout_around

    hdf = data.hubble_deep_field()
    qa = assess_galaxy(np.asarray(cutout_around(hdf, 753, 566, 96).data))
    assert qa.status in QA_STATUSES
    assert qa.status == "black_mask" and "black" in qa.reason


def test_companion_check_flags_a_neighbour_segment_reaching_into_the_mask():
    # Hubble Deep Field, row 204, col 505: a faint elongated galaxy whose masking ellipse
    # takes in part of two deblended neighbours whose peaks lie outside it. The seed's
    # rule counts peaks only; the companion check also counts such intruding segments.
    from skimage import data

    from napari_galam.core.cutout import cutout_around
    from napari_galam.pipeline.qa import QAParameters

    cutout = np.asarray(cutout_around(data.hubble_deep_field(), 204, 505, 128).data)
    seed = assess_galaxy(cutout)
    assert seed.status == "accepted"
    params = QAParameters(companion_check=True, intruder_check=True, max_centre_offset=None)
    checked = assess_galaxy(cutout, params)
    assert checked.status == "blended" and "reaching" in checked.reason
    without = assess_galaxy(cutout, QAParameters(companion_check=True, max_centre_offset=None))
    assert "reaching" not in without.reason  # the intruder rule is opt-in
    labels = checked.deblend.segments[checked.masking.mask]
    others = set(np.unique(labels[labels > 0])) - set(checked.deblend.target_labels)
    assert others


def _gaussian(row, col, amplitude, sigma, axis_ratio=1.0, shape=(128, 128)):
    rows, cols = np.indices(shape, dtype=float)
    return amplitude * np.exp(
        -(((rows - row) / axis_ratio) ** 2 + (cols - col) ** 2) / (2 * sigma * sigma)
    )


def test_extended_check_does_not_count_a_knot_with_a_small_share_of_the_light():
    # A sharp knot with 1.5% of the galaxy's light (a spiral's star-forming clump): the
    # seed's deblending splits it off and calls the galaxy blended; the extended check
    # counts only sources with >= 5% of the brightest one's light inside the mask.
    from napari_galam.pipeline.qa import source_shares

    rng = np.random.default_rng(5)
    image = _gaussian(63.5, 63.5, 150.0, 9.0, 0.8) + _gaussian(63.5 + 9.6, 63.5 - 12.8, 150.0, 1.0)
    image = image + rng.normal(0, 1, image.shape)
    seed = assess_galaxy(image)
    assert seed.status == "blended" and seed.deblend.n_sources == 2
    extended = assess_galaxy(image, QAParameters(companion_check=True))
    shares = source_shares(extended.deblend, extended.masking.mask)
    assert shares[0] == 1.0 and 0.0 < shares[1] < 0.05
    assert extended.status == "accepted", extended.reason
    counted = assess_galaxy(image, QAParameters(companion_check=True, min_source_share=0.0))
    assert counted.status == "blended" and "2 deblended sources" in counted.reason
    # A real neighbour (a quarter of the light) still counts.
    brighter = image + _gaussian(63.5 - 12.0, 63.5 + 9.0, 60.0, 4.0)
    assert assess_galaxy(brighter, QAParameters(companion_check=True)).status == "blended"


def test_extended_check_flags_a_galaxy_centred_off_the_cutout_centre():
    # Two galaxies of similar brightness closer than ~3 PSF FWHM make one peak and one
    # ellipse centred between them; in a cutout centred on the target's catalogue
    # position that shows as an offset. A cutout taken around a click skips the test.
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 1, (128, 128))
    pair = _gaussian(63.5, 63.5, 120.0, 6.0) + _gaussian(63.5, 72.5, 120.0, 6.0) + noise
    seed = assess_galaxy(pair)
    assert seed.status == "accepted" and seed.deblend.n_sources == 1  # one merged peak
    extended = assess_galaxy(pair, QAParameters(companion_check=True))
    assert extended.status == "blended"
    assert "centred" in extended.reason and "from the cutout centre" in extended.reason
    assert extended.row("pair.fits")["blended"] is True
    assert abs(extended.masking.target.x - 68.0) < 1.5
    clicked = assess_galaxy(pair, QAParameters(companion_check=True, max_centre_offset=None))
    assert "centred" not in clicked.reason
    centred = _gaussian(63.5, 63.5, 120.0, 6.0, 0.7) + noise
    assert assess_galaxy(centred, QAParameters(companion_check=True)).status == "accepted"
