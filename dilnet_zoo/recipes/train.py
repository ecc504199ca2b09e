"""Train a zoo network on the MNI ICBM152 2009 template (T1 -> background / CSF / GM / WM).

    python -m dilnet_zoo.recipes.train context3d-basic [--steps 400] [--out DIR]

The recipe is a training config (`config`) run by `dilnet.training.train_from_config`, the
same code as ``dilnet train``: class-balanced patches of the left hemisphere (x < 0)
(``builtin_data: "mni152"``), augmented (`AUGMENT`), a cosine schedule, and Dice per tissue on
the right hemisphere (x > 0) predicted whole with `predict_volume`. It writes
``<out>/<name>.npz`` (the model, weights verified on load) and ``<out>/<name>.json`` (the
command, data, settings and measured metrics). ``--card`` also rewrites the model card's
measured section. With the defaults ``<out>`` is the package's ``dilnet_zoo/weights``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import dilnet_zoo
from dilnet.training import train_from_config
from dilnet_zoo.data.mni152 import CLASS_NAMES

HERE = Path(__file__).resolve().parent.parent

#: intensity scale and shift, a sub-voxel shift per axis (the 2 mm grid cuts the two
#: hemispheres differently), noise, and a left-right flip half of the time (the held-out
#: hemisphere is a mirror image: without it, a large receptive field learns one-sided context)
AUGMENT = ("intensity", "subvoxel_shift", "noise", "flip0")
#: patches per epoch (the schedule's unit)
STEPS_PER_EPOCH = 50


def config(name, *, use_augment=True, steps=400, patch=(40, 48, 48), batch_size=2,
           learning_rate=2e-3, seed=0, output=None) -> dict:  # fmt: skip
    """The training config (`dilnet.io.train_config`) of zoo network `name`: `steps` steps of
    `batch_size` patches, in epochs of `STEPS_PER_EPOCH` (fewer when `steps` is smaller)."""
    steps_per_epoch = max(1, min(steps, STEPS_PER_EPOCH))
    return {
        "format": "dilnet.train",
        "format_version": 1,
        "model": f"zoo:{name}",
        "builtin_data": "mni152",
        "patch_size": list(patch),
        "batch_size": batch_size,
        "epochs": max(1, steps // steps_per_epoch),
        "steps_per_epoch": steps_per_epoch,
        "validation_steps": 1,
        "sampling": "balanced",
        "augment": list(AUGMENT) if use_augment else [],
        "optimizer": "adam",
        "learning_rate": learning_rate,
        "schedule": "cosine",
        "loss": "crossentropy+dice",
        "metrics": ["dice"],
        "seed": seed,
        "output": output or f"{name}.npz",
    }


def train(
    name,
    *,
    use_augment=True,
    steps=400,
    patch=(40, 48, 48),
    batch_size=2,
    learning_rate=2e-3,
    seed=0,
    out=None,
    log=print,
    verbose=1,
):
    """Train `name` by its `config`, evaluate on the held-out hemisphere, save; return the
    record written to ``<out>/<name>.json``."""
    out = Path(out) if out is not None else HERE / "weights"
    out.mkdir(parents=True, exist_ok=True)
    settings = config(name, use_augment=use_augment, steps=steps, patch=patch,
                      batch_size=batch_size, learning_rate=learning_rate, seed=seed)  # fmt: skip
    model, training = train_from_config(settings, base=out, overwrite=True, verbose=verbose)
    dice = training["validation_dice_whole_volumes"]
    metrics = {
        "dice_held_out": dict(zip(CLASS_NAMES, dice, strict=True)),
        "mean_dice_csf_gm_wm": float(np.mean(dice[1:])),
        "train_seconds": training["train_seconds"],
        "final_train_loss": training["history"]["loss"][-1],
    }
    record = {
        "name": name,
        "command": " ".join(["python -m dilnet_zoo.recipes.train", *sys.argv[1:]]),
        "data": "MNI ICBM152 2009a symmetric template, 2 mm (dilnet_zoo/data/mni152_2mm.npz); "
        "train: left hemisphere, held out: right hemisphere",
        "settings": {
            "steps": settings["epochs"] * settings["steps_per_epoch"],
            "patch": list(patch),
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "loss": settings["loss"],
            "optimizer": "adam, cosine decay",
            "sampler": settings["sampling"],
            "augment": "intensity, noise, sub-voxel shifts, left-right flips"
            if use_augment
            else "none",
        },
        "config": training["config"],
        "parameters": model.network.count_params(trainable=True),
        "receptive_field": model.network.receptive_field[0].size,
        "dilnet_version": training["dilnet_version"],
        "metrics": metrics,
    }
    (out / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    log(json.dumps(metrics, indent=1))
    return record


#: the baseline each card compares with, at equal depth and parameter count
BASELINES = {"context3d-basic": "plain3d"}
_START, _END = "<!-- measured:", "<!-- end measured -->"


def _row(record):
    d = record["metrics"]["dice_held_out"]
    return (
        f"| {record['name']} | {record['receptive_field']}³ | {record['parameters']:,} | "
        f"{d['csf']:.3f} | {d['grey matter']:.3f} | {d['white matter']:.3f} | "
        f"{record['metrics']['mean_dice_csf_gm_wm']:.3f} | "
        f"{record['settings'].get('augment', 'none')} |"
    )


def write_card(name, directory=None):
    """Rewrite the measured section of `name`'s card from ``<directory>/<name>.json`` (and its
    baseline's record, when there is one)."""
    directory = Path(directory) if directory is not None else HERE / "weights"
    record = json.loads((directory / f"{name}.json").read_text())
    rows = [_row(record)]
    baseline = BASELINES.get(name)
    if baseline and (directory / f"{baseline}.json").is_file():
        rows.append(_row(json.loads((directory / f"{baseline}.json").read_text())))
    settings = record["settings"]
    section = "\n".join(
        [
            f"{_START} written by `{record['command']} --card` -->",
            f"Trained by `{record['command']}` (dilnet {record['dilnet_version']}) on "
            f"{record['data']}: {settings['steps']} steps of {settings['batch_size']} "
            f"class-balanced {'x'.join(map(str, settings['patch']))} patches, "
            f"{settings['optimizer']} from {settings['learning_rate']}, loss "
            f"{settings['loss']}, seed {settings['seed']}; "
            f"{record['metrics']['train_seconds'] / 60:.1f} min on the CPU.",
            "",
            "Dice on the held-out right hemisphere (predicted whole with `predict_volume`):",
            "",
            "| network | receptive field | parameters | CSF | grey matter | white matter | mean "
            "| augmentation |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            _END,
        ]
    )
    path = HERE / "cards" / f"{name}.md"
    text = path.read_text()
    start, end = text.index(_START), text.index(_END) + len(_END)
    path.write_text(text[:start] + section + text[end:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=dilnet_zoo.list_models())
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="directory for <name>.npz / .json (default: the package)")
    parser.add_argument("--card", action="store_true", help="rewrite the card's measured part")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    args = parser.parse_args(argv)
    train(
        args.name,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        out=args.out,
        use_augment=not args.no_augment,
    )
    if args.card:
        write_card(args.name, args.out)


if __name__ == "__main__":
    main()
