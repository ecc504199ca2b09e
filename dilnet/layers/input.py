"""`InputLayer`: where a network starts."""

from collections import OrderedDict

import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from ..errors import ConfigError, ShapeError, invalid
from ..utils import is_int
from .base import Layer

__all__ = ["InputLayer"]


class InputLayer(Layer):
    """A network's input.

    Parameters
    ----------
    shape : tuple of int or None
        The input's shape, ``None`` for lengths known only at run time, e.g.
        ``(None, 1, None, None, None)`` for batches of single-channel volumes of any size.
    input_var : TensorVariable, optional
        The symbolic input; by default a new tensor of dtype ``floatX`` with `shape`'s rank
        whose axes of length 1 are broadcastable (as Lasagne's): other lengths are not fixed in
        the graph, so e.g. a smaller last batch runs.
    name : str, optional
    """

    def __init__(self, shape, input_var=None, name=None, **kwargs):
        if not isinstance(shape, tuple | list) or not all(
            s is None or (is_int(s) and s > 0) for s in shape
        ):
            raise ConfigError(
                invalid("InputLayer", "shape", "a tuple of positive ints or None", shape)
            )
        self.shape = tuple(None if s is None else int(s) for s in shape)
        self.input_shape, self.input_layer = self.shape, None
        self.name = name
        self.params = OrderedDict()
        if input_var is None:
            input_var = pt.tensor(
                name=f"{name}.input" if name else "input",
                dtype=pytensor.config.floatX,
                shape=tuple(1 if s == 1 else None for s in self.shape),
            )
        elif not isinstance(input_var, Variable) or input_var.ndim != len(self.shape):
            raise ShapeError(
                invalid(
                    "InputLayer",
                    "input_var",
                    f"a tensor with {len(self.shape)} dimensions like shape={self.shape}",
                    input_var,
                )
            )
        self.input_var = input_var

    @property
    def output_shape(self):
        return self.shape

    def get_output_for(self, input=None, **kwargs):
        return self.input_var
