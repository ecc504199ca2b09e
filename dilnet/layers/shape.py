"""Layers that only move elements: pad, slice, reshape, dimshuffle, flatten."""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from pytensor.tensor.type import integer_dtypes

from ..errors import ConfigError, ShapeError, invalid
from ..theano_extensions import padding
from ..utils import is_int
from .base import Layer, checks_at_build, describe

__all__ = [
    "DimshuffleLayer",
    "FlattenLayer",
    "PadLayer",
    "ReshapeLayer",
    "SliceLayer",
    "dimshuffle",
    "flatten",
    "pad",
    "pad_tensor",
    "reshape",
]


class PadLayer(Layer):
    """Pad the axes after the first `batch_ndim` with the constant `val`.

    Parameters
    ----------
    width : int or iterable of int / (before, after) pairs
        One entry for every axis after the first `batch_ndim` (an int pads all of them).
    val : float
        The padding value.
    batch_ndim : int
        Leading axes left alone (2: batch and channels).
    """

    def __init__(self, incoming, width, val=0, batch_ndim=2, **kwargs):
        super().__init__(incoming, **kwargs)
        if not is_int(batch_ndim) or batch_ndim < 0:
            raise ConfigError(
                invalid(describe(self), "batch_ndim", "a non-negative int", batch_ndim)
            )
        self.width, self.val, self.batch_ndim = width, val, int(batch_ndim)
        if checks_at_build(self):
            self.output_shape  # noqa: B018 - checks width against the input's rank

    def _pairs(self, ndim):
        """`width` as ``(before, after)`` pairs for a `ndim`-d input."""
        where = describe(self)
        if ndim - self.batch_ndim < 1:
            raise ShapeError(
                invalid(where, "batch_ndim", f"less than the input's rank {ndim}", self.batch_ndim)
            )
        return padding.normalize_width(self.width, ndim - self.batch_ndim, where)

    def get_output_shape_for(self, input_shape):
        head = input_shape[: self.batch_ndim]
        tail = tuple(
            None if s is None else s + a + b
            for s, (a, b) in zip(
                input_shape[self.batch_ndim :], self._pairs(len(input_shape)), strict=True
            )
        )
        return (*head, *tail)

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        return pad_tensor(input, self._pairs(input.ndim), self.val, self.batch_ndim)


def pad_tensor(x, width, val=0, batch_ndim=2):
    """`x` padded with `val` by ``(before, after)`` pairs on the axes after `batch_ndim`
    (`dilnet.theano_extensions.padding.pad` with the layers' default ``batch_ndim=2``)."""
    return padding.pad(x, width, val, batch_ndim)


def _symbolic_length(value):
    """An integer scalar expression (a length known only when the graph runs)."""
    return isinstance(value, Variable) and value.ndim == 0 and value.dtype in integer_dtypes


def _iterable(value):
    return isinstance(value, tuple | list)


class SliceLayer(Layer):
    """Index or slice one axis: ``SliceLayer(l, indices=slice(2, 5), axis=2)``.

    An int index removes the axis; a slice keeps it.
    """

    def __init__(self, incoming, indices, axis=-1, **kwargs):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        rank = len(self.input_shape)
        if not is_int(axis) or not -rank <= axis < rank:
            raise ConfigError(invalid(where, "axis", f"an axis of a {rank}-d input", axis))
        if not (is_int(indices) or isinstance(indices, slice)):
            raise ConfigError(invalid(where, "indices", "an int or a slice", indices))
        self.indices, self.axis = indices, axis % rank
        length = self.input_shape[self.axis]
        if is_int(indices) and length is not None and not -length <= indices < length:
            raise ShapeError(
                invalid(
                    where, "indices", f"an index into axis {self.axis} of length {length}", indices
                )
            )

    def get_output_shape_for(self, input_shape):
        shape = list(input_shape)
        if is_int(self.indices):
            del shape[self.axis]
        elif shape[self.axis] is not None:
            shape[self.axis] = len(range(*self.indices.indices(shape[self.axis])))
        return tuple(shape)

    def get_output_for(self, input, **kwargs):
        index = [slice(None)] * input.ndim
        index[self.axis] = self.indices
        return input[tuple(index)]


class ReshapeLayer(Layer):
    """Reshape to `shape`, whose entries are ints, ``-1`` (at most one, inferred), ``[i]``
    (the length of input axis ``i``) or integer scalar expressions (unknown in the output
    shape, e.g. ``x.shape[0] * x.shape[1]``).

    Example: ``ReshapeLayer(l, ([0], [1], -1))`` flattens the spatial axes.
    """

    def __init__(self, incoming, shape, **kwargs):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        shape = tuple(shape) if _iterable(shape) else None
        ok = shape is not None and all(
            (is_int(s) and (s > 0 or s == -1))
            or _symbolic_length(s)
            or (
                isinstance(s, list)
                and len(s) == 1
                and is_int(s[0])
                and 0 <= s[0] < len(self.input_shape)
            )
            for s in shape
        )
        if not ok or sum(1 for s in shape if is_int(s) and s == -1) > 1:
            raise ConfigError(
                invalid(
                    where,
                    "shape",
                    "a tuple of positive ints, integer scalar expressions, at most one -1 and [i] "
                    "references to input axes",
                    shape,
                )
            )
        self.shape = shape
        self.output_shape  # noqa: B018 - checks that the sizes fit, at build time

    def get_output_shape_for(self, input_shape):
        # a symbolic input length (Lasagne's tests pass x.shape's entries) is unknown here
        input_shape = tuple(None if isinstance(n, Variable) else n for n in input_shape)
        out = [
            input_shape[s[0]] if isinstance(s, list) else None if _symbolic_length(s) else s
            for s in self.shape
        ]
        # Lasagne's rule: the first copy of an unknown input length cancels against it; every
        # other length counts towards the element totals on each side
        masked_in, masked_out = list(input_shape), list(out)
        for dim, s in enumerate(self.shape):
            if isinstance(s, list) and input_shape[s[0]] is None and masked_in[s[0]] is None:
                masked_in[s[0]], masked_out[dim] = 1, 1
        known = None not in masked_in and None not in masked_out
        have = int(np.prod(masked_in)) if known else None
        want = int(np.prod([n for n in masked_out if n != -1])) if known else None
        if -1 in out:
            if known and have % want:
                raise ShapeError(
                    f"{describe(self)}: cannot reshape input shape {input_shape} to "
                    f"{self.shape}: the sizes do not match ({have} elements do not divide into "
                    f"parts of {want})."
                )
            out[out.index(-1)] = have // want if known else None
        elif known and have != want:
            raise ShapeError(
                f"{describe(self)}: cannot reshape input shape {input_shape} to {self.shape}: "
                f"the sizes do not match ({have} elements in, {want} out)."
            )
        return tuple(out)

    def get_output_for(self, input, **kwargs):
        shape = [input.shape[s[0]] if isinstance(s, list) else s for s in self.shape]
        return pt.reshape(input, shape, ndim=len(shape))


class DimshuffleLayer(Layer):
    """Permute axes and insert broadcastable ones: pattern of axis indices and ``'x'``.

    Axes left out must have length 1 or an unknown length (they are dropped; an unknown one
    must be broadcastable in the input expression).
    """

    def __init__(self, incoming, pattern, **kwargs):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        rank = len(self.input_shape)
        if not isinstance(pattern, tuple | list):
            raise ConfigError(invalid(where, "pattern", "a tuple of input axes and 'x'", pattern))
        used = [p for p in pattern if p != "x"]
        if not all(is_int(p) and 0 <= p < rank for p in used) or len(set(used)) != len(used):
            raise ConfigError(
                invalid(where, "pattern", f"distinct axes of a {rank}-d input and 'x'", pattern)
            )
        for axis in set(range(rank)) - set(used):
            # an unknown length may be 1 (Lasagne allows it; the input must then be broadcastable
            # along that axis when the layer is applied)
            if self.input_shape[axis] not in (1, None):
                raise ShapeError(
                    f"{describe(self)}: pattern {tuple(pattern)} drops axis {axis} of input shape "
                    f"{self.input_shape}, which is only allowed for axes of length 1 (or unknown)."
                )
        self.pattern = tuple(pattern)

    def get_output_shape_for(self, input_shape):
        return tuple(1 if p == "x" else input_shape[p] for p in self.pattern)

    def get_output_for(self, input, **kwargs):
        return input.dimshuffle(*self.pattern)


class FlattenLayer(Layer):
    """Flatten the trailing axes so the output has `outdim` dimensions."""

    def __init__(self, incoming, outdim=2, **kwargs):
        super().__init__(incoming, **kwargs)
        if not is_int(outdim) or outdim < 1:
            raise ConfigError(invalid(describe(self), "outdim", "a positive int", outdim))
        self.outdim = int(outdim)
        if checks_at_build(self):
            self.output_shape  # noqa: B018 - checks outdim against the input's rank

    def get_output_shape_for(self, input_shape):
        if self.outdim > len(input_shape):
            raise ShapeError(
                invalid(describe(self), "outdim", f"1 to {len(input_shape)}", self.outdim)
            )
        tail = input_shape[self.outdim - 1 :]
        last = None if None in tail else int(np.prod(tail))
        return (*input_shape[: self.outdim - 1], last)

    def get_output_for(self, input, **kwargs):
        return pt.flatten(input, self.outdim)


pad = PadLayer
reshape = ReshapeLayer
dimshuffle = DimshuffleLayer
flatten = FlattenLayer
