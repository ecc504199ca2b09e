"""The ``dilnet`` command: parsing, printing and exit codes; the work is done by the library
(`dilnet.training`, `dilnet.inference`, `dilnet.io`).

    dilnet summary SPEC.json|MODEL.npz|zoo:NAME [--input-size N|ZxYxX] [--batch-size N]
    dilnet predict --model zoo:NAME|MODEL.npz --input VOLUME --output VOLUME
                   [--memory-limit 1GiB | --tile N|ZxYxX] [--probabilities] [--normalize minmax]
    dilnet train CONFIG.json [--resume DIR]  train as a JSON config says (dilnet.io.train_config)
    dilnet export MODEL.npz|zoo:NAME --output FILE.onnx [--format onnx]
                                             the network for other runtimes (dilnet.io.onnx)

and the commands of installed plugins (`dilnet.plugins`); with `dilnet_zoo`:

    dilnet zoo list                          the zoo's networks
    dilnet zoo info NAME                     a network's model card
    dilnet demo                              the main job: segment a held-out brain (Colin27)

Volumes are NIfTI (``.nii``, ``.nii.gz``; affine and header carried to the output), ``.npy`` /
``.npz`` or TIFF stacks (`dilnet.io.volume`). A model with an input contract
(`dilnet.model.contract`; the zoo's) gets a NIfTI input reoriented, resampled and scaled as it
was trained (`dilnet.preprocessing.predict_image`), the result on the input's own grid; arrays
without an affine are only scaled (a note says so). Results go to standard output; progress bars and
notes to standard error (``--quiet`` silences them).

Exit codes: 0 success; 1 the work failed (a dilnet error, an unreadable or invalid file: one
line on standard error, the traceback only with ``--debug``); 2 the command line is wrong
(unknown command or option, a value that does not parse); 130 interrupted.
"""

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from . import plugins
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
    found = plugins.model_source(text)
    if found is not None:
        source, name = found
        if not name:
            listing = f" (see `{source.listing}`)" if source.listing else ""
            raise argparse.ArgumentTypeError(f"expected {source.prefix}:NAME{listing}")
        return text
    if not text.lower().endswith((".npz", ".json")):
        forms = ", ".join([*_forms(), "a model .npz (Model.save) or a spec .json"])
        raise argparse.ArgumentTypeError(f"expected {forms}; received {text!r}")
    return text


def _forms():
    """``PREFIX:NAME`` of each registered model source (`dilnet.plugins`): ``["zoo:NAME"]``."""
    return [f"{prefix}:NAME" for prefix in plugins.registry().model_sources]


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
# commands


def _summary(args, console):
    import pytensor

    from .blocks.config import from_config
    from .training import model_manifest, spec_from_ref

    # in the dtype a Model of it computes in: float32, or what the model file records
    if args.target.lower().endswith(".npz"):
        metadata = model_manifest(Path(args.target))["metadata"]  # read and verified once
        spec, dtype = from_config(metadata["spec"]), metadata.get("dtype", "float32")
    else:
        spec, dtype = spec_from_ref(args.target), "float32"
    rank = _rank(spec.build())
    size = _per_axis(args.input_size, rank, "--input-size")
    with pytensor.config.change_flags(floatX=dtype):
        text = spec.summary(input_size=size, batch_size=args.batch_size, print_fn=None)
    console.result(text)
    return EXIT_OK


def _rank(network):
    return len(network.input_layer.shape) - 2


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


def _check_output(path, force, what="--output", inputs=()):
    """Fail before any work when the output cannot be written, or is one of `inputs` (the
    files the command reads: --force never replaces them)."""
    from .io.volume import volume_format

    path = Path(path)
    volume_format(path)
    for source in inputs:
        same = Path(source).resolve() == path.resolve()
        if not same and path.exists() and Path(source).exists():
            same = os.path.samefile(source, path)
        if same:
            raise VolumeError(
                f"{path}: is also the input {source}; write the output to another file "
                f"({what}; --force never replaces an input)."
            )
    if not path.parent.is_dir():
        raise VolumeError(f"{path}: the directory {path.parent} does not exist ({what}).")
    if path.exists() and not force:
        raise VolumeError(f"{path}: exists; pass --force to replace it ({what}).")


def _predict(args, console):
    from .inference import predict_volume
    from .io.volume import write_volume
    from .model.data import normalize
    from .preprocessing import predict_image
    from .training import model_from_ref, read_image

    _check_output(args.output, args.force, inputs=[args.input, *_model_files(args.model)])
    start = time.perf_counter()
    model, recorded = model_from_ref(args.model)
    contract = model.input_contract = _contract_of(model, args.model)
    rank = _rank(model.network)
    tile = _per_axis(args.tile, rank, "--tile")
    channels = model.network.input_layer.shape[1]
    volume = read_image(args.input, rank=rank, channels=channels, what=args.model, key=args.key)
    run = {"tile": tile, "memory_limit": args.memory_limit, "batch_size": args.batch_size,
           "progress": console.progress}  # fmt: skip
    shape = f"{volume.data.shape[0]} channel(s) x {'x'.join(map(str, volume.spatial))}"
    if contract is None:  # the model says nothing: --normalize, or what it was trained with
        how = args.normalize or recorded["normalize"]
        console.note(f"{args.model}: {volume.path.name} {shape}, intensities: {how}")
        probabilities = predict_volume(model, normalize(volume.data, how), **run)
    else:
        console.note(f"{args.model}: {volume.path.name} {shape}, input contract: "
                     f"{_describe(contract)}")  # fmt: skip
        if args.normalize:
            console.note(f"--normalize {args.normalize} ignored: the model's input contract "
                         "sets the intensity scaling")  # fmt: skip
        geometric = contract.orientation is not None or contract.voxel_size is not None
        if geometric and volume.affine is not None:
            probabilities = predict_image(model, volume, **run)
        else:
            if geometric:
                console.note(
                    f"note: {volume.path.name} has no affine: its orientation and voxel size "
                    f"were not checked (the model expects {_describe(contract, scaling=False)}); "
                    "intensities scaled only"
                )
            probabilities = predict_volume(model, volume.data, **run)
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


def _model_files(ref):
    """The file a ``--model`` value names, if it is one (not ``PREFIX:NAME``)."""
    return [] if plugins.model_source(str(ref)) is not None else [ref]


def _contract_of(model, ref):
    """`model`'s input contract, else (for ``PREFIX:NAME``) the one its pretrained weights file
    records (`Model.save` writes it), else None."""
    from .model.contract import InputContract
    from .training import model_manifest

    if model.input_contract is not None or plugins.model_source(ref) is None:
        return model.input_contract
    weights = plugins.resolve_model(ref).weights
    recorded = model_manifest(weights)["metadata"].get("input_contract")
    if recorded is None:
        return None
    return InputContract.from_dict(recorded, where=f"{weights}: input_contract")


def _describe(contract, scaling=True):
    """``RAS, 2x2x2 mm, percentile 0.5-99.5 of nonzero voxels``."""
    parts = [contract.orientation or "any orientation"]
    size = contract.voxel_size
    parts.append(f"{'x'.join(f'{v:g}' for v in size)} mm" if size else "any voxel size")
    if scaling:
        how = contract.normalization
        if how == "percentile":
            how = f"percentile {contract.low:g}-{contract.high:g} of {contract.foreground} voxels"
        parts.append(f"intensities: {how}")
    return ", ".join(parts)


class _Signals:
    """SIGINT and SIGTERM ask training to stop after its current step (the first signal; a
    second one interrupts at once, as usual); the handlers are put back on exit."""

    def __init__(self):
        self.received = None

    def __call__(self):
        return self.received is not None

    def __enter__(self):
        self.previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None:  # a second signal: stop now
            signal.signal(signum, self.previous[signum])
            signal.raise_signal(signum)
            return
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _train(args, console):
    from .io.train_config import read_train_config
    from .training import output_path, run_directory, train_from_config

    path = Path(args.config)
    config = read_train_config(path)
    output = output_path(config, path.parent, where=str(path))
    _check_output(output, args.force, what="the config's output")
    run_dir = Path(args.resume) if args.resume else run_directory(config, path.parent)
    with _Signals() as signals, contextlib.redirect_stdout(sys.stderr):
        # fit's epoch lines are notes, not results
        _, record = train_from_config(
            config, base=path.parent, overwrite=True, where=str(path), log=console.note,
            verbose=0 if console.quiet else 1 if console.progress else 2,
            run_dir=run_dir, resume=args.resume, stop=signals,
        )  # fmt: skip
    if record.get("interrupted"):
        name = signal.Signals(signals.received).name
        # said even with --quiet: the run did not finish
        print(
            f"{name}: stopped after {record['epochs_trained']} complete epoch(s); continue with "
            f"`dilnet train {args.config} --resume {run_dir}` (from {run_dir / 'last.npz'})",
            file=sys.stderr,
        )
        return 128 + signals.received
    result = {"output": str(output),
              "final": {k: round(v[-1], 4) for k, v in record["history"].items()}}  # fmt: skip
    if "validation_dice_whole_volumes" in record:
        result["validation_dice_whole_volumes"] = record["validation_dice_whole_volumes"]
    console.result(json.dumps(result))
    return EXIT_OK


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
        description="Dilated volumetric networks: the zoo, summaries, prediction, training and export.",
        epilog="Exit codes: 0 success, 1 the work failed, 2 bad command line.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # the commands of dilnet and of its plugins (dilnet.plugins), in their order
    builtin = [plugins.Command(name="summary", add=_add_summary, order=20),
               plugins.Command(name="predict", add=_add_predict, order=30),
               plugins.Command(name="train", add=_add_train, order=40),
               plugins.Command(name="export", add=_add_export, order=50)]  # fmt: skip
    names = {c.name for c in builtin}
    extra = [c for c in plugins.registry().commands.values() if c.name not in names]
    for command in sorted([*builtin, *extra], key=lambda c: c.order):
        command.add(commands, common)
    return parser


def _add_summary(commands, common):
    summary = commands.add_parser(
        "summary", parents=[common], help="the layer table of a spec, a model or a zoo network"
    )
    summary.add_argument("target", type=_model_ref,
                         metavar="|".join(["SPEC.json", "MODEL.npz", *_forms()]))  # fmt: skip
    summary.add_argument("--input-size", type=_lengths, metavar="N|ZxYxX",
                         help="spatial lengths for shapes and memory: 64 or 48x64x64")  # fmt: skip
    summary.add_argument("--batch-size", type=_positive_int, default=1)
    summary.set_defaults(run=_summary)


def _add_predict(commands, common):
    predict = commands.add_parser("predict", parents=[common], help="segment a volume")
    predict.add_argument("--model", required=True, type=_model_ref,
                         metavar="|".join([*_forms(), "MODEL.npz"]))  # fmt: skip
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
                         help="intensities of a model without an input contract: as they are, "
                         "or min-max scaled to [0, 1] (default: what the model was trained "
                         "with). A model with an input contract (the zoo's) ignores it: the "
                         "contract sets the scaling, and for NIfTI inputs the orientation and "
                         "voxel size too (the result is mapped back to the input's grid)")  # fmt: skip
    predict.add_argument("--force", action="store_true", help="replace an existing output")
    predict.set_defaults(run=_predict)


def _add_train(commands, common):
    train = commands.add_parser("train", parents=[common],
                                help="train as a JSON config says")  # fmt: skip
    train.add_argument("config", metavar="CONFIG.json")
    train.add_argument("--force", action="store_true", help="replace an existing output")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR (its last.npz) exactly")  # fmt: skip
    train.set_defaults(run=_train)


def _export(args, console):
    from .training import model_from_ref

    output = Path(args.output)
    if output.suffix.lower() != ".onnx":
        raise ConfigError(f"{output}: expected a file name ending in .onnx (--output).")
    if not output.parent.is_dir():
        raise ConfigError(f"{output}: the directory {output.parent} does not exist (--output).")
    if output.exists() and not args.force:
        raise ConfigError(f"{output}: exists; pass --force to replace it (--output).")
    start = time.perf_counter()
    model, _ = model_from_ref(args.model)
    model.input_contract = _contract_of(model, args.model)
    path = model.export_onnx(output)
    console.note(f"wrote {path}: {args.model} as ONNX ({args.format}) in "
                 f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    console.result(str(path))
    return EXIT_OK


def _add_export(commands, common):
    export = commands.add_parser(
        "export", parents=[common],
        help="write a model as ONNX (onnxruntime, TensorRT, OpenVINO)",
    )  # fmt: skip
    export.add_argument("model", type=_model_ref, metavar="|".join(["MODEL.npz", *_forms()]))
    export.add_argument("--format", choices=("onnx",), default="onnx",
                        help="the file format (default onnx)")  # fmt: skip
    export.add_argument("--output", required=True, metavar="FILE.onnx")
    export.add_argument("--force", action="store_true", help="replace an existing output")
    export.set_defaults(run=_export)


def _version():
    from ._version import __version__

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
    name = f"dilnet {getattr(args, 'command_name', args.command)}"
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
