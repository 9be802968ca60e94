"""Batch galaxy QA: table, contact sheets, resuming, unreadable files and `galam qa`."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from qa_scenes import faint_companion, pair, single

from napari_galam.cli import main
from napari_galam.errors import GalamInputError
from napari_galam.pipeline.qa import QA_COLUMNS, QA_STATUSES, QAParameters
from napari_galam.pipeline.qa_batch import iter_qa, list_qa_inputs, run_qa
from napari_galam.progress import Progress, run_to_end


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


def test_galam_qa_writes_table_and_sheets_and_resumes(cutout_folder, tmp_path, capsys):
    out = tmp_path / "qa"
    status = main(["qa", str(cutout_folder), "--out", str(out), "--quiet"])
    assert status == 0
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
    steps = []
    result = run_to_end(iter_qa(cutout_folder, out), on_progress=steps.append)
    assert len(result.resumed) == 7 == len(result.table)
    assert steps and all(isinstance(step, Progress) for step in steps)
    assert steps[-1].done == steps[-1].total == 7


def test_interrupted_run_resumes_without_redoing(cutout_folder, tmp_path):
    out = tmp_path / "qa"
    parts = out / ".partitions"
    files = list_qa_inputs(cutout_folder)
    run = iter_qa(files, out, contact_sheets=False, partition_size=1)
    for step in run:
        if step.done == 3:
            break
    run.close()  # interrupted after three files
    finished = sorted(parts.glob("part-*.ecsv"))
    assert len(finished) == 3 and not (out / "qa.ecsv").exists()
    first = {str(row["file"]) for path in finished for row in Table.read(path)}
    # A partition file cut short by a crash is ignored and that file redone.
    (parts / ".part-00003.ecsv.x1y2.tmp.ecsv").write_text("# %ECSV 1.0\n# ---\nfile")
    result = run_to_end(iter_qa(files, out, contact_sheets=True, partition_size=1))
    assert len(result.resumed) == 3
    assert set(result.resumed) == first
    assert not list(parts.glob(".part-*"))
    table = run_qa(files, out, partition_size=1)
    assert len(table) == len(files)
    assert (out / "contact_sheets" / "page_0001.png").exists()
    rows = [Table.read(path)[0] for path in finished]
    assert all(row["status"] in QA_STATUSES for row in rows)
    # Resuming with other parameters would mix two runs: refused.
    with pytest.raises(GalamInputError, match="different options"):
        run_qa(files, out, QAParameters(nsigma=2.0), partition_size=1)


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




def test_galam_qa_options_come_from_the_parameter_specs(tmp_path, capsys):
    import argparse

    from napari_galam._cli.qa import add_parameter_options, parameters_from_args
    from napari_galam.parameters import parameter_specs

    parser = argparse.ArgumentParser()
    add_parameter_options(parser)
    assert parameters_from_args(parser.parse_args([])) == QAParameters()
    options = {action.dest: action.option_strings for action in parser._actions}
    for spec in parameter_specs(QAParameters):
        assert spec.option in options[spec.name]
    args = parser.parse_args(
        ["--npixels", "7", "--nlevels", "32", "--max-centre-offset", "none", "--intruder-check"]
    )
    params = parameters_from_args(args)
    assert (params.n_pixels, params.n_levels) == (7, 32)
    assert params.max_centre_offset is None and params.intruder_check is True
    assert parameters_from_args(parser.parse_args(["--n-pixels", "7"])).n_pixels == 7
    with pytest.raises(GalamInputError, match="--mask-scale: expected 0.5 to 5"):
        parameters_from_args(parser.parse_args(["--mask-scale", "9"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--edges", "sobel"])
    assert "invalid choice" in capsys.readouterr().err


def test_a_partition_that_raises_is_failed_rows_and_the_run_goes_on(
    cutout_folder, tmp_path, monkeypatch
):
    from napari_galam.pipeline import qa_batch

    real = qa_batch.assess_galaxy

    def flaky(image, params=None):
        if np.asarray(image).dtype == np.float32:  # the FITS cutouts
            raise RuntimeError("boom")
        return real(image, params)

    monkeypatch.setattr(qa_batch, "assess_galaxy", flaky)
    out = tmp_path / "qa"
    table = run_qa(cutout_folder, out, partition_size=1)
    failed = {str(row["file"]).rsplit("/", 1)[-1] for row in table if row["status"] == "failed"}
    assert failed == {"flat.fits", "gal_fits.fits"}
    assert all("RuntimeError: boom" in row["reason"] for row in table if row["status"] == "failed")
    assert "failed" in table.meta["statuses"]
    assert (out / "contact_sheets" / "page_0001.png").exists()
