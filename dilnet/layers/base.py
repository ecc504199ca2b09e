"""`Layer` and `MergeLayer`: the two base classes of the layer graph (`create_param` is
`dilnet.utils.create_param`, re-exported here as before).

A layer is two methods: `get_output_shape_for` (pure shape arithmetic, ``None`` for unknown
lengths) and `get_output_for` (the PyTensor expression). Parameters are shared variables with
tags (``trainable``, ``regularizable``) kept in ``layer.params``, in creation order, named
``"<layer name>.<param name>"``.
"""

from collections import OrderedDict

from pytensor.graph.basic import Variable

from .. import nonlinearities
from ..errors import ConfigError, ConfigTypeError, ShapeError, invalid
from ..state import add_state_update, collect_state_updates
from ..utils import collect_shared_vars, create_param, is_int

__all__ = [
    "Layer",
    "MergeLayer",
    "add_state_update",
    "checks_at_build",
    "collect_state_updates",
    "create_param",
    "describe",
]


def describe(layer) -> str:
    """``'conv1' (Conv3DLayer)`` or ``Conv3DLayer`` — how errors name a layer."""
    kind = type(layer).__name__
    return f"{layer.name!r} ({kind})" if getattr(layer, "name", None) else kind


def checks_at_build(layer) -> bool:
    """Whether `layer` can check its arguments against its input shape when it is built.

    False only for a duck-typed input (an object with an ``output_shape`` that is not a
    `Layer`, e.g. a test's ``Mock``): Lasagne read such shapes without trusting them to be
    complete, so the shape-dependent checks run when a shape is asked for instead.
    """
    incoming = getattr(layer, "input_layer", None)
    return incoming is None or isinstance(incoming, Layer)


class Layer:
    """Base class of layers with one input.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding this one, or the expected input shape (``None`` for unknown
        lengths) when the layer is used on its own.
    name : str, optional
        Prefixes the names of this layer's parameters (``"conv1.W"``).
    """

    #: extra keyword arguments of `get_output_for` that `get_output` should accept
    get_output_kwargs: tuple = ()

    def __init__(self, incoming, name=None):
        if isinstance(incoming, tuple):
            self.input_shape, self.input_layer = incoming, None
        elif isinstance(incoming, Layer) or _has_output_shape(incoming):
            # as Lasagne: anything with an `output_shape` feeds a layer (its tests pass
            # `Mock(output_shape=...)`); a non-Layer is a leaf of the graph (`get_all_layers`)
            self.input_shape, self.input_layer = incoming.output_shape, incoming
        else:
            raise ConfigError(
                invalid(
                    type(self).__name__,
                    "incoming",
                    "a Layer, an object with an output_shape, or a shape tuple",
                    incoming,
                )
            )
        self.name = name
        self.params = OrderedDict()
        _check_input_shape(self, self.input_shape)

    @property
    def output_shape(self):
        shape = self.get_output_shape_for(self.input_shape)
        _check_not_symbolic(self, shape)
        if any(isinstance(s, int) and s < 0 for s in shape):
            raise ShapeError(
                f"{describe(self)}: the output shape {shape} has negative lengths for input "
                f"shape {self.input_shape}."
            )
        return shape

    def get_params(self, unwrap_shared=True, **tags):
        """This layer's parameters, filtered by tags (``trainable=True``, ``regularizable=False``).

        With ``unwrap_shared`` (the default) a parameter given as an expression contributes the
        shared variables it is built from instead of itself.
        """
        result = [
            p
            for p, ptags in self.params.items()
            if all((tag in ptags) == bool(want) for tag, want in tags.items())
        ]
        if unwrap_shared:
            return _unwrap(result)
        return result

    def get_output_shape_for(self, input_shape):
        """Output shape for `input_shape` (a tuple with ``None`` for unknown lengths)."""
        return input_shape

    def get_output_for(self, input, **kwargs):
        """The output expression for the input expression `input`."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_output_for")

    def add_param(self, spec, shape, name=None, **tags):
        """Create a parameter from `spec` (initializer, array, shared variable or expression).

        Tags default to ``trainable=True, regularizable=True``; pass ``False`` to drop one. The
        name is prefixed with the layer's name.
        """
        if name is not None and self.name is not None:
            name = f"{self.name}.{name}"
        param = create_param(spec, shape, name, where=describe(self))
        tags.setdefault("trainable", True)
        tags.setdefault("regularizable", True)
        self.params[param] = {tag for tag, on in tags.items() if on}
        return param


def _has_output_shape(incoming) -> bool:
    """Whether `incoming` duck-types a layer: it has an ``output_shape`` (as Lasagne, which
    read it without checking it; its tests pass `Mock` objects)."""
    try:
        incoming.output_shape  # noqa: B018 (reading it is the test)
    except Exception:  # any failure to read it: not a layer
        return False
    return True


def _check_input_shape(layer, shape):
    """Lengths must be positive or None (Lasagne's rule); other shapes are not checked here."""
    if isinstance(shape, list | tuple) and any(is_int(d) and d <= 0 for d in shape):
        raise ShapeError(
            invalid(describe(layer), "input shape", "positive lengths or None", tuple(shape))
        )


def _check_not_symbolic(layer, shape):
    if any(isinstance(s, Variable) for s in shape):
        raise ShapeError(
            f"{describe(layer)}: get_output_shape_for returned a symbolic output shape {shape!r}; "
            "shapes must hold ints for known lengths and None for unknown ones."
        )


class MergeLayer(Layer):
    """Base class of layers with several inputs (`incomings`: layers or shape tuples)."""

    def __init__(self, incomings, name=None):
        self.input_shapes, self.input_layers = [], []
        if not isinstance(incomings, list | tuple) or not incomings:
            raise ConfigError(
                invalid(type(self).__name__, "incomings", "a non-empty list of layers", incomings)
            )
        for incoming in incomings:
            if isinstance(incoming, tuple):
                self.input_shapes.append(incoming)
                self.input_layers.append(None)
            elif isinstance(incoming, Layer) or _has_output_shape(incoming):
                self.input_shapes.append(incoming.output_shape)
                self.input_layers.append(incoming)
            else:
                raise ConfigError(
                    invalid(
                        type(self).__name__,
                        "incomings",
                        "Layers, objects with an output_shape, or shape tuples",
                        incoming,
                    )
                )
        self.name = name
        self.params = OrderedDict()
        for shape in self.input_shapes:
            _check_input_shape(self, shape)

    @property
    def output_shape(self):
        shape = self.get_output_shape_for(self.input_shapes)
        _check_not_symbolic(self, shape)
        return shape

    def get_output_shape_for(self, input_shapes):
        raise NotImplementedError(f"{type(self).__name__} does not define get_output_shape_for")

    def get_output_for(self, inputs, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define get_output_for")


def _unwrap(params):
    return collect_shared_vars(params)


def nonlinearity_or_identity(where, nonlinearity):
    """`nonlinearity`, with None read as the identity (Lasagne's convention); a
    `ConfigTypeError` naming `where` unless it is callable."""
    if nonlinearity is None:
        return nonlinearities.identity
    if not callable(nonlinearity):
        raise ConfigTypeError(invalid(where, "nonlinearity", "a callable or None", nonlinearity))
    return nonlinearity
