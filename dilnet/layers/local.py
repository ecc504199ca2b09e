"""`LocallyConnected2DLayer`: a convolution whose weights differ at every output position
(Lasagne's `lasagne.layers.local`)."""

import pytensor.tensor as pt

from .. import init, nonlinearities
from ..errors import ConfigError, ShapeError, UnsupportedError, invalid
from ..utils import as_tuple, int_types, is_int
from .base import Layer, describe, nonlinearity_or_identity

__all__ = ["LocallyConnected2DLayer"]


class LocallyConnected2DLayer(Layer):
    """A 2D convolution with unshared weights: one filter per output position.

    ``out[b, f, y, x] = sum over c, i, j of in[b, c, y + i - fh // 2, x + j - fw // 2] *
    W[f, c, fh - 1 - i, fw - 1 - j, y, x]`` (zeros outside the input; without the flip when
    ``flip_filters=False``), then the bias and the nonlinearity.

    Parameters
    ----------
    num_filters : int
        Output channels; with ``channelwise=True`` equal to the input channels.
    filter_size : int or (int, int)
        Odd lengths.
    stride : 1 or (1, 1)
        Only 1 (as in Lasagne).
    pad : 'same'
        Only 'same' (as in Lasagne): the output has the input's rows and columns.
    untie_biases : bool
        One bias per filter and position, shape (num_filters, rows, columns).
    W : initializer, array or shared variable
        Shape (num_filters, channels, fh, fw, rows, columns), or with ``channelwise=True``
        (num_filters, fh, fw, rows, columns).
    b : initializer, array, shared variable or None
        Shape (num_filters,) or, untied, (num_filters, rows, columns).
    nonlinearity : callable or None
    flip_filters : bool
        Flip the filters (a convolution, the default) or not (a correlation).
    channelwise : bool
        Each filter sees only the input channel of its own index.

    Raises
    ------
    UnsupportedError
        A `stride` other than 1, a `pad` other than 'same', or an even filter length (a
        `NotImplementedError`, as Lasagne raised).
    ShapeError
        Unknown channels, rows or columns, or ``channelwise=True`` with `num_filters` not
        equal to the input channels.

    Notes
    -----
    Output shape: ``(batch, num_filters, rows, columns)`` for input
    ``(batch, channels, rows, columns)``.
    """

    def __init__(
        self,
        incoming,
        num_filters,
        filter_size,
        stride=(1, 1),
        pad="same",
        untie_biases=False,
        W=init.GlorotUniform(),
        b=init.Constant(0.0),
        nonlinearity=nonlinearities.rectify,
        flip_filters=True,
        channelwise=False,
        **kwargs,
    ):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        if not is_int(num_filters) or num_filters < 1:
            raise ConfigError(invalid(where, "num_filters", "a positive int", num_filters))
        self.filter_size = as_tuple(
            filter_size, 2, int_types, name="filter_size", where=where, minimum=1
        )
        self.stride = as_tuple(stride, 2, int_types, name="stride", where=where, minimum=1)
        if self.stride != (1, 1):
            raise UnsupportedError(
                invalid(where, "stride", "1 (the layer requires stride=1 / (1, 1))", stride)
            )
        if pad != "same":
            raise UnsupportedError(
                invalid(where, "pad", "'same' (the layer requires pad='same')", pad)
            )
        if any(f % 2 == 0 for f in self.filter_size):
            raise UnsupportedError(
                invalid(where, "filter_size", "odd lengths (for pad='same')", filter_size)
            )
        shape = self.input_shape
        if len(shape) != 4 or None in shape[1:]:
            raise ShapeError(
                f"{where}: A LocallyConnected2DLayer requires a fixed input shape (except for "
                f"the batch size): expected (batch, channels, rows, columns) with known "
                f"channels, rows and columns; received input shape {shape}."
            )
        channels, rows, columns = shape[1:]
        if channelwise and num_filters != channels:
            raise ShapeError(
                f"{where}: num_filters and the number of input channels should match when "
                f"channelwise=True; received num_filters={num_filters} and {channels} input "
                "channels."
            )
        self.num_filters, self.pad = int(num_filters), "same"
        self.untie_biases, self.flip_filters = bool(untie_biases), bool(flip_filters)
        self.channelwise = bool(channelwise)
        self.nonlinearity = nonlinearity_or_identity(where, nonlinearity)
        w_shape = (self.num_filters,) + (() if self.channelwise else (channels,))
        self.W = self.add_param(W, w_shape + self.filter_size + (rows, columns), name="W")
        if b is None:
            self.b = None
        else:
            b_shape = (self.num_filters, rows, columns) if untie_biases else (self.num_filters,)
            self.b = self.add_param(b, b_shape, "b", regularizable=False)

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], self.num_filters, *input_shape[2:])

    def get_output_for(self, input, **kwargs):
        fh, fw = self.filter_size
        rows, columns = self.input_shape[2:]
        top, left = fh // 2, fw // 2
        padded = pt.zeros(
            (input.shape[0], input.shape[1], rows + fh - 1, columns + fw - 1), dtype=input.dtype
        )
        padded = pt.set_subtensor(padded[:, :, top : top + rows, left : left + columns], input)
        out = 0
        for i in range(fh):
            for j in range(fw):
                # tap (i, j) reads input (y + i - top, x + j - left) for output (y, x)
                patch = padded[:, :, i : i + rows, j : j + columns]
                ti, tj = (fh - 1 - i, fw - 1 - j) if self.flip_filters else (i, j)
                if self.channelwise:
                    out = out + patch * self.W[None, :, ti, tj]
                else:
                    out = out + (patch[:, None] * self.W[None, :, :, ti, tj]).sum(axis=2)
        if self.b is not None:
            bias = self.b if self.untie_biases else self.b.dimshuffle(0, "x", "x")
            out = out + bias[None]
        return self.nonlinearity(out)
