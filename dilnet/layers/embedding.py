"""`EmbeddingLayer`: integer indices to learned vectors (Lasagne's `lasagne.layers.embedding`)."""

import pytensor.tensor as pt

from .. import init
from ..errors import ConfigError, ConfigTypeError, invalid
from ..utils import is_int
from .base import Layer, describe

__all__ = ["EmbeddingLayer"]


class EmbeddingLayer(Layer):
    """Look up row ``x`` of `W` for every integer ``x`` of the input.

    Parameters
    ----------
    input_size : int
        Number of distinct indices (rows of `W`); inputs must lie in ``[0, input_size)``.
    output_size : int
        Length of each vector.
    W : initializer, array or shared variable; shape (input_size, output_size)

    Notes
    -----
    Output shape: ``input_shape + (output_size,)``. The input is an integer tensor of any
    rank (e.g. ``pytensor.tensor.imatrix`` for (batch, sequence) indices).
    """

    def __init__(self, incoming, input_size, output_size, W=init.Normal(), **kwargs):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        for name, value in (("input_size", input_size), ("output_size", output_size)):
            if not is_int(value) or value < 1:
                raise ConfigError(invalid(where, name, "a positive int", value))
        self.input_size, self.output_size = int(input_size), int(output_size)
        self.W = self.add_param(W, (self.input_size, self.output_size), name="W")

    def get_output_shape_for(self, input_shape):
        return (*input_shape, self.output_size)

    def get_output_for(self, input, **kwargs):
        input = pt.as_tensor_variable(input)
        if not input.dtype.startswith(("int", "uint")):
            raise ConfigTypeError(
                invalid(describe(self), "input", "integer indices", f"dtype {input.dtype}")
            )
        return self.W[input]
