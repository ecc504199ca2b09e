"""What dilnet_zoo adds to dilnet (`dilnet.plugins`, entry point ``dilnet.plugins: zoo``):
the ``zoo:NAME`` models, the ``dilnet zoo list|info`` and ``dilnet demo`` commands, and the
``mni152`` training data. Loaded by dilnet on its first plugin look-up."""

import json
import re
from pathlib import Path

import dilnet_zoo
from dilnet.errors import VolumeError
from dilnet.plugins import Command, ModelSource, SourcedModel, TrainingData


def register(registry):
    """Add the zoo's model source, commands and training data to dilnet's `registry`."""
    registry.add_model_source(
        ModelSource(prefix="zoo", resolve=_resolve, listing="dilnet zoo list")
    )
    registry.add_command(Command(name="zoo", add=_add_zoo, order=10))
    registry.add_command(Command(name="demo", add=_add_demo, order=90))
    registry.add_training_data(
        TrainingData(
            name="mni152",
            load=_mni152,
            description="the MNI152 template's T1 and tissue labels: train on the left "
            "hemisphere, validate on the right one",
        )
    )


# ---------------------------------------------------------------------------------------------
# zoo:NAME


def _resolve(name, **overrides):
    entry = dilnet_zoo.info(name)
    return SourcedModel(
        spec=dilnet_zoo.get_spec(name, **overrides),
        weights=dilnet_zoo.weights_path(name),
        defaults={k: v for k, v in entry.defaults.items() if k != "variant"},
        shape_overrides=entry.shape_overrides,
        # the zoo was trained on the template's T1 in [0, 1]: scanner intensities are scaled so
        normalize="minmax",
        no_weights=f"dilnet_zoo: no pretrained weights for {name!r} (not shipped, and no "
        f"{name}.npz in $DILNET_ZOO_DIR); train them with "
        f"`python -m dilnet_zoo.recipes.train {name}`.",
    )


# ---------------------------------------------------------------------------------------------
# builtin_data: mni152


def _mni152():
    from dilnet_zoo.data.mni152 import hemispheres, load_mni152

    (x, y), (x_val, y_val) = hemispheres(load_mni152())
    return ([x[None]], [y]), ([x_val[None]], [y_val])


# ---------------------------------------------------------------------------------------------
# dilnet zoo list|info


def _add_zoo(commands, common):
    zoo = commands.add_parser("zoo", parents=[common], help="the zoo's networks")
    zoo_commands = zoo.add_subparsers(dest="zoo_command", metavar="{list,info}", required=True)
    zoo_commands.add_parser("list", parents=[common], help="list the networks").set_defaults(
        run=_zoo_list, command_name="zoo list"
    )
    info = zoo_commands.add_parser("info", parents=[common], help="a network's model card")
    info.add_argument("name")
    info.set_defaults(run=_zoo_info, command_name="zoo info")


def _zoo_list(args, console):
    rows = [("name", "pretrained", "parameters", "field", "held-out Dice", "summary")]
    for name in dilnet_zoo.list_models():
        entry = dilnet_zoo.info(name)
        network = dilnet_zoo.get_spec(name).build()
        weights = dilnet_zoo.weights_path(name)
        dice = "-"
        record = weights.with_suffix(".json") if weights is not None else None
        if record is not None and record.is_file():
            metrics = json.loads(record.read_text()).get("metrics", {})
            if "mean_dice_csf_gm_wm" in metrics:
                dice = f"{metrics['mean_dice_csf_gm_wm']:.3f}"
        rows.append(
            (
                name,
                "yes" if weights is not None else "no",
                f"{network.count_params(trainable=True):,}",
                "x".join(str(f.size) for f in network.receptive_field),
                dice,
                entry.summary,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        console.result("  ".join([*cells, row[-1]]))
    return 0


def _zoo_info(args, console):
    # without the recipe's markers
    text = re.sub(r"\n?<!--.*?-->", "", dilnet_zoo.card(args.name), flags=re.S)
    weights = dilnet_zoo.weights_path(args.name)
    console.result(text.rstrip("\n"))
    console.note(
        f"\nweights: {weights} (verified when loaded)"
        if weights is not None
        else f"\nweights: none shipped (train with `python -m dilnet_zoo.recipes.train {args.name}`)"
    )
    return 0


# ---------------------------------------------------------------------------------------------
# dilnet demo


def _add_demo(commands, common):
    demo = commands.add_parser("demo", parents=[common], help="segment the MNI152 template")
    pretrained = [n for n in dilnet_zoo.list_models() if dilnet_zoo.weights_path(n) is not None]
    demo.add_argument("--model", default="context3d-basic", choices=pretrained)
    demo.add_argument("--out", default="demo.png", help="the PNG montage")
    demo.set_defaults(run=_demo)


def _demo(args, console):
    from dilnet_zoo import demo

    out = Path(args.out)
    if not out.parent.is_dir():
        raise VolumeError(f"{out}: the directory {out.parent} does not exist (--out).")
    argv = ["--model", args.model, "--out", args.out]
    return demo.main([*argv, "--quiet"] if console.quiet else argv)
