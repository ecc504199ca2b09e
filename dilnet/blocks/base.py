"""`Block`, the registry of block types, and the field validators every block uses.

A block is a frozen, keyword-only attrs class whose fields are its whole configuration. Fields
are checked when the block is made: a wrong value raises `SpecError` naming the block type and
the field. What depends on the input (the rank, the channel count, the spatial size) is
checked when the model is compiled (`dilnet.compiler.build`), and those errors name the block's
path in the model (``blocks[2].body[0].dilations``).

Every block type is registered under a type tag (its class name unless given) so configs can be
read back without `eval` (`dilnet.io.config`). Register your own blocks with `register_block`.
"""

from numbers import Real

import attrs

from ..errors import SpecError, invalid, suggest
from ..utils import is_int

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "PADDING_MODES",
    "Block",
    "block_type",
    "register_block",
    "registered_blocks",
]

#: activation names accepted by blocks ('prelu' learns one slope per channel)
ACTIVATIONS = (
    "linear",
    "relu",
    "leaky_relu",
    "prelu",
    "elu",
    "selu",
    "sigmoid",
    "tanh",
    "softplus",
    "softmax",
)

#: weight initialisers by name ('identity': Yu & Koltun's basic rule, a centre tap per channel)
INITS = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "orthogonal",
    "identity",
)

PADDING_MODES = ("same", "valid", "full")

_REGISTRY: dict[str, type] = {}

#: What specs offer as methods but modules above the blocks implement: ``to_config``
#: (`dilnet.blocks.config`), ``build`` and ``summary`` (`dilnet.compiler`). Each registers its
#: function here when it is imported, and ``import dilnet`` (which runs before any
#: ``dilnet.blocks`` import) imports them all, so the blocks import nothing above them.
_PROVIDED: dict = {}


def provide(name: str, fn) -> None:
    """Register `fn` as the implementation of the spec method `name` (see ``_PROVIDED``)."""
    _PROVIDED[name] = fn


def provided(name: str):
    """The function registered for the spec method `name`."""
    return _PROVIDED[name]


class Block:
    """Base class of all blocks.

    Subclasses are frozen attrs classes (``@attrs.frozen(kw_only=True)``) registered with
    `register_block`. A block the compiler does not know is compiled through its `expand`
    method, which returns the blocks it stands for.
    """

    def expand(self):
        """The blocks this block stands for (a block or a sequence of blocks).

        Define it in your own blocks to compose existing ones; the built-in blocks are
        compiled directly and do not use it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} is not a built-in block and does not define expand(); "
            "define expand(self) to return the blocks it stands for."
        )

    def to_config(self) -> dict:
        """This block as a JSON-able dict with a format version and a type tag per block
        (`dilnet.blocks.config.to_config`)."""
        return provided("to_config")(self)


def block_type(cls_or_block) -> str:
    """The type tag a block class (or block) is registered under."""
    cls = cls_or_block if isinstance(cls_or_block, type) else type(cls_or_block)
    tag = cls.__dict__.get("_block_type")
    if tag is None or _REGISTRY.get(tag) is not cls:
        raise SpecError(
            f"{cls.__name__} is not a registered block type; decorate it with "
            "@dilnet.blocks.register_block."
        )
    return tag


def register_block(cls=None, *, name=None):
    """Class decorator: register a block type under `name` (default: the class name).

    The class must be an attrs class deriving from `Block`. Registering a second class under a
    taken name raises `SpecError`; block types cannot be unregistered.

    Examples
    --------
    >>> @register_block
    ... @attrs.frozen(kw_only=True)
    ... class ConvPair(Block):
    ...     filters: int = attrs.field(validator=positive_int)
    ...     def expand(self):
    ...         return [Conv(filters=self.filters), Conv(filters=self.filters)]
    """

    def register(cls):
        tag = cls.__name__ if name is None else name
        if not (isinstance(cls, type) and issubclass(cls, Block) and attrs.has(cls)):
            raise SpecError(
                invalid("register_block", "cls", "an attrs class deriving from Block", cls)
            )
        if not isinstance(tag, str) or not tag.isidentifier():
            raise SpecError(invalid("register_block", "name", "a Python identifier", tag))
        if tag in _REGISTRY:
            raise SpecError(
                f"register_block: a block type named {tag!r} is already registered "
                f"({_REGISTRY[tag].__module__}.{_REGISTRY[tag].__qualname__}); "
                "pass name=... to register under another name."
            )
        _REGISTRY[tag] = cls
        cls._block_type = tag
        return cls

    return register if cls is None else register(cls)


def registered_blocks() -> dict[str, type]:
    """A copy of the registry: ``{type tag: block class}``."""
    return dict(_REGISTRY)


def lookup_block(tag: str, where: str) -> type:
    """The block class registered as `tag`; `SpecError` with close matches otherwise."""
    cls = _REGISTRY.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise SpecError(
            invalid(where, "type", f"a registered block type{suggest(tag, _REGISTRY)}", tag)
        )
    return cls


# ---------------------------------------------------------------------------------------------
# Field validators and converters. Each raises SpecError naming the block type and the field.


#: the largest int a spec field takes (widths, kernels, strides, dilations, spatial lengths):
#: 2**20 voxels is a metre at 1 µm; beyond it padding arithmetic and memory estimates stop
#: meaning anything (``dilation=10**30`` used to print 31-digit padding and fail in predict)
MAX_INT = 2**20


def _fail(instance, attribute, expected, value):
    raise SpecError(invalid(type(instance).__name__, attribute.name, expected, value))


def _bounded(value) -> bool:
    return is_int(value) and 0 < value <= MAX_INT


def positive_int(instance, attribute, value):
    if not _bounded(value):
        _fail(instance, attribute, f"a positive int <= {MAX_INT:,}", value)


def positive_ints(instance, attribute, value):
    """An int or a tuple of ints, all positive (kernel, stride, dilation, pool size)."""
    if is_int(value):
        ok = _bounded(value)
    else:
        ok = isinstance(value, tuple) and len(value) > 0 and all(_bounded(v) for v in value)
    if not ok:
        _fail(instance, attribute, f"a positive int or a tuple of positive ints, each <= "
              f"{MAX_INT:,}", value)  # fmt: skip


def nonempty_positive_ints(instance, attribute, value):
    """A non-empty tuple of positive ints (a list of dilations)."""
    if not (isinstance(value, tuple) and value and all(_bounded(v) for v in value)):
        _fail(instance, attribute, f"a non-empty sequence of positive ints, each <= {MAX_INT:,}",
              value)  # fmt: skip


def one_of(choices):
    def check(instance, attribute, value):
        if not (isinstance(value, str) and value in choices):
            _fail(
                instance,
                attribute,
                f"one of {', '.join(map(repr, choices))}{suggest(value, choices)}",
                value,
            )

    return check


def probability(instance, attribute, value):
    if not (isinstance(value, Real) and not isinstance(value, bool) and 0 <= value < 1):
        _fail(instance, attribute, "a probability in [0, 1)", value)


def positive_real(instance, attribute, value):
    if not (isinstance(value, Real) and not isinstance(value, bool) and value > 0):
        _fail(instance, attribute, "a positive number", value)


def optional_bool(instance, attribute, value):
    if value is not None and not isinstance(value, bool):
        _fail(instance, attribute, "True, False or None", value)


def boolean(instance, attribute, value):
    if not isinstance(value, bool):
        _fail(instance, attribute, "True or False", value)


def padding(instance, attribute, value):
    """'same', 'valid', 'full', a non-negative int, or per-axis ints / (before, after) pairs."""

    def entry(v):
        return (is_int(v) and v >= 0) or (
            isinstance(v, tuple) and len(v) == 2 and all(is_int(i) and i >= 0 for i in v)
        )

    if isinstance(value, str):
        if value not in PADDING_MODES:
            _fail(
                instance,
                attribute,
                f"one of {', '.join(map(repr, PADDING_MODES))}{suggest(value, PADDING_MODES)}, "
                "a non-negative int, or one int or (before, after) pair per axis",
                value,
            )
        return
    if is_int(value):
        ok = value >= 0
    else:
        ok = isinstance(value, tuple) and len(value) > 0 and all(entry(v) for v in value)
    if not ok:
        _fail(
            instance,
            attribute,
            f"one of {', '.join(map(repr, PADDING_MODES))}, a non-negative int, or one int or "
            "(before, after) pair per axis",
            value,
        )


def to_tuple(value):
    """Lists (from JSON) and tuples become tuples, recursively; anything else passes."""
    if isinstance(value, list | tuple):
        return tuple(to_tuple(v) for v in value)
    return value


def to_blocks(value):
    """A block or a sequence of blocks -> a tuple of blocks (validated by `blocks_field`)."""
    if isinstance(value, Block):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def blocks_tuple(instance, attribute, value):
    if not (isinstance(value, tuple) and value and all(isinstance(b, Block) for b in value)):
        bad = (
            value
            if not isinstance(value, tuple)
            else next((b for b in value if not isinstance(b, Block)), value)
        )
        _fail(instance, attribute, "a non-empty sequence of blocks", bad)


def to_branches(value):
    """Each branch a block or a sequence of blocks -> a tuple of tuples of blocks."""
    if isinstance(value, list | tuple):
        return tuple(to_blocks(b) for b in value)
    return value


def branches_tuple(instance, attribute, value):
    if not (isinstance(value, tuple) and len(value) >= 2):
        _fail(instance, attribute, "at least two branches", value)
    for i, branch in enumerate(value):
        if not (isinstance(branch, tuple) and branch and all(isinstance(b, Block) for b in branch)):
            _fail(instance, attribute, f"branch {i} to be a block or a non-empty list of blocks",
                  branch)  # fmt: skip


def spatial_shape(instance, attribute, value):
    if not (
        isinstance(value, tuple)
        and 1 <= len(value) <= 3
        and all(v is None or _bounded(v) for v in value)
    ):
        _fail(instance, attribute,
              f"1 to 3 spatial lengths, each a positive int <= {MAX_INT:,} or None", value)  # fmt: skip
