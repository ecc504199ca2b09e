"""`DenseLayer`, a fully connected layer, and `NINLayer`, a dense layer across the channel axis
of every position (network in network, Lin et al. 2014)."""

import numpy as np
import pytensor.tensor as pt

from .. import init, nonlinearities
from ..errors import ConfigError, ShapeError, invalid
from ..utils import is_int
from .base import Layer, describe, nonlinearity_or_identity

__all__ = ["DenseLayer", "NINLayer"]


class DenseLayer(Layer):
    """``nonlinearity(x @ W + b)`` over the trailing axes.

    Parameters
    ----------
    num_units : int
    W : initializer, array or shared variable; shape (num_inputs, num_units)
        ``num_inputs`` is the product of the input's axes after `num_leading_axes`.
    b : initializer, array, shared variable or None; shape (num_units,)
    num_leading_axes : int
        Axes kept as they are (1: the batch axis); the rest are flattened.
    """

    def __init__(
        self,
        incoming,
        num_units,
        W=init.GlorotUniform(),
        b=init.Constant(0.0),
        nonlinearity=nonlinearities.rectify,
        num_leading_axes=1,
        **kwargs,
    ):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        if not is_int(num_units) or num_units < 1:
            raise ConfigError(invalid(where, "num_units", "a positive int", num_units))
        rank = len(self.input_shape)
        if not is_int(num_leading_axes):
            raise ConfigError(invalid(where, "num_leading_axes", "an int", num_leading_axes))
        if num_leading_axes >= rank:
            raise ConfigError(
                invalid(
                    where,
                    "num_leading_axes",
                    f"{-rank} to {rank - 1} for a {rank}-d input ({num_leading_axes} leading "
                    "axes would be leaving no trailing axes)",
                    num_leading_axes,
                )
            )
        if num_leading_axes < -rank:
            raise ConfigError(
                invalid(
                    where,
                    "num_leading_axes",
                    f"{-rank} to {rank - 1} for a {rank}-d input ({num_leading_axes} would be "
                    "requesting more trailing axes than the input has)",
                    num_leading_axes,
                )
            )
        num_leading_axes %= rank  # negative: count the flattened axes from the end
        tail = self.input_shape[num_leading_axes:]
        if None in tail:
            raise ShapeError(
                invalid(
                    where,
                    "input shape",
                    "known lengths after the leading axes (the layer requires a fixed input "
                    "shape for the axes it flattens)",
                    self.input_shape,
                )
            )
        self.num_units, self.num_leading_axes = int(num_units), num_leading_axes
        self.nonlinearity = nonlinearity_or_identity(describe(self), nonlinearity)
        self.W = self.add_param(W, (int(np.prod(tail)), self.num_units), name="W")
        self.b = (
            None if b is None else self.add_param(b, (self.num_units,), "b", regularizable=False)
        )

    def get_output_shape_for(self, input_shape):
        return (*input_shape[: self.num_leading_axes], self.num_units)

    def get_output_for(self, input, **kwargs):
        if input.ndim > self.num_leading_axes + 1:
            input = pt.flatten(input, self.num_leading_axes + 1)
        out = pt.dot(input, self.W)
        if self.b is not None:
            out = out + self.b
        return self.nonlinearity(out)


class NINLayer(Layer):
    """``nonlinearity(W.T @ x[b, :, *position] + b)`` at every position: a 1x1 convolution.

    Parameters
    ----------
    num_units : int
        Output channels.
    untie_biases : bool
        One bias per channel and position, shape (num_units, *spatial), instead of one per
        channel (needs known spatial lengths).
    W : initializer, array or shared variable; shape (num_input_channels, num_units)
    b : initializer, array, shared variable or None; shape (num_units,) or, untied,
        (num_units, *spatial)

    Notes
    -----
    Output shape: ``(batch, num_units, *spatial)`` for input ``(batch, channels, *spatial)``.
    """

    def __init__(
        self,
        incoming,
        num_units,
        untie_biases=False,
        W=init.GlorotUniform(),
        b=init.Constant(0.0),
        nonlinearity=nonlinearities.rectify,
        **kwargs,
    ):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        if not is_int(num_units) or num_units < 1:
            raise ConfigError(invalid(where, "num_units", "a positive int", num_units))
        if len(self.input_shape) < 2 or self.input_shape[1] is None:
            raise ShapeError(
                invalid(
                    where,
                    "input shape",
                    "(batch, channels, *spatial) with a known number of channels",
                    self.input_shape,
                )
            )
        self.num_units, self.untie_biases = int(num_units), bool(untie_biases)
        self.nonlinearity = nonlinearity_or_identity(describe(self), nonlinearity)
        self.W = self.add_param(W, (self.input_shape[1], self.num_units), name="W")
        if b is None:
            self.b = None
        else:
            shape = (self.num_units,)
            if self.untie_biases:
                spatial = tuple(self.input_shape[2:])
                if None in spatial:
                    raise ShapeError(
                        invalid(
                            where,
                            "input shape",
                            "known spatial lengths for untie_biases=True",
                            self.input_shape,
                        )
                    )
                shape += spatial
            self.b = self.add_param(b, shape, "b", regularizable=False)

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], self.num_units, *input_shape[2:])

    def get_output_for(self, input, **kwargs):
        # (batch, *spatial, units) -> (batch, units, *spatial)
        out = pt.tensordot(input, self.W, axes=[[1], [0]])
        out = out.dimshuffle(0, input.ndim - 1, *range(1, input.ndim - 1))
        if self.b is not None:
            if self.untie_biases:
                out = out + self.b.dimshuffle("x", *range(self.b.ndim))
            else:
                out = out + self.b.dimshuffle("x", 0, *(["x"] * (input.ndim - 2)))
        return self.nonlinearity(out)
