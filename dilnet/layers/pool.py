"""Pooling and upscaling layers, N-d with rank aliases.

Pooling is written with strided slices (one per window tap) combined by ``maximum`` or ``+``,
so PyTensor differentiates it and every linker runs it; for the 2³ and 3³ windows of
volumetric networks that is 8 or 27 slices.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from ..errors import ConfigError, ConfigTypeError, ShapeError, invalid
from ..shapes import pool_output_length
from ..utils import as_tuple, int_types, is_int
from .base import Layer, describe

__all__ = [
    "FeaturePoolLayer",
    "FeatureWTALayer",
    "GlobalPoolLayer",
    "MaxPool1DLayer",
    "MaxPool2DLayer",
    "MaxPool3DLayer",
    "Pool1DLayer",
    "Pool2DLayer",
    "Pool3DLayer",
    "PoolLayer",
    "SpatialPyramidPoolingLayer",
    "Upscale1DLayer",
    "Upscale2DLayer",
    "Upscale3DLayer",
    "UpscaleLayer",
    "pool_2d",
]

POOL_MODES = ("max", "average_inc_pad", "average_exc_pad")


def _rank(layer, input_shape, n):
    if n is None:
        n = len(input_shape) - 2
    if n not in (1, 2, 3) or len(input_shape) != n + 2:
        raise ShapeError(
            invalid(
                describe(layer),
                "input shape",
                f"{'3, 4 or 5' if n not in (1, 2, 3) else n + 2} input dimensions: "
                "(batch, channels, *spatial)",
                input_shape,
            )
        )
    return n


class PoolLayer(Layer):
    """N-d pooling over the spatial axes of ``(batch, channels, *spatial)``.

    Parameters
    ----------
    pool_size : int or tuple of int
    stride : int or tuple of int, optional
        Defaults to `pool_size` (non-overlapping windows).
    pad : int or tuple of int
        Padding on both sides (``-inf`` for 'max', zeros for the averages); needs
        ``ignore_border=True``.
    ignore_border : bool
        Drop a last partial window (True) or pool it too (False).
    mode : 'max', 'average_inc_pad' or 'average_exc_pad'
        'average_exc_pad' divides by the number of non-padding elements in each window.

    Notes
    -----
    Output lengths follow `dilnet.shapes.pool_output_length`.
    """

    def __init__(
        self,
        incoming,
        pool_size,
        stride=None,
        pad=0,
        ignore_border=True,
        mode="max",
        n=None,
        **kwargs,
    ):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        self.n = n = _rank(self, self.input_shape, n)
        self.pool_size = as_tuple(pool_size, n, int_types, name="pool_size", where=where, minimum=1)
        self.stride = (
            self.pool_size
            if stride is None
            else as_tuple(stride, n, int_types, name="stride", where=where, minimum=1)
        )
        self.pad = as_tuple(pad, n, int_types, name="pad", where=where, minimum=0)
        if mode not in POOL_MODES:
            raise ConfigError(invalid(where, "mode", f"one of {POOL_MODES}", mode))
        self.mode = mode
        self.ignore_border = bool(ignore_border)
        if not self.ignore_border and any(self.pad):
            raise ConfigError(
                invalid(where, "ignore_border", "True when pad is not 0", ignore_border)
            )
        if any(p >= k for p, k in zip(self.pad, self.pool_size, strict=True)):
            raise ConfigError(
                invalid(where, "pad", f"values smaller than pool_size={self.pool_size}", pad)
            )
        for axis, length in enumerate(self.output_shape[2:]):
            if length is not None and length < 1:
                raise ShapeError(
                    f"{where}: spatial axis {axis} of input shape {self.input_shape} is shorter "
                    f"than the pool window {self.pool_size[axis]}."
                )

    def get_output_shape_for(self, input_shape):
        spatial = tuple(
            pool_output_length(length, k, s, p, self.ignore_border)
            for length, k, s, p in zip(
                input_shape[2:], self.pool_size, self.stride, self.pad, strict=True
            )
        )
        return (*input_shape[:2], *spatial)

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        n = self.n
        lengths = [input.shape[2 + i] for i in range(n)]
        static = input.type.shape[2:]
        outs, padded = [], []
        for i in range(n):
            k, s, p = self.pool_size[i], self.stride[i], self.pad[i]
            out = pool_output_length(static[i], k, s, p, self.ignore_border)
            if out is None:
                out = self._symbolic_length(lengths[i], k, s, p)
            outs.append(out)
            # enough elements after the input for the last window
            padded.append((out - 1) * s + k)
        fill = -np.inf if self.mode == "max" else 0.0
        x = self._pad(input, lengths, padded, fill)
        taps = np.ndindex(*self.pool_size)
        result = None
        for tap in taps:
            view = x[
                (
                    slice(None),
                    slice(None),
                    *tuple(
                        slice(t, t + (o - 1) * s + 1, s)
                        for t, o, s in zip(tap, outs, self.stride, strict=True)
                    ),
                )
            ]
            if result is None:
                result = view
            elif self.mode == "max":
                result = pt.maximum(result, view)
            else:
                result = result + view
        if self.mode == "average_inc_pad" and self.ignore_border:
            # a constant of the input's dtype: numpy's int64 product would upcast float32
            return result / np.asarray(np.prod(self.pool_size), dtype=input.dtype)
        if self.mode != "max":
            # windows count their elements inside the input ('average_exc_pad') or inside the
            # padded input ('average_inc_pad'; Theano clips a last partial window to it)
            inc = self.mode == "average_inc_pad"
            core = [
                length + 2 * p if inc else length
                for length, p in zip(lengths, self.pad, strict=True)
            ]
            ones = pt.ones((1, 1, *core), dtype=input.dtype)
            canvas_pad = (0,) * n if inc else self.pad
            counts = PoolLayer._sum_windows(
                _place(ones, core, canvas_pad, padded, 0.0), self.pool_size, outs, self.stride
            )
            return result / counts
        return result

    @staticmethod
    def _sum_windows(x, pool_size, outs, stride):
        total = None
        for tap in np.ndindex(*pool_size):
            view = x[
                (
                    slice(None),
                    slice(None),
                    *tuple(
                        slice(t, t + (o - 1) * s + 1, s)
                        for t, o, s in zip(tap, outs, stride, strict=True)
                    ),
                )
            ]
            total = view if total is None else total + view
        return total

    def _symbolic_length(self, length, k, s, p):
        if self.ignore_border:
            return (length + 2 * p - k) // s + 1
        if s >= k:
            return (length - 1) // s + 1
        return pt.maximum(0, (length - 1 - k + s) // s) + 1

    def _pad(self, x, lengths, padded, fill):
        """`x` inside a canvas of `fill`: ``pad`` before, up to `padded` elements per axis."""
        if self.ignore_border and not any(self.pad):
            return x  # whole windows only: every window lies inside x
        return _place(x, lengths, self.pad, padded, fill)


def _place(x, lengths, before, padded, fill):
    """`x` at offset `before` inside a canvas of `fill`, at least `padded` long per axis."""
    shape = [x.shape[0], x.shape[1]]
    for length, p, want in zip(lengths, before, padded, strict=True):
        shape.append(pt.maximum(want, length + p))
    canvas = pt.full(shape, fill, dtype=x.dtype)
    index = (
        slice(None),
        slice(None),
        *(slice(p, p + length) for p, length in zip(before, lengths, strict=True)),
    )
    return pt.set_subtensor(canvas[index], x)


class Pool1DLayer(PoolLayer):
    """`PoolLayer` with ``n=1``."""

    def __init__(self, incoming, pool_size, stride=None, pad=0, *args, **kwargs):
        super().__init__(incoming, pool_size, stride, pad, *args, n=1, **kwargs)


class Pool2DLayer(PoolLayer):
    """`PoolLayer` with ``n=2``."""

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0), *args, **kwargs):
        super().__init__(incoming, pool_size, stride, pad, *args, n=2, **kwargs)


class Pool3DLayer(PoolLayer):
    """`PoolLayer` with ``n=3``."""

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0, 0), *args, **kwargs):
        super().__init__(incoming, pool_size, stride, pad, *args, n=3, **kwargs)


class MaxPool1DLayer(Pool1DLayer):
    """`Pool1DLayer` with ``mode='max'``."""

    def __init__(self, incoming, pool_size, stride=None, pad=0, ignore_border=True, **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border=ignore_border, **kwargs)


class MaxPool2DLayer(Pool2DLayer):
    """`Pool2DLayer` with ``mode='max'``."""

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0), ignore_border=True, **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border=ignore_border, **kwargs)


class MaxPool3DLayer(Pool3DLayer):
    """`Pool3DLayer` with ``mode='max'``."""

    def __init__(
        self, incoming, pool_size, stride=None, pad=(0, 0, 0), ignore_border=True, **kwargs
    ):
        super().__init__(incoming, pool_size, stride, pad, ignore_border=ignore_border, **kwargs)


class UpscaleLayer(Layer):
    """N-d upscaling by integer factors.

    Parameters
    ----------
    scale_factor : int or tuple of int
    mode : 'repeat' or 'dilate'
        'repeat' repeats each element (nearest neighbour); 'dilate' places each element at the
        top-left-front of its block and zeros elsewhere.
    """

    def __init__(self, incoming, scale_factor, mode="repeat", n=None, **kwargs):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        self.n = n = _rank(self, self.input_shape, n)
        self.scale_factor = as_tuple(
            scale_factor, n, int_types, name="scale_factor", where=where, minimum=1
        )
        if mode not in ("repeat", "dilate"):
            raise ConfigError(invalid(where, "mode", "'repeat' or 'dilate'", mode))
        self.mode = mode

    def get_output_shape_for(self, input_shape):
        spatial = tuple(
            None if length is None else length * f
            for length, f in zip(input_shape[2:], self.scale_factor, strict=True)
        )
        return (*input_shape[:2], *spatial)

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        if self.mode == "repeat":
            # f copies stacked on a new axis after `axis`, then merged into it. pt.repeat would
            # build a broadcast_to whose static-shape inference re-runs shape inference over the
            # whole upstream graph (about 0.5 s per call behind a pooling layer).
            out = input
            for axis, f in enumerate(self.scale_factor, start=2):
                if f > 1:
                    pattern = [*range(axis + 1), "x", *range(axis + 1, out.ndim)]
                    stacked = pt.concatenate([out.dimshuffle(pattern)] * f, axis=axis + 1)
                    shape = [out.shape[i] for i in range(out.ndim)]
                    shape[axis] = shape[axis] * f
                    out = stacked.reshape(shape, ndim=out.ndim)
            return out
        shape = [input.shape[0], input.shape[1]] + [
            input.shape[2 + i] * f for i, f in enumerate(self.scale_factor)
        ]
        canvas = pt.zeros(shape, dtype=input.dtype)
        index = (slice(None), slice(None), *tuple(slice(None, None, f) for f in self.scale_factor))
        return pt.set_subtensor(canvas[index], input)


class Upscale1DLayer(UpscaleLayer):
    """`UpscaleLayer` with ``n=1``."""

    def __init__(self, incoming, scale_factor, mode="repeat", **kwargs):
        super().__init__(incoming, scale_factor, mode, n=1, **kwargs)


class Upscale2DLayer(UpscaleLayer):
    """`UpscaleLayer` with ``n=2``."""

    def __init__(self, incoming, scale_factor, mode="repeat", **kwargs):
        super().__init__(incoming, scale_factor, mode, n=2, **kwargs)


class Upscale3DLayer(UpscaleLayer):
    """`UpscaleLayer` with ``n=3``."""

    def __init__(self, incoming, scale_factor, mode="repeat", **kwargs):
        super().__init__(incoming, scale_factor, mode, n=3, **kwargs)


def _check_groups(layer, axis, pool_size):
    """`pool_size` as an int that divides the length of `axis` (Lasagne's feature pooling)."""
    where = describe(layer)
    if not is_int(pool_size) or pool_size < 1:
        raise ConfigError(invalid(where, "pool_size", "a positive int", pool_size))
    if not is_int(axis) or not -len(layer.input_shape) <= axis < len(layer.input_shape):
        raise ConfigError(
            invalid(where, "axis", f"an axis of the input shape {layer.input_shape}", axis)
        )
    axis = int(axis) % len(layer.input_shape)
    length = layer.input_shape[axis]
    if length is not None and length % pool_size:
        raise ShapeError(
            invalid(
                where,
                "pool_size",
                f"a divisor of the input's axis {axis} length {length} (the number of "
                "feature maps must be a multiple of pool_size)",
                pool_size,
            )
        )
    return axis, int(pool_size)


def _grouped_shape(input, axis, pool_size):
    """`input`'s shape with `axis` split into ``(length // pool_size, pool_size)``."""
    shape = [input.shape[i] for i in range(input.ndim)]
    return [*shape[:axis], shape[axis] // pool_size, pool_size, *shape[axis + 1 :]]


class FeaturePoolLayer(Layer):
    """Pools groups of `pool_size` consecutive feature maps along `axis` (maxout when
    `pool_function` is the max).

    Parameters
    ----------
    incoming : Layer or tuple
    pool_size : int
        Feature maps per group; must divide the length of `axis`.
    axis : int
        The axis to pool over (default 1, the channels).
    pool_function : callable
        Called as ``pool_function(x, axis=a)``; default ``pytensor.tensor.max``.

    Notes
    -----
    The output has ``length // pool_size`` entries along `axis`; entry ``i`` pools input entries
    ``i * pool_size`` to ``(i + 1) * pool_size - 1``.
    """

    def __init__(self, incoming, pool_size, axis=1, pool_function=pt.max, **kwargs):
        super().__init__(incoming, **kwargs)
        self.axis, self.pool_size = _check_groups(self, axis, pool_size)
        if not callable(pool_function):
            raise ConfigTypeError(
                invalid(describe(self), "pool_function", "a callable", pool_function)
            )
        self.pool_function = pool_function

    def get_output_shape_for(self, input_shape):
        shape = list(input_shape)
        if shape[self.axis] is not None:
            shape[self.axis] //= self.pool_size
        return tuple(shape)

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        grouped = input.reshape(
            _grouped_shape(input, self.axis, self.pool_size), ndim=input.ndim + 1
        )
        return self.pool_function(grouped, axis=self.axis + 1)


class FeatureWTALayer(Layer):
    """Winner takes all within groups of `pool_size` consecutive feature maps along `axis`: the
    largest of each group is kept, the others become 0 (the first largest on ties).

    Parameters
    ----------
    incoming : Layer or tuple
    pool_size : int
        Feature maps per group; must divide the length of `axis`.
    axis : int
        Default 1, the channels.

    Notes
    -----
    The output shape is the input shape.
    """

    def __init__(self, incoming, pool_size, axis=1, **kwargs):
        super().__init__(incoming, **kwargs)
        self.axis, self.pool_size = _check_groups(self, axis, pool_size)

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        grouped = input.reshape(
            _grouped_shape(input, self.axis, self.pool_size), ndim=input.ndim + 1
        )
        winner = pt.argmax(grouped, axis=self.axis + 1, keepdims=True)
        pattern = ["x"] * (input.ndim + 1)
        pattern[self.axis + 1] = 0
        mask = pt.eq(winner, pt.arange(self.pool_size).dimshuffle(pattern))
        return input * mask.reshape(input.shape, ndim=input.ndim).astype(input.dtype)


class GlobalPoolLayer(Layer):
    """Pools all spatial positions of ``(batch, channels, *spatial)`` into one value per channel.

    Parameters
    ----------
    incoming : Layer or tuple
    pool_function : callable
        Called as ``pool_function(x, axis=2)`` on the input flattened to
        ``(batch, channels, positions)``; default ``pytensor.tensor.mean``.

    Notes
    -----
    Output shape ``(batch, channels)``.
    """

    def __init__(self, incoming, pool_function=pt.mean, **kwargs):
        super().__init__(incoming, **kwargs)
        if not callable(pool_function):
            raise ConfigTypeError(
                invalid(describe(self), "pool_function", "a callable", pool_function)
            )
        self.pool_function = pool_function

    def get_output_shape_for(self, input_shape):
        return tuple(input_shape[:2])

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        return self.pool_function(input.flatten(3), axis=2)


_SPP_MODES_TEXT = "Mode must be either 'max', 'average_inc_pad' or 'average_exc_pad'"


def pool_2d(input, ws, ignore_border=True, stride=None, pad=(0, 0), mode="max"):
    """2-D pooling of the last two axes with window and stride that may be symbolic.

    The signature of Theano's ``pool_2d`` (which Lasagne's ``layers.pool`` re-exported), for
    whole windows without padding: each output element reduces an input window of ``ws``
    elements, windows start every ``stride`` elements. Implemented by gathering the windows
    (``(..., out_rows, ws_rows, out_cols, ws_cols)``), so `ws` and `stride` can be integer
    expressions; the gathered copy is ``ws² / stride²`` times the input.

    Parameters
    ----------
    input : tensor of 2 or more dimensions
    ws : pair of int or integer expressions
        Window size (rows, columns).
    ignore_border : bool
        Must be True: only whole windows (Theano's other modes are `PoolLayer`'s).
    stride : pair, optional
        Defaults to `ws`.
    pad : pair of int, or None
        Must be zero (or None).
    mode : 'max', 'sum', 'average_inc_pad' or 'average_exc_pad'
        Without padding both averages are the window mean.

    Notes
    -----
    Output length per axis: ``(n - ws) // stride + 1``.
    """
    where = "pool_2d"
    if not ignore_border:
        raise ConfigError(
            invalid(where, "ignore_border", "True (use PoolLayer for partial windows)",
                    ignore_border)
        )  # fmt: skip
    if pad is not None and any(not is_int(p) or p != 0 for p in as_tuple(pad, 2)):
        raise ConfigError(invalid(where, "pad", "(0, 0) or None (use PoolLayer to pad)", pad))
    if mode not in ("sum", *POOL_MODES):
        raise ConfigError(invalid(where, "mode", f"one of {('sum', *POOL_MODES)}", mode))
    input = pt.as_tensor_variable(input)
    ws = _pair_of(ws, "ws")
    stride = ws if stride is None else _pair_of(stride, "stride")
    rows, cols = input.shape[-2], input.shape[-1]
    index = []
    for length, w, s in ((rows, *_pair(ws, stride, 0)), (cols, *_pair(ws, stride, 1))):
        out = (length - w) // s + 1
        index.append(pt.arange(out)[:, None] * s + pt.arange(w)[None, :])
    lead = (slice(None),) * (input.ndim - 2)
    windows = input[(*lead, index[0][:, :, None, None], index[1][None, None, :, :])]
    axes = (input.ndim - 1, input.ndim + 1)
    if mode == "max":
        return pt.max(windows, axis=axes)
    if mode == "sum":
        return pt.sum(windows, axis=axes)
    return pt.mean(windows, axis=axes)


def _pair(ws, stride, axis):
    return ws[axis], stride[axis]


def _pair_of(value, name):
    """Two window sizes or strides: ints, scalar expressions, or a length-2 vector expression."""
    if isinstance(value, Variable) and value.ndim == 1:
        return (value[0], value[1])
    pair = as_tuple(value, 2, name=name, where="pool_2d")
    for v in pair:
        symbolic = isinstance(v, Variable) and v.ndim == 0 and v.dtype.startswith(("int", "uint"))
        if not (symbolic or (is_int(v) and v >= 1)):
            raise ConfigTypeError(
                invalid("pool_2d", name, "two positive ints or integer scalar expressions", value)
            )
    return pair


class SpatialPyramidPoolingLayer(Layer):
    """Spatial pyramid pooling (He et al. 2014): for each ``d`` in `pool_dims` the
    ``(batch, channels, rows, cols)`` input is pooled to ``d * d`` values per channel, whatever
    its size; the results are flattened and concatenated.

    Parameters
    ----------
    incoming : Layer or tuple
        A 4-d input ``(batch, channels, rows, cols)``; rows and columns may be unknown.
    pool_dims : list of int
        Pyramid levels (default ``[4, 2, 1]``).
    mode : 'max', 'average_inc_pad' or 'average_exc_pad'
        The averages are equal here (there is no padding).
    implementation : 'fast' or 'kaiming'
        'fast' (Lasagne's default) pools windows of ``ceil(n / d)`` elements every
        ``n // d`` elements (`pool_2d`); 'kaiming' pools the bins
        ``[floor(i * n / d), ceil((i + 1) * n / d))``, which always cover the whole input.

    Notes
    -----
    Output shape ``(batch, channels, sum(d * d for d in pool_dims))``; entry order: level by
    level, each row-major. With 'fast' a level yields ``d * d`` windows when
    ``(n - ceil(n / d)) // (n // d) + 1 == d``, which holds for every ``n >= d * (d - 1)``
    (Lasagne's assumption); 'kaiming' has no such condition.
    """

    def __init__(self, incoming, pool_dims=(4, 2, 1), mode="max", implementation="fast", **kwargs):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        if len(self.input_shape) != 4:
            raise ShapeError(
                invalid(
                    where,
                    "input shape",
                    "4 input dimensions: (batch, channels, rows, columns)",
                    self.input_shape,
                )
            )
        dims = list(pool_dims) if isinstance(pool_dims, list | tuple) else None
        if not dims or not all(is_int(d) and d >= 1 for d in dims):
            raise ConfigError(invalid(where, "pool_dims", "a list of positive ints", pool_dims))
        self.pool_dims = [int(d) for d in dims]
        if mode not in POOL_MODES:
            raise ConfigError(f"{where}: {_SPP_MODES_TEXT}. Got {mode!r}.")
        self.mode = mode
        if implementation not in ("fast", "kaiming"):
            raise ConfigError(
                invalid(where, "implementation", "'fast' or 'kaiming'", implementation)
            )
        self.implementation = implementation

    def get_output_shape_for(self, input_shape):
        return (*input_shape[:2], sum(d * d for d in self.pool_dims))

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        size = [
            fixed if fixed is not None else input.shape[2 + i]
            for i, fixed in enumerate(self.input_shape[2:])
        ]
        reduce = pt.max if self.mode == "max" else pt.mean
        levels = []
        for d in self.pool_dims:
            if self.implementation == "fast":
                ws = tuple((n + d - 1) // d for n in size)
                stride = tuple(n // d for n in size)
                mode = "max" if self.mode == "max" else "average_exc_pad"
                levels.append(pool_2d(input, ws, True, stride, None, mode).flatten(3))
                continue
            bins = []
            for i in range(d):  # rows
                r0, r1 = (i * size[0]) // d, ((i + 1) * size[0] + d - 1) // d
                for j in range(d):  # columns
                    c0, c1 = (j * size[1]) // d, ((j + 1) * size[1] + d - 1) // d
                    bins.append(reduce(input[:, :, r0:r1, c0:c1], axis=(2, 3)))
            levels.append(pt.stack(bins, axis=2))
        return pt.concatenate(levels, axis=2)
