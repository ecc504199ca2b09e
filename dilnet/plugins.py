"""What packages above dilnet add to it: model sources, commands, training data.

dilnet imports nothing above it. A package that extends it declares an entry point in the
group ``dilnet.plugins`` naming a function that takes the `Registry` and adds to it;
`dilnet_zoo` adds the ``zoo:NAME`` models, the ``dilnet zoo`` and ``dilnet demo`` commands and
the ``mni152`` training data this way:

```toml
[project.entry-points."dilnet.plugins"]
zoo = "dilnet_zoo._plugin:register"
```

The entry points are loaded once, on the first look-up (`registry`), not when dilnet is
imported; ``registry().add_model_source(...)`` and the other ``add_*`` methods also register
from Python. What each registration is:

* `ModelSource`: the models named ``PREFIX:NAME`` (`resolve_model`): a spec for the name and
  its overrides, and the pretrained weights with what they fix (`SourcedModel`). `dilnet
  summary`, `dilnet predict` and training configs (`dilnet.training`) accept them.
* `Command`: a subcommand of ``dilnet``; it adds its own parser(s) to the command line's.
* `TrainingData`: volumes a training config names as ``"builtin_data": NAME``.
"""

import re
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path

import attrs

from .errors import ConfigError, invalid

__all__ = [
    "GROUP",
    "Command",
    "ModelSource",
    "Registry",
    "SourcedModel",
    "TrainingData",
    "model_source",
    "registry",
    "resolve_model",
]

#: the entry-point group dilnet loads plugins from
GROUP = "dilnet.plugins"


@attrs.frozen(kw_only=True)
class SourcedModel:
    """What a `ModelSource` gives for one name: the spec and the pretrained weights."""

    #: the model spec, with the overrides applied
    spec: object
    #: the pretrained weights (a file written by `Model.save`), or None where there are none
    weights: Path | None = None
    #: the values of the overrides the weights were trained with
    defaults: Mapping = attrs.field(factory=dict)
    #: the overrides that change parameter shapes (the weights fix their values)
    shape_overrides: tuple = ()
    #: the intensity normalisation the weights expect (`dilnet.model.data.normalize`)
    normalize: str = "none"
    #: the message when weights are needed and there are none: why, and how to make them
    no_weights: str = ""


@attrs.frozen(kw_only=True)
class ModelSource:
    """The models named ``PREFIX:NAME``."""

    #: the name before the colon, e.g. ``"zoo"``
    prefix: str = attrs.field(validator=attrs.validators.matches_re(r"[a-z][a-z0-9_-]+"))
    #: ``resolve(name, **overrides) -> SourcedModel``; a `DilnetError` for an unknown name or
    #: override
    resolve: Callable
    #: the command that lists the names, for messages (``"dilnet zoo list"``)
    listing: str = ""


@attrs.frozen(kw_only=True)
class Command:
    """A subcommand of ``dilnet``.

    ``add(commands, common)`` adds its parser with ``commands.add_parser(name,
    parents=[common], help=...)`` (`common` holds ``--quiet`` and ``--debug``) and sets the
    parser default ``run``: ``run(args, console) -> exit code``, where ``console.result(text)``
    prints a result on standard output, ``console.note(text)`` a note on standard error (not
    with ``--quiet``), and ``console.quiet`` and ``console.progress`` say what to show. A
    nested command (``dilnet zoo list``) also sets the default ``command_name`` (``"zoo
    list"``), used in its error lines. Errors are raised as `DilnetError` or `OSError`; the
    command line prints them on one line.
    """

    name: str
    add: Callable
    #: where it is listed among the commands: summary is 20, predict 30, train 40
    order: int = 50


@attrs.frozen(kw_only=True)
class TrainingData:
    """Volumes a training config names as ``"builtin_data": NAME``."""

    name: str
    #: ``load() -> ((images, labels), (validation_images, validation_labels))``: lists of
    #: images ``(C, *spatial)`` and of integer label maps ``(*spatial)``; the validation lists
    #: may be empty
    load: Callable
    description: str = ""


class Registry:
    """The registrations, by name: `model_sources` (by prefix), `commands`, `training_data`."""

    def __init__(self):
        self.model_sources: dict[str, ModelSource] = {}
        self.commands: dict[str, Command] = {}
        self.training_data: dict[str, TrainingData] = {}

    @staticmethod
    def _add(table, key, item, kind):
        if key in table and table[key] != item:
            raise ConfigError(invalid("dilnet.plugins", kind, f"a new {kind} name", key))
        table[key] = item

    def add_model_source(self, source: ModelSource) -> None:
        self._add(self.model_sources, source.prefix, source, "model source")

    def add_command(self, command: Command) -> None:
        self._add(self.commands, command.name, command, "command")

    def add_training_data(self, data: TrainingData) -> None:
        self._add(self.training_data, data.name, data, "training data")


_registry = None


def registry() -> Registry:
    """The registry, with every installed plugin loaded (on the first call). A plugin that
    fails to load is left out with a `RuntimeWarning` naming it."""
    global _registry
    if _registry is None:
        _registry = Registry()
        for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
            try:
                point.load()(_registry)
            except Exception as err:  # a broken plugin must not take the others down
                warnings.warn(
                    f"dilnet plugin {point.name!r} ({point.value}) did not load: "
                    f"{type(err).__name__}: {err}",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return _registry


def model_source(ref):
    """``(source, name)`` for a reference ``PREFIX:NAME`` of a registered source, else None."""
    match = re.fullmatch(r"([a-z][a-z0-9_-]+):(.*)", ref, re.S) if isinstance(ref, str) else None
    if match is None or match[1] not in registry().model_sources:
        return None
    return registry().model_sources[match[1]], match[2]


def resolve_model(ref, **overrides) -> SourcedModel:
    """The `SourcedModel` of ``PREFIX:NAME`` with `overrides` (``num_classes=2``)."""
    found = model_source(ref)
    if found is None:
        prefixes = [f"{p}:NAME" for p in registry().model_sources]
        raise ConfigError(
            invalid("dilnet.plugins", "ref", " or ".join(prefixes) or "a registered source", ref)
        )
    source, name = found
    return source.resolve(name, **overrides)
