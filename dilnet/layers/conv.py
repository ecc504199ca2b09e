"""Convolution layers: one N-d `ConvLayer` with rank aliases, the dilated and transposed ones.

All weights are ``(out, in // groups, *filter_size)``. `TransposedConvLayer` stores the weights of
the convolution it transposes (Lasagne's convention): ``(in, num_filters // groups, *kernel)``.
"""

import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from pytensor.tensor.type import integer_dtypes

from .. import init, nonlinearities
from ..errors import ConfigError, ShapeError, invalid
from ..ops import dilated_conv
from ..ops.corr import DilatedCorrGradInputs
from ..shapes import conv_input_length as conv_input_length  # Lasagne's layers.conv names it
from ..shapes import (
    conv_output_length,
    kernel_misfit,
    normalize_pad,
    resolve_padding,
    transposed_conv_output_length,
)
from ..utils import as_tuple, int_types, is_int
from .base import Layer, describe, nonlinearity_or_identity

__all__ = [
    "BaseConvLayer",
    "Conv1DLayer",
    "Conv2DLayer",
    "Conv3DLayer",
    "ConvLayer",
    "Deconv2DLayer",
    "Deconv3DLayer",
    "DilatedConv2DLayer",
    "DilatedConv3DLayer",
    "TransposedConv2DLayer",
    "TransposedConv3DLayer",
    "TransposedConvLayer",
]


def _spatial_rank(layer, input_shape, n):
    where = describe(layer)
    if n is None:
        n = len(input_shape) - 2
        if n not in (1, 2, 3):
            raise ShapeError(
                invalid(
                    where,
                    "input shape",
                    "3, 4 or 5 dimensions: (batch, channels, *spatial)",
                    input_shape,
                )
            )
    elif len(input_shape) != n + 2:
        raise ShapeError(
            invalid(
                where,
                "input shape",
                f"{n + 2} input dimensions: (batch, channels, {n} spatial axes)",
                input_shape,
            )
        )
    if input_shape[1] is None:
        raise ShapeError(
            invalid(where, "input shape", "a known number of channels (axis 1)", input_shape)
        )
    return n


class _ConvBase(Layer):
    """What convolution and transposed convolution layers share: argument checks, W and b.

    Besides the argument as given (`pad` or `crop`), ``pads`` holds it checked, one entry per
    spatial axis: a ``(before, after)`` pair, 'same' or 'full' (`dilnet.shapes.normalize_pad`).
    """

    def _configure(
        self, n, num_filters, filter_size, stride, dilation, pad, pad_name, num_groups,
        flip_filters, untie_biases, nonlinearity,
    ):  # fmt: skip
        where = describe(self)
        self.n = n = _spatial_rank(self, self.input_shape, n)
        if not is_int(num_filters) or num_filters < 1:
            raise ConfigError(invalid(where, "num_filters", "a positive int", num_filters))
        self.num_filters = int(num_filters)
        self.filter_size = as_tuple(
            filter_size, n, int_types, name="filter_size", where=where, minimum=1
        )
        self.stride = as_tuple(stride, n, int_types, name="stride", where=where, minimum=1)
        self.dilation = as_tuple(dilation, n, int_types, name="dilation", where=where, minimum=1)
        self.pads = normalize_pad(pad, n, where, pad_name)
        if not is_int(num_groups) or num_groups < 1:
            raise ConfigError(
                invalid(where, "num_groups", "a positive int (num_groups must be positive)",
                        num_groups)
            )  # fmt: skip
        channels = self.input_shape[1]
        if channels % num_groups or self.num_filters % num_groups:
            raise ShapeError(
                invalid(
                    where,
                    "num_groups",
                    f"a divisor of both the {channels} input channels and num_filters="
                    f"{self.num_filters} (num_groups must evenly divide both)",
                    num_groups,
                )
            )
        self.num_groups = int(num_groups)
        self.flip_filters = bool(flip_filters)
        self.untie_biases = bool(untie_biases)
        self.nonlinearity = nonlinearity_or_identity(where, nonlinearity)

    def _add_weights(self, W, b):
        self.W = self.add_param(W, self.get_W_shape(), name="W")
        if b is None:
            self.b = None
            return
        spatial = self.output_shape[2:]
        if self.untie_biases and any(s is None for s in spatial):
            raise ShapeError(
                invalid(
                    describe(self),
                    "untie_biases",
                    "False when the output's spatial lengths are unknown",
                    True,
                )
            )
        shape = (self.num_filters, *spatial) if self.untie_biases else (self.num_filters,)
        self.b = self.add_param(b, shape, name="b", regularizable=False)

    def _finish(self, conved):
        """Add the biases and apply the nonlinearity."""
        if self.b is not None:
            if self.untie_biases:
                conved = conved + pt.shape_padleft(self.b)
            else:
                conved = conved + self.b.dimshuffle("x", 0, *("x",) * self.n)
        return self.nonlinearity(conved)


class BaseConvLayer(_ConvBase):
    """What every convolution layer shares (Lasagne's ``BaseConvLayer``): arguments, weights,
    biases, output shape, nonlinearity; subclasses define `convolve`. `ConvLayer` is the one
    dilnet computes with.

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, channels, *spatial)``.
    num_filters : int
        Output channels.
    filter_size : int or tuple of int
        Kernel size per spatial axis.
    stride : int or tuple of int
        Positive, per axis.
    pad : 'valid', 'full', 'same', int, or per-axis ints / (before, after) pairs
        Zero padding; Lasagne's default ``0`` ('valid'). 'same' keeps ``ceil(n / stride)``
        outputs (Keras/TensorFlow rule, the extra element after), also for even kernels and
        dilation; for ``stride > 1`` Lasagne's 'same' padded ``k // 2`` on both sides, which
        you get here with ``pad=k // 2``.
    untie_biases : bool
        One bias per output position (shape ``(num_filters, *output_spatial)``).
    W : initializer, array, shared variable or expression
        Weights ``(num_filters, channels // num_groups, *filter_size)``.
    b : initializer, array, shared variable, expression or None
        Biases ``(num_filters,)`` (see `untie_biases`); None for none.
    nonlinearity : callable or None
        Applied to the output; None means linear.
    flip_filters : bool
        True convolution (Lasagne's default) rather than cross-correlation.
    num_groups : int
        Grouped convolution.
    n : int, optional
        Number of spatial axes; inferred from the input when None.
    dilation : int or tuple of int
        Positive, per axis: the kernel spans ``(k - 1) * dilation + 1`` input elements.

    Notes
    -----
    With ``extent = (k - 1) * dilation + 1`` and padding ``(before, after)`` the output length is
    ``(n + before + after - extent) // stride + 1`` (`dilnet.shapes.conv_output_length`). The
    layer keeps `pad` as given; ``pads`` holds one checked entry per axis and `resolved_pads`
    the ``(before, after)`` pairs for its input shape.
    """

    def __init__(
        self,
        incoming,
        num_filters,
        filter_size,
        stride=1,
        pad=0,
        untie_biases=False,
        W=init.GlorotUniform(),
        b=init.Constant(0.0),
        nonlinearity=nonlinearities.rectify,
        flip_filters=True,
        num_groups=1,
        n=None,
        dilation=1,
        **kwargs,
    ):
        super().__init__(incoming, **kwargs)
        self.pad = pad
        self._configure(
            n, num_filters, filter_size, stride, dilation, pad, "pad", num_groups, flip_filters,
            untie_biases, nonlinearity,
        )  # fmt: skip
        self._check_fits()
        self._add_weights(W, b)

    def _check_fits(self):
        misfit = kernel_misfit(
            self.input_shape[2:], self.filter_size, self.stride, self.pads, self.dilation
        )
        if misfit is not None:
            raise ShapeError(
                f"{describe(self)}: along spatial axis {misfit.axis} the dilated kernel spans "
                f"{misfit.extent} elements (filter_size={misfit.filter_size}, dilation="
                f"{misfit.dilation}) but the input has {misfit.length} with pad={self.pad!r}."
            )

    @property
    def resolved_pads(self) -> tuple:
        """``(before, after)`` per spatial axis for this layer's input shape; None on an axis
        where it depends on an unknown length ('same' with ``stride > 1``)."""
        return tuple(
            resolve_padding(n, k, p, s, d)
            for n, k, p, s, d in zip(self.input_shape[2:], self.filter_size, self.pads,
                                     self.stride, self.dilation, strict=True)
        )  # fmt: skip

    def get_W_shape(self):
        """``(num_filters, channels // num_groups, *filter_size)``."""
        return (self.num_filters, self.input_shape[1] // self.num_groups, *self.filter_size)

    def get_output_shape_for(self, input_shape):
        spatial = tuple(
            conv_output_length(length, k, s, p, d)
            for length, k, s, p, d in zip(
                input_shape[2:],
                self.filter_size,
                self.stride,
                self.pads,
                self.dilation,
                strict=True,
            )
        )
        return (input_shape[0], self.num_filters, *spatial)

    def convolve(self, input, **kwargs):
        """The convolution alone (no bias, no nonlinearity); subclasses define it."""
        raise NotImplementedError(f"{describe(self)} does not define convolve")

    def get_output_for(self, input, **kwargs):
        conved = self.convolve(pt.as_tensor_variable(input), **kwargs)
        return self._finish(conved)


class ConvLayer(BaseConvLayer):
    """N-d dilated convolution layer (1D, 2D or 3D from the input's rank, or fixed by `n`).

    `BaseConvLayer` with its `convolve`: the arguments, shapes and Notes are `BaseConvLayer`'s.
    """

    def convolve(self, input, **kwargs):
        """The convolution alone (no bias, no nonlinearity)."""
        return dilated_conv(
            input,
            self.W,
            stride=self.stride,
            dilation=self.dilation,
            pad=self.pad,
            groups=self.num_groups,
            flip_filters=self.flip_filters,
        )


class Conv1DLayer(ConvLayer):
    """`ConvLayer` with ``n=1``: input ``(batch, channels, length)``."""

    def __init__(self, incoming, num_filters, filter_size, stride=1, pad=0, *args, **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, pad, *args, n=1, **kwargs)


class Conv2DLayer(ConvLayer):
    """`ConvLayer` with ``n=2``: input ``(batch, channels, rows, columns)``."""

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), pad=0, *args, **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, pad, *args, n=2, **kwargs)


class Conv3DLayer(ConvLayer):
    """`ConvLayer` with ``n=3``: input ``(batch, channels, depth, rows, columns)``."""

    def __init__(
        self, incoming, num_filters, filter_size, stride=(1, 1, 1), pad=0, *args, **kwargs
    ):
        super().__init__(incoming, num_filters, filter_size, stride, pad, *args, n=3, **kwargs)


class DilatedConv2DLayer(ConvLayer):
    """Lasagne's `DilatedConv2DLayer` signature on the N-d `ConvLayer`.

    Differences from Lasagne: any `pad` works ('same' included, Lasagne allowed only 0), and
    the weights use the standard ``(num_filters, channels, *filter_size)`` layout — Lasagne
    stored ``(channels, num_filters, ...)``; `dilnet.interop.lasagne` converts saved values.
    Like Lasagne it computes a cross-correlation (``flip_filters=False``) by default.
    """

    _n = 2

    def __init__(
        self,
        incoming,
        num_filters,
        filter_size,
        dilation=1,
        pad=0,
        untie_biases=False,
        W=init.GlorotUniform(),
        b=init.Constant(0.0),
        nonlinearity=nonlinearities.rectify,
        flip_filters=False,
        **kwargs,
    ):
        if "stride" in kwargs:
            raise ConfigError(
                invalid(
                    type(self).__name__,
                    "stride",
                    "no stride (Lasagne's signature); use ConvLayer(..., stride=, dilation=)",
                    kwargs["stride"],
                )
            )
        super().__init__(
            incoming,
            num_filters,
            filter_size,
            stride=1,
            pad=pad,
            untie_biases=untie_biases,
            W=W,
            b=b,
            nonlinearity=nonlinearity,
            flip_filters=flip_filters,
            n=self._n,
            dilation=dilation,
            **kwargs,
        )


class DilatedConv3DLayer(DilatedConv2DLayer):
    """`DilatedConv2DLayer` for volumes: input ``(batch, channels, depth, rows, columns)``."""

    _n = 3


class TransposedConvLayer(_ConvBase):
    """N-d transposed convolution (the gradient of a convolution w.r.t. its input).

    Parameters
    ----------
    incoming : Layer or tuple
        Input ``(batch, channels, *spatial)``.
    num_filters : int
        Output channels.
    filter_size : int or tuple of int
        Of the convolution being transposed.
    stride : int or tuple of int
        Of the convolution being transposed: the upsampling factor.
    crop : 'valid', 'full', 'same', int, or per-axis ints / pairs
        The padding of the convolution being transposed, cropped from the output.
    W : initializer, array, shared variable or expression
        ``(channels, num_filters // num_groups, *filter_size)``: the weights of the convolution
        that maps this layer's output back to its input (Lasagne's layout).
    output_size : int, tuple of int or integer vector expression, optional
        Output spatial lengths when several fit (``stride > 1``); must map back to the input
        lengths under the forward convolution (checked when given as ints). An expression (as
        Lasagne, e.g. a shared variable) makes the output shape's spatial lengths None.
    untie_biases : bool
        As in `ConvLayer`.
    b : initializer, array, shared variable, expression or None
        As in `ConvLayer`.
    nonlinearity : callable or None
        As in `ConvLayer`.
    flip_filters : bool
        As Lasagne: False (the default) transposes a true convolution with `W`, True transposes
        a cross-correlation.
    num_groups : int
        As in `ConvLayer`.
    n : int, optional
        As in `ConvLayer`.
    dilation : int or tuple of int
        Of the convolution being transposed.

    Notes
    -----
    Output length for input length ``n``: 'same' ``n * stride`` (Lasagne's 'same' cropped
    ``k // 2`` on both sides, giving ``(n - 1) * stride + 1`` for odd ``k``: pass ``crop=k // 2``
    for that); otherwise
    ``(n - 1) * stride + extent - before - after`` with ``extent = (k - 1) * dilation + 1``
    ('valid' crops nothing, 'full' crops ``extent - 1`` on each side;
    `dilnet.shapes.transposed_conv_output_length`).
    """

    def __init__(
        self,
        incoming,
        num_filters,
        filter_size,
        stride=1,
        crop=0,
        untie_biases=False,
        W=init.GlorotUniform(),
        b=init.Constant(0.0),
        nonlinearity=nonlinearities.rectify,
        flip_filters=False,
        output_size=None,
        num_groups=1,
        n=None,
        dilation=1,
        **kwargs,
    ):
        super().__init__(incoming, **kwargs)
        self.crop = crop
        self._configure(
            n, num_filters, filter_size, stride, dilation, crop, "crop", num_groups,
            flip_filters, untie_biases, nonlinearity,
        )  # fmt: skip
        if isinstance(output_size, Variable):
            # symbolic (Lasagne): the output lengths are known when the graph runs
            if output_size.ndim != 1 or output_size.dtype not in integer_dtypes:
                raise ConfigError(
                    invalid(describe(self), "output_size",
                            f"ints, or an integer vector expression of length {self.n}",
                            output_size)
                )  # fmt: skip
            self.output_size = output_size
        elif output_size is not None:
            self.output_size = as_tuple(output_size, self.n, int_types, name="output_size",
                                        where=describe(self), minimum=1)  # fmt: skip
        else:
            self.output_size = None
        self._check_output_size()
        self._add_weights(W, b)

    def get_W_shape(self):
        """``(channels, num_filters // num_groups, *filter_size)``."""
        return (self.input_shape[1], self.num_filters // self.num_groups, *self.filter_size)

    def _lengths(self, input_spatial):
        return tuple(
            transposed_conv_output_length(length, k, s, p, d)
            for length, k, s, d, p in zip(input_spatial, self.filter_size, self.stride,
                                          self.dilation, self.pads, strict=True)
        )  # fmt: skip

    def _check_output_size(self):
        where = describe(self)
        natural = self._lengths(self.input_shape[2:])
        if any(length is not None and length < 1 for length in natural):
            raise ShapeError(
                f"{where}: crop={self.crop!r} removes more than the {natural} output elements "
                f"for input shape {self.input_shape}."
            )
        if self.output_size is None or isinstance(self.output_size, Variable):
            return
        for axis, (want, length, k, s, d, p) in enumerate(
            zip(
                self.output_size,
                self.input_shape[2:],
                self.filter_size,
                self.stride,
                self.dilation,
                self.pads,
                strict=True,
            )
        ):
            if length is not None and conv_output_length(want, k, s, p, d) != length:
                raise ShapeError(
                    invalid(
                        where,
                        "output_size",
                        f"lengths that the forward convolution maps back to the input "
                        f"lengths {self.input_shape[2:]} (axis {axis}: {length})",
                        self.output_size,
                    )
                )

    def get_output_shape_for(self, input_shape):
        if isinstance(self.output_size, Variable):
            spatial = (None,) * self.n
        else:
            spatial = self.output_size or self._lengths(input_shape[2:])
        return (input_shape[0], self.num_filters, *spatial)

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        spatial = self.output_size
        if isinstance(spatial, Variable):
            spatial = tuple(spatial[i] for i in range(self.n))
        elif spatial is None:
            static = self._lengths(input.type.shape[2:])
            symbolic = self._lengths(tuple(input.shape[i] for i in range(2, input.ndim)))
            spatial = tuple(
                s if s is not None else v for s, v in zip(static, symbolic, strict=True)
            )
        shape = (input.shape[0], self.num_filters, *spatial)
        # the gradient Op reads only the shape of its third input: a broadcast view of one zero
        # costs no memory
        out_ref = pt.broadcast_to(pt.zeros((1,) * input.ndim, dtype=input.dtype), shape)
        op = DilatedCorrGradInputs(
            # Lasagne: the gradient of a *true* convolution unless flip_filters (filter_flip=not
            # flip_filters), i.e. the forward correlation flips exactly when flip_filters is False
            self.stride,
            self.dilation,
            self.pads,
            self.num_groups,
            not self.flip_filters,
        )
        conved = op(self.W, input, out_ref)
        return self._finish(conved)


class TransposedConv2DLayer(TransposedConvLayer):
    """`TransposedConvLayer` with ``n=2``."""

    def __init__(self, incoming, num_filters, filter_size, stride=(1, 1), crop=0, *args, **kwargs):
        super().__init__(incoming, num_filters, filter_size, stride, crop, *args, n=2, **kwargs)


class TransposedConv3DLayer(TransposedConvLayer):
    """`TransposedConvLayer` with ``n=3``."""

    def __init__(
        self, incoming, num_filters, filter_size, stride=(1, 1, 1), crop=0, *args, **kwargs
    ):
        super().__init__(incoming, num_filters, filter_size, stride, crop, *args, n=3, **kwargs)


Deconv2DLayer = TransposedConv2DLayer
Deconv3DLayer = TransposedConv3DLayer
