"""``galam train``: train MMLforGalAM or the SED CNN on a simulated dataset, resumably.

``galam train cutouts.h5 -w runs/mml`` trains M1 -> M2, M3 -> M4 (Wang et al. 2025) on a
file written by ``galam simulate --kind cutouts``; ``galam train cubes.h5 -w runs/sed
--set B`` trains the per-spaxel SED CNNs (Liew-Cain et al. 2021) on ``--kind cubes``.
Rerunning the same command continues from the last checkpoint. ``--export`` copies the
final models, with model cards, into the weights registry (the package's weights folder,
or ``--weights-dir``). TensorFlow is imported only inside :func:`run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]

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
    parser.add_argument("--config", choices=("compact", "paper"), default="compact")
    parser.add_argument("--epochs", type=int, default=100, help="most epochs per model (100)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patience", type=int, default=None, help="early-stopping patience")
    parser.add_argument("--seed", type=int, default=0, help="split and initialisation seed")
    parser.add_argument(
        "--set", dest="split", choices=("A", "B"), default="B", help="SED CNN split (default B)"
    )
    parser.add_argument("--mixed-precision", choices=tuple(_SWITCH), default="auto")
    parser.add_argument("--xla", choices=tuple(_SWITCH), default="auto")
    parser.add_argument(
        "--export", action="store_true", help="save the final models with cards to the registry"
    )
    parser.add_argument("--weights-dir", type=Path, default=None, help="registry folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``galam train``."""
    import json

    from napari_galam.errors import GalamInputError
    from napari_galam.models import training

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
    settings = training.TrainingSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        mixed_precision=_SWITCH[args.mixed_precision],
        jit_compile=_SWITCH[args.xla],
        **extra,
    )
    if kind == "cutouts":
        data = training.open_galaxy_hdf5(args.data)
        steps = training.iter_train_mmlforgalam(
            data, args.workdir, config=args.config, settings=settings
        )
    elif kind == "cubes":
        data = training.open_spaxel_hdf5(args.data)
        steps = training.iter_train_sed_cnn(
            data, args.workdir, split=args.split, config=args.config, settings=settings
        )
    else:
        raise GalamInputError(
            f"{args.data}: dataset kind {kind!r} is neither 'cutouts' nor 'cubes'"
        )
    result = None
    for step in steps:
        if isinstance(step, training.TrainingProgress):
            note = f"  ({step.message})" if step.message else ""
            print(
                f"{step.stage:>10} epoch {step.epoch:>3}/{step.epochs}  loss {step.loss:.4f}  "
                f"val {step.val_loss:.4f}  best {step.best_val_loss:.4f}{note}",
                flush=True,
            )
        else:
            result = step
    if result is None:  # pragma: no cover - defensive
        return 1
    print(json.dumps({"split_sizes": result.split_sizes, "metrics": result.metrics}, indent=2))
    if args.export:
        cards = training.export_trained_models(
            result,
            training_data={**data.card, "file": args.data.name, "n_rows": len(data)},
            directory=args.weights_dir,
        )
        for card in cards:
            print(f"wrote {card} and {card.with_suffix('.keras')}")
    return 0
