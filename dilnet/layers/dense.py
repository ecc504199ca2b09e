"""`DenseLayer`: a fully connected layer."""

import numpy as np
import pytensor.tensor as pt

from .. import init, nonlinearities
from ..errors import ConfigError, ShapeError, invalid
from ..utils import is_int
from .base import Layer, describe

__all__ = ["DenseLayer"]


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
        if not is_int(num_leading_axes) or not -rank <= num_leading_axes < rank:
            raise ConfigError(
                invalid(where, "num_leading_axes", f"{-rank} to {rank - 1}", num_leading_axes)
            )
        num_leading_axes %= rank  # negative: count the flattened axes from the end
        tail = self.input_shape[num_leading_axes:]
        if None in tail:
            raise ShapeError(
                invalid(
                    where, "input shape", "known lengths after the leading axes", self.input_shape
                )
            )
        self.num_units, self.num_leading_axes = int(num_units), num_leading_axes
        self.nonlinearity = nonlinearity or nonlinearities.identity
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
