"""Model configs: specs to plain JSON-able dicts and back, through a cattrs converter.

Also importable as `dilnet.io.config` (its older home).

A config is:

    {"format": "dilnet.spec", "format_version": 1,
     "spec": {"type": "Sequential", "blocks": [{"type": "Input", "channels": 1, ...}, ...]}}

Every block is a dict with its type tag (``"type"``) and all its fields. Reading a config
looks the tag up in the explicit registry of block types (`dilnet.blocks.register_block`);
nothing is evaluated or unpickled. Unknown types, unknown or missing fields, values of the
wrong type and values a block rejects all raise one `SpecError` that lists every problem with
its path (``$.spec.blocks[2].dilations[1]: expected an int; received 'two'``).
"""

import types
import typing
from numbers import Real

import attrs
import cattrs
import numpy as np
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn

from ..errors import SpecError, suggest
from ..utils import is_int
from .base import Block, block_type, lookup_block, provide

__all__ = ["FORMAT", "FORMAT_VERSION", "converter", "from_config", "to_config"]

FORMAT = "dilnet.spec"
FORMAT_VERSION = 1


class _FieldError(Exception):
    """A value of the wrong type, reported as ``path: expected ...; received ...``."""

    def __init__(self, expected, value):
        super().__init__(f"expected {expected}; received {value!r}")


def _make_converter():
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    structure_fns, unstructure_fns = {}, {}

    def structure_int(value, _):
        if not is_int(value):
            raise _FieldError("an int", value)
        return int(value)

    def structure_float(value, _):
        if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
            raise _FieldError("a number", value)
        return float(value)

    def structure_str(value, _):
        if not isinstance(value, str):
            raise _FieldError("a string", value)
        return value

    def structure_bool(value, _):
        if not isinstance(value, bool):
            raise _FieldError("true or false", value)
        return value

    for t, fn in ((int, structure_int), (float, structure_float), (str, structure_str),
                  (bool, structure_bool)):  # fmt: skip
        conv.register_structure_hook(t, fn)

    def is_tuple(t):
        return typing.get_origin(t) is tuple

    def structure_tuple(value, t):
        if not isinstance(value, list | tuple):
            raise _FieldError("a list", value)
        args = typing.get_args(t)
        if len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(value)
        elif len(args) != len(value):
            raise _FieldError(f"a list of {len(args)} items", value)
        else:
            item_types = list(args)
        items, errors = [], []
        for i, (item, item_type) in enumerate(zip(value, item_types, strict=True)):
            try:
                items.append(conv.structure(item, item_type))
            except Exception as err:  # collected with its index, re-raised as one group
                err.__notes__ = [
                    *getattr(err, "__notes__", []),
                    IterableValidationNote(f"index {i}", i, item_type),
                ]
                errors.append(err)
        if errors:
            raise IterableValidationError(f"While structuring {t}", errors, t)
        return tuple(items)

    conv.register_structure_hook_func(is_tuple, structure_tuple)

    def is_union(t):
        return typing.get_origin(t) in (typing.Union, types.UnionType)

    def structure_union(value, t):
        members = typing.get_args(t)
        if value is None:
            if type(None) in members:
                return None
            raise _FieldError(_describe(t), value)
        others = [m for m in members if m is not type(None)]
        if len(others) == 1:  # X or None: X's own errors, with their paths
            return conv.structure(value, others[0])
        for member in members:
            if member is type(None):
                continue
            try:
                return conv.structure(value, member)
            except Exception:  # try the next member; none fitting is reported below
                continue
        raise _FieldError(_describe(t), value)

    conv.register_structure_hook_func(is_union, structure_union)

    def structure_object(value, t):
        # an attrs class that is not a block (a training config's parts): an object, then its
        # fields (cattrs would read a number's or a list's keys)
        if not isinstance(value, dict):
            raise _FieldError("an object", value)
        if t not in structure_fns:
            structure_fns[t] = make_dict_structure_fn(t, conv, _cattrs_forbid_extra_keys=True)
        return structure_fns[t](value, t)

    conv.register_structure_hook_func(
        lambda t: isinstance(t, type) and attrs.has(t) and not issubclass(t, Block),
        structure_object,
    )

    def structure_block(value, t):
        if not isinstance(value, dict):
            raise _FieldError("a block (a dict with a 'type')", value)
        data = dict(value)
        if "type" not in data:
            raise _FieldError("a block (a dict with a 'type')", value)
        tag = data.pop("type")
        cls = lookup_block(tag, "type")
        if not (isinstance(t, type) and issubclass(cls, t)):
            raise _FieldError(f"a {t.__name__} block", tag)
        if cls not in structure_fns:
            structure_fns[cls] = make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)
        return structure_fns[cls](data, cls)

    conv.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, Block), structure_block
    )

    def unstructure_block(block):
        cls = type(block)
        if cls not in unstructure_fns:
            unstructure_fns[cls] = make_dict_unstructure_fn(cls, conv)
        return {"type": block_type(cls), **_jsonable(unstructure_fns[cls](block))}

    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, Block), unstructure_block
    )
    return conv


def _describe(t) -> str:
    """Human words for a field type: ``an int or a list of ints``."""
    if t is int:
        return "an int"
    if t is float:
        return "a number"
    if t is str:
        return "a string"
    if t is bool:
        return "true or false"
    if t is type(None):
        return "null"
    if typing.get_origin(t) is tuple:
        args = typing.get_args(t)
        if len(args) == 2 and args[1] is Ellipsis:
            inner = _describe(args[0])
            return f"a list of {inner.removeprefix('an ').removeprefix('a ')}s"
        return f"a list of {len(args)} items"
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(t))
    if isinstance(t, type) and issubclass(t, Block):
        return "a block"
    return getattr(t, "__name__", str(t))


def _jsonable(value):
    """Tuples to lists and numpy scalars (which blocks accept) to Python numbers, recursively."""
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


#: the cattrs converter behind `to_config` and `from_config`
converter = _make_converter()


def to_config(spec: Block) -> dict:
    """The spec as a plain JSON-able dict: format, format version, and the spec with a type tag
    per block. ``from_config(to_config(spec)) == spec``."""
    if not isinstance(spec, Block) or not attrs.has(type(spec)):
        raise SpecError(f"to_config: expected a block; received {spec!r}.")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": converter.unstructure(spec, unstructure_as=Block),
    }


def from_config(config: dict) -> Block:
    """Rebuild the spec `to_config` wrote; raises `SpecError` listing each problem with its
    path."""
    if not isinstance(config, dict):
        raise SpecError(f"$: expected a config dict; received {type(config).__name__}.")
    extra = set(config) - {"format", "format_version", "spec"}
    problems = []
    if config.get("format") != FORMAT:
        problems.append(f"$.format: expected {FORMAT!r}; received {config.get('format')!r}")
    version = config.get("format_version")
    if not (is_int(version) and 1 <= version <= FORMAT_VERSION):
        problems.append(
            f"$.format_version: expected an int from 1 to {FORMAT_VERSION} (this dilnet reads "
            f"up to version {FORMAT_VERSION}); received {version!r}"
        )
    if extra:
        problems.append(f"$: unknown keys {sorted(extra)}; a config has format, "
                        "format_version and spec")  # fmt: skip
    if "spec" not in config:
        problems.append("$.spec: missing")
    if problems:
        raise SpecError(_report(problems))
    try:
        return converter.structure(config["spec"], Block)
    except RecursionError:
        raise SpecError(
            "$.spec: expected blocks nested at most a few hundred deep; received a config "
            "nested too deeply to read."
        ) from None
    except Exception as err:
        problems = list(_problems(err, "$.spec"))
        if not problems:
            raise
        raise SpecError(_report(problems)) from None


def _report(problems):
    if len(problems) == 1:
        return f"invalid config: {problems[0]}."
    return f"invalid config ({len(problems)} problems):\n" + "\n".join(f"  {p}." for p in problems)


def _problems(err, path):
    """(path: message) lines for every leaf error under a cattrs exception group."""
    if isinstance(err, ClassValidationError | IterableValidationError):
        with_notes, others = err.group_exceptions()
        for sub, note in with_notes:
            step = f".{note.name}" if isinstance(err, ClassValidationError) else f"[{note.index}]"
            yield from _problems(sub, path + step)
        for sub in others:
            yield from _problems(sub, path)
    elif isinstance(err, ForbiddenExtraKeysError):
        fields = [a.name for a in attrs.fields(err.cl)]
        for key in sorted(err.extra_fields):
            yield (
                f"{path}.{key}: unknown field of {err.cl.__name__}{suggest(key, fields)}; its "
                f"fields are {', '.join(fields)}"
            )
    elif isinstance(err, KeyError):
        yield f"{path}: missing (a required field)"
    elif isinstance(err, SpecError):
        # Raised by a block's validators as "Block: invalid value for `field`. ..." or by the
        # registry lookup; put the path in front.
        message = str(err).rstrip(".")
        where, _, detail = message.partition(": ")
        field = detail.split("`")[1] if detail.startswith("invalid value for `") else None
        yield f"{path}.{field}: {detail}" if field else f"{path}: {detail or where}"
    elif isinstance(err, _FieldError):
        yield f"{path}: {err}"
    elif isinstance(err, TypeError):
        yield f"{path}: {err}"
    else:
        raise err


provide("to_config", to_config)
