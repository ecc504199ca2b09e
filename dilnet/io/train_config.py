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
Instead of `train`/`validation` files, ``"builtin_data": "mni152"`` trains on the embedded
MNI152 template's left hemisphere and validates on its right one. Relative paths are relative
to the config file. Reading goes through the same strict cattrs converter as model configs:
unknown keys, missing keys and values of the wrong type are all reported at once with their
JSON paths (``$.patch_size[1]: expected an int; received 'x'``); nothing is evaluated.
"""

import json
from pathlib import Path

import attrs

from ..errors import SpecError, invalid
from .config import _problems, _report, converter

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "NORMALIZE",
    "TrainConfig",
    "VolumePair",
    "read_train_config",
    "train_config_from_dict",
]

FORMAT = "dilnet.train"
FORMAT_VERSION = 1
#: intensity normalisations: none, or min-max scaling of each volume to [0, 1]
NORMALIZE = ("none", "minmax")
BUILTIN_DATA = ("mni152",)
SCHEDULES = ("constant", "cosine")
SAMPLING = ("random", "balanced")


def _one_of(choices):
    def check(instance, attribute, value):
        if value not in choices:
            raise SpecError(
                invalid("TrainConfig", attribute.name, f"one of {', '.join(choices)}", value)
            )

    return check


def _positive(instance, attribute, value):
    values = value if isinstance(value, tuple) else (value,)
    if not values or any(v < 1 for v in values):
        kind = "positive ints" if isinstance(value, tuple) else "an int >= 1"
        raise SpecError(invalid("TrainConfig", attribute.name, kind, value))


def _non_negative(instance, attribute, value):
    if not value >= 0:
        raise SpecError(invalid("TrainConfig", attribute.name, "a number >= 0", value))


@attrs.frozen(kw_only=True)
class VolumePair:
    """One training (or validation) volume: an image file and its label map, same size."""

    image: str
    labels: str


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
    builtin_data: str | None = attrs.field(default=None)
    patch_size: tuple[int, ...] = attrs.field(validator=_positive)
    batch_size: int = attrs.field(default=2, validator=_positive)
    epochs: int = attrs.field(default=10, validator=_positive)
    steps_per_epoch: int = attrs.field(default=50, validator=_positive)
    validation_steps: int = attrs.field(default=10, validator=_positive)
    sampling: str = attrs.field(default="balanced", validator=_one_of(SAMPLING))
    optimizer: str = "adam"
    learning_rate: float = attrs.field(default=1e-3, validator=_non_negative)
    schedule: str = attrs.field(default="constant", validator=_one_of(SCHEDULES))
    loss: str = "crossentropy"
    metrics: tuple[str, ...] = ("dice",)
    normalize: str = attrs.field(default="none", validator=_one_of(NORMALIZE))
    ignore_label: int | None = None
    seed: int = 0
    output: str = "model.npz"

    @builtin_data.validator
    def _check_data(self, attribute, value):
        if value is not None and value not in BUILTIN_DATA:
            raise SpecError(
                invalid("TrainConfig", "builtin_data", f"one of {', '.join(BUILTIN_DATA)}", value)
            )
        if (value is None) == (not self.train):
            raise SpecError(
                invalid(
                    "TrainConfig",
                    "train",
                    "a list of {image, labels} files, or builtin_data instead (one of the two)",
                    [attrs.asdict(p) for p in self.train] or None,
                )
            )
        if value is not None and self.validation:
            raise SpecError(
                invalid(
                    "TrainConfig",
                    "validation",
                    f"no validation files with builtin_data={value!r} (it has its own)",
                    [attrs.asdict(p) for p in self.validation],
                )
            )

    def to_dict(self) -> dict:
        """The JSON form, with format and version (``train_config_from_dict`` reads it back)."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **converter.unstructure(self)}


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
    try:
        return _structure(body)
    except Exception as err:
        problems = list(_problems(err, "$"))
        if not problems:
            raise
        raise SpecError(_report(problems)) from None


def _structure(body):
    return converter.structure(body, TrainConfig)


def read_train_config(path) -> TrainConfig:
    """Read and validate the JSON training config at `path`; `SpecError` (a `ValueError`)
    starting with the file for bad JSON or bad values."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError(f"{path}: cannot read the training config ({err.strerror}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SpecError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})."
        ) from None
    try:
        return train_config_from_dict(data)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None
