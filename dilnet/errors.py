"""The errors dilnet raises on bad input.

Every error is a `DilnetError` and also the builtin a Python user would expect
(`ValueError`, `TypeError`, `ImportError`), so ``except ValueError`` keeps working.
Messages follow one template: where, what was expected, what was received:

    dilated_conv: invalid value for `dilation`. Expected positive integers; received dilation=(1, 0, 4).
"""

import difflib

__all__ = [
    "BackendError",
    "ConfigError",
    "ConfigTypeError",
    "DilnetError",
    "ExportError",
    "RankError",
    "ShapeError",
    "SpecError",
    "UnsupportedError",
    "UnsupportedInputError",
    "VolumeError",
    "WeightsError",
    "invalid",
    "suggest",
]


class DilnetError(Exception):
    """Base class of every error dilnet raises on purpose."""


class ConfigError(DilnetError, ValueError):
    """An argument or spec field has an invalid value (wrong type, range or length)."""


class ConfigTypeError(ConfigError, TypeError):
    """An argument has the wrong type (a string where ints are expected, a callable that returns
    no array). Also a `TypeError`, which is what Lasagne raised for these."""


class UnsupportedInputError(ConfigError, RuntimeError):
    """An input of a kind, rank or setting the function does not support (an initializer that
    needs two or more axes given a 1-d shape, `compute_norms` of a list, a stride that
    `conv1d_unstrided` cannot take). Also a `RuntimeError`, which is what Lasagne raised for
    these."""


class SpecError(ConfigError):
    """A block spec or a model config is invalid: a field's type or value, an unknown block type
    or field, a block in the wrong place. The message starts with the path of the field
    (``blocks[2].dilations`` for a spec, ``$.blocks[2].dilations`` for a config dict)."""


class ShapeError(DilnetError, ValueError):
    """Tensors or layers do not fit together: rank, channels, groups, or sizes."""


class UnsupportedError(DilnetError, NotImplementedError):
    """A valid setting that a layer does not implement (as Lasagne, which raised
    `NotImplementedError` for these): an even LRN window, a locally connected layer with
    padding other than 'same' or a stride."""


class WeightsError(DilnetError, ValueError):
    """A weights checkpoint cannot be used: the file is missing, is not a dilnet checkpoint, is
    truncated or corrupted, its arrays differ from its manifest (a sha256 mismatch means the data
    was changed), or its parameters do not fit what a model expects. The message starts with the
    file (or the caller's ``where``) and names each parameter concerned."""


class VolumeError(DilnetError, ValueError):
    """A volume file cannot be read or written: an unknown file type, a file that is missing,
    unreadable or not the format its name says, or data of the wrong rank or type. The message
    starts with the file."""


class RankError(ShapeError, TypeError):
    """Tensors have the wrong number of dimensions for each other (targets against
    predictions). Also a `TypeError`, which is what Lasagne raised for a rank mismatch."""


class ExportError(DilnetError, ValueError):
    """A network cannot be exported (`dilnet.io.onnx`): a layer kind, nonlinearity or setting
    with no equivalent in the target format. The message names the block path and the layer."""


class BackendError(DilnetError, ImportError):
    """A requested backend or kernel library is not installed or not usable."""


def invalid(where: str, name: str, expected: str, received: object) -> str:
    """The house message: ``where: invalid value for `name`. Expected ...; received name=...``."""
    return (
        f"{where}: invalid value for `{name}`. Expected {expected}; received {name}={received!r}."
    )


def suggest(value, choices) -> str:
    """`` (did you mean 'relu'?)`` for close matches of `value` among `choices`, else ''."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(choices), n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[value.lower()]] if value.lower() in lowered else []
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
