"""Elementwise layers: nonlinearity, bias, scale, arbitrary expression, PReLU."""

import pytensor
import pytensor.tensor as pt

from .. import init, nonlinearities
from ..errors import ConfigError, invalid
from ..utils import is_int
from .base import Layer, describe

__all__ = [
    "BiasLayer",
    "ExpressionLayer",
    "NonlinearityLayer",
    "ParametricRectifierLayer",
    "ScaleLayer",
    "prelu",
]


def _shared_axes(layer, shared_axes, name="shared_axes"):
    """'auto' -> batch and spatial axes (one value per channel); 'all', an int or a tuple."""
    rank = len(layer.input_shape)
    if shared_axes == "auto":
        return (0, *range(2, rank))
    if shared_axes == "all":
        return tuple(range(rank))
    axes = (shared_axes,) if is_int(shared_axes) else tuple(shared_axes)
    if not all(is_int(a) and -rank <= a < rank for a in axes):
        raise ConfigError(
            invalid(
                describe(layer), name, f"'auto', 'all' or axes of a {rank}-d input", shared_axes
            )
        )
    return tuple(sorted({a % rank for a in axes}))


def _param_shape(layer, axes):
    shape = tuple(size for axis, size in enumerate(layer.input_shape) if axis not in axes)
    if None in shape:
        raise ConfigError(
            invalid(
                describe(layer),
                "shared_axes",
                f"axes covering every unknown length of input shape {layer.input_shape}",
                axes,
            )
        )
    return shape


def _broadcast(param, axes, rank):
    pattern, i = [], 0
    for axis in range(rank):
        if axis in axes:
            pattern.append("x")
        else:
            pattern.append(i)
            i += 1
    return param.dimshuffle(*pattern)


class NonlinearityLayer(Layer):
    """Apply `nonlinearity` elementwise (None: identity)."""

    def __init__(self, incoming, nonlinearity=nonlinearities.rectify, **kwargs):
        super().__init__(incoming, **kwargs)
        if nonlinearity is not None and not callable(nonlinearity):
            raise ConfigError(
                invalid(describe(self), "nonlinearity", "a callable or None", nonlinearity)
            )
        self.nonlinearity = nonlinearity or nonlinearities.identity

    def get_output_for(self, input, **kwargs):
        return self.nonlinearity(input)


class BiasLayer(Layer):
    """Add a learned bias, shared over `shared_axes` ('auto': one per channel)."""

    def __init__(self, incoming, b=init.Constant(0), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(self, shared_axes)
        self.b = (
            None
            if b is None
            else self.add_param(b, _param_shape(self, self.shared_axes), "b", regularizable=False)
        )

    def get_output_for(self, input, **kwargs):
        if self.b is None:
            return input
        return input + _broadcast(self.b, self.shared_axes, input.ndim)


class ScaleLayer(Layer):
    """Multiply by learned scales, shared over `shared_axes` ('auto': one per channel)."""

    def __init__(self, incoming, scales=init.Constant(1), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(self, shared_axes)
        self.scales = self.add_param(
            scales, _param_shape(self, self.shared_axes), "scales", regularizable=False
        )

    def get_output_for(self, input, **kwargs):
        return input * _broadcast(self.scales, self.shared_axes, input.ndim)


class ExpressionLayer(Layer):
    """Apply `function` to the input.

    Parameters
    ----------
    function : callable
        Takes and returns a PyTensor expression.
    output_shape : None, tuple, callable or 'auto'
        None: same as the input; a tuple; a callable of the input shape; 'auto' evaluates
        `function` on a zero input whose unknown lengths are 0, and reports output lengths of 0
        as None (Lasagne's rule).
    """

    def __init__(self, incoming, function, output_shape=None, **kwargs):
        super().__init__(incoming, **kwargs)
        if not callable(function):
            raise ConfigError(invalid(describe(self), "function", "a callable", function))
        if not (
            output_shape is None
            or output_shape == "auto"
            or callable(output_shape)
            or isinstance(output_shape, tuple)
        ):
            raise ConfigError(
                invalid(
                    describe(self),
                    "output_shape",
                    "None, 'auto', a tuple or a callable",
                    output_shape,
                )
            )
        self.function, self._output_shape = function, output_shape

    def get_output_shape_for(self, input_shape):
        spec = self._output_shape
        if spec is None:
            return input_shape
        if spec == "auto":
            probe = pt.zeros(tuple(0 if s is None else s for s in input_shape))
            # the Python VM: no JIT or C compilation for a one-off probe
            out_shape = pytensor.function([], self.function(probe).shape, mode="FAST_COMPILE")()
            shape = tuple(int(s) or None for s in out_shape)
            return shape
        if callable(spec):
            return tuple(spec(input_shape))
        return spec

    def get_output_for(self, input, **kwargs):
        return self.function(input)


class ParametricRectifierLayer(Layer):
    """PReLU: ``max(x, 0) + alpha * min(x, 0)`` with learned `alpha` (He et al. 2015).

    `alpha` is shared over `shared_axes` ('auto': one slope per channel, as HighRes3DNet
    uses) and not regularized.
    """

    def __init__(self, incoming, alpha=init.Constant(0.25), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(self, shared_axes)
        shape = _param_shape(self, self.shared_axes)
        self.alpha = self.add_param(alpha, shape, "alpha", regularizable=False)

    def get_output_for(self, input, **kwargs):
        alpha = _broadcast(self.alpha, self.shared_axes, input.ndim)
        return pt.maximum(input, 0) + alpha * pt.minimum(input, 0)


def prelu(layer, **kwargs):
    """Replace `layer`'s nonlinearity by a `ParametricRectifierLayer` on top of it."""
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    return ParametricRectifierLayer(layer, **kwargs)
