"""The dilated N-d cross-correlation Op family and its public function `dilated_conv`.

Three Ops share one set of properties (stride, dilation, padding, groups, flip_filters):

- `DilatedCorr` (x, W) -> y, the forward pass;
- `DilatedCorrGradInputs` (W, gy, x) -> dy/dx, the input gradient;
- `DilatedCorrGradWeights` (x, gy, W) -> dy/dW, the weight gradient.

The gradient Ops take the tensor whose gradient they compute only for its shape (input
disconnected), which keeps every shape static under ``jax.jit``. Each Op's `pullback` is built
from the other two, so gradients of gradients work to any order.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.scalar import upcast
from pytensor.tensor.type import TensorType

from ..backends import registry, select
from ..errors import ConfigError, ShapeError, invalid
from ..shapes import conv_output_length, kernel_misfit, normalize_pad, resolve_padding
from ..utils import as_tuple, int_types, is_int

__all__ = [
    "DilatedCorr",
    "DilatedCorrGradInputs",
    "DilatedCorrGradWeights",
    "dilated_conv",
]

_WHERE = "dilated_conv"


class _CorrOp(Op):
    """Shared properties and shape arithmetic of the three correlation Ops.

    Parameters
    ----------
    stride, dilation : tuple of int
        One positive int per spatial axis.
    pad : tuple
        One entry per spatial axis: a ``(before, after)`` pair of non-negative ints, 'full', or
        'same' (Keras/TensorFlow rule, resolved from the actual input length).
    groups : int
        Input and output channels are split into this many independent groups.
    flip_filters : bool
        True convolution (kernel flipped spatially) instead of cross-correlation.
    """

    __props__ = ("stride", "dilation", "pad", "groups", "flip_filters")

    #: ``perform`` stores a new array that no other variable views: the NUMPY mode may compute
    #: the elementwise node that alone reads it into it (`dilnet.modes`)
    fresh_outputs = True

    def __init__(self, stride, dilation, pad, groups=1, flip_filters=False):
        self.stride = tuple(int(s) for s in stride)
        self.dilation = tuple(int(d) for d in dilation)
        self.pad = tuple(p if isinstance(p, str) else (int(p[0]), int(p[1])) for p in pad)
        self.groups = int(groups)
        self.flip_filters = bool(flip_filters)

    @property
    def ndim(self):
        """Number of spatial axes."""
        return len(self.stride)

    def resolve_pads(self, spatial, kernel):
        """``(before, after)`` per axis for concrete input lengths and kernel sizes."""
        return tuple(
            resolve_padding(n, k, p, s, d)
            for n, k, p, s, d in zip(
                spatial, kernel, self.pad, self.stride, self.dilation, strict=True
            )
        )

    def output_spatial(self, spatial, kernel):
        """Output lengths (ints, symbolic or None) for input lengths and kernel sizes."""
        out = []
        for n, k, p, s, d in zip(
            spatial, kernel, self.pad, self.stride, self.dilation, strict=True
        ):
            if k is None and p != "same":
                out.append(None)
            else:
                out.append(conv_output_length(n, k, s, p, d))
        return tuple(out)

    def check_shapes(self, x_shape, w_shape, where=_WHERE):
        """Raise `ShapeError` if x and W (shapes may hold None) cannot be correlated."""
        c_in, c_out, c_w = x_shape[1], w_shape[0], w_shape[1]
        g = self.groups
        if c_out is not None and c_out % g:
            raise ShapeError(
                invalid(where, "groups", f"a divisor of the {c_out} output channels of W", g)
            )
        if c_in is not None and c_w is not None and c_in != c_w * g:
            raise ShapeError(
                invalid(
                    where,
                    "W.shape[1]",
                    f"x.shape[1] / groups = {c_in} / {g} (W is (out, in // groups, *kernel))",
                    c_w,
                )
            )
        for axis, k in enumerate(w_shape[2:]):
            if k is not None and k < 1:
                raise ShapeError(invalid(where, f"W.shape[{axis + 2}]", "a kernel size >= 1", k))
        misfit = kernel_misfit(x_shape[2:], w_shape[2:], self.stride, self.pad, self.dilation)
        if misfit is not None:
            n, (before, after) = misfit.length, misfit.padding
            raise ShapeError(
                f"{where}: along spatial axis {misfit.axis} the dilated kernel spans "
                f"{misfit.extent} elements (filter_size={misfit.filter_size}, dilation="
                f"{misfit.dilation}) but the padded input has only {n + before + after} "
                f"(length {n}, pad=({before}, {after}))."
            )

    def connection_pattern(self, node):
        return [[True], [True], [False]] if len(node.inputs) == 3 else [[True], [True]]


def _out_type(dtype, shape):
    return TensorType(dtype=dtype, shape=tuple(shape))


def _static(var):
    return var.type.shape


class DilatedCorr(_CorrOp):
    """y = dilated correlation of x (N, C, *spatial) with W (O, C // groups, *kernel)."""

    def make_node(self, x, W):
        _register_linkers()
        x, W = pt.as_tensor_variable(x), pt.as_tensor_variable(W)
        xs, ws = _static(x), _static(W)
        out = (xs[0], ws[0], *self.output_spatial(xs[2:], ws[2:]))
        return Apply(self, [x, W], [_out_type(upcast(x.dtype, W.dtype), out)()])

    def perform(self, node, inputs, outputs):
        x, W = inputs
        self.check_shapes(x.shape, W.shape)
        kern = select.cpu_kernels()
        Wk = _flip(W) if self.flip_filters else W
        pads = self.resolve_pads(x.shape[2:], W.shape[2:])
        y = kern.corr_forward(x, Wk, self.stride, self.dilation, pads, self.groups)
        outputs[0][0] = np.ascontiguousarray(y, dtype=node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, shapes):
        xs, ws = shapes
        return [(xs[0], ws[0], *self.output_spatial(xs[2:], ws[2:]))]

    def pullback(self, inputs, outputs, cotangents):
        x, W = inputs
        (gy,) = cotangents
        props = self._props_dict()
        gx = DilatedCorrGradInputs(**props)(W, gy, x)
        gW = DilatedCorrGradWeights(**props)(x, gy, W)
        return [_cast_like(gx, x), _cast_like(gW, W)]


class DilatedCorrGradInputs(_CorrOp):
    """dL/dx of `DilatedCorr` from W, the output gradient gy, and x (used for its shape only)."""

    def make_node(self, W, gy, x):
        _register_linkers()
        W, gy, x = (pt.as_tensor_variable(v) for v in (W, gy, x))
        xs = _static(x)
        out = (gy.type.shape[0], xs[1], *xs[2:])
        return Apply(self, [W, gy, x], [_out_type(upcast(W.dtype, gy.dtype), out)()])

    def perform(self, node, inputs, outputs):
        W, gy, x = inputs
        expected = self.output_spatial(x.shape[2:], W.shape[2:])
        if tuple(gy.shape[2:]) != tuple(expected) or min(expected, default=1) < 1:
            # e.g. a transposed convolution whose crop leaves nothing for this input length
            raise ShapeError(
                f"{_WHERE}: an input of spatial shape {tuple(x.shape[2:])} gives outputs of "
                f"shape {tuple(expected)} with kernel {tuple(W.shape[2:])}, but the output "
                f"gradient has spatial shape {tuple(gy.shape[2:])}."
            )
        kern = select.cpu_kernels()
        Wk = _flip(W) if self.flip_filters else W
        pads = self.resolve_pads(x.shape[2:], W.shape[2:])
        gx = kern.corr_grad_input(
            Wk, gy, x.shape[2:], self.stride, self.dilation, pads, self.groups
        )
        outputs[0][0] = np.ascontiguousarray(gx, dtype=node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[2]]

    def pullback(self, inputs, outputs, cotangents):
        W, gy, _ = inputs
        (ggx,) = cotangents
        props = self._props_dict()
        gW = DilatedCorrGradWeights(**props)(ggx, gy, W)
        ggy = DilatedCorr(**props)(ggx, W)
        return [_cast_like(gW, W), _cast_like(ggy, gy), disconnected_type()]


class DilatedCorrGradWeights(_CorrOp):
    """dL/dW of `DilatedCorr` from x, the output gradient gy, and W (used for its shape only)."""

    def make_node(self, x, gy, W):
        _register_linkers()
        x, gy, W = (pt.as_tensor_variable(v) for v in (x, gy, W))
        return Apply(self, [x, gy, W], [_out_type(upcast(x.dtype, gy.dtype), _static(W))()])

    def perform(self, node, inputs, outputs):
        x, gy, W = inputs
        kern = select.cpu_kernels()
        pads = self.resolve_pads(x.shape[2:], W.shape[2:])
        gW = kern.corr_grad_weights(
            x, gy, W.shape[2:], self.stride, self.dilation, pads, self.groups
        )
        if self.flip_filters:
            gW = _flip(gW)
        outputs[0][0] = np.ascontiguousarray(gW, dtype=node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[2]]

    def pullback(self, inputs, outputs, cotangents):
        x, gy, _ = inputs
        (ggW,) = cotangents
        props = self._props_dict()
        gx = DilatedCorrGradInputs(**props)(ggW, gy, x)
        ggy = DilatedCorr(**props)(x, ggW)
        return [_cast_like(gx, x), _cast_like(ggy, gy), disconnected_type()]


def _flip(a):
    """Reverse every spatial axis of an (N|O, C, *spatial) array."""
    return a[(slice(None), slice(None)) + (slice(None, None, -1),) * (a.ndim - 2)]


def _cast_like(grad, var):
    return grad if grad.dtype == var.dtype else grad.astype(var.dtype)


def dilated_conv(x, W, stride=1, dilation=1, pad="same", groups=1, flip_filters=False):
    """Dilated N-d convolution (cross-correlation by default) of a batch of 1D/2D/3D inputs.

    Parameters
    ----------
    x : tensor_like of shape (batch, channels, *spatial)
        Input; 3, 4 or 5 dimensions for 1D, 2D or 3D data. float32 or float64.
    W : tensor_like of shape (out_channels, channels // groups, *kernel)
        Weights, same number of dimensions as `x`.
    stride, dilation : int or tuple of int
        Positive; one value for all spatial axes or one per axis.
    pad : 'same', 'valid', 'full', int, or per-axis ints / (before, after) pairs
        Zero padding. 'same' keeps ``ceil(n / stride)`` outputs (Keras/TensorFlow rule: any
        odd extra element goes after), also for even kernels and ``stride > 1``.
    groups : int
        Grouped convolution: channels and out_channels must both be divisible.
    flip_filters : bool
        Flip the kernel spatially (true convolution, as Lasagne's layers default to).

    Returns
    -------
    TensorVariable of shape (batch, out_channels, *out)
        With ``extent = (k - 1) * dilation + 1`` and padding ``(before, after)``:
        ``out = (n + before + after - extent) // stride + 1``; dtype is the upcast of x and W.

    Raises
    ------
    ShapeError
        Wrong number of dimensions, channel/group mismatch, or a dilated kernel larger than the
        padded input (checked on static shapes here, on actual shapes when run).
    ConfigError
        Non-positive stride, dilation or groups; negative or malformed padding; integer dtypes.
    """
    x, W = pt.as_tensor_variable(x), pt.as_tensor_variable(W)
    if x.ndim not in (3, 4, 5):
        raise ShapeError(
            invalid(_WHERE, "x.ndim", "3, 4 or 5: (batch, channels, *spatial)", x.ndim)
        )
    if W.ndim != x.ndim:
        raise ShapeError(
            invalid(
                _WHERE,
                "W.ndim",
                f"{x.ndim} like x: (out_channels, channels // groups, *kernel)",
                W.ndim,
            )
        )
    for name, var in (("x", x), ("W", W)):
        if var.dtype not in ("float32", "float64"):
            raise ConfigError(invalid(_WHERE, f"{name}.dtype", "float32 or float64", var.dtype))
    nd = x.ndim - 2
    stride = as_tuple(stride, nd, int_types, name="stride", where=_WHERE, minimum=1)
    dilation = as_tuple(dilation, nd, int_types, name="dilation", where=_WHERE, minimum=1)
    if not is_int(groups) or groups < 1:
        raise ConfigError(invalid(_WHERE, "groups", "a positive int", groups))
    if not isinstance(flip_filters, bool | np.bool_):
        raise ConfigError(invalid(_WHERE, "flip_filters", "True or False", flip_filters))
    op = DilatedCorr(stride, dilation, normalize_pad(pad, nd, _WHERE), groups, flip_filters)
    op.check_shapes(_static(x), _static(W))
    return op(x, W)


def _register_linkers():
    """Register the Ops with PyTensor's Numba, JAX and PyTorch linkers, each when it is first
    used (`dilnet.backends.registry`)."""
    registry.register_ops(DilatedCorr, DilatedCorrGradInputs, DilatedCorrGradWeights)
