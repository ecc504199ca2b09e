"""Lasagne's ``lasagne.theano_extensions.conv``: 1-D convolutions of ``(batch, channels, length)``.

Lasagne offered six ways to build a 1-D convolution from Theano's 2-D one, for speed. Here all
six compute the same thing with dilnet's correlation Op (`dilnet.ops.dilated_conv`, 1-D), and
each keeps its Lasagne signature and the arguments it refused: `conv1d_unstrided`, `conv1d_sd`
and `conv1d_md` take only ``border_mode='valid'`` and a filter length that is a multiple of the
stride.
"""

from ..errors import ConfigError, UnsupportedInputError, invalid
from ..ops import dilated_conv
from ..shapes import PAD_MODES
from ..utils import as_tuple, int_types, is_int

__all__ = [
    "conv1d_mc0",
    "conv1d_mc1",
    "conv1d_md",
    "conv1d_sc",
    "conv1d_sd",
    "conv1d_unstrided",
]


def _conv1d(where, input, filters, filter_shape, border_mode, subsample, filter_flip,
            *, valid_only=False):  # fmt: skip
    (stride,) = as_tuple(subsample, 1, int_types, name="subsample", where=where, minimum=1)
    if isinstance(border_mode, str):
        if border_mode not in PAD_MODES:
            raise ConfigError(invalid(where, "border_mode", f"one of {PAD_MODES} or ints",
                                      border_mode))  # fmt: skip
        pad = border_mode
    elif is_int(border_mode) or (
        isinstance(border_mode, tuple | list) and len(border_mode) == 1 and is_int(border_mode[0])
    ):
        (pad,) = as_tuple(border_mode, 1, int_types, name="border_mode", where=where, minimum=0)
    else:
        raise ConfigError(
            invalid(where, "border_mode", f"one of {PAD_MODES}, an int or (int,)", border_mode)
        )
    if valid_only:
        if pad not in ("valid", 0):
            raise UnsupportedInputError(invalid(where, "border_mode", "'valid' only", border_mode))
        length = None if filter_shape is None else filter_shape[-1]
        if length is None:
            length = getattr(getattr(filters, "type", None), "shape", (None,))[-1]
        if length is None or length % stride:
            raise UnsupportedInputError(
                invalid(
                    where,
                    "subsample",
                    f"a stride that divides the filter length ({length}; pass filter_shape when "
                    "the filters' shape is not static)",
                    subsample,
                )
            )
    return dilated_conv(input, filters, stride=stride, pad=pad, flip_filters=bool(filter_flip))


def conv1d_sc(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
              subsample=(1,), filter_flip=True):  # fmt: skip
    """1-D convolution of `input` ``(batch, channels, length)`` with `filters`
    ``(num_filters, channels, filter_length)``.

    Parameters
    ----------
    input, filters : 3-d tensors
    image_shape, filter_shape : tuple, optional
        Shape hints (Theano's); `filter_shape` is read by the variants that check the stride.
    border_mode : 'valid', 'full', 'same', int or (int,)
        Zero padding as `dilnet.ops.dilated_conv`'s `pad`.
    subsample : (int,)
        The stride.
    filter_flip : bool
        True: a true convolution (the filters are flipped); False: a cross-correlation.

    Returns
    -------
    TensorVariable
        ``(batch, num_filters, out)`` with ``out = (length + before + after - k) // stride + 1``.
    """
    return _conv1d("conv1d_sc", input, filters, filter_shape, border_mode, subsample, filter_flip)


def conv1d_mc0(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
               subsample=(1,), filter_flip=True):  # fmt: skip
    """`conv1d_sc` under another Lasagne name (Lasagne's variant put the length on Theano's
    first spatial axis)."""
    return _conv1d("conv1d_mc0", input, filters, filter_shape, border_mode, subsample, filter_flip)


def conv1d_mc1(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
               subsample=(1,), filter_flip=True):  # fmt: skip
    """`conv1d_sc` under another Lasagne name (Lasagne's variant put the length on Theano's
    second spatial axis)."""
    return _conv1d("conv1d_mc1", input, filters, filter_shape, border_mode, subsample, filter_flip)


def conv1d_unstrided(input, filters, image_shape, filter_shape, border_mode="valid",
                     subsample=(1,), filter_flip=True):  # fmt: skip
    """`conv1d_sc` with Lasagne's limits for this variant: ``border_mode='valid'`` and a
    filter length that is a multiple of the stride (`UnsupportedInputError`, a `RuntimeError`,
    otherwise)."""
    return _conv1d("conv1d_unstrided", input, filters, filter_shape, border_mode, subsample,
                   filter_flip, valid_only=True)  # fmt: skip


def conv1d_sd(input, filters, image_shape, filter_shape, border_mode="valid", subsample=(1,),
              filter_flip=True):  # fmt: skip
    """`conv1d_unstrided`'s limits, under Lasagne's single-dot-product variant's name."""
    return _conv1d("conv1d_sd", input, filters, filter_shape, border_mode, subsample,
                   filter_flip, valid_only=True)  # fmt: skip


def conv1d_md(input, filters, image_shape, filter_shape, border_mode="valid", subsample=(1,),
              filter_flip=True):  # fmt: skip
    """`conv1d_unstrided`'s limits, under Lasagne's multiple-dot-product variant's name."""
    return _conv1d("conv1d_md", input, filters, filter_shape, border_mode, subsample,
                   filter_flip, valid_only=True)  # fmt: skip
