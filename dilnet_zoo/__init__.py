"""dilnet_zoo: ready-made volumetric networks, with pretrained weights where trained.

>>> import dilnet_zoo
>>> dilnet_zoo.list_models()                                   # doctest: +SKIP
['context3d-basic', 'context3d-large', 'dilated-resnet3d', 'highres3dnet', 'local3d', 'plain3d']
>>> model = dilnet_zoo.load("context3d-basic", pretrained=True)  # doctest: +SKIP

Each entry is a spec factory from `dilnet_zoo.families` with documented overrides, a model card
(`card(name)`, markdown in ``dilnet_zoo/cards``) and, once trained by its recipe in
``dilnet_zoo/recipes``, weights in ``dilnet_zoo/weights`` (one `.npz` with a manifest of
sha256 checksums, verified before use). User-trained weights are found first in a directory
given as ``weights_dir=`` or in ``$DILNET_ZOO_DIR``, as ``<name>.npz``. `cards_table` is the
table of all of them that ``docs/zoo.md`` shows (`dilnet_zoo.table`). The zoo plugs into dilnet
from above (``dilnet_zoo/_plugin.py``, the entry point ``dilnet.plugins: zoo``): ``zoo:NAME``
models, the ``dilnet zoo`` and ``dilnet demo`` commands, the ``mni152`` training data.
"""

import importlib.resources
import os
from pathlib import Path

import attrs

from dilnet.errors import ConfigError, WeightsError, invalid, suggest

from . import families

__all__ = [
    "DEFAULT",
    "ZooEntry",
    "card",
    "cards_table",
    "get_spec",
    "info",
    "list_models",
    "load",
    "weights_path",
]


@attrs.frozen
class ZooEntry:
    """A zoo network: its `factory`, default overrides, which overrides it accepts, and which
    of them must keep their defaults for the pretrained weights to fit."""

    name: str
    factory: object
    defaults: dict
    summary: str
    #: overrides that change parameter shapes (the pretrained weights fix them)
    shape_overrides: tuple = ("num_classes", "channels", "in_channels")
    #: what the network expects of its input (`dilnet.model.contract`); `load` sets it
    contract: object = families.BRAIN_T1_2MM


_ENTRIES = {
    e.name: e
    for e in (
        ZooEntry(
            "context3d-basic",
            families.context3d,
            {"variant": "basic", "num_classes": 4, "channels": 16, "in_channels": 1},
            "Yu & Koltun's basic context module in 3D (dilations 1-16), field 69³",
        ),
        ZooEntry(
            "context3d-large",
            families.context3d,
            {"variant": "large", "num_classes": 4, "channels": 4, "in_channels": 1},
            "the large context module (widths 2C..32C, C = 4), field 69³",
        ),
        ZooEntry(
            "local3d",
            families.local3d,
            {"num_classes": 4, "channels": 16, "in_channels": 1},
            "a local tissue classifier (3³ then 1³ convolutions), field 3³",
        ),
        ZooEntry(
            "plain3d",
            families.plain3d,
            {"num_classes": 4, "channels": 16, "in_channels": 1},
            "context3d-basic without dilation: same depth and parameters, field 17³",
        ),
        ZooEntry(
            "highres3dnet",
            families.highres3dnet,
            {"num_classes": 4, "in_channels": 1},
            "HighRes3DNet (Li et al. 2017): dilated pre-activation residual blocks, field 87³",
            shape_overrides=("num_classes", "in_channels"),
        ),
        ZooEntry(
            "dilated-resnet3d",
            families.dilated_resnet3d,
            {"num_classes": 4, "channels": 24, "in_channels": 1},
            "dilated residual units 1,2,4,8,4,2,1 (degridded), field 47³",
        ),
    )
}


#: the network ``dilnet demo`` runs and the README recommends for brain tissue: the zoo's best
#: on Colin27 (docs/zoo.md)
DEFAULT = "local3d"


def list_models() -> list:
    """The zoo's network names, sorted."""
    return sorted(_ENTRIES)


def info(name) -> ZooEntry:
    """The `ZooEntry` for `name`; `ConfigError` with close matches for unknown names."""
    if not (isinstance(name, str) and name in _ENTRIES):
        raise ConfigError(
            invalid(
                "dilnet_zoo",
                "name",
                f"one of {', '.join(list_models())}{suggest(name, _ENTRIES)}",
                name,
            )
        )
    return _ENTRIES[name]


def get_spec(name, **overrides):
    """The spec of `name` with `overrides` (e.g. ``num_classes=2``) applied."""
    entry = info(name)
    unknown = [k for k in overrides if k not in entry.defaults or k == "variant"]
    if unknown:
        allowed = [k for k in entry.defaults if k != "variant"]
        raise ConfigError(
            invalid(
                f"dilnet_zoo.get_spec({name!r})",
                unknown[0],
                f"one of the overrides {', '.join(allowed)}{suggest(unknown[0], allowed)}",
                overrides[unknown[0]],
            )
        )
    return entry.factory(**{**entry.defaults, **overrides})


def cards_table() -> str:
    """The markdown table of every zoo network that ``docs/zoo.md`` shows: name, card title,
    trainable parameters, receptive field, overrides, pretrained or not, held-out Dice
    (`dilnet_zoo.table.cards_table`; ``python -m dilnet_zoo.table --write`` rewrites the page)."""
    from .table import cards_table as table

    return table()


def card(name) -> str:
    """The model card of `name` (markdown)."""
    info(name)
    return importlib.resources.files("dilnet_zoo").joinpath("cards", f"{name}.md").read_text()


def weights_path(name, weights_dir=None):
    """Where the weights of `name` are: ``weights_dir`` or ``$DILNET_ZOO_DIR`` first (for
    weights you trained), then the package. None when there are none."""
    info(name)
    for directory in (weights_dir, os.environ.get("DILNET_ZOO_DIR")):
        if directory:
            path = Path(directory) / f"{name}.npz"
            if path.is_file():
                return path
    packaged = importlib.resources.files("dilnet_zoo").joinpath("weights", f"{name}.npz")
    return Path(str(packaged)) if packaged.is_file() else None


def load(
    name,
    pretrained=False,
    *,
    weights_dir=None,
    mode=None,
    dtype="float32",
    device=None,
    **overrides,
):
    """A `dilnet.model.Model` of zoo network `name`, on `device` (``"cuda"``: see
    `dilnet.model.Model`).

    With ``pretrained=True`` its weights are loaded (checksums, names and shapes verified
    before any parameter changes); overrides that change parameter shapes (``num_classes``,
    ``channels``, ``in_channels``) must then keep the values the weights were trained with.
    """
    from dilnet.model import Model

    entry = info(name)
    spec = get_spec(name, **overrides)
    path = None
    if pretrained:
        changed = [k for k in overrides if k in entry.shape_overrides
                   and overrides[k] != entry.defaults[k]]  # fmt: skip
        if changed:
            key = changed[0]
            raise ConfigError(
                invalid(
                    f"dilnet_zoo.load({name!r}, pretrained=True)",
                    key,
                    f"{entry.defaults[key]!r}, the value the pretrained weights were trained "
                    "with (or pretrained=False)",
                    overrides[key],
                )
            )
        path = weights_path(name, weights_dir)
        if path is None:
            raise WeightsError(
                f"dilnet_zoo: no pretrained weights for {name!r} (not shipped, and no "
                f"{name}.npz in weights_dir or $DILNET_ZOO_DIR); train them with "
                f"`python -m dilnet_zoo.recipes.train {name}` or use pretrained=False."
            )
    contract = entry.contract
    if overrides.get("num_classes", entry.defaults.get("num_classes")) != entry.defaults.get(
        "num_classes"
    ):
        contract = attrs.evolve(contract, class_names=None)  # new classes, names unknown
    model = Model(spec, mode=mode, dtype=dtype, device=device, input_contract=contract)
    if path is not None:
        model.load_weights(path, cast=True)
    return model
