"""What dilnet_zoo adds to dilnet (`dilnet.plugins`, entry point ``dilnet.plugins: zoo``):
the ``zoo:NAME`` models, the ``dilnet zoo list|info`` and ``dilnet demo`` commands, and the
``mni152`` and ``mni152-grids`` training data. Loaded by dilnet on its first plugin look-up.

Neither holds held-out data: the template is symmetric, so no half of it is held out from the
other, and the evaluation brain (`dilnet_zoo.data.colin27`) is never trained, validated or
selected on. ``mni152`` validates on the same template cut on another 2 mm grid (a check of the
fit, not of generalisation); ``mni152-grids`` has no validation data."""

import json
import re
from pathlib import Path

import numpy as np

import dilnet_zoo
from dilnet.errors import VolumeError
from dilnet.plugins import Command, ModelSource, SourcedModel, TrainingData
from dilnet_zoo.table import TABLE_CONDITION


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
            description="the MNI152 template's 2 mm T1 and tissue labels, whole; validation: the "
            "same template on the 2 mm grid half a voxel away (offset (1, 1, 1) of "
            "mni152-grids), not held out",
        )
    )
    registry.add_training_data(
        TrainingData(
            name="mni152-grids",
            load=_mni152_grids,
            description="the eight 2 mm grids of the MNI152 template's 1 mm T1 and tissue labels "
            "(2 x 2 x 2 block means and block plurality labels, blocks starting at 1 mm offsets "
            "0 or 1 per axis; offset 0 is the 2 mm template); no validation",
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
        # for zoo weights saved without an input contract (older files); the shipped ones
        # record the zoo's contract, which wins over this (`dilnet.preprocessing`)
        normalize="minmax",
        no_weights=f"dilnet_zoo: no pretrained weights for {name!r} (not shipped, and no "
        f"{name}.npz in $DILNET_ZOO_DIR); train them with "
        f"`python -m dilnet_zoo.recipes.train {name}`.",
    )


# ---------------------------------------------------------------------------------------------
# builtin_data: mni152


def _mni152():
    from dilnet_zoo.data.mni152 import load_mni152

    data = load_mni152()
    return ([data["t1"][None]], [data["labels"]]), mni152_grids([(1, 1, 1)])


#: the 1 mm voxel offsets, per axis, where the 2 x 2 x 2 blocks of `mni152_grids` start
GRID_OFFSETS = tuple((i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1))


def mni152_grids(offsets=GRID_OFFSETS):
    """``(images, labels)``: the 1 mm template on the 2 mm grids of `offsets` (default: all
    eight, `GRID_OFFSETS`),
    images ``(1, *spatial)`` float32 in [0, 1] and labels int64 (``mni152-grids``).

    Each grid is reduced as the data recipe reduced the shipped 2 mm volume
    (`dilnet_zoo.recipes.tissue`: T1 block mean rounded half up, label by block plurality), so
    offset (0, 0, 0) is `load_mni152` at 2 mm and the other seven cut the same anatomy half a
    2 mm voxel apart: real partial-volume variety, not interpolated."""
    from dilnet_zoo.data.mni152 import load_mni152
    from dilnet_zoo.recipes.tissue import block_mean_2, block_mode_2

    data = load_mni152(resolution=1)
    t1 = np.rint(data["t1"] * 255).astype(np.uint8)  # the file's 0..255 values
    images, labels = [], []
    for starts in offsets:
        shape = tuple(
            (n - s) // 2 if s else -(-n // 2) for n, s in zip(t1.shape, starts, strict=True)
        )
        images.append((block_mean_2(t1, starts, shape).astype(np.float32) / 255)[None])
        labels.append(block_mode_2(data["labels"], starts, shape).astype(np.int64))
    return images, labels


def _mni152_grids():
    return mni152_grids(), ([], [])


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
    rows = [("name", "pretrained", "parameters", "field", "Colin27 Dice", "summary")]
    for name in dilnet_zoo.list_models():
        entry = dilnet_zoo.info(name)
        network = dilnet_zoo.get_spec(name).build()
        weights = dilnet_zoo.weights_path(name)
        dice = "-"
        record = weights.with_suffix(".json") if weights is not None else None
        if record is not None and record.is_file():
            metrics = json.loads(record.read_text()).get("metrics", {})
            if "colin27" in metrics:
                dice = f"{metrics['colin27'][TABLE_CONDITION]['mean CSF/GM/WM']:.3f}"
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
    demo = commands.add_parser(
        "demo", parents=[common], help="segment Colin27, a real brain the zoo never trained on"
    )
    pretrained = [n for n in dilnet_zoo.list_models() if dilnet_zoo.weights_path(n) is not None]
    demo.add_argument("--model", default=dilnet_zoo.DEFAULT, choices=pretrained)
    demo.add_argument("--out", default="demo.png", help="the PNG montage")
    demo.add_argument("--force", action="store_true", help="replace an existing --out")
    demo.set_defaults(run=_demo)


def _demo(args, console):
    from dilnet_zoo import demo

    out = Path(args.out)
    if not out.parent.is_dir():
        raise VolumeError(f"{out}: the directory {out.parent} does not exist (--out).")
    argv = ["--model", args.model, "--out", args.out, *(["--force"] if args.force else [])]
    return demo.main([*argv, "--quiet"] if console.quiet else argv)
