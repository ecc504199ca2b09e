"""Saving and loading behind `Model`: its weights (`save_weights`; `load_weights`, with
``cast`` and Keras's ``skip_mismatch`` for fine-tuning) or the whole model (`save`,
`read_model`), as checkpoints of `dilnet.io.weights`: one ``.npz`` written atomically, with a
manifest of names, shapes, dtypes and sha256 checksums verified before any parameter changes.
"""

import os

import numpy as np

from ..blocks.config import from_config
from ..errors import ConfigError, DilnetError, WeightsError, invalid
from ..io.weights import read_checkpoint, save_checkpoint, verify_against
from .contract import InputContract

__all__ = ["check_finite", "load_weights", "read_model", "save", "save_weights"]


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


def save(model, path, metadata=None):
    """`Model.save`: `save_weights` plus `metadata` (a dict whose keys are not the model's)."""
    if metadata is not None and not isinstance(metadata, dict):
        raise ConfigError(invalid("Model.save", "metadata", "a dict or None", metadata))
    base = _metadata(model, "model")
    clash = sorted(set(base) & set(metadata or {}))
    if clash:
        raise ConfigError(
            invalid("Model.save", "metadata", f"no keys named {', '.join(base)}", clash)
        )
    return save_checkpoint(os.fspath(path), _arrays(model), metadata={**base, **(metadata or {})})


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
