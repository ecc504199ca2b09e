"""Pooling and upscaling layers, N-d with rank aliases.

Pooling is written with strided slices (one per window tap) combined by ``maximum`` or ``+``,
so PyTensor differentiates it and every linker runs it; for the 2³ and 3³ windows of
volumetric networks that is 8 or 27 slices.
"""

import numpy as np
import pytensor.tensor as pt

from ..errors import ConfigError, ShapeError, invalid
from ..shapes import pool_output_length
from ..utils import as_tuple
from .base import Layer, describe

__all__ = [
    "MaxPool1DLayer",
    "MaxPool2DLayer",
    "MaxPool3DLayer",
    "Pool1DLayer",
    "Pool2DLayer",
    "Pool3DLayer",
    "PoolLayer",
    "Upscale1DLayer",
    "Upscale2DLayer",
    "Upscale3DLayer",
    "UpscaleLayer",
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
                f"{'3, 4 or 5' if n not in (1, 2, 3) else n + 2} dimensions: "
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
        self.pool_size = as_tuple(pool_size, n, "pool_size", where, minimum=1)
        self.stride = (
            self.pool_size if stride is None else as_tuple(stride, n, "stride", where, minimum=1)
        )
        self.pad = as_tuple(pad, n, "pad", where, minimum=0)
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
        self.scale_factor = as_tuple(scale_factor, n, "scale_factor", where, minimum=1)
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
