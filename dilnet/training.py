"""Training from a config (`dilnet.io.train_config`): what ``dilnet train CONFIG.json`` and the
zoo's recipes both run, so the two cannot drift apart.

`train_from_config` builds the model (an inline spec, a spec or model file, or ``PREFIX:NAME``
of a registered source such as ``zoo:NAME`` with its overrides and pretrained weights, see
`dilnet.plugins`), reads and checks the volumes, trains on class-balanced or random patches
with the config's augmentation and schedule, measures Dice on the whole validation volumes and
saves the model with its training record.

The helpers the command line shares with it resolve model references (`spec_from_ref`,
`model_from_ref`, `model_manifest`) and read volumes checked against a model (`read_image`).
"""

import json
import time
from pathlib import Path

import numpy as np

from . import plugins
from .errors import ConfigError, DilnetError, VolumeError, WeightsError
from .model.callbacks import Callback
from .model.contract import normalize_intensities
from .model.data import augmentation, check_labels, normalize

__all__ = [
    "model_from_ref",
    "model_manifest",
    "output_path",
    "read_image",
    "read_labels",
    "spec_from_ref",
    "train_from_config",
]


# ---------------------------------------------------------------------------------------------
# model references: PREFIX:NAME (dilnet.plugins), a spec JSON, a model .npz


def _check_registered(ref):
    """`ConfigError` for ``PREFIX:NAME`` (not a file name) of a source no plugin registers."""
    prefix, colon, _ = ref.partition(":")
    if (
        colon
        and len(prefix) > 1
        and prefix.isidentifier()
        and not ref.lower().endswith((".json", ".npz"))
    ):
        known = ", ".join(f"{p}:NAME" for p in plugins.registry().model_sources) or "none"
        raise ConfigError(
            f"{ref}: no installed package provides {prefix}:NAME models (registered: {known})."
        )


def model_manifest(path) -> dict:
    """The verified manifest of a model file written by `Model.save` (with its spec)."""
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


def spec_from_ref(ref):
    """The spec of a model reference: ``PREFIX:NAME`` of a registered source, a spec JSON
    written by `dilnet.to_config`, or a model ``.npz`` written by `Model.save`."""
    from .blocks.config import from_config

    ref = str(ref)
    if plugins.model_source(ref) is not None:
        return plugins.resolve_model(ref).spec
    _check_registered(ref)
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
        except RecursionError:
            raise ConfigError(
                f"{path}: expected a spec config; received JSON nested too deeply to read."
            ) from None
        try:
            return from_config(data)
        except DilnetError as err:
            raise type(err)(f"{path}: {err}") from None
    return from_config(model_manifest(path)["metadata"]["spec"])


def model_from_ref(ref):
    """``(model, preprocessing)`` for a trained model: ``PREFIX:NAME`` with its pretrained
    weights, or a model ``.npz`` written by `Model.save` or `train_from_config`;
    ``preprocessing["normalize"]`` is the intensity normalisation it was trained with."""
    from .model import Model, load_model

    ref = str(ref)
    if plugins.model_source(ref) is not None:
        sourced = plugins.resolve_model(ref)
        if sourced.weights is None:
            raise WeightsError(sourced.no_weights or f"{ref}: no pretrained weights.")
        model = Model(sourced.spec)
        model.load_weights(sourced.weights, cast=True)
        return model, {"normalize": sourced.normalize}
    if ref.lower().endswith(".json"):
        raise ConfigError(
            f"{ref}: a spec has no trained weights; give a model .npz written by Model.save or "
            "`dilnet train`, or zoo:NAME."
        )
    _check_registered(ref)
    metadata = model_manifest(ref)["metadata"]
    preprocessing = metadata.get("preprocessing", {})
    return load_model(ref), {"normalize": preprocessing.get("normalize", "none")}


def _rank(network):
    return len(network.input_layer.shape) - 2


# ---------------------------------------------------------------------------------------------
# volumes checked against a model


def read_image(path, *, rank, channels, what="the model", key=None):
    """The `dilnet.io.volume.Volume` at `path`, checked for the input of a `rank`-D model of
    `channels` channels (`what` names it in messages) and for finite intensities; `VolumeError`
    naming the file otherwise."""
    from .io.volume import read_volume

    volume = read_volume(path, rank=rank, key=key)
    if volume.channels != channels:
        layout = {"nifti": "(X, Y, Z, C)" if rank == 3 else "(X, Y, C)"}.get(
            volume.format, "(C, Z, Y, X)" if rank == 3 else "(C, Y, X)"
        )
        raise VolumeError(
            f"{volume.path}: expected {channels} channel(s), the input of {what} (a {rank}D "
            f"model); received {volume.channels} (read as {volume.data.shape}, (C, *spatial)). "
            f"A {volume.format} file of {rank} dims is one channel; channels are {layout}."
        )
    # NaN or infinite voxels would spread through every receptive field they touch
    bad = int(np.size(volume.data) - np.count_nonzero(np.isfinite(volume.data)))
    if bad:
        raise VolumeError(
            f"{volume.path}: expected finite intensities; received {bad:,} NaN or infinite "
            "voxel(s) (replace them, e.g. with np.nan_to_num, before predicting)."
        )
    return volume


def read_labels(path, *, rank, spatial, num_classes, ignore_label=None):
    """The label map at `path` as int64 ``(*spatial)``: one channel of the image's `spatial`
    size, integer values, each a class ``0..num_classes-1`` or `ignore_label`."""
    from .io.volume import read_volume

    label = read_volume(path, rank=rank)
    if label.channels != 1 or label.spatial != tuple(spatial):
        raise VolumeError(
            f"{label.path}: expected one label map of the image's size {tuple(spatial)}; "
            f"received {label.channels} channel(s) of {label.spatial}."
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
    check_labels(
        values,
        num_classes,
        ignore_label=ignore_label,
        where=str(label.path),
        hint=f"The model has {num_classes} classes: set num_classes in the model (or "
        "ignore_label in the config for voxels without a class).",
    )
    return values


def _scale(image, config, contract, rank):
    """`image` (C, *spatial) scaled as `contract` says, or by the config's ``normalize``."""
    if contract is not None:
        return normalize_intensities(image, contract, rank)
    return normalize(image, config.normalize)


def _read_pairs(pairs, base, rank, channels, classes, config, contract=None):
    """(images, labels) of the config's files: images (C, *spatial) float32, normalised."""
    images, labels = [], []
    for pair in pairs:
        image = read_image(base / pair.image, rank=rank, channels=channels)
        labels.append(
            read_labels(
                base / pair.labels,
                rank=rank,
                spatial=image.spatial,
                num_classes=classes,
                ignore_label=config.ignore_label,
            )
        )
        images.append(_scale(image.data, config, contract, rank))
    return images, labels


def _builtin(config, rank, channels, classes, where, contract=None):
    """((images, labels), validation or None) of the config's registered `builtin_data`."""
    name = config.builtin_data
    data = plugins.registry().training_data.get(name)
    if data is None:
        known = ", ".join(plugins.registry().training_data) or "none is installed"
        raise ConfigError(f"{where}: $.builtin_data: expected one of {known}; received {name!r}.")
    parts = []
    for images, labels in data.load():
        images = [np.asarray(image) for image in images]
        for image in images:
            if image.ndim - 1 != rank or image.shape[0] != channels:
                raise ConfigError(
                    f"{where}: $.builtin_data: {name!r} holds {image.shape[0]}-channel "
                    f"{image.ndim - 1}D volumes; the model takes {channels} channel(s) in {rank}D."
                )
        for i, label in enumerate(labels):
            check_labels(label, classes, ignore_label=config.ignore_label,
                         where=f"builtin_data {name!r}", name=f"labels[{i}]")  # fmt: skip
        parts.append(([_scale(image, config, contract, rank) for image in images], list(labels)))
    train, validation = parts
    return train, validation if validation[0] else None


# ---------------------------------------------------------------------------------------------
# training


def output_path(config, base=".", where="train_from_config") -> Path:
    """Where `train_from_config` writes the model: the config's ``output`` under `base`
    (a ``.npz`` file in an existing directory)."""
    path = Path(base) / config.output
    if not path.name.lower().endswith(".npz"):
        raise ConfigError(f"{where}: $.output: expected a .npz file; received {config.output!r}.")
    if not path.parent.is_dir():
        raise VolumeError(
            f"{path}: the directory {path.parent} does not exist (the config's output)."
        )
    return path


def run_directory(config, base=".") -> Path:
    """The run directory of a config: beside its output, named after it (``model.npz`` ->
    ``model.run``). `train_from_config` keeps its checkpoints there: ``last.npz`` after every
    epoch (with ``run_dir=``), ``epoch-NNNN.npz`` every ``checkpoint_every`` epochs and
    ``interrupted.npz`` when stopped."""
    output = Path(base) / config.output
    return output.with_name(output.name[: -len(".npz")] + ".run")


class _RunCheckpoints(Callback):
    """Save the model with its training state into the run directory at each completed epoch
    (``last.npz``), every `every` epochs (``epoch-NNNN.npz``), and stop after the current step
    when `stop()` says so."""

    def __init__(self, directory, every, run, stop):
        self.directory, self.every, self.run, self.stop = Path(directory), every, run, stop
        self.interrupted = False

    def on_batch_end(self, step, logs=None):
        if self.stop is not None and self.stop():
            self.interrupted = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.model.epochs_trained != epoch + 1 or not self.model.weights_finite():
            return  # an epoch cut short, or diverged: the last good checkpoint stays
        self.directory.mkdir(exist_ok=True)
        metadata = {"run": self.run}
        self.model.save(self.directory / "last.npz", metadata=metadata)
        if self.every is not None and (epoch + 1) % self.every == 0:
            self.model.save(self.directory / f"epoch-{epoch + 1:04d}.npz", metadata=metadata)


def _resumed(config, resume, where):
    """The model of ``<resume>/last.npz``, checked to be a run of `config` (its epochs may
    differ: a run can be extended)."""
    from .model import load_model

    path = Path(resume) / "last.npz"
    if not path.is_file():
        raise VolumeError(
            f"{path}: no such file: {resume} holds no checkpoint of a completed epoch (resume "
            "continues from last.npz, written after each epoch)."
        )
    model = load_model(path)
    run = model_manifest(path)["metadata"].get("run", {})
    saved = dict(run.get("config", {}))
    now = config.to_dict()
    differ = sorted(
        k for k in set(saved) | set(now) if k != "epochs" and saved.get(k) != now.get(k)
    )
    if differ:
        raise ConfigError(
            f"{where}: expected the config {path} was trained with (only $.epochs may change "
            f"to resume); received one that differs in {', '.join('$.' + k for k in differ)}."
        )
    if model.epochs_trained >= config.epochs:
        raise ConfigError(
            f"{where}: $.epochs: expected more than the {model.epochs_trained} epochs {path} "
            f"has trained; received {config.epochs}."
        )
    return model


def _build(config, base, where, log):
    """(model, pretrained parameters left at their initial values)."""
    from .blocks.config import from_config
    from .model import Model

    ref = config.model if isinstance(config.model, str) else None
    source = plugins.model_source(ref) if ref is not None else None
    sources = " or ".join(f"{p}:NAME" for p in plugins.registry().model_sources) or "PREFIX:NAME"
    if config.overrides and source is None:
        raise ConfigError(f"{where}: $.overrides: expected none for a model that is not "
                          f"{sources}; received {config.overrides}.")  # fmt: skip
    if config.pretrained and source is None:
        raise ConfigError(f"{where}: $.pretrained: expected false for a model that is not "
                          f"{sources} (a model .npz starts from its own weights); received true.")  # fmt: skip
    if ref is None:
        spec = from_config(config.model)
    elif source is not None:
        sourced = plugins.resolve_model(ref, **config.overrides)
        spec = sourced.spec
    else:
        _check_registered(ref)
        spec = spec_from_ref(str(Path(base) / ref))
    model = Model(spec, seed=config.seed)
    skipped = []
    if config.pretrained:
        if sourced.weights is None:
            listing = f" (see `{source[0].listing}`)" if source[0].listing else ""
            raise ConfigError(f"{where}: $.pretrained: {ref} has no pretrained weights{listing}.")
        defaults = sourced.defaults
        for key, value in config.overrides.items():
            # a new number of classes changes the classifier only; other shape overrides would
            # leave almost nothing of the pretrained weights
            if key in sourced.shape_overrides and key != "num_classes" and value != defaults[key]:
                raise ConfigError(
                    f"{where}: $.overrides.{key}: expected {defaults[key]!r} with "
                    f"pretrained=true (the pretrained weights have that shape; only num_classes "
                    f"may change, which retrains the classifier); received {value!r}."
                )
        classes = config.overrides.get("num_classes", defaults.get("num_classes"))
        fine_tune = classes != defaults.get("num_classes")
        skipped = model.load_weights(sourced.weights, cast=True, skip_mismatch=fine_tune)["skipped"]
        if skipped:
            log(
                f"pretrained {ref.split(':', 1)[1]} with num_classes={classes}: {len(skipped)} "
                f"parameter(s) of the classifier start from their initial values: "
                f"{', '.join(skipped)}"
            )
    elif ref is not None and ref.lower().endswith(".npz"):
        model.load_weights(Path(base) / ref, cast=True)
    return model, skipped


def train_from_config(
    config, *, base=".", overwrite=False, where=None, log=None, verbose=1, input_contract=None,
    run_dir=None, resume=None, stop=None,
):  # fmt: skip
    """Train as `config` says and save the model; return ``(model, record)``.

    Parameters
    ----------
    config : TrainConfig or dict
        A `dilnet.io.train_config.TrainConfig`, or its JSON form.
    base : str or path
        The directory the config's relative paths (model, volumes, output) start from: the
        config file's directory.
    overwrite : bool
        Replace an existing output file (without it, `VolumeError` before any work).
    where : str, optional
        What messages start with (the config file; default ``"train_from_config"``).
    log : callable, optional
        ``log(text)`` for notes: the model and data trained on, the pretrained parameters left
        at their initial values, the time taken (default: none).
    verbose : int
        `Model.fit`'s: 0 silent, 1 a progress bar, 2 one line per epoch.
    input_contract : dilnet.model.contract.InputContract, optional
        What the model expects of its input, saved with it (``model.input_contract``). The
        volumes are then scaled by it, with `normalize_intensities` as at inference, and the
        config's ``normalize`` must name its normalisation.
    run_dir : str or path, optional
        Save the model with its training state (`Model.save`) there after every completed
        epoch as ``last.npz``, and every ``checkpoint_every`` epochs as ``epoch-NNNN.npz``.
        Default: `run_directory` when the config sets ``checkpoint_every``, else none.
    resume : str or path, optional
        A run directory: continue its run from ``last.npz`` (the end of its last completed
        epoch) exactly as if it had not stopped. The config must be the one it was started
        with; only ``epochs`` may grow.
    stop : callable, optional
        ``stop() -> bool``, asked after every step (e.g. set by a signal handler): when True,
        training stops after that step, the model as it is goes to ``interrupted.npz`` in the
        run directory, nothing is written to the output, and the record says
        ``"interrupted": True``.

    Returns
    -------
    model : dilnet.model.Model
        The trained model, as saved.
    record : dict
        What the model file records under ``metadata["training"]``: ``config`` (its JSON
        form), ``history`` (each epoch's logs: ``loss``, metrics, ``val_...``, ``lr``),
        ``train_seconds`` (`Model.fit`'s time), ``pretrained_skipped`` (the parameters not
        loaded from pretrained weights, a new classifier's), ``dilnet_version`` and, with
        validation data, ``validation_dice_whole_volumes``: the Dice of each class on the whole
        validation volumes (`dilnet.inference.predict_volume`), the mean over the volumes.

    Notes
    -----
    Every volume is scaled whole first (``normalize`` or `input_contract`), then patches are
    drawn by a `dilnet.model.PatchSampler` seeded with ``config.seed`` (the validation patches
    with ``seed + 1``), augmented by the config's named steps (`dilnet.model.data.augmentation`)
    or by its `dilnet.model.augment.Augment` (``"synthseg"``, which reads each patch's window
    of the whole volume; validation patches are not augmented); the ``"cosine"`` schedule
    decays the learning rate to 1/20 over the epochs. The model file also records
    ``preprocessing["normalize"]``, which `model_from_ref` (and ``dilnet predict``) apply.
    """
    from ._version import __version__
    from .inference import predict_volume
    from .io.train_config import TrainConfig, augment_from_config, train_config_from_dict
    from .model import EarlyStopping, LearningRateScheduler, PatchSampler, cosine_decay
    from .model.contract import InputContract
    from .model.metrics import dice_per_class

    if not isinstance(config, TrainConfig):
        config = train_config_from_dict(config)
    base = Path(base)
    where = where or "train_from_config"
    log = log or (lambda text: None)
    output = output_path(config, base, where)
    if input_contract is not None:
        if not isinstance(input_contract, InputContract):
            raise ConfigError(f"{where}: invalid value for `input_contract`. Expected an "
                              f"InputContract or None; received {input_contract!r}.")  # fmt: skip
        if input_contract.normalization != config.normalize:
            raise ConfigError(
                f"{where}: $.normalize: expected {input_contract.normalization!r}, the "
                f"normalization of the input_contract the model is saved with; received "
                f"{config.normalize!r}."
            )
    if output.exists() and not overwrite:
        raise VolumeError(f"{output}: exists; pass overwrite=True to replace it.")

    if resume is not None:
        model, skipped = _resumed(config, resume, where), []
        run_dir = Path(resume)
        log(f"resuming {run_dir / 'last.npz'} after epoch {model.epochs_trained}")
    else:
        model, skipped = _build(config, base, where, log)
    if run_dir is None and config.checkpoint_every is not None:
        run_dir = run_directory(config, base)
    network = model.network
    rank, channels, classes = _rank(network), network.input_layer.shape[1], network.output_shape[1]
    if len(config.patch_size) not in (1, rank):
        raise ConfigError(
            f"{where}: $.patch_size: expected one length or {rank} (a {rank}D model); received "
            f"{list(config.patch_size)}."
        )
    patch = config.patch_size * rank if len(config.patch_size) == 1 else config.patch_size
    if isinstance(config.augment, tuple):
        augment = augmentation(config.augment, rank=rank, where=f"{where}: $.augment")
    else:
        try:
            augment = augment_from_config(config.augment, rank=rank)
        except DilnetError as err:
            raise ConfigError(f"{where}: {err}") from None
    if config.builtin_data is not None:
        (images, labels), validation = _builtin(
            config, rank, channels, classes, where, input_contract
        )
    else:
        args = (base, rank, channels, classes, config, input_contract)
        images, labels = _read_pairs(config.train, *args)
        validation = _read_pairs(config.validation, *args) if config.validation else None

    class_weights = list(config.class_weights) if config.class_weights is not None else None
    if resume is None:  # a resumed model is compiled as it was, with its optimizer's state
        model.compile(config.optimizer, config.loss, list(config.metrics),
                      learning_rate=config.learning_rate, ignore_label=config.ignore_label,
                      class_weights=class_weights)  # fmt: skip
    sampler = PatchSampler(images, labels, patch, batch_size=config.batch_size,
                           strategy=config.sampling, ignore_label=config.ignore_label,
                           seed=config.seed, steps_per_epoch=config.steps_per_epoch,
                           augment=augment)  # fmt: skip
    val_sampler = None
    if validation is not None:
        val_sampler = PatchSampler(*validation, patch, batch_size=config.batch_size,
                                   seed=config.seed + 1,
                                   steps_per_epoch=config.validation_steps)  # fmt: skip
    callbacks = []
    if config.early_stopping is not None:
        e = config.early_stopping
        callbacks.append(EarlyStopping(monitor=e.monitor, min_delta=e.min_delta,
                                       patience=e.patience, mode=e.mode))  # fmt: skip
    if config.schedule == "cosine":
        final = config.learning_rate / 20
        callbacks.append(
            LearningRateScheduler(cosine_decay(config.learning_rate, config.epochs, final=final))
        )
    log(
        f"training {config.model if isinstance(config.model, str) else 'the inline spec'}: "
        f"{network.count_params(trainable=True):,} parameters, {len(images)} volume(s), "
        f"{config.epochs} epoch(s) of {config.steps_per_epoch} steps, patches "
        f"{'x'.join(map(str, patch))}"
    )
    checkpoints = None
    if run_dir is not None or stop is not None:
        run_dir = Path(run_dir) if run_dir is not None else run_directory(config, base)
        checkpoints = _RunCheckpoints(run_dir, config.checkpoint_every,
                                      {"config": config.to_dict()}, stop)  # fmt: skip
        callbacks.append(checkpoints)
    start = time.perf_counter()
    history = model.fit(sampler, epochs=config.epochs, validation_data=val_sampler,
                        callbacks=callbacks, verbose=verbose, seed=config.seed,
                        initial_epoch=model.epochs_trained if resume is not None else 0)  # fmt: skip
    seconds = time.perf_counter() - start
    if checkpoints is not None and checkpoints.interrupted:
        run_dir.mkdir(exist_ok=True)
        model.save(run_dir / "interrupted.npz", metadata={"run": checkpoints.run})
        log(
            f"interrupted after {model.epochs_trained} complete epoch(s); wrote "
            f"{run_dir / 'interrupted.npz'}"
        )
        return model, {"interrupted": True, "run_dir": str(run_dir),
                       "epochs_trained": model.epochs_trained}  # fmt: skip
    results = {}
    if validation is not None:
        dice = [
            dice_per_class(
                # the volumes are scaled already
                predict_volume(model, image, normalize=False, progress=False).argmax(axis=0),
                label,
                classes,
            )
            for image, label in zip(*validation, strict=True)
        ]
        results["validation_dice_whole_volumes"] = np.nanmean(dice, axis=0).tolist()
    record = {
        "config": config.to_dict(),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "train_seconds": seconds,
        "pretrained_skipped": skipped,
        "dilnet_version": __version__,
        **results,
    }
    if input_contract is not None:
        model.input_contract = input_contract
    model.save(output, metadata={"training": record,
                                 "preprocessing": {"normalize": config.normalize}})  # fmt: skip
    log(f"trained in {seconds:.1f} s; wrote {output}")
    return model, record
