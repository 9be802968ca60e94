"""Registry: saving with a model card, hash check, safe loading, caching, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from napari_galam.errors import GalamError
from napari_galam.models import registry

pytestmark = pytest.mark.tensorflow


@pytest.fixture
def weights(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(folder))
    registry.clear_model_cache()
    yield folder
    registry.clear_model_cache()


def save_tiny(name: str = "image-only"):
    from galam_model_helpers import TINY

    from napari_galam.models.architectures import build_m3
    from napari_galam.models.inference import model_input_spec

    model = build_m3(TINY, target_mean=[9.5, -0.5], target_std=[0.3, 0.3])
    card = registry.save_model_with_card(
        model,
        name,
        architecture="m3",
        configuration=TINY.to_dict(),
        input_spec=model_input_spec("image-only", TINY.to_dict()),
        training_data={"name": "none", "n_galaxies": 0},
        metrics={"log_age": {"sd": 0.5}},
    )
    registry.install_uncertainty(name, MINIMAL_UNCERTAINTY, {}, None)
    return model, card


#: The least a card must say about its uncertainty to be loaded.
MINIMAL_UNCERTAINTY = {"method": "test", "log_age": {"scale": 1.0}, "mh": {"scale": 1.0}}


def test_round_trip_with_card_and_cache(weights):
    model, card_path = save_tiny()
    assert card_path == weights / "image-only.json"
    card = json.loads(card_path.read_text())
    assert card["sha256"] == registry.file_sha256(weights / "image-only.keras")
    assert card["input"]["shape"] == [16, 16, 3]
    assert card["frameworks"]["keras"].startswith("3.")
    assert card["n_parameters"] == model.count_params()
    assert not [p.name for p in weights.iterdir() if p.name.startswith(".")]  # no temp files left
    assert registry.available_models() == ["image-only"]

    loaded = registry.load_model("image-only")
    x = np.random.default_rng(0).random((3, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(
        loaded.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-5, atol=1e-6
    )
    assert registry.load_model("image-only") is loaded  # cached


def test_tampered_file_is_refused(weights):
    save_tiny()
    registry.load_model("image-only")  # warm in the cache: a later change must still be seen
    path = weights / "image-only.keras"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(GalamError, match="does not match its model card"):
        registry.load_model("image-only")


def test_foreign_file_with_matching_card_is_refused(weights):
    save_tiny()
    path = weights / "image-only.keras"
    with zipfile.ZipFile(path, "w") as archive:  # a zip, but no Keras model inside
        archive.writestr("hello.txt", "not a model")
    card_path = weights / "image-only.json"
    card = json.loads(card_path.read_text())
    card["sha256"] = registry.file_sha256(path)
    card_path.write_text(json.dumps(card))
    with pytest.raises(GalamError, match="could not be loaded as a Keras model"):
        registry.load_model("image-only")


def test_model_with_a_lambda_layer_is_not_loaded(weights):
    """safe_mode=True: a file carrying Python bytecode (a Lambda layer) is refused."""
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    registry.save_model_with_card(
        model, "lambda-model", architecture="x", configuration={}, input_spec={}, directory=weights
    )
    registry.install_uncertainty("lambda-model", MINIMAL_UNCERTAINTY, {}, None)
    with pytest.raises(GalamError, match="could not be loaded"):
        registry.load_model("lambda-model")


def test_wrong_name_lists_available_models(weights):
    save_tiny("image-only")
    save_tiny("spectra-only")
    with pytest.raises(GalamError, match=r"available models: image-only, spectra-only"):
        registry.load_model("mmlforgalamm")
    with pytest.raises(GalamError):
        registry.load_model("../etc/passwd")


def test_card_for_another_file_is_refused(weights):
    save_tiny()
    card_path = weights / "image-only.json"
    card = json.loads(card_path.read_text())
    card["file"] = "other.keras"
    card_path.write_text(json.dumps(card))
    with pytest.raises(GalamError, match="do not belong together"):
        registry.load_model("image-only")


def test_card_without_calibrated_uncertainty_is_refused(weights):
    """Issue 20: a model whose answers would come without an error is not loaded."""
    save_tiny()
    card_path = weights / "image-only.json"
    card = json.loads(card_path.read_text())
    gradient = {"log_age": 0.1, "mh": 0.1}
    card["calibration"] = {"gradient": gradient}
    card_path.write_text(json.dumps(card))
    registry.clear_model_cache()
    with pytest.raises(GalamError, match=r"image-only.json has no calibration.uncertainty"):
        registry.load_model("image-only")
    card["calibration"]["uncertainty"] = {"method": "x", "log_age": {"scale": 1.0}}
    card_path.write_text(json.dumps(card))
    with pytest.raises(GalamError, match=r"lacks \['mh', 'mh.scale'\]"):
        registry.load_model("image-only")
    card["calibration"]["uncertainty"]["mh"] = {"scale": -1.0}
    card_path.write_text(json.dumps(card))
    with pytest.raises(GalamError, match="positive"):
        registry.load_model("image-only")
    assert registry.load_model("image-only", require_calibration=False) is not None
    # install_uncertainty keeps the other calibrations (the SED model's gradient errors)
    registry.install_uncertainty("image-only", MINIMAL_UNCERTAINTY, {"snr_min": 3.0}, None)
    card = json.loads(card_path.read_text())
    assert card["calibration"]["gradient"] == gradient
    assert card["calibration"]["ood"] == {"snr_min": 3.0}
    assert registry.load_model("image-only") is not None


def test_uncertainty_head_is_hash_checked(weights):
    from galam_model_helpers import calibrate_tiny_model

    model, _ = save_tiny()
    calibrate_tiny_model("image-only", model, weights)
    head = registry.load_uncertainty_head("image-only")
    assert head.quantities == ("log_age", "mh") and np.all(head.scale > 0)
    path = weights / "image-only.uncertainty.npz"
    assert path.is_file() and path.stat().st_size < 200_000
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(GalamError, match="does not match its model card"):
        registry.load_uncertainty_head("image-only")


def test_calibration_sets_the_95_percent_interval_and_interval_only_reproduces_it(weights):
    """``calibrate_galaxy_model`` stores ``z95`` beside each scale; ``calibrate_interval``
    (``scripts/calibrate_galaxy_uncertainty.py --interval-only``) finds the same one with
    the shipped head, and writing it back leaves the head file and its hash alone."""
    from galam_model_helpers import TINY, calibrate_tiny_model, make_toy_galaxies

    from napari_galam.core.preprocess import preprocess_images
    from napari_galam.models.galaxy_uncertainty import calibrate_interval, interval_section

    model, _ = save_tiny()
    calibrate_tiny_model("image-only", model, weights)
    entry = registry.read_model_card("image-only")["calibration"]["uncertainty"]
    z95 = registry.interval_95("image-only")
    assert [entry[q]["z95"] for q in ("log_age", "mh")] == pytest.approx(z95)
    assert np.all((z95 >= 1.0) & (z95 <= 10.0))
    assert "z95" in entry["method"]
    # the recorded coverage (the calibration split's here: no test split) uses z95, the
    # 95% quantile of 24 ratios (interpolated between the 22nd and 23rd): 22 of 24 inside
    for q in ("log_age", "mh"):
        assert entry["coverage"][q]["within_95"] == pytest.approx(22 / 24)
    toy = make_toy_galaxies(48, size=128, seed=7)  # calibrate_tiny_model's galaxies
    x = preprocess_images(toy["cutouts"], size=TINY.image_size)
    truth = np.column_stack([toy["log_age"], toy["mh"]])
    head = registry.load_uncertainty_head("image-only")
    again, cover = calibrate_interval(
        "image-only",
        model,
        head,
        (x[24:], truth[24:]),
        (x[24:], truth[24:], np.full(24, np.nan)),
        snr_edges=(0.0, np.inf),
    )
    assert again == pytest.approx(z95, rel=1e-5)
    for q in ("log_age", "mh"):
        assert cover[q]["within_95"] == pytest.approx(entry["coverage"][q]["within_95"])
    head_file = weights / "image-only.uncertainty.npz"
    before = head_file.read_bytes()
    section = interval_section(entry, [2.5, 1.5], cover)
    assert section["head"] == entry["head"] and section["splits"] == entry["splits"]
    registry.install_uncertainty("image-only", section, registry.ood_settings("image-only"), None)
    assert registry.interval_95("image-only").tolist() == pytest.approx([2.5, 1.5])
    assert head_file.read_bytes() == before
    assert registry.load_uncertainty_head("image-only").scale == pytest.approx(head.scale)


def test_models_package_imports_without_tensorflow():
    code = (
        "import sys\n"
        "import napari_galam.models, napari_galam.models.architectures, napari_galam.models.registry\n"
        "import napari_galam.models.datasets, napari_galam.models.training_loop\n"
        "import napari_galam.models.train_mmlforgalam, napari_galam.models.train_sed_cnn\n"
        "import napari_galam.models.inference, napari_galam.models.worker\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
        "assert 'keras' not in sys.modules, 'keras imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
