"""All padding, output-length and receptive-field arithmetic, written once.

Pure integer functions, one spatial axis at a time, that pass ``None`` (an unknown length)
through. The layers, the Op's ``make_node``, the compiler and the summary all call these; the
Op's ``infer_shape`` calls `conv_output_length` with symbolic lengths, which works because it
uses only ``+``, ``-`` and ``//``.

Notes
-----
With kernel size ``k``, dilation ``d``, stride ``s`` and padding ``(before, after)``:

    extent = (k - 1) * d + 1
    out    = (n + before + after - extent) // s + 1

'same' follows Keras/TensorFlow: ``out = ceil(n / s)`` and the total padding
``max(0, (out - 1) * s + extent - n)`` is split with the extra element *after*, so it is defined
for even kernels and for strides above 1 (Lasagne refuses even kernels, PyTorch refuses
``stride > 1``). 'valid' pads nothing; 'full' pads ``extent - 1`` on both sides.
"""

from typing import NamedTuple

__all__ = [
    "PAD_MODES",
    "ReceptiveField",
    "conv_output_length",
    "conv_output_shape",
    "dilated_extent",
    "pool_output_length",
    "receptive_field",
    "resolve_padding",
    "same_padding",
]

PAD_MODES = ("valid", "full", "same")


def dilated_extent(filter_size, dilation=1):
    """Number of input elements one dilated kernel spans: ``(k - 1) * d + 1``."""
    if filter_size is None:
        return None
    return (filter_size - 1) * dilation + 1


def same_padding(input_length, filter_size, stride=1, dilation=1):
    """``(before, after)`` padding for 'same' (Keras/TensorFlow rule), or None if unknowable.

    For stride 1 the padding does not depend on the input length: ``extent - 1`` in total.
    """
    extent = dilated_extent(filter_size, dilation)
    if stride == 1:
        total = extent - 1
    elif input_length is None:
        return None
    else:
        out = -(-input_length // stride)
        total = max(0, (out - 1) * stride + extent - input_length)
    return (total // 2, total - total // 2)


def resolve_padding(input_length, filter_size, pad, stride=1, dilation=1):
    """Turn any padding spec for one axis into ``(before, after)``.

    `pad` is 'valid', 'full', 'same', an int (both sides) or a ``(before, after)`` pair.
    Returns None only for 'same' with ``stride > 1`` and an unknown length.
    """
    if isinstance(pad, str):
        if pad == "valid":
            return (0, 0)
        if pad == "full":
            extent = dilated_extent(filter_size, dilation)
            return (extent - 1, extent - 1)
        if pad == "same":
            return same_padding(input_length, filter_size, stride, dilation)
        raise ValueError(f"unknown padding mode {pad!r}; expected one of {PAD_MODES}")
    if isinstance(pad, tuple):
        return pad
    return (pad, pad)


def conv_output_length(input_length, filter_size, stride=1, pad=0, dilation=1):
    """Output length of a dilated, strided, padded convolution along one axis.

    `pad` as in `resolve_padding`. 'same' gives ``ceil(n / s)``. Returns None when
    `input_length` is None. A result below 1 means the kernel does not fit; callers
    decide how to report it.
    """
    if input_length is None:
        return None
    if isinstance(pad, str) and pad == "same":
        return (input_length + stride - 1) // stride
    before, after = resolve_padding(input_length, filter_size, pad, stride, dilation)
    extent = dilated_extent(filter_size, dilation)
    return (input_length + before + after - extent) // stride + 1


def conv_output_shape(input_shape, filter_size, stride, pad, dilation):
    """`conv_output_length` over the spatial axes; every argument is a per-axis sequence."""
    return tuple(
        conv_output_length(n, k, s, p, d)
        for n, k, s, p, d in zip(input_shape, filter_size, stride, pad, dilation, strict=True)
    )


def pool_output_length(input_length, pool_size, stride, pad=0, ignore_border=True):
    """Output length of pooling along one axis (Theano/Lasagne rule), None if unknown.

    With ``ignore_border`` only whole windows count: ``(n + 2 * pad - pool) // stride + 1``.
    Without it (``pad`` must be 0) a last partial window counts too: ``(n - 1) // stride + 1``
    when ``stride >= pool``, else ``max(0, (n - 1 - pool + stride) // stride) + 1``.
    """
    if input_length is None:
        return None
    if ignore_border:
        return (input_length + 2 * pad - pool_size) // stride + 1
    if stride >= pool_size:
        return (input_length - 1) // stride + 1
    return max(0, (input_length - 1 - pool_size + stride) // stride) + 1


class ReceptiveField(NamedTuple):
    """What one output element sees along one axis, in input coordinates.

    ``size``: number of input elements in its field; ``jump``: input distance between
    neighbouring outputs; ``start``: input index of the first element of output 0's field
    (negative when it starts in the padding).
    """

    size: int
    jump: int
    start: int

    @property
    def centre(self) -> float:
        """Input coordinate of the centre of output 0's field (``.5`` for even sizes)."""
        return self.start + (self.size - 1) / 2


def receptive_field(layers, field=None):
    """Compose the receptive field through a chain of layers along one axis.

    Each layer is ``(filter_size, stride, dilation, pad_before)``:

        size  += (extent - 1) * jump
        start -= pad_before * jump
        jump  *= stride

    `field` is the field to start from (default: a single input element, ``(1, 1, 0)``).
    """
    size, jump, start = field if field is not None else ReceptiveField(1, 1, 0)
    for filter_size, stride, dilation, pad_before in layers:
        size += (dilated_extent(filter_size, dilation) - 1) * jump
        start -= pad_before * jump
        jump *= stride
    return ReceptiveField(size, jump, start)
