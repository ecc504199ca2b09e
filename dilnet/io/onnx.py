"""Export a network to ONNX: one graph that onnxruntime, TensorRT, OpenVINO or Triton can run.

`to_onnx` walks the layer graph (not the spec), so every layer kind is mapped explicitly:

- `ConvLayer` (and its aliases): ``Conv`` (``pads``, ``dilations``, ``strides``, ``group``);
  'same' with a stride on an axis of unknown length: a ``Pad`` whose amounts are computed in
  the graph from the input's length (onnxruntime refuses ``auto_pad`` with dilation);
- `TransposedConvLayer`: ``ConvTranspose`` (``output_padding`` where 'same' or
  ``output_size`` needs it);
- `BatchNormLayer`: folded into the convolution before it where that convolution feeds nothing
  else and applies no nonlinearity; otherwise ``Mul`` and ``Add`` with the running averages;
- `NonlinearityLayer` and the convolutions' nonlinearities: ``Relu``, ``LeakyRelu``, ``Elu``,
  ``Selu``, ``Sigmoid``, ``Tanh``, ``Softplus``, ``Softmax`` (``axis=1``), scaled tanh;
- `ParametricRectifierLayer`: ``PRelu``; `BiasLayer`, `ScaleLayer`: ``Add``, ``Mul``;
- `PoolLayer`: ``MaxPool`` / ``AveragePool``; a last partial window (``ignore_border=False``)
  by padding the input's end in the graph;
- `UpscaleLayer`: ``Resize`` (nearest: 'repeat'); 'dilate' by ``Pad`` and ``Reshape``;
- `ElemwiseSumLayer`: ``Add`` (``Mul`` by its coefficients); `ConcatLayer`: ``Concat``;
- `DropoutLayer`, `GaussianNoiseLayer`: nothing (the deterministic network).

Any other layer, a subclass that computes differently (it overrides ``get_output_for``), a
nonlinearity without an ONNX equivalent or a parameter given as an expression is an
`ExportError` naming the block path and the layer: never a silently different graph.

The batch axis and every spatial axis the network leaves unknown (``None``) stay dynamic, so
one exported file runs on any input size the network accepts. The opset is `OPSET`; the graph
is checked with ``onnx.checker.check_model(full_check=True)`` before anything is written.
Importing this module needs no ``onnx``; calling it does (``pip install 'dilnet[onnx]'``).
"""

import json
import os
from numbers import Real
from pathlib import Path

import numpy as np

from .. import nonlinearities as nl
from .._version import __version__
from ..errors import BackendError, ConfigError, ExportError, invalid
from ..layers import (
    BatchNormLayer,
    BiasLayer,
    ConcatLayer,
    ConvLayer,
    DropoutLayer,
    ElemwiseSumLayer,
    GaussianNoiseLayer,
    InputLayer,
    Layer,
    NonlinearityLayer,
    ParametricRectifierLayer,
    PoolLayer,
    ScaleLayer,
    TransposedConvLayer,
    UpscaleLayer,
    get_all_layers,
)
from ..layers.base import describe
from ..network import Network
from ..shapes import dilated_extent, resolve_padding
from .weights import atomic_write

__all__ = ["OPSET", "OnnxRuntimeModel", "export", "to_onnx"]

#: the ONNX opset of exported graphs (onnxruntime >= 1.12, TensorRT 8.5+, OpenVINO 2022.3+)
OPSET = 17

#: the exported model's ``producer_name``
PRODUCER = "dilnet"


def _onnx():
    try:
        import onnx
    except ImportError as err:
        raise BackendError(
            "ONNX export needs the `onnx` package, which is not installed; install dilnet's "
            "'onnx' extra: pip install 'dilnet[onnx]' (onnx and onnxruntime)."
        ) from err
    return onnx


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendError(
            "running a network in onnxruntime needs the `onnxruntime` package, which is not "
            "installed; install dilnet's 'onnx' extra: pip install 'dilnet[onnx]'."
        ) from err
    return onnxruntime


class _Graph:
    """The nodes, constants and names of the graph being written."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.helper = onnx.helper
        self.dtype = np.dtype(dtype)
        self.nodes, self.initializers, self.used = [], [], set()
        self._ints = {}

    def name(self, base):
        base = base.replace(" ", "_")
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def constant(self, value, base, dtype=None):
        """An initializer holding `value` (in the graph's float dtype unless `dtype`)."""
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, values):
        """A 1-d int64 constant, shared by every node that needs the same values."""
        key = tuple(int(v) for v in values)
        if key not in self._ints:
            self._ints[key] = self.constant(np.array(key, dtype=np.int64), "ints", np.int64)
        return self._ints[key]

    def add(self, op, inputs, base, **attributes):
        """One node; returns the name of its output."""
        out = self.name(f"{base}/{op}")
        self.nodes.append(self.helper.make_node(op, list(inputs), [out], name=out, **attributes))
        return out

    def dim(self, x, axis, base):
        """The length of `x` along `axis`, a 1-d int64 tensor of one element."""
        return self.add("Shape", [x], base, start=axis, end=axis + 1)


class _Exporter:
    def __init__(self, onnx, output_layer, paths, dtype):
        self.g = _Graph(onnx, dtype)
        self.output_layer = output_layer
        self.paths = paths  # layer -> (block path, block type name), for a Network
        self.layers = get_all_layers(output_layer)
        self.consumers = {layer: 0 for layer in self.layers}
        for layer in self.layers:
            for parent in _parents(layer):
                self.consumers[parent] = self.consumers.get(parent, 0) + 1
        self.consumers[output_layer] += 1  # the graph's output
        self.folded = self._foldable()

    # ------------------------------------------------------------------------------ naming

    def where(self, layer):
        found = self.paths.get(layer)
        if found is not None:
            path, block = found
            return f"{path} ({block}): layer {describe(layer)}"
        return f"layer {describe(layer)}"

    def fail(self, layer, reason):
        return ExportError(f"{self.where(layer)}: cannot be exported to ONNX: {reason}")

    def value(self, layer, name):
        """A parameter's value as a float array of the graph's dtype (None if absent)."""
        param = getattr(layer, name)
        if param is None:
            return None
        if hasattr(param, "get_value"):
            value = param.get_value(borrow=True)
        elif hasattr(param, "data"):  # a constant
            value = param.data
        else:
            raise self.fail(
                layer,
                f"its parameter `{name}` is an expression ({param}), not a shared variable or a "
                "constant; give it a value to export it",
            )
        return np.array(value, dtype=self.g.dtype)

    # ------------------------------------------------------------------------------ the walk

    def run(self):
        g = self.g
        inputs = [layer for layer in self.layers if not _parents(layer)]
        for layer in inputs:
            if not isinstance(layer, InputLayer):
                raise self.fail(layer, "the graph starts at a layer that is not an InputLayer")
        if len(inputs) != 1:
            names = ", ".join(describe(layer) for layer in inputs)
            raise ExportError(
                f"to_onnx: expected a network with one InputLayer; received {len(inputs)} "
                f"({names})."
            )
        input_layer = inputs[0]
        out = {input_layer: g.name("input")}
        for layer in self.layers:
            if layer is input_layer:
                continue
            handler = _handler(layer)
            if handler is None:
                raise self.fail(
                    layer,
                    f"{type(layer).__name__} has no ONNX mapping (exportable: "
                    f"{', '.join(sorted(_EXPORTABLE))})",
                )
            out[layer] = handler(self, layer, [out[p] for p in _parents(layer)])
        # the graph's output is named `output`: the last node's, or an Identity of the result
        # (a network that passes its input through, or ends in a folded batch norm)
        result = out[self.output_layer]
        if not g.nodes or g.nodes[-1].output[0] != result:
            g.add("Identity", [result], "output")
        g.nodes[-1].output[0] = "output"
        return input_layer, out[input_layer]

    # ------------------------------------------------------------------------------ folding

    def _foldable(self):
        """{conv layer: its batch-norm layer} for the batch norms folded into a convolution."""
        folded = {}
        for layer in self.layers:
            if type(layer).get_output_for is not BatchNormLayer.get_output_for:
                continue
            conv = layer.input_layer
            rank = len(layer.input_shape)
            if (
                isinstance(conv, ConvLayer)
                and _handler(conv) is _conv
                and self.consumers.get(conv) == 1
                and conv.nonlinearity is nl.identity
                and not conv.untie_biases
                and layer.axes == (0, *range(2, rank))
            ):
                folded[conv] = layer
        return folded

    def bn_affine(self, layer):
        """``(scale, shift)`` per channel of a batch-norm layer's inference form, in float64."""
        gamma, beta = _param64(self, layer, "gamma"), _param64(self, layer, "beta")
        mean, inv_std = _param64(self, layer, "mean"), _param64(self, layer, "inv_std")
        scale = inv_std if gamma is None else gamma * inv_std
        shift = -mean * scale if beta is None else beta - mean * scale
        return scale, shift


def _parents(layer):
    if hasattr(layer, "input_layers"):
        return list(layer.input_layers)
    parent = getattr(layer, "input_layer", None)
    return [] if parent is None else [parent]


def _param64(exporter, layer, name):
    value = exporter.value(layer, name)
    return None if value is None else value.astype(np.float64)


def _broadcast_shape(layer, axes):
    """The shape a parameter shared over `axes` broadcasts to: 1 on those axes."""
    return tuple(1 if a in axes else n for a, n in enumerate(layer.input_shape))


# ---------------------------------------------------------------------------------- activations


def _activation(ex, layer, x, fn):
    g, base = ex.g, layer.name or type(layer).__name__
    if fn is nl.identity or fn is nl.linear:
        return x
    simple = {nl.rectify: "Relu", nl.sigmoid: "Sigmoid", nl.tanh: "Tanh",
              nl.softplus: "Softplus"}  # fmt: skip
    if fn in simple:
        return g.add(simple[fn], [x], base)
    if fn is nl.elu:
        return g.add("Elu", [x], base, alpha=1.0)
    if fn is nl.softmax:
        return g.add("Softmax", [x], base, axis=1)

    def number(value, what):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ex.fail(layer, f"the nonlinearity's {what} is {value!r}, not a number")
        return float(value)

    if isinstance(fn, nl.LeakyRectify):
        return g.add("LeakyRelu", [x], base, alpha=number(fn.leakiness, "leakiness"))
    if isinstance(fn, nl.SELU):
        return g.add("Selu", [x], base, alpha=number(fn.scale_neg, "scale_neg"),
                     gamma=number(fn.scale, "scale"))  # fmt: skip
    if isinstance(fn, nl.ScaledTanH):
        scale_in = g.constant(number(fn.scale_in, "scale_in"), f"{base}.scale_in")
        scale_out = g.constant(number(fn.scale_out, "scale_out"), f"{base}.scale_out")
        inner = g.add("Tanh", [g.add("Mul", [x, scale_in], base)], base)
        return g.add("Mul", [inner, scale_out], base)
    raise ex.fail(
        layer,
        f"the nonlinearity {getattr(fn, '__name__', fn)!r} has no ONNX mapping (exportable: "
        "dilnet.nonlinearities' rectify, leaky/very_leaky_rectify and LeakyRectify, elu, selu "
        "and SELU, sigmoid, tanh, ScaledTanH, softplus, softmax, linear/identity)",
    )


# ---------------------------------------------------------------------------------- padding


class _Length:
    """An int64 tensor of one element (a length computed in the graph) with Python's
    arithmetic, so that one function computes paddings from a known length (an int) or from
    the input's length at run time. ``//`` is ONNX's ``Div``, which truncates: equal to
    Python's floor division for the non-negative operands it is used with here (a negative
    quotient is clipped to 0 by `_clip0` right after, where truncating gives the same)."""

    def __init__(self, g, name, base):
        self.g, self.name, self.base = g, name, base

    def _op(self, op, other):
        other = other.name if isinstance(other, _Length) else self.g.ints([other])
        return _Length(self.g, self.g.add(op, [self.name, other], self.base), self.base)

    def __add__(self, other):
        return self._op("Add", other)

    def __sub__(self, other):
        return self._op("Sub", other)

    def __mul__(self, other):
        return self._op("Mul", other)

    def __floordiv__(self, other):
        return self._op("Div", other)

    def clip0(self):
        return self._op("Max", 0)


def _clip0(value):
    return value.clip0() if isinstance(value, _Length) else max(0, value)


def _same_pads(n, k, s, d):
    """'same' ``(before, after)`` for stride `s` (`dilnet.shapes.same_padding`)."""
    out = (n + (s - 1)) // s
    total = _clip0((out - 1) * s - n + dilated_extent(k, d))
    before = total // 2
    return before, total - before


def _ceil_pool_pads(n, k, s):
    """The end padding that makes the last partial window of Theano's ``ignore_border=False``
    rule whole (`dilnet.shapes.pool_output_length`)."""
    if s >= k:
        out = (n - 1) // s + 1
    else:
        out = _clip0((n + (s - 1 - k)) // s) + 1
    return 0, _clip0((out - 1) * s - n + k)


def _conv_pads(n, k, p, s, d):
    """A convolution's ``(before, after)`` (`dilnet.shapes.resolve_padding`)."""
    pads = resolve_padding(None if isinstance(n, _Length) else n, k, p, s, d)
    return _same_pads(n, k, s, d) if pads is None else pads


def _pad_amounts(ex, layer, x, rule, per_axis):
    """The ``pads`` input of an ONNX ``Pad`` for `x`'s spatial axes: ``rule(n, *per_axis[i])``
    with ``n`` the axis's length, an int where the network knows it, else computed in the
    graph."""
    g, base = ex.g, layer.name or type(layer).__name__
    befores, afters = [g.ints([0, 0])], [g.ints([0, 0])]
    for i, (n, args) in enumerate(zip(layer.input_shape[2:], per_axis, strict=True)):
        if n is None:
            n = _Length(g, g.dim(x, 2 + i, base), base)
        for amounts, amount in zip((befores, afters), rule(n, *args), strict=True):
            amounts.append(amount.name if isinstance(amount, _Length) else g.ints([amount]))
    return g.add("Concat", befores + afters, base, axis=0)


def _pad(ex, layer, x, pads, fill=None):
    inputs = [x, pads] + ([] if fill is None else [fill])
    return ex.g.add("Pad", inputs, layer.name or type(layer).__name__, mode="constant")


# ---------------------------------------------------------------------------------- layers


def _conv(ex, layer, inputs):
    g, base = ex.g, layer.name or "conv"
    (x,) = inputs
    weights = ex.value(layer, "W")
    if layer.flip_filters:  # a true convolution: a correlation with the flipped kernel
        weights = weights[(slice(None), slice(None), *(slice(None, None, -1),) * layer.n)]
    bias = None if layer.b is None or layer.untie_biases else ex.value(layer, "b")
    bn = ex.folded.get(layer)
    if bn is not None:
        scale, shift = ex.bn_affine(bn)
        weights = weights.astype(np.float64) * scale.reshape(-1, *(1,) * (weights.ndim - 1))
        bias = shift if bias is None else bias.astype(np.float64) * scale + shift
    attributes = {
        "kernel_shape": list(layer.filter_size),
        "strides": list(layer.stride),
        "dilations": list(layer.dilation),
        "group": layer.num_groups,
    }
    per_axis = list(zip(layer.input_shape[2:], layer.filter_size, layer.pads, layer.stride,
                        layer.dilation, strict=True))  # fmt: skip
    pads = [resolve_padding(n, k, p, s, d) for n, k, p, s, d in per_axis]
    if None in pads:  # 'same' with a stride on an axis of unknown length: pad in the graph
        x = _pad(ex, layer, x, _pad_amounts(ex, layer, x, _conv_pads, [a[1:] for a in per_axis]))
        pads = [(0, 0)] * layer.n
    attributes["pads"] = [p[0] for p in pads] + [p[1] for p in pads]
    names = [x, g.constant(weights, f"{base}.W")]
    if bias is not None:
        names.append(g.constant(bias, f"{base}.b"))
    out = g.add("Conv", names, base, **attributes)
    return _finish(ex, layer, out)


def _finish(ex, layer, out):
    """Untied biases and the nonlinearity of a (transposed) convolution."""
    if layer.b is not None and layer.untie_biases:
        b = ex.value(layer, "b")
        out = ex.g.add("Add", [out, ex.g.constant(b[None], f"{layer.name or 'conv'}.b")],
                       layer.name or "conv")  # fmt: skip
    return _activation(ex, layer, out, layer.nonlinearity)


def _transposed_conv(ex, layer, inputs):
    g, base = ex.g, layer.name or "transposed_conv"
    (x,) = inputs
    weights = ex.value(layer, "W")
    if not layer.flip_filters:  # transposes a true convolution: flip to a correlation's
        weights = weights[(slice(None), slice(None), *(slice(None, None, -1),) * layer.n)]
    pads, extra = [], []
    for axis, (n, k, p, s, d) in enumerate(zip(layer.input_shape[2:], layer.filter_size,
                                               layer.pads, layer.stride, layer.dilation,
                                               strict=True)):  # fmt: skip
        extent = dilated_extent(k, d)
        wanted = None if layer.output_size is None else layer.output_size[axis]
        if wanted is not None and n is None:
            raise ex.fail(layer, "output_size is fixed but the input's length along spatial "
                          f"axis {axis} is unknown")  # fmt: skip
        if p == "same":  # the forward 'same' padding of an output of n * s (or output_size)
            total = max(0, extent - s) if wanted is None else max(0, (n - 1) * s + extent - wanted)
            pads.append((total // 2, total - total // 2))
        else:
            pads.append(resolve_padding(None, k, p, s, d))
        natural = extent - sum(pads[-1])  # the output is (n - 1) * s + natural long ...
        if wanted is None:  # ... short of n * s for 'same' where the kernel spans < s
            extra.append(s - natural if p == "same" and natural < s else 0)
        else:
            extra.append(wanted - (n - 1) * s - natural)
    if any(
        e < 0 or e >= max(s, d) for e, s, d in zip(extra, layer.stride, layer.dilation, strict=True)
    ):
        raise ex.fail(layer, f"its output_size {layer.output_size} needs an output_padding "
                      f"of {tuple(extra)}, outside ONNX's range [0, max(stride, dilation))")  # fmt: skip
    names = [x, g.constant(weights, f"{base}.W")]
    if layer.b is not None and not layer.untie_biases:
        names.append(g.constant(ex.value(layer, "b"), f"{base}.b"))
    out = g.add(
        "ConvTranspose", names, base, kernel_shape=list(layer.filter_size),
        strides=list(layer.stride), dilations=list(layer.dilation), group=layer.num_groups,
        pads=[p[0] for p in pads] + [p[1] for p in pads], output_padding=extra,
    )  # fmt: skip
    return _finish(ex, layer, out)


def _batch_norm(ex, layer, inputs):
    (x,) = inputs
    if layer.input_layer in ex.folded:
        return x  # in the convolution's weights
    g, base = ex.g, layer.name or "bn"
    scale, shift = ex.bn_affine(layer)
    shape = _broadcast_shape(layer, layer.axes)
    out = g.add("Mul", [x, g.constant(scale.reshape(shape), f"{base}.scale")], base)
    return g.add("Add", [out, g.constant(shift.reshape(shape), f"{base}.shift")], base)


def _nonlinearity(ex, layer, inputs):
    return _activation(ex, layer, inputs[0], layer.nonlinearity)


def _prelu(ex, layer, inputs):
    base = layer.name or "prelu"
    alpha = ex.value(layer, "alpha").reshape(_broadcast_shape(layer, layer.shared_axes))
    return ex.g.add("PRelu", [inputs[0], ex.g.constant(alpha, f"{base}.alpha")], base)


def _bias(ex, layer, inputs):
    if layer.b is None:
        return inputs[0]
    b = ex.value(layer, "b").reshape(_broadcast_shape(layer, layer.shared_axes))
    return ex.g.add("Add", [inputs[0], ex.g.constant(b, f"{layer.name or 'bias'}.b")],
                    layer.name or "bias")  # fmt: skip


def _scale(ex, layer, inputs):
    scales = ex.value(layer, "scales").reshape(_broadcast_shape(layer, layer.shared_axes))
    base = layer.name or "scale"
    return ex.g.add("Mul", [inputs[0], ex.g.constant(scales, f"{base}.scales")], base)


def _identity(ex, layer, inputs):
    return inputs[0]


def _pool(ex, layer, inputs):
    g, base = ex.g, layer.name or "pool"
    (x,) = inputs
    attributes = {"kernel_shape": list(layer.pool_size), "strides": list(layer.stride)}
    op = "MaxPool" if layer.mode == "max" else "AveragePool"
    if layer.ignore_border:
        attributes["pads"] = list(layer.pad) * 2
        if op == "AveragePool":
            attributes["count_include_pad"] = int(layer.mode == "average_inc_pad")
        return g.add(op, [x], base, **attributes)
    # a last partial window: pad the end so that it is whole (pad is 0 here, as the layer
    # requires); max pads with -inf, the averages divide by the count of input elements
    windows = list(zip(layer.pool_size, layer.stride, strict=True))
    pads = _pad_amounts(ex, layer, x, _ceil_pool_pads, windows)
    if op == "MaxPool":
        padded = _pad(ex, layer, x, pads, g.constant(-np.inf, f"{base}.fill"))
        return g.add("MaxPool", [padded], base, **attributes)
    sums = g.add("AveragePool", [_pad(ex, layer, x, pads)], base, **attributes)
    shape = g.add("Concat", [g.ints([1, 1]), g.add("Shape", [x], base, start=2)], base, axis=0)
    one = g.onnx.numpy_helper.from_array(np.ones(1, g.dtype))
    ones = g.add("ConstantOfShape", [shape], base, value=one)
    counts = g.add("AveragePool", [_pad(ex, layer, ones, pads)], base, **attributes)
    return g.add("Div", [sums, counts], base)


def _upscale(ex, layer, inputs):
    g, base = ex.g, layer.name or "upscale"
    (x,) = inputs
    if layer.mode == "repeat":
        scales = g.constant([1.0, 1.0, *map(float, layer.scale_factor)], f"{base}.scales",
                            np.float32)  # fmt: skip
        return g.add("Resize", [x, "", scales], base, mode="nearest",
                     coordinate_transformation_mode="asymmetric", nearest_mode="floor")  # fmt: skip
    for axis, f in enumerate(layer.scale_factor, start=2):  # 'dilate': zeros after each element
        if f == 1:
            continue
        rank = len(layer.input_shape)
        grown = g.add("Unsqueeze", [x, g.ints([axis + 1])], base)
        pads = [0] * (2 * (rank + 1))
        pads[rank + 1 + axis + 1] = f - 1
        grown = g.add("Pad", [grown, g.ints(pads)], base, mode="constant")
        length = g.add("Mul", [g.dim(x, axis, base), g.ints([f])], base)
        parts = [p for p in (g.add("Shape", [x], base, end=axis) if axis else None, length,
                             g.add("Shape", [x], base, start=axis + 1)
                             if axis + 1 < rank else None) if p is not None]  # fmt: skip
        shape = g.add("Concat", parts, base, axis=0)
        x = g.add("Reshape", [grown, shape], base)
    return x


def _elemwise_sum(ex, layer, inputs):
    g, base = ex.g, layer.name or "sum"
    if layer.cropping is not None:
        raise ex.fail(layer, f"cropping={layer.cropping!r} (only cropping=None is exported)")
    out = None
    for i, (c, x) in enumerate(zip(layer.coeffs, inputs, strict=True)):
        if c != 1:
            if isinstance(c, bool) or not isinstance(c, Real):
                raise ex.fail(layer, f"its coefficient {c!r} is not a number")
            x = g.add("Mul", [x, g.constant(float(c), f"{base}.coeff{i}")], base)
        out = x if out is None else g.add("Add", [out, x], base)
    return out


def _concat(ex, layer, inputs):
    if layer.cropping is not None:
        raise ex.fail(layer, f"cropping={layer.cropping!r} (only cropping=None is exported)")
    return ex.g.add("Concat", inputs, layer.name or "concat", axis=layer.axis)


#: the class defining ``get_output_for`` -> its export; a subclass that overrides it (computes
#: something else) is not exported
_HANDLERS = {
    ConvLayer: _conv,
    TransposedConvLayer: _transposed_conv,
    BatchNormLayer: _batch_norm,
    NonlinearityLayer: _nonlinearity,
    ParametricRectifierLayer: _prelu,
    BiasLayer: _bias,
    ScaleLayer: _scale,
    DropoutLayer: _identity,
    GaussianNoiseLayer: _identity,
    PoolLayer: _pool,
    UpscaleLayer: _upscale,
    ElemwiseSumLayer: _elemwise_sum,
    ConcatLayer: _concat,
}
_EXPORTABLE = [cls.__name__ for cls in _HANDLERS]


def _handler(layer):
    for cls, handler in _HANDLERS.items():
        if not isinstance(layer, cls):
            continue
        methods = ("get_output_for", "get_output_shape_for", "convolve")
        if all(getattr(type(layer), m, None) is getattr(cls, m, None) for m in methods):
            return handler
    return None


# ---------------------------------------------------------------------------------- public


def _dims(shape, prefix):
    return [n if n is not None else ("batch" if a == 0 else f"{prefix}_{a - 2}")
            for a, n in enumerate(shape)]  # fmt: skip


def to_onnx(network, *, metadata=None):
    """The ONNX model of a network, checked (``onnx.checker``, full check).

    Parameters
    ----------
    network : Network or Layer
        A compiled spec (``model.network``; errors then name block paths) or the output layer
        of a `dilnet.layers` graph with one `InputLayer`.
    metadata : dict, optional
        JSON-able values stored as ``metadata_props`` entries ``dilnet.<key>`` (JSON text),
        e.g. ``{"input_contract": contract.to_dict()}``.

    Returns
    -------
    onnx.ModelProto
        One input ``input`` of shape ``(batch, channels, *spatial)`` and one output
        ``output``; axes the network leaves unknown are named dimensions (``batch``,
        ``input_0``...). The parameters are those of the network at the time of the call.

    Raises
    ------
    ExportError
        A layer, nonlinearity or parameter with no ONNX mapping (the message names its block
        path and layer).
    BackendError
        ``onnx`` is not installed.
    """
    onnx = _onnx()
    paths = {}
    if isinstance(network, Network):
        paths = {info.layer: (info.path, type(info.block).__name__) for info in network.layers}
        spec, output_layer = network.spec, network.output_layer
    elif isinstance(network, Layer):
        spec, output_layer = None, network
    else:
        raise ConfigError(invalid("to_onnx", "network", "a Network or a Layer", network))
    if metadata is not None and not isinstance(metadata, dict):
        raise ConfigError(invalid("to_onnx", "metadata", "a dict or None", metadata))
    inputs = [layer for layer in get_all_layers(output_layer) if isinstance(layer, InputLayer)]
    dtype = inputs[0].input_var.dtype if inputs else "float32"
    exporter = _Exporter(onnx, output_layer, paths, dtype)
    input_layer, input_name = exporter.run()
    g, helper = exporter.g, onnx.helper
    elem = helper.np_dtype_to_tensor_dtype(g.dtype)
    output_info = helper.make_tensor_value_info(
        "output", elem, _dims(output_layer.output_shape, "output")
    )
    input_info = helper.make_tensor_value_info(input_name, elem, _dims(input_layer.shape, "input"))
    graph = helper.make_graph(g.nodes, "dilnet", [input_info], [output_info], g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER,
        producer_version=__version__,
    )  # fmt: skip
    props = {"dilnet.version": __version__}
    if spec is not None:
        from ..blocks.config import to_config

        props["dilnet.spec"] = json.dumps(to_config(spec), sort_keys=True)
    for key, value in (metadata or {}).items():
        try:
            props[f"dilnet.{key}"] = json.dumps(value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                invalid("to_onnx", f"metadata[{key!r}]", "a JSON-able value", value)
            ) from err
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model


def export(network, path, *, metadata=None) -> Path:
    """Write `to_onnx` of `network` to `path` (``*.onnx``) atomically; returns the path.

    The file is written only after the whole graph is built and checked: an `ExportError` or
    a failed check leaves `path` as it was.
    """
    path = Path(os.fspath(path))
    if path.suffix.lower() != ".onnx":
        raise ConfigError(invalid("export", "path", "a file name ending in .onnx", str(path)))
    data = to_onnx(network, metadata=metadata).SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return path


class OnnxRuntimeModel:
    """A model's network exported (`to_onnx`) and run by onnxruntime, in the shape of a model:
    `dilnet.inference.predict_volume` takes it as it takes a `Model`, with the same tiles,
    halo and intensity scaling (the model's `input_contract`).

    Parameters
    ----------
    model : Model
        Anything with ``network`` (a `Network`) and optionally ``input_contract``; its current
        weights are exported.
    providers : sequence of str
        onnxruntime's execution providers, in order of preference.
    threads : int, optional
        onnxruntime's intra-op threads (default: its own choice, one per core).

    Attributes
    ----------
    network, input_contract
        The model's.
    session : onnxruntime.InferenceSession
    """

    #: onnxruntime runs any input shape without compiling again
    compiles_per_shape = False

    def __init__(self, model, *, providers=("CPUExecutionProvider",), threads=None):
        network = getattr(model, "network", None)
        if not isinstance(network, Network):
            raise ConfigError(invalid("OnnxRuntimeModel", "model", "a model with `network` "
                                      "(a dilnet.network.Network)", model))  # fmt: skip
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):  # fmt: skip
            raise ConfigError(invalid("OnnxRuntimeModel", "threads", "a positive int or None",
                                      threads))  # fmt: skip
        ort = _onnxruntime()
        self.network = network
        self.input_contract = getattr(model, "input_contract", None)
        self.dtype = np.dtype(network.input_layer.input_var.dtype)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        data = to_onnx(network).SerializeToString()
        self.session = ort.InferenceSession(data, options, providers=list(providers))

    def predict_on_batch(self, x):
        """The network's output for one batch ``(N, C, *spatial)``, as `Model.predict_on_batch`."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        return self.session.run(None, {"input": x})[0]
