"""The ``dilnet`` command.

    dilnet zoo list                          the zoo's networks
    dilnet zoo info NAME                     a network's model card
    dilnet summary SPEC.json|MODEL.npz|zoo:NAME [--input-size N|ZxYxX] [--batch-size N]
    dilnet predict --model zoo:NAME|MODEL.npz --input VOLUME --output VOLUME
                   [--memory-limit 1GiB | --tile N|ZxYxX] [--probabilities] [--normalize minmax]
    dilnet train CONFIG.json                 train as a JSON config says (dilnet.io.train_config)
    dilnet demo                              the main job: segment the MNI152 template

Volumes are NIfTI (``.nii``, ``.nii.gz``; affine and header carried to the output), ``.npy`` /
``.npz`` or TIFF stacks (`dilnet.io.volume`). Results go to standard output; progress bars and
notes to standard error (``--quiet`` silences them).

Exit codes: 0 success; 1 the work failed (a dilnet error, an unreadable or invalid file: one
line on standard error, the traceback only with ``--debug``); 2 the command line is wrong
(unknown command or option, a value that does not parse); 130 interrupted.
"""

import argparse
import contextlib
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from .allocator import reuse_freed_memory
from .errors import ConfigError, DilnetError, VolumeError

__all__ = ["entry_point", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# ---------------------------------------------------------------------------------------------
# argument types: a value that does not parse is a usage error (exit 2) before any work starts


def _memory(text):
    from .inference import parse_memory

    try:
        parse_memory(text, where="dilnet", name="--memory-limit")
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None
    return text


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int; received {text!r}")
    return value


def _lengths(text):
    """``64`` (every axis) or ``48x64x64`` (one per axis): a tuple of positive ints."""
    parts = text.lower().split("x")
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected a positive length for every axis (64) or one per axis (48x64x64); "
            f"received {text!r}"
        )
    return tuple(int(p) for p in parts)


def _model_ref(text):
    if text.startswith("zoo:"):
        if not text[4:]:
            raise argparse.ArgumentTypeError("expected zoo:NAME (see `dilnet zoo list`)")
        return text
    if not text.lower().endswith((".npz", ".json")):
        raise argparse.ArgumentTypeError(
            f"expected zoo:NAME, a model .npz (Model.save) or a spec .json; received {text!r}"
        )
    return text


# ---------------------------------------------------------------------------------------------
# output


class _Console:
    """Notes and progress go to stderr unless quiet; results always go to stdout."""

    def __init__(self, quiet):
        self.quiet = quiet
        # progress bars redraw a line: only on a terminal, not in a log file
        self.progress = not quiet and sys.stderr.isatty()

    def note(self, text):
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    @staticmethod
    def result(text):
        print(text, flush=True)


# ---------------------------------------------------------------------------------------------
# models


def _zoo():
    import dilnet_zoo

    return dilnet_zoo


def _spec(ref):
    """The spec of a model reference: zoo:NAME, a spec JSON or a model .npz."""
    from .io.config import from_config

    if ref.startswith("zoo:"):
        return _zoo().get_spec(ref[4:])
    path = Path(ref)
    if ref.lower().endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the spec ({err.strerror}).") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a spec (not UTF-8 JSON text).") from None
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})."
            ) from None
        try:
            return from_config(data)
        except DilnetError as err:
            raise type(err)(f"{path}: {err}") from None
    return from_config(_manifest(path)["metadata"]["spec"])


def _manifest(path):
    """The manifest of a model file written by `Model.save` (verified)."""
    from .errors import WeightsError
    from .io.weights import read_checkpoint

    try:
        _, manifest = read_checkpoint(str(path))
    except WeightsError as err:
        if "__manifest__" not in str(err):
            raise
        raise WeightsError(
            f"{err} A model file for the command line is written by Model.save, Model."
            "save_weights or `dilnet train`; weights saved by Lasagne (np.savez) load with "
            "dilnet.interop.lasagne (load_npz, set_lasagne_param_values), then Model.save."
        ) from None
    if "spec" not in manifest.get("metadata", {}):
        raise ConfigError(
            f"{path}: holds weights but no model config (it was not written by Model.save or "
            "Model.save_weights); build the model in Python and use load_weights."
        )
    return manifest


def _load_model(ref):
    """(model, metadata) for a reference: zoo:NAME (pretrained) or a model .npz."""
    from .model import load_model

    if ref.startswith("zoo:"):
        # the zoo was trained on the template's T1 in [0, 1]: scale scanner intensities so
        return _zoo().load(ref[4:], pretrained=True), {"normalize": "minmax"}
    if ref.lower().endswith(".json"):
        raise ConfigError(
            f"{ref}: a spec has no trained weights; give a model .npz written by Model.save or "
            "`dilnet train`, or zoo:NAME."
        )
    metadata = _manifest(ref)["metadata"]
    preprocessing = metadata.get("preprocessing", {})
    return load_model(ref), {"normalize": preprocessing.get("normalize", "none")}


def _rank(network):
    return len(network.input_layer.shape) - 2


def normalize(array, how):
    """`array` as float32, min-max scaled per channel to [0, 1] for ``how="minmax"`` (a
    constant channel becomes 0); unchanged values for ``how="none"``."""
    array = np.asarray(array, dtype=np.float32)
    if how == "none":
        return array
    axes = tuple(range(1, array.ndim))
    low, high = array.min(axis=axes, keepdims=True), array.max(axis=axes, keepdims=True)
    span = np.where(high > low, high - low, 1)
    return (array - low) / span


def _check_finite(volume):
    """NaN or infinite voxels would spread through every receptive field they touch."""
    bad = int(np.size(volume.data) - np.count_nonzero(np.isfinite(volume.data)))
    if bad:
        raise VolumeError(
            f"{volume.path}: expected finite intensities; received {bad:,} NaN or infinite "
            "voxel(s) (replace them, e.g. with np.nan_to_num, before predicting)."
        )


def _check_channels(volume, channels, rank, what):
    if volume.channels != channels:
        layout = {"nifti": "(X, Y, Z, C)" if rank == 3 else "(X, Y, C)"}.get(
            volume.format, "(C, Z, Y, X)" if rank == 3 else "(C, Y, X)"
        )
        raise VolumeError(
            f"{volume.path}: expected {channels} channel(s), the input of {what} (a {rank}D "
            f"model); received {volume.channels} (read as {volume.data.shape}, (C, *spatial)). "
            f"A {volume.format} file of {rank} dims is one channel; channels are {layout}."
        )


# ---------------------------------------------------------------------------------------------
# commands


def _zoo_list(args, console):
    zoo = _zoo()
    rows = [("name", "pretrained", "parameters", "field", "held-out Dice", "summary")]
    for name in zoo.list_models():
        entry = zoo.info(name)
        network = zoo.get_spec(name).build()
        weights = zoo.weights_path(name)
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
    return EXIT_OK


def _zoo_info(args, console):
    zoo = _zoo()
    text = re.sub(r"\n?<!--.*?-->", "", zoo.card(args.name), flags=re.S)  # the recipe's markers
    weights = zoo.weights_path(args.name)
    console.result(text.rstrip("\n"))
    console.note(
        f"\nweights: {weights} (verified when loaded)"
        if weights is not None
        else f"\nweights: none shipped (train with `python -m dilnet_zoo.recipes.train {args.name}`)"
    )
    return EXIT_OK


def _summary(args, console):
    import pytensor

    from .io.config import from_config

    # in the dtype a Model of it computes in: float32, or what the model file records
    if args.target.lower().endswith(".npz"):
        metadata = _manifest(Path(args.target))["metadata"]  # read and verified once
        spec, dtype = from_config(metadata["spec"]), metadata.get("dtype", "float32")
    else:
        spec, dtype = _spec(args.target), "float32"
    rank = _rank(spec.build())
    size = _per_axis(args.input_size, rank, "--input-size")
    with pytensor.config.change_flags(floatX=dtype):
        text = spec.summary(input_size=size, batch_size=args.batch_size, print_fn=None)
    console.result(text)
    return EXIT_OK


def _per_axis(lengths, rank, option):
    """One length for every axis, or one per axis."""
    if lengths is None or len(lengths) == rank:
        return lengths
    if len(lengths) == 1:
        return lengths * rank
    raise ConfigError(
        f"{option}: expected one length or {rank} (this is a {rank}D model); received "
        f"{'x'.join(map(str, lengths))}."
    )


def _check_output(path, force, what="--output"):
    """Fail before any work when the output cannot be written."""
    from .io.volume import volume_format

    path = Path(path)
    volume_format(path)
    if not path.parent.is_dir():
        raise VolumeError(f"{path}: the directory {path.parent} does not exist ({what}).")
    if path.exists() and not force:
        raise VolumeError(f"{path}: exists; pass --force to replace it ({what}).")


def _predict(args, console):
    from .inference import predict_volume
    from .io.volume import read_volume, write_volume

    _check_output(args.output, args.force)
    start = time.perf_counter()
    model, recorded = _load_model(args.model)
    rank = _rank(model.network)
    tile = _per_axis(args.tile, rank, "--tile")
    volume = read_volume(args.input, rank=rank, key=args.key)
    _check_channels(volume, model.network.input_layer.shape[1], rank, args.model)
    _check_finite(volume)
    how = args.normalize or recorded["normalize"]
    console.note(
        f"{args.model}: {volume.path.name} {volume.data.shape[0]} channel(s) x "
        f"{'x'.join(map(str, volume.spatial))}, intensities: {how}"
    )
    probabilities = predict_volume(
        model,
        normalize(volume.data, how),
        tile=tile,
        memory_limit=args.memory_limit,
        batch_size=args.batch_size,
        progress=console.progress,
    )
    if args.probabilities:
        result, kind = probabilities, "class probabilities"
    else:
        result, kind = probabilities.argmax(axis=0), "labels"
    path = write_volume(args.output, result, rank=rank, like=volume)
    console.note(
        f"wrote {path}: {kind} {'x'.join(map(str, result.shape))} in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return EXIT_OK


def _read_pairs(pairs, base, rank, how, channels, classes, ignore_label):
    """(images, labels): images (C, *spatial) float32, labels int64 (*spatial)."""
    from .io.volume import read_volume

    images, labels = [], []
    for pair in pairs:
        image = read_volume(base / pair.image, rank=rank)
        label = read_volume(base / pair.labels, rank=rank)
        _check_channels(image, channels, rank, "the model")
        _check_finite(image)
        if label.channels != 1 or label.spatial != image.spatial:
            raise VolumeError(
                f"{label.path}: expected one label map of the image's size "
                f"{image.spatial}; received {label.channels} channel(s) of {label.spatial}."
            )
        values = label.data[0]
        if not np.issubdtype(values.dtype, np.integer):
            if not np.array_equal(values, np.round(values)):
                raise VolumeError(
                    f"{label.path}: expected integer class labels; received non-integer values "
                    f"(e.g. {float(values[values != np.round(values)].flat[0])}); round them "
                    "or save the labels as integers."
                )
        values = values.astype(np.int64)
        valid = (values >= 0) & (values < classes)
        if ignore_label is not None:
            valid |= values == ignore_label
        if not valid.all():
            found = np.unique(values[~valid])[:5].tolist()
            raise VolumeError(
                f"{label.path}: expected class labels 0..{classes - 1} (the model's "
                f"{classes} classes){'' if ignore_label is None else f' or {ignore_label}'}; "
                f"received {found}. Set num_classes in the model (or ignore_label in the config "
                "for voxels without a class)."
            )
        images.append(normalize(image.data, how))
        labels.append(values)
    return images, labels


def _train_data(config, base, rank, channels, classes):
    if config.builtin_data == "mni152":
        from dilnet_zoo.data.mni152 import hemispheres, load_mni152

        if rank != 3 or channels != 1:
            raise ConfigError(
                f"builtin_data 'mni152' is one-channel 3D; the model takes {channels} "
                f"channel(s) in {rank}D."
            )
        (x, y), (x_val, y_val) = hemispheres(load_mni152())
        pairs = ([normalize(x[None], config.normalize)], [y])
        return pairs, ([normalize(x_val[None], config.normalize)], [y_val])
    args = (base, rank, config.normalize, channels, classes, config.ignore_label)
    train = _read_pairs(config.train, *args)
    validation = _read_pairs(config.validation, *args)
    return train, validation if validation[0] else None


def _train(args, console):
    import dilnet

    from .inference import predict_volume
    from .io.config import from_config
    from .io.train_config import read_train_config
    from .model import LearningRateScheduler, Model, PatchSampler, cosine_decay

    path = Path(args.config)
    config = read_train_config(path)
    base = path.parent
    output = base / config.output
    if not output.name.lower().endswith(".npz"):
        raise ConfigError(f"{path}: $.output: expected a .npz file; received {config.output!r}.")
    _check_output(output, args.force, what="the config's output")

    zoo_name = config.model[4:] if isinstance(config.model, str) and config.model.startswith(
        "zoo:") else None  # fmt: skip
    if config.overrides and zoo_name is None:
        raise ConfigError(f"{path}: $.overrides: expected none for a model that is not zoo:NAME; "
                          f"received {config.overrides}.")  # fmt: skip
    if config.pretrained and zoo_name is None:
        raise ConfigError(f"{path}: $.pretrained: expected false for a model that is not "
                          "zoo:NAME (a model .npz starts from its own weights); received true.")  # fmt: skip
    if isinstance(config.model, dict):
        spec = from_config(config.model)
    elif zoo_name is not None:
        spec = _zoo().get_spec(zoo_name, **config.overrides)
    else:
        spec = _spec(str(base / config.model))
    model = Model(spec, seed=config.seed)
    skipped = []
    if config.pretrained:
        entry = _zoo().info(zoo_name)
        weights = _zoo().weights_path(zoo_name)
        if weights is None:
            raise ConfigError(f"{path}: $.pretrained: {config.model} has no pretrained weights "
                              f"(see `dilnet zoo list`).")  # fmt: skip
        for key, value in config.overrides.items():
            # a new number of classes changes the classifier only; other shape overrides would
            # leave almost nothing of the pretrained weights
            if (
                key in entry.shape_overrides
                and key != "num_classes"
                and value != entry.defaults[key]
            ):
                raise ConfigError(
                    f"{path}: $.overrides.{key}: expected {entry.defaults[key]!r} with "
                    f"pretrained=true (the pretrained weights have that shape; only num_classes "
                    f"may change, which retrains the classifier); received {value!r}."
                )
        new_classes = config.overrides.get("num_classes", entry.defaults.get("num_classes"))
        fine_tune = new_classes != entry.defaults.get("num_classes")
        skipped = model.load_weights(weights, cast=True, skip_mismatch=fine_tune)["skipped"]
        if skipped:
            console.note(
                f"pretrained {zoo_name} with num_classes={new_classes}: {len(skipped)} "
                f"parameter(s) of the classifier start from their initial values: "
                f"{', '.join(skipped)}"
            )
    elif isinstance(config.model, str) and config.model.lower().endswith(".npz"):
        model.load_weights(base / config.model, cast=True)
    network = model.network
    rank, channels = _rank(network), network.input_layer.shape[1]
    if len(config.patch_size) not in (1, rank):
        raise ConfigError(
            f"{path}: $.patch_size: expected one length or {rank} (a {rank}D model); received "
            f"{list(config.patch_size)}."
        )
    patch = config.patch_size * rank if len(config.patch_size) == 1 else config.patch_size
    classes = network.output_shape[1]
    (images, labels), validation = _train_data(config, base, rank, channels, classes)

    model.compile(config.optimizer, config.loss, list(config.metrics),
                  learning_rate=config.learning_rate, ignore_label=config.ignore_label)  # fmt: skip
    sampler = PatchSampler(images, labels, patch, batch_size=config.batch_size,
                           strategy=config.sampling, ignore_label=config.ignore_label,
                           seed=config.seed, steps_per_epoch=config.steps_per_epoch)  # fmt: skip
    val_sampler = None
    if validation is not None:
        val_sampler = PatchSampler(*validation, patch, batch_size=config.batch_size,
                                   seed=config.seed + 1,
                                   steps_per_epoch=config.validation_steps)  # fmt: skip
    callbacks = []
    if config.schedule == "cosine":
        schedule = cosine_decay(
            config.learning_rate, config.epochs, final=config.learning_rate / 20
        )
        callbacks.append(LearningRateScheduler(schedule))
    console.note(
        f"training {config.model if isinstance(config.model, str) else 'the inline spec'}: "
        f"{network.count_params(trainable=True):,} parameters, {len(images)} volume(s), "
        f"{config.epochs} epoch(s) of {config.steps_per_epoch} steps, patches "
        f"{'x'.join(map(str, patch))}"
    )
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # fit's epoch lines are notes, not results
        history = model.fit(sampler, epochs=config.epochs, validation_data=val_sampler,
                            callbacks=callbacks,
                            verbose=0 if console.quiet else 1 if console.progress else 2)  # fmt: skip
    seconds = time.perf_counter() - start
    results = {}
    if validation is not None:
        from .model.metrics import dice_per_class

        dice = []
        for image, label in zip(*validation, strict=True):
            prediction = predict_volume(model, image, progress=False).argmax(axis=0)
            dice.append(dice_per_class(prediction, label, classes))
        results["validation_dice_whole_volumes"] = np.nanmean(dice, axis=0).tolist()
    record = {
        "config": config.to_dict(),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "train_seconds": seconds,
        "pretrained_skipped": skipped,
        "dilnet_version": dilnet.__version__,
        **results,
    }
    model.save(output, metadata={"training": record,
                                 "preprocessing": {"normalize": config.normalize}})  # fmt: skip
    console.note(f"trained in {seconds:.1f} s; wrote {output}")
    last = {k: round(v[-1], 4) for k, v in record["history"].items()}
    console.result(json.dumps({"output": str(output), "final": last, **results}))
    return EXIT_OK


def _demo(args, console):
    from dilnet_zoo import demo

    out = Path(args.out)
    if not out.parent.is_dir():
        raise VolumeError(f"{out}: the directory {out.parent} does not exist (--out).")
    argv = ["--model", args.model, "--out", args.out]
    return demo.main([*argv, "--quiet"] if console.quiet else argv)


# ---------------------------------------------------------------------------------------------
# the parser


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (and where to read more) instead of the usage
    block first."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _parser():
    # --quiet/--debug work before or after the command: the subcommands' copies default to
    # SUPPRESS so they do not overwrite a value given before the command.
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or notes; results and errors only")  # fmt: skip
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")  # fmt: skip
    parser = _Parser(
        prog="dilnet",
        description="Dilated volumetric networks: the zoo, summaries, prediction and training.",
        epilog="Exit codes: 0 success, 1 the work failed, 2 bad command line.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    zoo = commands.add_parser("zoo", parents=[common], help="the zoo's networks")
    zoo_commands = zoo.add_subparsers(dest="zoo_command", metavar="{list,info}", required=True)
    zoo_commands.add_parser("list", parents=[common], help="list the networks").set_defaults(
        run=_zoo_list
    )
    info = zoo_commands.add_parser("info", parents=[common], help="a network's model card")
    info.add_argument("name")
    info.set_defaults(run=_zoo_info)

    summary = commands.add_parser(
        "summary", parents=[common], help="the layer table of a spec, a model or a zoo network"
    )
    summary.add_argument("target", type=_model_ref, metavar="SPEC.json|MODEL.npz|zoo:NAME")
    summary.add_argument("--input-size", type=_lengths, metavar="N|ZxYxX",
                         help="spatial lengths for shapes and memory: 64 or 48x64x64")  # fmt: skip
    summary.add_argument("--batch-size", type=_positive_int, default=1)
    summary.set_defaults(run=_summary)

    predict = commands.add_parser("predict", parents=[common], help="segment a volume")
    predict.add_argument("--model", required=True, type=_model_ref,
                         metavar="zoo:NAME|MODEL.npz")  # fmt: skip
    predict.add_argument("--input", required=True, metavar="VOLUME",
                         help=".nii, .nii.gz, .npy, .npz or .tif")  # fmt: skip
    predict.add_argument("--output", required=True, metavar="VOLUME")
    predict.add_argument("--key", help="the array to read from an .npz input with several")
    predict.add_argument("--probabilities", action="store_true",
                         help="write the class probabilities (one channel per class) instead of "
                         "the labels")  # fmt: skip
    tiling = predict.add_mutually_exclusive_group()
    tiling.add_argument("--tile", type=_lengths, metavar="N|ZxYxX",
                        help="output tile lengths: 32 or 32x64x64 (default: the largest tiles "
                        "within the memory limit)")  # fmt: skip
    tiling.add_argument("--memory-limit", type=_memory, default=None, metavar="SIZE",
                        help="working memory of one batch, e.g. 2GiB (default 1GiB)")  # fmt: skip
    predict.add_argument("--batch-size", type=_positive_int, default=1, help="tiles per call")
    predict.add_argument("--normalize", choices=("none", "minmax"), default=None,
                         help="intensities: as they are, or min-max scaled to [0, 1] (default: "
                         "what the model was trained with; minmax for zoo models)")  # fmt: skip
    predict.add_argument("--force", action="store_true", help="replace an existing output")
    predict.set_defaults(run=_predict)

    train = commands.add_parser("train", parents=[common],
                                help="train as a JSON config says")  # fmt: skip
    train.add_argument("config", metavar="CONFIG.json")
    train.add_argument("--force", action="store_true", help="replace an existing output")
    train.set_defaults(run=_train)

    demo = commands.add_parser("demo", parents=[common], help="segment the MNI152 template")
    pretrained = [n for n in _zoo().list_models() if _zoo().weights_path(n) is not None]
    demo.add_argument("--model", default="context3d-basic", choices=pretrained)
    demo.add_argument("--out", default="demo.png", help="the PNG montage")
    demo.set_defaults(run=_demo)
    return parser


def _version():
    from . import __version__

    return __version__


def main(argv=None) -> int:
    """Run the ``dilnet`` command with `argv` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # argparse: --help/--version (0) or a usage error (2)
        return exit.code if isinstance(exit.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    name = " ".join(
        ["dilnet", args.command, *([args.zoo_command] if args.command == "zoo" else [])]
    )
    console = _Console(args.quiet)
    try:
        return args.run(args, console)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`dilnet zoo list | head -1`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (DilnetError, OSError) as err:
        if args.debug:
            traceback.print_exc()
        # one line: a message listing several problems gets them joined
        print(f"{name}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as err:  # a bug in dilnet: still one line, and how to see more
        if args.debug:
            traceback.print_exc()
        print(
            f"{name}: internal error: {type(err).__name__}: {err} (run with --debug for the "
            "traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def entry_point() -> int:
    """The installed ``dilnet`` command and ``python -m dilnet``: `main` in a process of its
    own, which first lets malloc reuse the memory of large arrays
    (`dilnet.allocator.reuse_freed_memory`; a whole-volume prediction took 0.45x the time)."""
    reuse_freed_memory()
    return main()


if __name__ == "__main__":
    sys.exit(entry_point())
