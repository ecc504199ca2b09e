"""Blocks made of blocks: `Sequential`, `Residual`, `Parallel`/`Concat`, and the dilated
stacks `DilatedStack` and `ContextModule`."""

import attrs

from ..errors import SpecError, invalid
from .base import (
    ACTIVATIONS,
    INITS,
    Block,
    blocks_tuple,
    boolean,
    branches_tuple,
    nonempty_positive_ints,
    one_of,
    optional_bool,
    positive_int,
    positive_ints,
    probability,
    provided,
    register_block,
    to_blocks,
    to_branches,
    to_tuple,
)
from .basic import Ints

__all__ = ["Concat", "ContextModule", "DilatedStack", "Parallel", "Residual", "Sequential"]

#: Yu & Koltun's context module: dilations of its 3x3 layers (the last layer is 1x1)
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 1)
#: channel multipliers of the large context module's dilated layers (the last layer has C)
CONTEXT_LARGE_WIDTHS = (2, 2, 4, 8, 16, 32, 32)


@register_block
@attrs.frozen(kw_only=True)
class Sequential(Block):
    """Blocks applied one after the other; a model when it starts with an `Input`.

    ``Sequential([...])`` takes the list positionally; Sequentials nest freely.

    Examples
    --------
    >>> from dilnet import Sequential, blocks as B
    >>> model = Sequential([
    ...     B.Input(channels=1, spatial=(None, None, None)),
    ...     B.Conv(filters=16),
    ...     B.DilatedStack(filters=16, dilations=(1, 2, 4)),
    ...     B.Classifier(num_classes=3),
    ... ])
    """

    blocks: tuple[Block, ...] = attrs.field(
        kw_only=False, converter=to_blocks, validator=blocks_tuple
    )

    def build(self, spatial=None, batch_size=None):
        """Compile to a layer graph (`dilnet.compiler.build`)."""
        return provided("build")(self, spatial=spatial, batch_size=batch_size)

    def summary(self, input_size=None, batch_size=1, print_fn=print, dtype="float32"):
        """Print the layer table (`dilnet.io.summary.format_summary`) and return it as text.

        `input_size` (spatial lengths) fills unknown lengths for the shapes and the activation
        memory, counted in `dtype` (``"float32"``, `Model`'s default, or ``"float64"``);
        `print_fn=None` only returns the text.
        """
        text = provided("summary")(self, spatial=input_size, batch_size=batch_size, dtype=dtype)
        if print_fn is not None:
            print_fn(text)
        return text


@register_block
@attrs.frozen(kw_only=True)
class Residual(Block):
    """``activation(body(x) + shortcut(x))``.

    The shortcut is the input itself, or a 1x1x1 convolution (no bias) to the body's
    channels when ``projection`` is True, or None (the default) and the channel counts
    differ. The body must keep the spatial size.
    """

    body: tuple[Block, ...] = attrs.field(converter=to_blocks, validator=blocks_tuple)
    projection: bool | None = attrs.field(default=None, validator=optional_bool)
    activation: str = attrs.field(default="linear", validator=one_of(ACTIVATIONS))


@register_block
@attrs.frozen(kw_only=True)
class Parallel(Block):
    """The same input through each branch, merged by concatenating channels ('concat') or
    summing ('sum'). Each branch is a block or a list of blocks; the branches' spatial sizes
    (and for 'sum' their channels) must agree."""

    branches: tuple[tuple[Block, ...], ...] = attrs.field(
        converter=to_branches, validator=branches_tuple
    )
    merge: str = attrs.field(default="concat", validator=one_of(("concat", "sum")))


@register_block
@attrs.frozen(kw_only=True)
class Concat(Block):
    """`Parallel` with ``merge='concat'``: branch outputs stacked along the channels."""

    branches: tuple[tuple[Block, ...], ...] = attrs.field(
        converter=to_branches, validator=branches_tuple
    )


@register_block
@attrs.frozen(kw_only=True)
class DilatedStack(Block):
    """One stride-1 'same' convolution per entry of `dilations`.

    Each unit is conv(dilation ``d``) ``->`` [batch norm] ``->`` activation ``->``
    [channel dropout]. With ``residual=True`` each unit adds its input before the
    activation: ``act(x + bn(conv(x)))``, through a 1x1x1 projection where the channels
    change (the first unit, if the input does not have `filters` channels).

    Parameters
    ----------
    filters : int
    dilations : sequence of int
        One unit per entry, e.g. ``(1, 2, 4, 8)``.
    kernel : int or tuple of int
    activation : str
    batch_norm : bool
    residual : bool
    dropout : float
        Probability of dropping a whole channel after each unit (0: none).
    init : str
    """

    filters: int = attrs.field(validator=positive_int)
    dilations: tuple[int, ...] = attrs.field(converter=to_tuple, validator=nonempty_positive_ints)
    kernel: Ints = attrs.field(default=3, converter=to_tuple, validator=positive_ints)
    activation: str = attrs.field(default="relu", validator=one_of(ACTIVATIONS))
    batch_norm: bool = attrs.field(default=False, validator=boolean)
    residual: bool = attrs.field(default=False, validator=boolean)
    dropout: float = attrs.field(default=0.0, validator=probability)
    init: str = attrs.field(default="glorot_uniform", validator=one_of(INITS))


@register_block
@attrs.frozen(kw_only=True)
class ContextModule(Block):
    """Yu & Koltun's context module (ICLR 2016), N-d.

    One 'same' convolution per entry of `dilations` with `activation` after each, then a
    1x1x1 convolution to `channels` with no activation. ``variant='basic'`` keeps `channels`
    throughout (its input must have `channels` channels for the identity initialisation);
    ``'large'`` widens layer ``i`` to ``CONTEXT_LARGE_WIDTHS[i] * channels`` (2C, 2C, 4C,
    8C, 16C, 32C, 32C). ``init='identity'`` (the default) starts the module as the identity
    map with the paper's basic or large rule (`dilnet.init.Identity`); the kernel must be odd.
    With the default 3³ kernels and dilations the receptive field is 67 voxels per axis.
    """

    channels: int = attrs.field(validator=positive_int)
    variant: str = attrs.field(default="basic", validator=one_of(("basic", "large")))
    dilations: tuple[int, ...] = attrs.field(
        default=CONTEXT_DILATIONS, converter=to_tuple, validator=nonempty_positive_ints
    )
    kernel: Ints = attrs.field(default=3, converter=to_tuple, validator=positive_ints)
    activation: str = attrs.field(default="relu", validator=one_of(ACTIVATIONS))
    init: str = attrs.field(default="identity", validator=one_of(INITS))

    def __attrs_post_init__(self):
        if self.variant == "large" and len(self.dilations) > len(CONTEXT_LARGE_WIDTHS):
            raise _spec_error(
                self,
                "dilations",
                f"at most {len(CONTEXT_LARGE_WIDTHS)} entries for variant='large' (its widths "
                f"are {CONTEXT_LARGE_WIDTHS} times channels)",
                self.dilations,
            )
        kernels = (self.kernel,) if isinstance(self.kernel, int) else self.kernel
        if self.init == "identity" and any(k % 2 == 0 for k in kernels):
            raise _spec_error(
                self, "kernel", "odd sizes for init='identity' (a centre tap)", self.kernel
            )


def _spec_error(block, field, expected, value):
    return SpecError(invalid(type(block).__name__, field, expected, value))
