"""Grouping inputs into galaxies and predicting a catalogue (stand-in model for wiring)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from napari_galam.errors import GalamInputError
from napari_galam.pipeline.catalogue import GalaxyInput, collect_inputs, iter_predict_catalogue
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


#: BOSS's coverage, 3566-10399 Å (the fixture's default is SDSS's, 3802-9117 Å).
BOSS_PIXELS = {"loglam0": 3.5523, "n_pix": 4648}


def edit_spectrum(path: Path, *, zwarning: int | None = None, flux_sign: float = 1.0) -> Path:
    """Set a written SDSS spectrum's ``ZWARNING`` or flip the sign of its flux."""
    from astropy.io import fits

    with fits.open(path, mode="update") as hdus:
        if zwarning is not None:
            hdus["SPECOBJ"].data["ZWARNING"][0] = zwarning
        hdus["COADD"].data["flux"] *= flux_sign
    return path


def flagging_predict(images=None, spectra=None, model="auto"):
    """A stand-in model that flags its third galaxy itself."""
    n = len(spectra if spectra is not None else images)
    reasons = tuple("S/N 3.0 below the training range (>= 4.8)" if k == 2 else "" for k in range(n))
    return SimpleNamespace(
        log_age=np.full(n, 9.5), mh=np.full(n, -0.1), model=model,
        log_age_err=np.full(n, 0.1), mh_err=np.full(n, 0.2),
        ood=np.array([bool(r) for r in reasons]), ood_reason=reasons,
    )  # fmt: skip


def test_a_doubtful_spectrum_is_predicted_and_flagged_and_an_unusable_one_rejected(
    sdss_spectrum_file,
) -> None:
    from napari_galam.models.registry import available_models, spectrum_frame

    if "spectra-only" not in available_models() or spectrum_frame() != "rest":
        pytest.skip("needs the shipped rest-frame spectra-only model card")
    files = {
        "clean": sdss_spectrum_file("clean.fits", redshift=0.05),
        "far": sdss_spectrum_file("far.fits", redshift=0.4, **BOSS_PIXELS),
        "zwarning": edit_spectrum(sdss_spectrum_file("zwarning.fits", redshift=0.1), zwarning=4),
        "negative": edit_spectrum(sdss_spectrum_file("negative.fits"), flux_sign=-1.0),
        "too_far": sdss_spectrum_file("too_far.fits", redshift=0.6, **BOSS_PIXELS),
        "sdss_at_04": sdss_spectrum_file("sdss_at_04.fits", redshift=0.4),
    }
    inputs = [GalaxyInput(name, spectrum=path) for name, path in files.items()]
    rows = {r["source"]: r for r in run_to_end(iter_predict_catalogue(inputs, flagging_predict))}

    assert rows["clean"]["status"] == "ok" and not rows["clean"]["ood"]
    assert rows["clean"]["ood_reason"] == ""
    for name in ("far", "zwarning", "negative"):
        row = rows[name]
        assert row["status"] == "ok" and row["model"] == "spectra-only", row
        assert row["log_age"] == pytest.approx(9.5) and row["mh_err"] == pytest.approx(0.2)
        assert row["ood"] and row["reason"] == "", row
    assert rows["far"]["ood_reason"] == "z = 0.4 outside the training redshifts 0.002-0.3"
    # the model's own reason comes first, the input's after it
    assert rows["zwarning"]["ood_reason"] == (
        "S/N 3.0 below the training range (>= 4.8); SDSS ZWARNING = 4 (SMALL_DELTA_CHI2): "
        "the redshift z = 0.1 is unreliable"
    )
    assert "negative flux in" in rows["negative"]["ood_reason"]
    assert "sign error" in rows["negative"]["ood_reason"]
    # no model input: the rest frame misses the grid by far more than the edge tolerance
    for name, covered in (("too_far", "2229-6500 Å"), ("sdss_at_04", "2716-6513 Å")):
        row = rows[name]
        assert row["status"] == "rejected" and np.isnan(row["log_age"]), row
        assert f"{name}.fits" in row["reason"] and f"covers {covered} in the rest" in row["reason"]
        assert not row["ood"]


def test_an_image_model_row_carries_its_galaxys_redshift_flag(
    galaxy_files: Path, sdss_spectrum_file
) -> None:
    """The image models were trained on the same redshifts: a galaxy beyond them is flagged
    in the image row too; the spectrum-only ZWARNING is not the image's business."""
    from napari_galam.models.registry import available_models

    if "spectra-only" not in available_models():
        pytest.skip("needs the shipped spectra-only model card (its redshift range)")
    far = sdss_spectrum_file("FAR.fits", redshift=0.4, **BOSS_PIXELS)
    shaky = edit_spectrum(sdss_spectrum_file("SHAKY.fits", redshift=0.1), zwarning=4)
    image = galaxy_files / "GAL2.jpg"
    inputs = [
        GalaxyInput("far", image=image, spectrum=far),
        GalaxyInput("shaky", image=image, spectrum=shaky),
    ]
    rows = {
        r["source"]: r
        for r in run_to_end(iter_predict_catalogue(inputs, flagging_predict, model="mmlforgalam"))
    }
    assert rows["far"]["model"] == "mmlforgalam" and rows["far"]["status"] == "ok"
    assert rows["far"]["ood"]
    assert rows["far"]["ood_reason"] == "z = 0.4 outside the training redshifts 0.002-0.3"
    assert not rows["shaky"]["ood"] and rows["shaky"]["ood_reason"] == ""


def test_a_saturated_cutout_the_qa_accepts_is_predicted_and_flagged(tmp_path: Path) -> None:
    """As a clicked galaxy is: the answer is given, the row says why it is doubtful."""
    from hostile_files import write_hostile_files
    from PIL import Image

    saturated = next(
        f.path for f in write_hostile_files(tmp_path / "in") if f.kind == "saturated-cutout"
    )
    clean = tmp_path / "clean.png"
    rgb = np.asarray(Image.open(saturated)).astype(np.float64)
    Image.fromarray((rgb * 0.5).astype(np.uint8)).save(clean)  # the same galaxy, unclipped
    inputs = [GalaxyInput("saturated", image=saturated), GalaxyInput("clean", image=clean)]
    rows = {r["source"]: r for r in run_to_end(iter_predict_catalogue(inputs, flagging_predict))}

    row = rows["saturated"]
    assert row["status"] == "ok" and row["model"] == "mmlforgalam", row
    assert row["log_age"] == pytest.approx(9.5) and row["log_age_err"] == pytest.approx(0.1)
    assert row["ood"] and "saturated core" in row["ood_reason"] and row["reason"] == ""
    assert "saturated.png" in row["ood_reason"]
    assert rows["clean"]["status"] == "ok" and not rows["clean"]["ood"], rows["clean"]


def test_a_spectrum_without_good_pixels_or_redshift_is_still_rejected(sdss_spectrum_file) -> None:
    from astropy.io import fits

    from napari_galam.models.registry import available_models, spectrum_frame

    if "spectra-only" not in available_models() or spectrum_frame() != "rest":
        pytest.skip("needs the shipped rest-frame spectra-only model card")
    no_ivar = sdss_spectrum_file("no_ivar.fits")
    with fits.open(no_ivar, mode="update") as hdus:
        hdus["COADD"].data["ivar"][:] = 0.0
    no_z = sdss_spectrum_file("no_z.fits")
    with fits.open(no_z, mode="update") as hdus:
        hdus["SPECOBJ"].data["Z"][0] = np.nan
    inputs = [GalaxyInput("no_ivar", spectrum=no_ivar), GalaxyInput("no_z", spectrum=no_z)]
    rows = {r["source"]: r for r in run_to_end(iter_predict_catalogue(inputs, flagging_predict))}
    assert rows["no_ivar"]["status"] == "rejected"
    assert "no pixel has a positive inverse variance" in rows["no_ivar"]["reason"]
    assert rows["no_z"]["status"] == "rejected"
    assert "needs the galaxy's redshift" in rows["no_z"]["reason"]


@pytest.mark.tensorflow
def test_the_shipped_model_predicts_doubtful_sdss_files_with_errors_and_a_flag(
    tmp_path: Path, sdss_spectrum_file
) -> None:
    from napari_galam.models.inference import predict_galaxies
    from napari_galam.models.registry import available_models
    from napari_galam.simulate.datasets import simulate_sdss_galaxy
    from napari_galam.simulate.writers import write_sdss_spectrum

    if "spectra-only" not in available_models():
        pytest.skip("no shipped spectra-only model")
    galaxy = simulate_sdss_galaxy(np.random.default_rng(5), blend_probability=0.0)
    assert 0.002 <= galaxy.spectrum.redshift <= 0.3
    clean = write_sdss_spectrum(tmp_path / "clean.fits", galaxy.spectrum)
    flagged = write_sdss_spectrum(tmp_path / "zwarning.fits", galaxy.spectrum, fiber=2)
    files = {
        "clean": clean,
        "zwarning": edit_spectrum(flagged, zwarning=4),
        "far": sdss_spectrum_file("far.fits", redshift=0.4, snr=30.0, **BOSS_PIXELS),
    }
    inputs = [GalaxyInput(name, spectrum=path) for name, path in files.items()]
    rows = {r["source"]: r for r in run_to_end(iter_predict_catalogue(inputs, predict_galaxies))}
    for row in rows.values():
        assert row["status"] == "ok" and row["model"] == "spectra-only", row
        assert np.isfinite(row["log_age"]) and np.isfinite(row["mh"]), row
        assert 0 < row["log_age_err"] < 2 and 0 < row["mh_err"] < 2, row
    assert (
        rows["far"]["ood"] and "z = 0.4 outside the training redshifts" in rows["far"]["ood_reason"]
    )
    assert rows["zwarning"]["ood"] and "ZWARNING = 4" in rows["zwarning"]["ood_reason"]
    assert "redshift" not in rows["clean"]["ood_reason"]
    assert "ZWARNING" not in rows["clean"]["ood_reason"]
    # the flag marks the answer; it does not change it
    for key in ("log_age", "log_age_err", "mh", "mh_err"):
        assert rows["zwarning"][key] == pytest.approx(rows["clean"][key], abs=1e-5)
