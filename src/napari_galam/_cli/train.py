"""``galam train``: train MMLforGalAM or the SED CNN on a simulated dataset, resumably.

``galam train cutouts.h5 -w runs/mml`` trains M1 -> M2, M3 -> M4 (Wang et al. 2025) on a
file written by ``galam simulate --kind cutouts``; ``galam train cubes.h5 -w runs/sed
--set B`` trains the per-spaxel SED CNNs (Liew-Cain et al. 2021) on ``--kind cubes``.
Rerunning the same command continues from the last checkpoint. ``--qa`` first runs the
Galaxy QA (:func:`napari_galam.pipeline.qa.assess_galaxy`) over the cutouts and trains on
the accepted, masked and cropped model inputs only, as the paper does and as inference
sees them. ``--export`` copies the
final models, with model cards, into the weights registry (the package's weights folder,
or ``--weights-dir``). TensorFlow is imported only inside :func:`run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_galam.errors import GalamInputError

if TYPE_CHECKING:
    from napari_galam.models.training_loop import TrainingProgress

__all__ = ["add_parser", "run", "qa_cutouts"]

_SWITCH = {"auto": None, "on": True, "off": False}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``galam train``."""
    parser = subparsers.add_parser(
        "train",
        help="train the per-galaxy (MMLforGalAM) or per-spaxel (SED CNN) models on an HDF5 dataset",
        description=(
            "Train on a dataset written by 'galam simulate'. Cutout files train M1-M4 in the "
            "papers' staged order; cube files train the SED CNNs (age and [M/H]). 8:1:1 split "
            "by galaxy, Adam with the papers' learning rates, MSE, early stopping; checkpoints "
            "in the work folder make a rerun resume."
        ),
    )
    parser.add_argument("data", type=Path, help="HDF5 dataset from 'galam simulate'")
    parser.add_argument("-w", "--workdir", type=Path, required=True, help="checkpoint folder")
    parser.add_argument(
        "--kind",
        choices=("auto", "cutouts", "cubes"),
        default="auto",
        help="dataset kind (default: from the file's dataset card)",
    )
    parser.add_argument(
        "--config",
        choices=("compact", "compact-rest", "paper"),
        default="compact",
        help="network sizes (compact: CPU; paper: the papers'); compact-rest: compact with "
        "M1 on rest-frame spectra, as the shipped spectra-only model",
    )
    parser.add_argument(
        "--spectra-only",
        action="store_true",
        help="cutouts: train only M1, the spectra-only model",
    )
    parser.add_argument("--epochs", type=int, default=100, help="most epochs per model (100)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patience", type=int, default=None, help="early-stopping patience")
    parser.add_argument("--seed", type=int, default=0, help="split and initialisation seed")
    parser.add_argument(
        "--balance-labels",
        action="store_true",
        help="cutouts: weight galaxies to a flat (log age, [M/H]) distribution so the grid's "
        "edges are not pulled to the middle (not in the paper)",
    )
    parser.add_argument(
        "--set", dest="split", choices=("A", "B"), default="B", help="SED CNN split (default B)"
    )
    parser.add_argument(
        "--qa",
        action="store_true",
        help="cutouts: run the Galaxy QA (ellipse mask, deblend, crop, resize) once over the "
        "cutouts and train on the accepted model inputs only, as the paper does and as "
        "inference sees them (cached in WORKDIR/qa_cutouts.h5)",
    )
    parser.add_argument("--mixed-precision", choices=tuple(_SWITCH), default="auto")
    parser.add_argument("--xla", choices=tuple(_SWITCH), default="auto")
    parser.add_argument(
        "--export", action="store_true", help="save the final models with cards to the registry"
    )
    parser.add_argument("--weights-dir", type=Path, default=None, help="registry folder")
    parser.set_defaults(func=run)


def qa_cutouts(data: Any, path: Path, *, progress_every: int = 500) -> Any:
    """Run the Galaxy QA once over every cutout; return the arrays with the QA'd inputs.

    Accepted galaxies get their masked, cropped, 128 x 128 model input; the others are
    marked unusable (left out of the splits). The result is cached in ``path`` (written
    under a temporary name, moved into place when complete) and reused on reruns.
    """
    import dataclasses
    import os

    import h5py
    import numpy as np

    from napari_galam.pipeline.qa import assess_galaxy

    n = len(data)
    if not path.is_file():
        temporary = path.with_name(path.name + ".part")
        with h5py.File(temporary, "w") as out:
            rgb = out.create_dataset(
                "images/rgb", (n, 128, 128, 3), np.uint8, chunks=(min(n, 64), 128, 128, 3)
            )
            accepted = np.zeros(n, dtype=bool)
            for index in range(n):
                qa = assess_galaxy(np.asarray(data.cutouts[index]))
                if qa.status == "accepted" and qa.model_input is not None:
                    rgb[index] = qa.model_input
                    accepted[index] = True
                if progress_every and (index + 1) % progress_every == 0:
                    print(
                        f"        qa {index + 1}/{n}: {int(accepted[: index + 1].sum())} accepted",
                        flush=True,
                    )
            out.create_dataset("truth/qa_accepted", data=accepted)
        os.replace(temporary, path)
    handle = h5py.File(path, "r")
    accepted = np.asarray(handle["truth/qa_accepted"][()], dtype=bool)
    if accepted.size != n:
        raise GalamInputError(
            f"{path}: QA cache for {accepted.size} cutouts, dataset has {n}; delete it"
        )
    usable = accepted if data.usable is None else accepted & np.asarray(data.usable, dtype=bool)
    print(f"        qa: {int(accepted.sum())} of {n} cutouts accepted", flush=True)
    return dataclasses.replace(
        data,
        cutouts=handle["images/rgb"],
        usable=usable,
        card={**data.card, "qa": "galam qa (accepted only)"},
    )


def _print_epoch(step: TrainingProgress) -> None:
    """Print one finished epoch of a training stage."""
    note = f"  ({step.message})" if step.message else ""
    print(
        f"{step.stage:>10} epoch {step.epoch:>3}/{step.epochs}  loss {step.loss:.4f}  "
        f"val {step.val_loss:.4f}  best {step.best_val_loss:.4f}{note}",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``galam train``."""
    import json

    from napari_galam.models.datasets import open_galaxy_hdf5, open_spaxel_hdf5
    from napari_galam.models.train_mmlforgalam import iter_train_mmlforgalam
    from napari_galam.models.train_sed_cnn import iter_train_sed_cnn
    from napari_galam.models.training_loop import TrainingSettings, export_trained_models
    from napari_galam.progress import run_to_end

    if not args.data.is_file():
        raise GalamInputError(f"{args.data}: no such dataset file")
    kind = args.kind
    if kind == "auto":
        import h5py

        with h5py.File(args.data, "r") as handle:
            kind = str(handle.attrs.get("kind", "cutouts" if "images/rgb" in handle else "cubes"))
    extra = (
        {} if args.patience is None else {"patience": args.patience, "patience_sed": args.patience}
    )
    settings = TrainingSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        mixed_precision=_SWITCH[args.mixed_precision],
        jit_compile=_SWITCH[args.xla],
        balance_labels=args.balance_labels,
        **extra,
    )
    if kind == "cutouts":
        from napari_galam.models.architectures import get_config

        frame = get_config(args.config).spectrum_frame
        data = open_galaxy_hdf5(args.data, spectrum_frame=frame)
        if args.qa:
            args.workdir.mkdir(parents=True, exist_ok=True)
            data = qa_cutouts(data, args.workdir / "qa_cutouts.h5")
        steps = iter_train_mmlforgalam(
            data,
            args.workdir,
            config=args.config,
            settings=settings,
            spectra_only=args.spectra_only,
        )
    elif kind == "cubes":
        data = open_spaxel_hdf5(args.data)
        steps = iter_train_sed_cnn(
            data, args.workdir, split=args.split, config=args.config, settings=settings
        )
    else:
        raise GalamInputError(
            f"{args.data}: dataset kind {kind!r} is neither 'cutouts' nor 'cubes'"
        )
    result = run_to_end(steps, on_progress=_print_epoch)
    print(json.dumps({"split_sizes": result.split_sizes, "metrics": result.metrics}, indent=2))
    if args.export:
        cards = export_trained_models(
            result,
            training_data={**data.card, "file": args.data.name, "n_rows": len(data)},
            directory=args.weights_dir,
        )
        for card in cards:
            print(f"wrote {card} and {card.with_suffix('.keras')}")
    return 0
