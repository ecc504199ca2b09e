"""Saving and loading behind `Model`: its weights (`save_weights`; `load_weights`, with
``cast`` and Keras's ``skip_mismatch`` for fine-tuning) or the whole model (`save`,
`read_model`), as checkpoints of `dilnet.io.weights`: one ``.npz`` written atomically, with a
manifest of names, shapes, dtypes and sha256 checksums verified before any parameter changes.
"""

import json
import os

import numpy as np

from ..blocks.config import from_config
from ..errors import ConfigError, DilnetError, WeightsError, invalid
from ..io.weights import read_checkpoint, save_checkpoint, verify_against
from .contract import InputContract
from .device import host_copy

__all__ = [
    "apply_pending_state",
    "check_finite",
    "load_weights",
    "read_model",
    "restore_training_state",
    "save",
    "save_weights",
    "split_training_state",
]


def _metadata(model, kind):
    """What a checkpoint's manifest says of the model: enough for `load_model` to rebuild it."""
    base = {"kind": kind, "spec": model.spec.to_config(), "dtype": model.dtype}
    if model.input_contract is not None:
        base["input_contract"] = model.input_contract.to_dict()
    return base


def _arrays(model):
    return {p.name: np.array(p.get_value(borrow=True)) for p in model.params}


def save_weights(model, path):
    """`Model.save_weights`: all parameters and the model's spec and dtype."""
    return save_checkpoint(os.fspath(path), _arrays(model), metadata=_metadata(model, "weights"))


#: the prefix of the optimizer's state arrays in a checkpoint (never a parameter's name: those
#: are block paths)
OPTIMIZER_PREFIX = "__optimizer__."
#: the metadata key of the training state (`train_from_config` records its run under "training")
TRAINING_KEY = "training_state"


def plain_compile_args(args):
    """`Model.compile`'s arguments if they are plain JSON (names and numbers, not objects),
    else None."""
    try:
        text = json.dumps(args, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return json.loads(text)


def _generator_state(value):
    return value.bit_generator.state if isinstance(value, np.random.Generator) else None


def _training_state(model):
    """``(arrays, metadata)`` of the model's training state; ``({}, None)`` before training."""
    if not model._compiled or not model._optimizer_state:
        return {}, None
    arrays, generators = {}, {}
    for i, variable in enumerate(model._optimizer_state):
        value = variable.get_value(borrow=True)
        state = _generator_state(value)
        if state is not None:
            generators[str(i)] = state
        else:
            arrays[f"{OPTIMIZER_PREFIX}{i}"] = host_copy(value)
    sampler = getattr(model._sampler, "rng", None)
    meta = {
        "compile": model._compile_args,
        "learning_rate": model.get_learning_rate(),
        "epochs_trained": model.epochs_trained,
        "optimizer_variables": len(model._optimizer_state),
        "generators": generators,
        "sampler_rng": _generator_state(sampler),
    }
    return arrays, meta


def save(model, path, metadata=None, *, include_optimizer=True):
    """`Model.save`: `save_weights` plus `metadata` (a dict whose keys are not the model's) and,
    with `include_optimizer`, the training state (`_training_state`)."""
    if metadata is not None and not isinstance(metadata, dict):
        raise ConfigError(invalid("Model.save", "metadata", "a dict or None", metadata))
    if not isinstance(include_optimizer, bool):
        raise ConfigError(
            invalid("Model.save", "include_optimizer", "True or False", include_optimizer)
        )
    base = _metadata(model, "model")
    arrays = _arrays(model)
    if include_optimizer:
        state, training = _training_state(model)
        if training is not None:
            arrays.update(state)
            base[TRAINING_KEY] = training
    clash = sorted(set(base) & set(metadata or {}))
    if clash:
        raise ConfigError(
            invalid("Model.save", "metadata", f"no keys named {', '.join(base)}", clash)
        )
    return save_checkpoint(os.fspath(path), arrays, metadata={**base, **(metadata or {})})


def split_training_state(checkpoint):
    """Take the training state out of a read checkpoint ``(arrays, manifest)`` (in place, so
    the rest is the model's weights): ``(arrays, metadata)``, or None if it holds none."""
    arrays, manifest = checkpoint
    state = {k: arrays.pop(k) for k in list(arrays) if k.startswith(OPTIMIZER_PREFIX)}
    manifest["params"] = [p for p in manifest["params"]
                          if not p["name"].startswith(OPTIMIZER_PREFIX)]  # fmt: skip
    meta = manifest.get("metadata", {}).get(TRAINING_KEY)
    return (state, meta) if meta is not None else None


def restore_training_state(model, training, where):
    """Compile `model` as it was (when its compile arguments were saved) and keep the rest of
    the training state for `trainer.function`, which applies it when it builds the training
    function (the optimizer's variables exist only then); `WeightsError` naming `where` for a
    state that does not fit."""
    arrays, meta = training
    if not isinstance(meta, dict):
        raise WeightsError(f"{where}: invalid manifest. Expected metadata.training an object.")
    model.epochs_trained = _epochs(meta.get("epochs_trained", 0), where)
    model._sampler_state = meta.get("sampler_rng")
    args = meta.get("compile")
    if args is None:
        return  # compiled with objects: the user compiles again; the state cannot be matched
    if not isinstance(args, dict):
        raise WeightsError(f"{where}: invalid manifest. Expected metadata.training.compile an "
                           f"object; received {args!r}.")  # fmt: skip
    try:
        model.compile(**args)
        model.set_learning_rate(meta["learning_rate"])
    except (DilnetError, TypeError, KeyError) as err:
        raise WeightsError(
            f"{where}: the training state cannot be restored ({type(err).__name__}: {err})."
        ) from None
    model._pending_state = (arrays, meta)


def _epochs(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WeightsError(f"{where}: invalid manifest. Expected metadata.training.epochs_trained "
                           f"an int >= 0; received {value!r}.")  # fmt: skip
    return value


def apply_pending_state(model, where="Model.fit"):
    """Put a restored training state into the training function's variables, just built."""
    if model._pending_state is None:
        return
    arrays, meta = model._pending_state
    model._pending_state = None
    variables = model._optimizer_state
    generators = meta.get("generators", {})
    if meta.get("optimizer_variables") != len(variables):
        raise WeightsError(
            f"{where}: the saved training state has {meta.get('optimizer_variables')} optimizer "
            f"variables; this model's training function has {len(variables)}."
        )
    for i, variable in enumerate(variables):
        value = variable.get_value(borrow=True)
        if isinstance(value, np.random.Generator):
            state = generators.get(str(i))
            if state is not None:
                restored = np.random.default_rng()
                try:
                    restored.bit_generator.state = state
                except (TypeError, ValueError, KeyError) as err:
                    raise WeightsError(
                        f"{where}: a saved random state is invalid ({err})."
                    ) from None
                variable.set_value(restored)
            continue
        saved = arrays.get(f"{OPTIMIZER_PREFIX}{i}")
        if saved is None or saved.shape != np.shape(value):
            raise WeightsError(
                f"{where}: the saved optimizer variable {i} does not fit this model's training "
                "function."
            )
        variable.set_value(saved.astype(np.asarray(value).dtype, copy=False))


def apply_sampler_state(model, sampler):
    """Put a restored `PatchSampler` random state into `sampler` (the one `fit` is given)."""
    state = getattr(model, "_sampler_state", None)
    if state is None or getattr(sampler, "rng", None) is None:
        return
    model._sampler_state = None
    sampler.rng.bit_generator.state = state


def check_finite(arrays, where, names=None):
    """`WeightsError` naming `where` and each parameter of `arrays` (those in `names`, if given)
    that holds NaN or infinite values: checksums prove a file is what was written, not that
    training had not diverged before it was."""
    bad = []
    for name, array in arrays.items():
        if names is not None and name not in names:
            continue
        if array.dtype.kind in "fc":
            count = array.size - int(np.count_nonzero(np.isfinite(array)))
            if count:
                bad.append(f"{name!r} ({count} of {array.size} values)")
    if bad:
        raise WeightsError(
            f"{where}: expected finite weights; received NaN or infinite values in "
            f"{', '.join(bad)}. The model diverged before it was saved; load an earlier "
            "checkpoint (allow_nonfinite=True loads it for inspection only)."
        )


def load_weights(model, path, *, cast, skip_mismatch, checkpoint=None, allow_nonfinite=False):
    """`Model.load_weights` (documented there): every parameter, or with `skip_mismatch` those
    that fit; the manifest, its ``"skipped"`` names added. `checkpoint` is ``(arrays,
    manifest)`` already read from `path` (by `read_model`), so the file is read once."""
    where = "Model.load_weights"
    if not isinstance(cast, bool):
        raise ConfigError(invalid(where, "cast", "True or False", cast))
    if not isinstance(skip_mismatch, bool):
        raise ConfigError(invalid(where, "skip_mismatch", "True or False", skip_mismatch))
    if not isinstance(allow_nonfinite, bool):
        raise ConfigError(invalid(where, "allow_nonfinite", "True or False", allow_nonfinite))
    arrays, manifest = checkpoint if checkpoint is not None else read_checkpoint(os.fspath(path))
    split_training_state((arrays, manifest))  # the optimizer's arrays are not parameters
    params = model.params
    if not allow_nonfinite:
        check_finite(arrays, os.fspath(path), {p.name for p in params})
    if not skip_mismatch:
        expected = [(p.name, tuple(p.get_value(borrow=True).shape), str(p.dtype)) for p in params]
        verify_against(manifest, expected, where=os.fspath(path), cast=cast)
        model.set_weights([arrays[p.name].astype(p.dtype, copy=False) for p in params])
        return {**manifest, "skipped": []}

    def fits(p):
        a = arrays.get(p.name)
        if a is None or a.shape != p.get_value(borrow=True).shape:
            return False
        floats = np.issubdtype(a.dtype, np.floating) and p.dtype.startswith("float")
        return a.dtype == p.dtype or (cast and floats)

    loaded = {p.name for p in params if fits(p)}
    if not loaded:
        raise WeightsError(
            f"{os.fspath(path)}: no parameter fits this model (skip_mismatch=True loads those "
            "whose name, shape and dtype match; cast=True lets float dtypes differ)."
        )
    values = [
        arrays[p.name].astype(p.dtype, copy=False) if p.name in loaded else w
        for p, w in zip(params, model.get_weights(), strict=True)
    ]
    model.set_weights(values)
    return {**manifest, "skipped": [p.name for p in params if p.name not in loaded]}


def read_model(path):
    """``(spec, dtype, input_contract, (arrays, manifest))`` from a file `Model.save` or
    `Model.save_weights` wrote, read and verified once (`load_model` builds the `Model` and
    passes the arrays on to `load_weights`); `ConfigError` for weights without a model config."""
    arrays, manifest = read_checkpoint(os.fspath(path))
    metadata = manifest.get("metadata", {})
    if "spec" not in metadata:
        raise ConfigError(
            f"load_model: {os.fspath(path)} holds weights but no model config (it was not "
            "written by Model.save or Model.save_weights); build the Model from its spec and "
            "use load_weights."
        )
    dtype = metadata.get("dtype") or next(
        (np.dtype(p["dtype"]).name for p in manifest["params"]), "float32"
    )
    if dtype not in ("float32", "float64"):
        raise WeightsError(
            f"{os.fspath(path)}: invalid manifest. Expected metadata.dtype 'float32' or "
            f"'float64'; received {dtype!r}."
        )
    contract = metadata.get("input_contract")
    if contract is not None:
        contract = InputContract.from_dict(contract, where=f"{os.fspath(path)}: input_contract")
    try:
        spec = from_config(metadata["spec"])
    except DilnetError as err:
        # the same class (a SpecError stays one), now naming the file it came from
        raise type(err)(f"{os.fspath(path)}: the model config in its manifest: {err}") from None
    return spec, dtype, contract, (arrays, manifest)
