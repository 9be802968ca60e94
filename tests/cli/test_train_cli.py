"""``galam train`` end to end in a subprocess (TensorFlow stays out of the test process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from galam_cli import galam

from napari_galam.models.registry import available_models, read_model_card
from napari_galam.simulate.datasets import simulate_dataset


def test_train_cutouts_exports_cards_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "cutouts.h5"
    simulate_dataset(data, kind="cutouts", n=24, seed=3)
    work, weights = tmp_path / "run", tmp_path / "weights"
    args = ("train", str(data), "-w", str(work), "--epochs", "1", "--batch-size", "8")
    first = galam(*args, "--qa", "--export", "--weights-dir", str(weights))
    assert first.returncode == 0, first.stderr[-2000:]
    import h5py

    with h5py.File(work / "qa_cutouts.h5", "r") as qa, h5py.File(data, "r") as raw:
        accepted = qa["truth/qa_accepted"][()]
        usable = accepted & ~raw["truth/blended"][()]
        assert qa["images/rgb"].shape == (24, 128, 128, 3)
        assert qa["images/rgb"][np.flatnonzero(~accepted)].max(initial=0) == 0
    report, _ = json.JSONDecoder().raw_decode(first.stdout[first.stdout.index("\n{") + 1 :])
    assert sum(report["split_sizes"].values()) == int(usable.sum())
    assert "m1 epoch   1/1" in first.stdout and "m4 epoch   1/1" in first.stdout
    assert available_models(weights) == ["image-only", "mmlforgalam", "spectra-only"]
    card = read_model_card("mmlforgalam", directory=weights)
    assert card["configuration"]["name"] == "compact"
    assert card["input"]["shape"] == [64, 64, 3]
    assert card["training_data"]["kind"] == "cutouts" and card["training_data"]["seed"] == 3
    assert json.loads((work / "metrics.json").read_text())["mmlforgalam"]["log_age"]["n"] > 0

    again = galam(*args, "--qa")  # the QA cache is reused
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("finished earlier; skipped") == 4


def test_train_cubes_and_clear_errors(tmp_path: Path) -> None:
    data = tmp_path / "cubes.h5"
    simulate_dataset(data, kind="cubes", n=3, seed=1, store_cubes=False)
    done = galam("train", str(data), "-w", str(tmp_path / "sed"), "--epochs", "1", "--set", "A")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sed_log_age epoch   1/1" in done.stdout and "sed_mh epoch   1/1" in done.stdout
    missing = galam("train", str(tmp_path / "nope.h5"), "-w", str(tmp_path / "x"))
    assert missing.returncode == 2 and "no such dataset file" in missing.stderr
