"""Training configs for ``dilnet train CONFIG``: a JSON file that says what to train on what.

A config:

```json
{"format": "dilnet.train", "format_version": 1,
 "model": "zoo:context3d-basic",
 "train": [{"image": "t1.nii.gz", "labels": "tissue.nii.gz"}],
 "validation": [{"image": "t1-b.nii.gz", "labels": "tissue-b.nii.gz"}],
 "patch_size": [40, 48, 48], "epochs": 8, "steps_per_epoch": 50,
 "loss": "crossentropy+dice", "learning_rate": 0.002, "schedule": "cosine",
 "output": "my-model.npz"}
```

`model` is ``"zoo:NAME"`` (a zoo network, with `overrides` and optionally its `pretrained`
weights to fine-tune), a path to a spec JSON written by `dilnet.to_config` or to a model
``.npz`` written by `Model.save` (fine-tuned from its weights), or an inline spec config dict.
Instead of `train`/`validation` files, ``"builtin_data": NAME`` names volumes a plugin
registers (`dilnet.plugins`): with `dilnet_zoo`, ``"mni152"`` (the embedded MNI152 template's
2 mm volume) or ``"mni152-grids"`` (that and the other seven 2 mm grids of its 1 mm volume).
``"augment"`` is either a list of patch augmentation steps (``["intensity", "subvoxel_shift",
"noise", "flip0"]``, `dilnet.model.data.AUGMENTATIONS`), or the SynthSeg-style
`dilnet.model.augment.Augment`: ``"synthseg"`` (its defaults) or ``{"synthseg": {FIELD:
VALUE, ...}}`` (its fields, lists for pairs, e.g. ``{"synthseg": {"p_tissue": 0.5,
"normalize": false}}``). ``"normalize"`` scales every volume before patches are drawn:
``"none"``, ``"minmax"`` or ``"percentile"`` (`dilnet.model.data.normalize`, the
`dilnet.model.contract.normalize_intensities` of inference). A config is run by
`dilnet.training.train_from_config` (what ``dilnet train`` calls). Relative paths are relative
to the config file. Reading goes through the same strict cattrs converter as model configs:
unknown keys, missing keys and values of the wrong type are all reported at once with their
JSON paths (``$.patch_size[1]: expected an int; received 'x'``); nothing is evaluated.
"""

import json
import math
import re
from pathlib import Path

import attrs

from ..blocks.config import _problems, _report, converter
from ..errors import SpecError, suggest

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "NORMALIZE",
    "SYNTHSEG",
    "TrainConfig",
    "VolumePair",
    "augment_from_config",
    "read_train_config",
    "train_config_from_dict",
]

FORMAT = "dilnet.train"
FORMAT_VERSION = 1
#: intensity normalisations: none, min-max scaling of each volume to [0, 1], or its foreground's
#: 0.5/99.5 percentiles to [0, 1] (`dilnet.model.data.NORMALIZATIONS`, which `normalize` applies)
NORMALIZE = ("percentile", "minmax", "none")
#: the name of the SynthSeg-style augmentation (`dilnet.model.augment.Augment`) under "augment"
SYNTHSEG = "synthseg"
SCHEDULES = ("constant", "cosine")
SAMPLING = ("random", "balanced")


class _Problems(SpecError):
    """Several invalid values at once, each line already ``$.path: message``."""

    def __init__(self, problems):
        super().__init__(_report(problems))
        self.problems = problems


def _names():
    """The names `Model.compile` accepts (imported late: dilnet.model imports dilnet.io)."""
    from ..model.data import AUGMENTATIONS, NORMALIZATIONS
    from ..model.losses import LOSSES
    from ..model.metrics import METRICS
    from ..model.optimizers import OPTIMIZERS
    from ..plugins import registry

    return {"optimizer": tuple(OPTIMIZERS), "loss": tuple(LOSSES), "metrics": tuple(METRICS),
            "augment": tuple(AUGMENTATIONS), "normalize": NORMALIZATIONS,
            "builtin_data": tuple(registry().training_data)}  # fmt: skip


@attrs.frozen(kw_only=True)
class VolumePair:
    """One training (or validation) volume: an image file and its label map, same size."""

    image: str
    labels: str


@attrs.frozen(kw_only=True)
class EarlyStoppingConfig:
    """A config's ``early_stopping``: `dilnet.model.EarlyStopping`'s arguments."""

    monitor: str = "val_loss"
    patience: int = 5
    min_delta: float = 0.0
    mode: str = "auto"


@attrs.frozen(kw_only=True)
class TrainConfig:
    """A training run: the model, the data, the patches and the optimisation (see the module
    docstring for the JSON form)."""

    #: "zoo:NAME", a spec JSON or model .npz path, or an inline spec config dict
    model: str | dict
    #: zoo overrides, e.g. {"num_classes": 2} (zoo models only)
    overrides: dict = attrs.field(factory=dict)
    #: start from the zoo model's pretrained weights
    pretrained: bool = False
    train: tuple[VolumePair, ...] = ()
    validation: tuple[VolumePair, ...] = ()
    builtin_data: str | None = None
    patch_size: tuple[int, ...]
    batch_size: int = 2
    epochs: int = 10
    steps_per_epoch: int = 50
    validation_steps: int = 10
    sampling: str = "balanced"
    #: patch augmentation steps, applied in this order (`dilnet.model.data.augmentation`), or
    #: "synthseg" / {"synthseg": {Augment fields}} (`augment_from_config`)
    augment: tuple[str, ...] | str | dict = ()
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    loss: str = "crossentropy"
    metrics: tuple[str, ...] = ("dice",)
    normalize: str = "none"
    ignore_label: int | None = None
    #: cross-entropy weight of each class (`Model.compile`'s ``class_weights``)
    class_weights: tuple[float, ...] | None = None
    #: {"monitor": "val_loss", "patience": 5, "min_delta": 0.0, "mode": "auto"}: `EarlyStopping`
    early_stopping: EarlyStoppingConfig | None = None
    #: keep ``epoch-NNNN.npz`` in the run directory every so many epochs (`train_from_config`)
    checkpoint_every: int | None = None
    seed: int = 0
    output: str = "model.npz"

    def __attrs_post_init__(self):
        """Check every value; all problems are reported together, each with its path."""
        problems = []

        def bad(path, expected, value):
            problems.append(f"$.{path}: expected {expected}; received {value!r}")

        for name in ("batch_size", "epochs", "steps_per_epoch", "validation_steps"):
            if getattr(self, name) < 1:
                bad(name, "an int >= 1", getattr(self, name))
        if not self.patch_size or min(self.patch_size) < 1:
            bad("patch_size", "positive ints (one, or one per spatial axis)", list(self.patch_size))
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            bad("checkpoint_every", "an int >= 1 or null", self.checkpoint_every)
        if self.class_weights is not None and not all(
            math.isfinite(w) and w >= 0 for w in self.class_weights
        ):
            bad("class_weights", "finite numbers >= 0, one per class", list(self.class_weights))
        if not (math.isfinite(self.learning_rate) and self.learning_rate >= 0):
            bad("learning_rate", "a finite number >= 0", self.learning_rate)
        if self.seed < 0:
            bad("seed", "an int >= 0", self.seed)
        names = _names()
        choices = {"sampling": SAMPLING, "schedule": SCHEDULES, "normalize": names["normalize"],
                   "optimizer": names["optimizer"], "loss": names["loss"]}  # fmt: skip
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                bad(name, f"one of {', '.join(allowed)}{suggest(value, allowed)}", value)
        problems.extend(_augment_problems(self.augment, names["augment"]))
        for key in ("metrics",) + (("augment",) if isinstance(self.augment, tuple) else ()):
            allowed = names[key]
            for i, name in enumerate(getattr(self, key)):
                if name not in allowed:
                    bad(f"{key}[{i}]", f"one of {', '.join(allowed)}{suggest(name, allowed)}",
                        name)  # fmt: skip
        if self.builtin_data is not None and self.builtin_data not in names["builtin_data"]:
            allowed = names["builtin_data"]
            bad("builtin_data", f"one of {', '.join(allowed) or '(none installed)'}"
                f"{suggest(self.builtin_data, allowed)}", self.builtin_data)  # fmt: skip
        if (self.builtin_data is None) == (not self.train):
            problems.append(
                "$.train: expected a list of {image, labels} files, or builtin_data instead "
                "(one of the two); received " + ("neither" if not self.train else "both")
            )
        if self.builtin_data is not None and self.validation:
            problems.append(
                f"$.validation: expected no validation files with builtin_data="
                f"{self.builtin_data!r} (it has its own); received {len(self.validation)}"
            )
        if problems:
            raise _Problems(problems)

    def to_dict(self) -> dict:
        """The JSON form, with format and version (``train_config_from_dict`` reads it back)."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **converter.unstructure(self)}


def _augment_problems(value, steps) -> list[str]:
    """``$.augment...`` problems of a config's ``augment`` other than a list of step names."""
    if isinstance(value, tuple):
        return []
    if isinstance(value, str):
        if value == SYNTHSEG:
            return []
        expected = (
            f"a list of steps among {', '.join(steps)}, {SYNTHSEG!r} or {{{SYNTHSEG!r}: {{...}}}}"
        )
        return [f"$.augment: expected {expected}{suggest(value, [SYNTHSEG])}; received {value!r}"]
    if set(value) != {SYNTHSEG}:
        return [f"$.augment: expected one key, {SYNTHSEG!r} (the SynthSeg-style augmentation); "
                f"received keys {sorted(value)!r}"]  # fmt: skip
    try:
        augment_from_config(value)
    except _Problems as err:
        return err.problems
    return []


def augment_from_config(value, rank=None):
    """The `dilnet.model.augment.Augment` of a config's ``augment`` value ``"synthseg"`` or
    ``{"synthseg": {FIELD: VALUE}}``, None for anything else (a list of step names).

    Raises `SpecError` listing each bad field as ``$.augment.synthseg.FIELD: expected ...``
    (unknown fields with a suggestion; with `rank`, flip axes the volumes do not have)."""
    from ..errors import ConfigError
    from ..model.augment import Augment

    if value == SYNTHSEG:
        value = {SYNTHSEG: {}}
    if not isinstance(value, dict) or set(value) != {SYNTHSEG}:
        return None
    fields, path = value[SYNTHSEG], f"$.augment.{SYNTHSEG}"
    if not isinstance(fields, dict):
        raise _Problems([f"{path}: expected an object of Augment fields; received {fields!r}"])
    known = [a.name for a in attrs.fields(Augment)]
    problems = [f"{path}: unknown field {k!r}{suggest(k, known)}; Augment has {', '.join(known)}"
                for k in fields if k not in known]  # fmt: skip
    for key in (k for k in fields if k in known):
        try:
            Augment(**{key: fields[key]})
        except (ConfigError, TypeError) as err:
            problems.append(f"{path}.{key}: {_field_message(err, key, fields[key])}")
    if problems:
        raise _Problems(problems)
    try:
        augment = Augment(**fields)
    except ConfigError as err:  # a relation between fields (percentiles' low < high)
        raise _Problems([f"{path}: {_field_message(err, None, fields)}"]) from None
    if rank is not None and any(axis >= rank for axis in augment.flip_axes):
        raise _Problems([f"{path}.flip_axes: expected axes below {rank} (a {rank}D model); "
                         f"received {list(augment.flip_axes)!r}"])  # fmt: skip
    return augment


def _field_message(err, key, value) -> str:
    """``expected ...; received ...`` from `Augment`'s "Invalid value for `key`" message."""
    text = str(err)
    found = re.search(r"Expected (.*?); received", text, re.S)
    if found is None:
        return f"{text} (received {value!r})"
    return f"expected {found.group(1)}; received {value!r}"


def train_config_from_dict(data) -> TrainConfig:
    """A `TrainConfig` from its JSON form; `SpecError` listing every problem with its path."""
    if not isinstance(data, dict):
        raise SpecError(f"$: expected a training config (a JSON object); received {data!r}.")
    problems = []
    if data.get("format") != FORMAT:
        problems.append(f"$.format: expected {FORMAT!r}; received {data.get('format')!r}")
    if data.get("format_version") != FORMAT_VERSION:
        problems.append(
            f"$.format_version: expected {FORMAT_VERSION}; received {data.get('format_version')!r}"
        )
    if problems:
        raise SpecError(_report(problems))
    body = {k: v for k, v in data.items() if k not in ("format", "format_version")}
    patch = body.get("patch_size")
    if isinstance(patch, int) and not isinstance(patch, bool):
        body["patch_size"] = [patch]  # one length for every axis, as [24] says
    try:
        return _structure(body)
    except Exception as err:
        found = _value_problems(err)
        if found is not None:
            raise SpecError(_report(found)) from None
        problems = list(_problems(err, "$"))
        if not problems:
            raise
        raise SpecError(_report(problems)) from None


def _value_problems(err):
    """The problems of a `_Problems` raised by ``__attrs_post_init__``, also when cattrs wrapped
    it in an exception group; None if there is none."""
    if isinstance(err, _Problems):
        return err.problems
    for sub in getattr(err, "exceptions", ()):
        found = _value_problems(sub)
        if found is not None:
            return found
    return None


def _structure(body):
    return converter.structure(body, TrainConfig)


def read_train_config(path) -> TrainConfig:
    """Read and validate the JSON training config at `path`; `SpecError` (a `ValueError`)
    starting with the file for bad JSON or bad values."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"{path}: cannot read the training config ({err.strerror}).") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a training config (not UTF-8 JSON text).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SpecError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})."
        ) from None
    except RecursionError:
        raise SpecError(
            f"{path}: expected a training config; received JSON nested too deeply to read."
        ) from None
    try:
        return train_config_from_dict(data)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None
