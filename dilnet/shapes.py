"""All padding and output-length arithmetic, written once, one spatial axis at a time.

Pure integer functions that pass ``None`` (an unknown length) through. The layers, the Op's
``make_node`` and the compiler call these; the Op's ``infer_shape`` and the transposed
convolution layer call `conv_output_length` and `transposed_conv_output_length` with symbolic
lengths, which works because they use only ``+``, ``-``, ``*`` and ``//``. What a whole layer
graph sees and reaches (receptive fields, halo, period) is `dilnet.geometry`'s.

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

from .errors import ConfigError, ConfigTypeError, invalid
from .utils import is_int

__all__ = [
    "PAD_MODES",
    "KernelMisfit",
    "conv_input_length",
    "conv_output_length",
    "conv_output_shape",
    "dilated_extent",
    "kernel_misfit",
    "normalize_pad",
    "pool_output_length",
    "resolve_padding",
    "same_padding",
    "transposed_conv_output_length",
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
        raise ConfigError(f"Invalid pad: {pad!r} is no padding mode; expected one of {PAD_MODES}")
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


def conv_input_length(output_length, filter_size, stride=1, pad=0, dilation=1):
    """The smallest input length a convolution maps to `output_length` along one axis.

    Lasagne's ``conv_input_length`` (with `dilation` added): for a ``(before, after)`` padding
    ``(out - 1) * stride + extent - before - after``; 'same' gives ``(out - 1) * stride + 1``
    (for odd kernels the same as Lasagne's, which padded ``k // 2`` on both sides). With
    ``stride > 1`` the next ``stride - 1`` lengths give the same output length. Returns None
    when `output_length` is None.
    """
    if output_length is None:
        return None
    if isinstance(pad, str) and pad == "same":
        return (output_length - 1) * stride + 1
    before, after = resolve_padding(None, filter_size, pad, stride, dilation)
    return (output_length - 1) * stride + dilated_extent(filter_size, dilation) - before - after


def transposed_conv_output_length(input_length, filter_size, stride=1, pad=0, dilation=1):
    """Output length of the transposed convolution of a convolution with these arguments.

    `pad` as in `resolve_padding`: the padding of the convolution being transposed, cropped
    from the output. 'same' gives ``n * stride``; otherwise
    ``(n - 1) * stride + extent - before - after`` ('valid' crops nothing, 'full'
    ``extent - 1`` on each side). Returns None when `input_length` is None; a result below 1
    means the crop removes everything, callers decide how to report it.
    """
    if input_length is None:
        return None
    if isinstance(pad, str) and pad == "same":
        return input_length * stride
    before, after = resolve_padding(input_length, filter_size, pad, stride, dilation)
    return (input_length - 1) * stride + dilated_extent(filter_size, dilation) - before - after


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


def normalize_pad(pad, n, where="dilated_conv", name="pad"):
    """Check a padding argument for `n` spatial axes and return one entry per axis.

    `pad` is 'valid', 'full', 'same', a non-negative int, or per axis a non-negative int or a
    ``(before, after)`` pair. Entries are ``(before, after)`` pairs of ints, 'full' or 'same'
    (the two that depend on the kernel, and for 'same' the length). Raises `ConfigError`
    naming `where` and `name` otherwise (`ConfigTypeError` for a string that is no mode).
    """
    expected = (
        f"{', '.join(map(repr, PAD_MODES))}, a non-negative int, or an iterable of int or "
        f"(before, after) pairs, length {n}"
    )
    if isinstance(pad, str):
        if pad not in PAD_MODES:
            # as Lasagne, a string that is no mode is a TypeError (it is not an int either)
            raise ConfigTypeError(invalid(where, name, expected, pad))
        return ("same" if pad == "same" else (0, 0) if pad == "valid" else "full",) * n
    if is_int(pad):
        entries = (pad,) * n
    elif isinstance(pad, tuple | list) and len(pad) == n:
        entries = tuple(pad)
    else:
        raise ConfigError(invalid(where, name, expected, pad))
    out = []
    for entry in entries:
        if is_int(entry):
            entry = (entry, entry)
        if (
            not isinstance(entry, tuple | list)
            or len(entry) != 2
            or not all(is_int(e) and e >= 0 for e in entry)
        ):
            raise ConfigError(invalid(where, name, expected + " (no negative values)", pad))
        out.append((int(entry[0]), int(entry[1])))
    return tuple(out)


class KernelMisfit(NamedTuple):
    """An axis along which a dilated kernel does not fit its padded input (`kernel_misfit`):
    the axis, its input length, the kernel size, dilation and extent, and the padding
    ``(before, after)``."""

    axis: int
    length: int
    filter_size: int
    dilation: int
    extent: int
    padding: tuple


def kernel_misfit(input_shape, filter_size, stride, pad, dilation):
    """The first axis along which a convolution has no output, or None when it fits.

    Every argument is a per-axis sequence, `pad` of anything `resolve_padding` takes. Axes
    whose length or kernel size is unknown (None) are skipped. Callers raise their own error
    from the returned `KernelMisfit`.
    """
    for axis, (n, k, s, p, d) in enumerate(
        zip(input_shape, filter_size, stride, pad, dilation, strict=True)
    ):
        if n is None or k is None or conv_output_length(n, k, s, p, d) >= 1:
            continue
        return KernelMisfit(axis, n, k, d, dilated_extent(k, d), resolve_padding(n, k, p, s, d))
    return None
