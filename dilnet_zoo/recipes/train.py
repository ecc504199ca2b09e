"""Train a zoo network on the MNI ICBM152 2009 template (T1 -> background / CSF / GM / WM).

    python -m dilnet_zoo.recipes.train context3d-basic [--steps 400] [--out DIR]

The recipe is a training config (`config`) run by `dilnet.training.train_from_config`, the
same code as ``dilnet train``: class-balanced patches of the whole template on its eight 2 mm
grids (``builtin_data: "mni152-grids"``: the shipped 2 mm volume and the seven other 2 x 2 x 2
block reductions of the 1 mm one), each volume scaled whole by the zoo's input contract
(`dilnet_zoo.families.BRAIN_T1_2MM`, as inference scales), augmented by the SynthSeg-style
`dilnet.model.augment.Augment` (`AUGMENT`; ``--no-augment`` trains without, as ``local3d``'s
weights were), a cosine schedule. There is no validation data:
the template is symmetric (no half of it is held out from the other), and the evaluation brain,
Colin27 (`dilnet_zoo.data.colin27`), is never trained, validated or selected on; its Dice is
measured apart (``bench/``). The record's Dice is on the training template itself, a sanity
check only.

It writes ``<out>/<name>.npz`` (the model with its input contract, weights verified on load)
and ``<out>/<name>.json`` (the command, data, settings, time, loss curve and the training-data
Dice). ``--card`` also rewrites the training description of the model card's measured section.
With the defaults ``<out>`` is the package's ``dilnet_zoo/weights``.
"""

import argparse
import inspect
import json
from pathlib import Path

import numpy as np

import dilnet_zoo
from dilnet.inference import predict_volume
from dilnet.model.metrics import dice_per_class
from dilnet.training import train_from_config
from dilnet_zoo.data.mni152 import CLASS_NAMES, load_mni152
from dilnet_zoo.families import BRAIN_T1_2MM
from dilnet_zoo.recipes.evaluate import write_card

HERE = Path(__file__).resolve().parent.parent

#: the training data: the template's eight 2 mm grids (`dilnet_zoo._plugin.mni152_grids`)
DATA = "mni152-grids"
#: `dilnet.model.augment.Augment`'s fields that differ from its defaults (the config's
#: ``{"synthseg": AUGMENT}``), with which ``context3d-basic`` and ``plain3d`` were trained;
#: ``local3d`` trains without (``--no-augment``). The reference labels are close to an intensity
#: rule of the very image they label, and every augmentation measured here moves the image away
#: from its labels: gamma, bias, blur and noise change intensities but not labels, and
#: deformations interpolate the image linearly but the labels by nearest neighbour. Training
#: pilots with a 3-voxel network (``bench/zoo_pilots.py``,
#: 1000 steps, docs/benchmarks.md "Zoo training pilots") scored Colin27 2 mm mean GM/WM 0.852
#: with this augmentation, 0.901 with its deformations alone and 0.923 without augmentation.
#: ``normalize=False``: the volumes are already scaled whole by the contract, as inference
#: scales them; `Augment`'s per-patch rescaling over the labels would
#: move even an unaugmented patch by 0.059 on average (median over 200 balanced 40x48x48 MNI152
#: patches; 90th percentile 0.074, on the [0, 1] scale) away from what inference feeds the
#: network. ``p_tissue=0``: the zoo's contract is a T1; a first run with SynthSeg's random
#: tissue contrasts on half the patches (600 steps) scored lower on the held-out brain (mean
#: GM/WM 0.75 against 0.85 for the previous, mildly augmented weights), as a small network
#: spent a CPU budget on contrasts the zoo does not serve. Deformations, bias fields, thick
#: slices, noise and gamma stay at `Augment`'s defaults.
AUGMENT = {"p_tissue": 0.0, "normalize": False}
#: patches per epoch (the schedule's unit)
STEPS_PER_EPOCH = 50


def config(name, *, use_augment=True, steps=400, patch=(40, 48, 48), batch_size=2,
           learning_rate=2e-3, seed=0, output=None) -> dict:  # fmt: skip
    """The training config (`dilnet.io.train_config`) of zoo network `name`: `steps` steps of
    `batch_size` patches, in epochs of `STEPS_PER_EPOCH` (fewer when `steps` is smaller).
    Run it with ``input_contract=BRAIN_T1_2MM`` (as `train` does); its ``normalize`` is the
    contract's."""
    steps_per_epoch = max(1, min(steps, STEPS_PER_EPOCH))
    return {
        "format": "dilnet.train",
        "format_version": 1,
        "model": f"zoo:{name}",
        "builtin_data": DATA,
        "patch_size": list(patch),
        "batch_size": batch_size,
        "epochs": max(1, steps // steps_per_epoch),
        "steps_per_epoch": steps_per_epoch,
        "sampling": "balanced",
        "augment": {"synthseg": dict(AUGMENT)} if use_augment else [],
        "optimizer": "adam",
        "learning_rate": learning_rate,
        "schedule": "cosine",
        "loss": "crossentropy+dice",
        "metrics": ["dice"],
        "normalize": BRAIN_T1_2MM.normalization,
        "seed": seed,
        "output": output or f"{name}.npz",
    }


def command_line(name, *, steps, **settings) -> str:
    """The recipe's command that trains `name` with these settings (`train`'s keywords
    ``batch_size``, ``learning_rate``, ``seed``, ``use_augment``; the record's ``"command"``):
    ``--steps`` always, the others where they differ from `train`'s defaults; where the files go
    (``--out``) is not part of how they were made."""
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items()}
    parts = ["python -m dilnet_zoo.recipes.train", name, "--steps", str(steps)]
    for key, value in settings.items():
        if value == defaults[key]:
            continue
        if key == "use_augment":
            parts.append("--no-augment")
        else:
            parts += [f"--{key.replace('_', '-')}", repr(value)]
    return " ".join(parts)


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
    """Train `name` by its `config` with the zoo's input contract, save, measure Dice on the
    training template (a sanity check, not held out); return the record written to
    ``<out>/<name>.json``."""
    out = Path(out) if out is not None else HERE / "weights"
    out.mkdir(parents=True, exist_ok=True)
    settings = config(name, use_augment=use_augment, steps=steps, patch=patch,
                      batch_size=batch_size, learning_rate=learning_rate, seed=seed)  # fmt: skip
    model, training = train_from_config(settings, base=out, overwrite=True, verbose=verbose,
                                        input_contract=BRAIN_T1_2MM)  # fmt: skip
    template = load_mni152()
    # predict_volume scales the raw [0, 1] template by the model's contract, as in training
    prediction = predict_volume(model, template["t1"][None], progress=False).argmax(axis=0)
    dice = [float(d) for d in dice_per_class(prediction, template["labels"], len(CLASS_NAMES))]
    loss = training["history"]["loss"]
    metrics = {
        "dice_train_mni152_2mm": dict(zip(CLASS_NAMES, dice, strict=True)),
        "mean_dice_csf_gm_wm_train_mni152_2mm": float(np.mean(dice[1:])),
        "train_seconds": training["train_seconds"],
        "final_train_loss": loss[-1],
        "loss_per_epoch": loss,
    }
    command = command_line(
        name, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
        use_augment=use_augment,
    )  # fmt: skip
    record = {
        "name": name,
        "command": command,
        "data": "MNI ICBM152 2009a symmetric template, whole, on its eight 2 mm grids "
        "(dilnet_zoo/data/mni152_1mm.npz reduced by 2 x 2 x 2 blocks at offsets 0/1 per axis; "
        "offset 0 is mni152_2mm.npz), tissue labels by ANTs Atropos; no validation data. "
        "Held out: Colin27 (dilnet_zoo/data/colin27.npz), never used in training",
        "input_contract": BRAIN_T1_2MM.to_dict(),
        "settings": {
            "steps": settings["epochs"] * settings["steps_per_epoch"],
            "patch": list(patch),
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "loss": settings["loss"],
            "optimizer": "adam, cosine decay",
            "sampler": settings["sampling"],
            "augment": "SynthSeg-style Augment ("
            + ", ".join(f"{k}={v}" for k, v in AUGMENT.items())
            + "; defaults otherwise)"
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
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
