"""Train a zoo network on the MNI ICBM152 2009 template (T1 -> background / CSF / GM / WM).

    python -m dilnet_zoo.recipes.train context3d-basic [--steps 400] [--out DIR]

Trains on the left hemisphere (x < 0) with class-balanced patches, reports Dice per tissue
on the right hemisphere (x > 0), predicted whole with `predict_volume`, and writes
``<out>/<name>.npz`` (the model, weights verified on load) and ``<out>/<name>.json`` (the
command, data, settings and measured metrics). ``--card`` also rewrites the model card's
measured section. With the defaults ``<out>`` is the package's ``dilnet_zoo/weights``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import dilnet
import dilnet_zoo
from dilnet.inference import predict_volume
from dilnet.model import Model, PatchSampler
from dilnet.model.metrics import dice_per_class as _dice_per_class
from dilnet_zoo.data.mni152 import CLASS_NAMES, hemispheres, load_mni152

HERE = Path(__file__).resolve().parent.parent


def dice_per_class(prediction, labels, classes=4):
    """Hard Dice of each of the `classes` tissue classes (`dilnet.model.metrics.dice_per_class`)."""
    return _dice_per_class(prediction, labels, classes)


def augment(x, y, rng):
    """Intensity scale and shift, noise, a sub-voxel shift per axis (the patch blended with
    itself moved by one voxel: the 2 mm grid cuts the two hemispheres differently), and a
    left-right flip half of the time (the held-out hemisphere is a mirror image: without it,
    a large receptive field learns one-sided context). Labels follow the flip."""
    x = x * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05)
    for axis in range(1, x.ndim):
        weight = rng.uniform(0.0, 0.5)
        index = np.clip(np.arange(x.shape[axis]) + rng.choice((-1, 1)), 0, x.shape[axis] - 1)
        x = (1 - weight) * x + weight * np.take(x, index, axis=axis)
    x = x + rng.normal(0.0, 0.02, x.shape)
    if rng.random() < 0.5:  # left-right: the brain is nearly symmetric, and so is its context
        x, y = x[:, ::-1], y[::-1]
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y)


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
):
    """Train `name`, evaluate on the held-out hemisphere, save; return the metrics dict."""
    data = load_mni152()
    (x_train, y_train), (x_test, y_test) = hemispheres(data)
    spec = dilnet_zoo.get_spec(name)
    model = Model(spec, seed=seed)
    model.compile("adam", "crossentropy+dice", ["dice"], learning_rate=learning_rate)
    sampler = PatchSampler(
        [x_train[None]],
        [y_train],
        patch,
        batch_size=batch_size,
        strategy="balanced",
        seed=seed,
        steps_per_epoch=50,
        augment=augment if use_augment else None,
    )
    epochs = max(1, steps // sampler.steps_per_epoch)
    schedule = dilnet.model.cosine_decay(learning_rate, epochs, final=learning_rate / 20)
    start = time.perf_counter()
    history = model.fit(
        sampler, epochs=epochs, verbose=1, callbacks=[dilnet.model.LearningRateScheduler(schedule)]
    )
    seconds = time.perf_counter() - start
    probabilities = predict_volume(model, x_test, memory_limit="2GiB", progress=False)
    prediction = probabilities.argmax(axis=0)
    dice = dice_per_class(prediction, y_test)
    metrics = {
        "dice_held_out": dict(zip(CLASS_NAMES, dice, strict=True)),
        "mean_dice_csf_gm_wm": float(np.mean(dice[1:])),
        "train_seconds": seconds,
        "final_train_loss": history.history["loss"][-1],
    }
    record = {
        "name": name,
        "command": " ".join(["python -m dilnet_zoo.recipes.train", *sys.argv[1:]]),
        "data": "MNI ICBM152 2009a symmetric template, 2 mm (dilnet_zoo/data/mni152_2mm.npz); "
        "train: left hemisphere, held out: right hemisphere",
        "settings": {
            "steps": epochs * sampler.steps_per_epoch,
            "patch": list(patch),
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "loss": "crossentropy+dice",
            "optimizer": "adam, cosine decay",
            "sampler": "balanced",
            "augment": "intensity, noise, sub-voxel shifts, left-right flips"
            if use_augment
            else "none",
        },
        "parameters": model.network.count_params(trainable=True),
        "receptive_field": model.network.receptive_field[0].size,
        "dilnet_version": dilnet.__version__,
        "metrics": metrics,
    }
    out = Path(out) if out is not None else HERE / "weights"
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / f"{name}.npz", metadata={"training": record})
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
