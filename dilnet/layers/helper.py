"""Functions over whole layer graphs: outputs, shapes, layers, parameters and their values."""

import difflib
import inspect
import warnings
from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt

from ..errors import ConfigError, ConfigTypeError, ShapeError, invalid
from .base import Layer, MergeLayer, describe
from .input import InputLayer

__all__ = [
    "count_params",
    "get_all_layers",
    "get_all_param_values",
    "get_all_params",
    "get_output",
    "get_output_shape",
    "set_all_param_values",
]


def _as_list(layer_or_layers):
    if isinstance(layer_or_layers, Layer):
        return [layer_or_layers], True
    layers = list(layer_or_layers)
    if not all(isinstance(layer, Layer) for layer in layers):
        raise ConfigError(
            invalid("get_output", "layer_or_layers", "a Layer or a list of Layers", layer_or_layers)
        )
    return layers, False


def _inputs_of(layer):
    # only dilnet Layers are followed: an object that merely has an `output_shape` (Lasagne
    # accepts one as an incoming layer) is a leaf; following its attributes could go on forever
    # (a Mock's `input_layer` is a new Mock)
    if not isinstance(layer, Layer) or isinstance(layer, InputLayer):
        return []
    if isinstance(layer, MergeLayer):
        return [x for x in layer.input_layers if x is not None]
    return [] if layer.input_layer is None else [layer.input_layer]


def _check_keys(where, name, given, all_layers):
    """Keys of an inputs dict: Layers, None (the input of layers built from a shape tuple), or
    a duck-typed layer that feeds the network."""
    known = set(all_layers)
    for key in given:
        if key is not None and not isinstance(key, Layer) and key not in known:
            raise ConfigTypeError(
                invalid(where, f"{name} key", "a Layer, None, or a layer of this network", key)
            )


def get_all_layers(layer, treat_as_input=None):
    """Every layer `layer` (or a list of layers) depends on, inputs first (topological order).

    Layers in `treat_as_input` are included but not followed further.
    """
    layers, _ = _as_list(layer)
    stop = set(treat_as_input or ())
    result, done = [], set()
    # iterative depth-first search: deep networks must not hit the recursion limit
    for root in layers:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in done:
                continue
            if expanded or node in stop:
                done.add(node)
                result.append(node)
                continue
            stack.append((node, True))
            for parent in reversed(_inputs_of(node)):
                if parent not in done:
                    stack.append((parent, False))
    return result


def _accepted_kwargs(layer):
    names = set(getattr(layer, "get_output_kwargs", ()))
    params = inspect.signature(layer.get_output_for).parameters
    names.update(
        name
        for name, p in params.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name not in ("input", "inputs")
    )
    return names


def get_output(layer_or_layers, inputs=None, **kwargs):
    """The symbolic output(s) of `layer_or_layers`.

    Parameters
    ----------
    layer_or_layers : Layer or list of Layer
    inputs : None, expression/array, or dict
        None uses each `InputLayer`'s ``input_var``; a single expression replaces the only
        input layer's; a dict maps layers (input or not) to expressions that replace their
        outputs, and the key None to the input of layers built from a shape tuple.
    **kwargs
        Passed to every layer's ``get_output_for``, e.g. ``deterministic=True`` to switch off
        dropout and normalize with batch-norm's running averages.

    Returns
    -------
    expression or list of expressions
    """
    result, unused, accepted = _propagate(layer_or_layers, inputs, kwargs)
    if unused:
        hints = "".join(
            f" (perhaps you meant {close[0]} for {name})"
            for name in sorted(unused)
            if (close := difflib.get_close_matches(name, sorted(accepted), n=1, cutoff=0.6))
        )
        warnings.warn(
            f"get_output: no layer in this network accepts the keyword arguments "
            f"{sorted(unused)}.{hints}",
            UserWarning,
            stacklevel=2,
        )
    return result


def _propagate(layer_or_layers, inputs, kwargs):
    """`get_output`'s work: (the output expression(s), the names in `kwargs` no layer accepts,
    the names some layer accepts).

    A layer that runs a graph of its own inside (a recurrent layer's input-to-hidden network)
    calls this with the keyword arguments its own `get_output` call already checked."""
    layers, single = _as_list(layer_or_layers)
    given = dict(inputs) if isinstance(inputs, dict) else {}
    all_layers = get_all_layers(layers, treat_as_input=given.keys())
    _check_keys("get_output", "inputs", given, all_layers)
    outputs = OrderedDict(
        (layer, layer.input_var)
        for layer in all_layers
        if isinstance(layer, InputLayer) and layer not in given
    )
    for layer, expr in given.items():
        # the key None stands for the input of layers built from a shape tuple (Lasagne)
        outputs[layer] = pt.as_tensor_variable(expr)
    if inputs is not None and not isinstance(inputs, dict):
        free = [layer for layer in all_layers if isinstance(layer, InputLayer)]
        if len(free) != 1:
            raise ConfigError(
                f"get_output: a single input expression was given for a network with "
                f"{len(free)} input layers; pass a dict {{input_layer: expression}} instead."
            )
        outputs[free[0]] = pt.as_tensor_variable(inputs)
    accepted = {"deterministic"}
    for layer in all_layers:
        if layer in outputs:
            continue
        if not isinstance(layer, Layer):
            raise ConfigError(
                f"get_output: {layer!r} feeds the network but is not a dilnet Layer (it only has "
                "an output_shape); give its output expression in `inputs` as {layer: expression}."
            )
        if isinstance(layer, MergeLayer):
            parents = layer.input_layers
        else:
            parents = [layer.input_layer]
        missing = [p for p in parents if p not in outputs]
        if missing:
            raise ConfigError(
                f"get_output: layer {describe(layer)} was built from a shape tuple, not a layer; "
                "give its input expression in `inputs` as {layer: expression}."
            )
        args = [outputs[p] for p in parents]
        outputs[layer] = layer.get_output_for(
            args if isinstance(layer, MergeLayer) else args[0], **kwargs
        )
        accepted |= _accepted_kwargs(layer)
    result = [outputs[layer] for layer in layers]
    return (result[0] if single else result), set(kwargs) - accepted, accepted


def get_output_shape(layer_or_layers, input_shapes=None):
    """Output shape(s) of `layer_or_layers`, for the built-in input shapes or `input_shapes`
    (a shape tuple for the only input layer, or a dict {layer: shape}; the key None gives the
    input shape of layers built from a shape tuple)."""
    layers, single = _as_list(layer_or_layers)
    if input_shapes is None or (isinstance(input_shapes, dict) and not input_shapes):
        result = [layer.output_shape for layer in layers]
        return result[0] if single else result
    given = dict(input_shapes) if isinstance(input_shapes, dict) else {}
    all_layers = get_all_layers(layers, treat_as_input=given.keys())
    _check_keys("get_output_shape", "input_shapes", given, all_layers)
    shapes = {layer: layer.shape for layer in all_layers if isinstance(layer, InputLayer)}
    shapes.update(given)
    if not isinstance(input_shapes, dict):
        free = [layer for layer in all_layers if isinstance(layer, InputLayer)]
        if len(free) != 1:
            raise ConfigError(
                f"get_output_shape: one input shape was given for a network with {len(free)} "
                "input layers; pass a dict {input_layer: shape} instead."
            )
        shapes[free[0]] = tuple(input_shapes)
    for layer in all_layers:
        if layer in shapes:
            continue
        parents = layer.input_layers if isinstance(layer, MergeLayer) else [layer.input_layer]
        if any(p not in shapes for p in parents):
            raise ConfigError(
                f"get_output_shape: the input shape of {describe(layer)} is unknown (it was built "
                "from a shape tuple or a stand-in); give it in `input_shapes` as {layer: shape} "
                "or {None: shape}."
            )
        if isinstance(layer, MergeLayer):
            shapes[layer] = layer.get_output_shape_for([shapes[p] for p in parents])
        else:
            shapes[layer] = layer.get_output_shape_for(shapes[parents[0]])
    result = [shapes[layer] for layer in layers]
    return result[0] if single else result


def _layer_params(layer, unwrap_shared=True, **tags):
    """[(layer, param)] over all layers, each parameter once, in `get_all_params` order."""
    pairs, seen = [], set()
    for owner in get_all_layers(layer):
        for p in owner.get_params(unwrap_shared=unwrap_shared, **tags):
            if p not in seen:
                seen.add(p)
                pairs.append((owner, p))
    return pairs


def get_all_params(layer, unwrap_shared=True, **tags):
    """Parameters of every layer in the graph, each once, inputs-first; filter by tags, e.g.
    ``get_all_params(net, trainable=True)`` or ``regularizable=True``."""
    return [p for _, p in _layer_params(layer, unwrap_shared, **tags)]


def count_params(layer, **tags):
    """Total number of parameter elements (filtered by tags)."""
    return int(sum(np.prod(p.get_value(borrow=True).shape) for p in get_all_params(layer, **tags)))


def get_all_param_values(layer, **tags):
    """Copies of the parameter values, in `get_all_params` order."""
    return [p.get_value() for p in get_all_params(layer, **tags)]


def set_all_param_values(layer, values, **tags):
    """Set every parameter from `values` (in `get_all_params` order).

    Everything is checked first — the number of arrays, each shape, each dtype cast — and
    nothing changes unless all fit.

    Raises
    ------
    ShapeError
        Naming every mismatching parameter with its layer, the expected and the received shape.
    """
    pairs = _layer_params(layer, **tags)
    values = list(values)
    if len(values) != len(pairs):
        raise ShapeError(
            invalid(
                "set_all_param_values",
                "len(values)",
                f"{len(pairs)} arrays, one per parameter "
                f"({', '.join(p.name or '?' for _, p in pairs)})",
                len(values),
            )
        )
    problems, converted = [], []
    for i, ((owner, p), v) in enumerate(zip(pairs, values, strict=True)):
        v = np.asarray(v)
        want = p.get_value(borrow=True)
        if v.shape != want.shape:
            problems.append(
                f"values[{i}] for {p.name or 'parameter'} of layer {describe(owner)}: expected "
                f"shape {want.shape}, received {v.shape}"
            )
        elif not np.can_cast(v.dtype, want.dtype, casting="same_kind"):
            problems.append(
                f"values[{i}] for {p.name or 'parameter'} of layer {describe(owner)}: expected "
                f"dtype {want.dtype} (or one that casts to it), received {v.dtype}"
            )
        else:
            converted.append(v.astype(want.dtype, copy=True))
    if problems:
        raise ShapeError("set_all_param_values: nothing was changed.\n  " + "\n  ".join(problems))
    for (_, p), v in zip(pairs, converted, strict=True):
        p.set_value(v)
