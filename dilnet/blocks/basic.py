"""Single-purpose blocks: the input, convolutions, normalisation, activations, pooling.

The number of spatial axes follows from `Input.spatial`; an int `kernel`, `stride`,
`dilation` or `size` applies to every axis, a tuple gives one value per axis.
"""

import attrs

from .base import (
    ACTIVATIONS,
    INITS,
    Block,
    boolean,
    one_of,
    optional_bool,
    padding,
    positive_int,
    positive_ints,
    positive_real,
    probability,
    register_block,
    spatial_shape,
    to_tuple,
)

__all__ = [
    "Activation",
    "BatchNorm",
    "Classifier",
    "Conv",
    "DilatedConv",
    "Dropout",
    "Input",
    "Pool",
    "Upsample",
]

Ints = int | tuple[int, ...]
Padding = str | int | tuple[int | tuple[int, int], ...]


def _ints(default=None, **kwargs):
    return attrs.field(default=default, converter=to_tuple, validator=positive_ints, **kwargs)


@register_block
@attrs.frozen(kw_only=True)
class Input(Block):
    """The input: `channels` and the `spatial` lengths (``None`` for any length).

    Its length (1, 2 or 3) fixes the rank of the model: 1D, 2D or 3D. Batches have shape
    ``(batch, channels, *spatial)``.
    """

    channels: int = attrs.field(validator=positive_int)
    spatial: tuple[int | None, ...] = attrs.field(
        default=(None, None, None), converter=to_tuple, validator=spatial_shape
    )


def _fields_in_order(*names):
    """An attrs ``field_transformer`` that lists the fields in the order `names` (a subclass's
    own fields would otherwise come after its base's)."""

    def transform(cls, fields):
        by_name = {f.name: f for f in fields}
        return [by_name[name] for name in names]

    return transform


@attrs.frozen(kw_only=True)
class _ConvFields(Block):
    """The fields `Conv` and `DilatedConv` share (not a block type of its own)."""

    filters: int = attrs.field(validator=positive_int)
    kernel: Ints = _ints(3)
    padding: Padding = attrs.field(default="same", converter=to_tuple, validator=padding)
    activation: str = attrs.field(default="relu", validator=one_of(ACTIVATIONS))
    batch_norm: bool = attrs.field(default=False, validator=boolean)
    bias: bool | None = attrs.field(default=None, validator=optional_bool)
    init: str = attrs.field(default="glorot_uniform", validator=one_of(INITS))


_SHARED = ("padding", "activation", "batch_norm", "bias", "init")


@register_block
@attrs.frozen(
    kw_only=True,
    field_transformer=_fields_in_order("filters", "kernel", "stride", "dilation", *_SHARED),
)
class Conv(_ConvFields):
    """Convolution ``->`` optional batch norm ``->`` activation.

    Parameters
    ----------
    filters : int
        Output channels.
    kernel : int or tuple of int
        Kernel size per spatial axis (an int for all axes).
    stride : int or tuple of int
        Step between output positions per axis.
    dilation : int or tuple of int
        Spacing between kernel taps per axis: the kernel spans ``(kernel - 1) * dilation + 1``.
    padding : 'same', 'valid', 'full', int or per-axis ints / (before, after) pairs
        'same' (the default) keeps ``ceil(n / stride)`` voxels and is inferred per axis from
        kernel, dilation and stride (`dilnet.shapes.same_padding`; the extra voxel of an odd
        total goes after).
    activation : str
        One of `ACTIVATIONS`; 'prelu' learns one slope per channel.
    batch_norm : bool
        Batch normalisation between the convolution and the activation.
    bias : bool or None
        A learned bias per filter; None (default) means "unless batch_norm", whose shift
        makes a bias redundant.
    init : str
        Weight initialiser (`INITS`); 'identity' (Yu & Koltun) needs odd kernels and
        ``filters`` equal to the input channels.
    """

    stride: Ints = _ints(1)
    dilation: Ints = _ints(1)


@register_block
@attrs.frozen(
    kw_only=True, field_transformer=_fields_in_order("filters", "dilation", "kernel", *_SHARED)
)
class DilatedConv(_ConvFields):
    """A stride-1 dilated convolution (`Conv` without `stride`, `dilation` default 2)."""

    dilation: Ints = _ints(2)


@register_block
@attrs.frozen(kw_only=True)
class BatchNorm(Block):
    """Batch normalisation over the batch and spatial axes (`dilnet.layers.BatchNormLayer`):
    ``running = (1 - alpha) * running + alpha * batch``."""

    epsilon: float = attrs.field(default=1e-4, validator=positive_real)
    alpha: float = attrs.field(default=0.1, validator=probability)


@register_block
@attrs.frozen(kw_only=True)
class Activation(Block):
    """An elementwise activation (`ACTIVATIONS`; 'softmax' is over the channel axis)."""

    name: str = attrs.field(validator=one_of(ACTIVATIONS))


@register_block
@attrs.frozen(kw_only=True)
class Dropout(Block):
    """Dropout during training: each voxel with probability `rate`, or whole channels with
    ``spatial=True`` (as PyTorch's ``Dropout3d``); the kept values are scaled by
    ``1 / (1 - rate)``."""

    rate: float = attrs.field(default=0.5, validator=probability)
    spatial: bool = attrs.field(default=False, validator=boolean)


@register_block
@attrs.frozen(kw_only=True)
class Pool(Block):
    """Max or average pooling with window `size` and `stride` (default: `size`).

    Only whole windows count unless ``ceil=True``, which also pools a last partial window
    (averages then divide by the voxels present).
    """

    size: Ints = _ints(2)
    stride: Ints | None = attrs.field(
        default=None,
        converter=to_tuple,
        validator=attrs.validators.optional(positive_ints),
    )
    mode: str = attrs.field(default="max", validator=one_of(("max", "average")))
    ceil: bool = attrs.field(default=False, validator=boolean)


@register_block
@attrs.frozen(kw_only=True)
class Upsample(Block):
    """Nearest-neighbour upsampling: each voxel repeated `factor` times per axis."""

    factor: Ints = _ints(2)


@register_block
@attrs.frozen(kw_only=True)
class Classifier(Block):
    """A 1x1x1 convolution to `num_classes` channels, then `activation` over the channels
    ('softmax' by default: per-voxel class probabilities)."""

    num_classes: int = attrs.field(validator=positive_int)
    activation: str = attrs.field(
        default="softmax", validator=one_of(("softmax", "sigmoid", "linear"))
    )
