"""`Network`: a compiled spec -- the layer graph plus what the compiler knows of it (block paths,
padding and receptive field per layer), with its shape and memory queries.

Made by `dilnet.compiler.build` (which also exports these names).
"""

import math

import attrs

from .blocks.base import Block
from .errors import ShapeError
from .layers import (
    ConcatLayer,
    ConvLayer,
    InputLayer,
    Layer,
    MergeLayer,
    count_params,
    get_all_layers,
    get_all_params,
    get_output,
    get_output_shape,
)

__all__ = ["BlockInfo", "LayerInfo", "Network"]


@attrs.frozen
class LayerInfo:
    """One compiled layer: the `path` of the block that made it, the block, the receptive
    field of its output (one `ReceptiveField` per spatial axis), and for convolutions and
    pooling the padding per axis as ``(before, after)`` pairs (None where unknown)."""

    path: str
    block: Block
    layer: Layer
    receptive_field: tuple
    padding: tuple | None = None


@attrs.frozen
class BlockInfo:
    """One block of the spec: its `path`, the layer holding its output, its layers, and the
    receptive field of its output."""

    path: str
    block: Block
    output_layer: Layer
    layers: tuple
    receptive_field: tuple


class Network:
    """A compiled spec: the layer graph plus what the compiler knows about it.

    Attributes
    ----------
    spec : Sequential
    input_layer, output_layer : Layer
    layers : list of LayerInfo
        Every layer in topological order (the input first).
    blocks : list of BlockInfo
        Every block, nested ones included, in the order they were compiled.
    """

    def __init__(self, spec, input_layer, output_layer, layers, blocks):
        self.spec = spec
        self.input_layer = input_layer
        self.output_layer = output_layer
        self.layers = layers
        self.blocks = blocks

    @property
    def rank(self) -> int:
        """Number of spatial axes."""
        return len(self.input_layer.shape) - 2

    @property
    def input_shape(self) -> tuple:
        return self.input_layer.shape

    @property
    def output_shape(self) -> tuple:
        return self.output_layer.output_shape

    @property
    def receptive_field(self) -> tuple:
        """`ReceptiveField` of one output voxel per spatial axis."""
        return self.layers[-1].receptive_field

    def get_params(self, **tags):
        """All parameters (shared variables), filtered by tags like ``trainable=True``."""
        return get_all_params(self.output_layer, **tags)

    def count_params(self, **tags) -> int:
        return count_params(self.output_layer, **tags)

    def get_output(self, input=None, **kwargs):
        """The output expression for the input variable (or `input`), ``deterministic=...``."""
        inputs = None if input is None else {self.input_layer: input}
        return get_output(self.output_layer, inputs, **kwargs)

    def output_shapes(self, input_size=None, batch_size=None) -> list:
        """Output shape of each entry of `layers` for spatial lengths `input_size` (default:
        the Input block's) and `batch_size`."""
        shape = self.input_shape
        if input_size is not None or batch_size is not None:
            spatial = shape[2:] if input_size is None else tuple(input_size)
            shape = (batch_size if batch_size is not None else shape[0], shape[1], *spatial)
        return get_output_shape([info.layer for info in self.layers], {self.input_layer: shape})

    def activation_bytes(self, input_size=None, batch_size=1, itemsize=None):
        """Bytes of all layer outputs for one forward pass (the input excluded), or None
        when a length is unknown. `itemsize` defaults to floatX's."""
        import pytensor

        if itemsize is None:
            itemsize = 4 if pytensor.config.floatX == "float32" else 8
        total = 0
        for info, shape in zip(self.layers, self.output_shapes(input_size, batch_size),
                               strict=True):  # fmt: skip
            if isinstance(info.layer, InputLayer):
                continue
            if any(s is None for s in shape):
                return None
            total += math.prod(shape) * itemsize
        return total

    def check_size(self, spatial) -> tuple:
        """Check that an input of spatial lengths `spatial` runs through every layer; return the
        output shape for it (batch ``None``).

        Raises `ShapeError` naming the block path when a kernel or pooling window does not fit
        at some layer, or when the inputs of a residual sum or a concatenation disagree at this
        size (a body that pools and upsamples back needs lengths divisible by its period).
        """
        spatial = tuple(spatial)
        expected = self.input_shape[2:]
        if len(spatial) != len(expected) or any(
            e is not None and e != n for e, n in zip(expected, spatial, strict=True)
        ):
            raise ShapeError(
                f"the input's spatial shape {spatial} does not fit the Input block's {expected}."
            )
        info_of = {info.layer: info for info in self.layers}
        shapes = {self.input_layer: (None, self.input_shape[1], *spatial)}
        # layer by layer, inputs first, so that the first layer that does not fit is named with
        # its block (a merge layer's own shape check would not know the block)
        for layer in get_all_layers([info.layer for info in self.layers]):
            if layer in shapes:
                continue
            info = info_of[layer]
            if isinstance(layer, MergeLayer):
                inputs = [shapes[i] for i in layer.input_layers]
                axis = 1 if isinstance(layer, ConcatLayer) else None
                keep = [tuple(n for a, n in enumerate(s) if a != axis and a != 0) for s in inputs]
                if len(set(keep)) > 1:
                    raise ShapeError(
                        f"{info.path} ({type(info.block).__name__}): the inputs of {layer.name} "
                        f"disagree for an input of spatial size {spatial}: shapes "
                        f"{[s[1:] for s in inputs]}. A path that pools and upsamples back needs "
                        "lengths divisible by its total pooling factor."
                    )
                shape = layer.get_output_shape_for(inputs)
            else:
                shape = layer.get_output_shape_for(shapes[layer.input_layer])
            shapes[layer] = shape
            if any(n is not None and n < 1 for n in shape[2:]):
                raise ShapeError(
                    f"{info.path} ({type(info.block).__name__}): layer {layer.name} leaves no "
                    f"voxels (output shape {shape}) for an input of spatial size {spatial}."
                )
        return shapes[self.output_layer]

    def peak_activation_bytes(self, input_size=None, batch_size=1, itemsize=None):
        """Bytes of the layer outputs alive at once during one forward pass, at its worst step,
        or None when a length is unknown.

        Inference frees each output once its last consumer has run (PyTensor's VM does), so
        at layer ``i`` the live outputs are the input, those still needed by a later layer
        (residual and parallel branches) and layer ``i``'s own. Add to that the largest
        convolution input once more: the kernels pad a copy of it.
        """
        import pytensor

        if itemsize is None:
            itemsize = 4 if pytensor.config.floatX == "float32" else 8
        shapes = self.output_shapes(input_size, batch_size)
        if any(s is None for shape in shapes for s in shape):
            return None
        layers = [info.layer for info in self.layers]
        index = {layer: i for i, layer in enumerate(layers)}
        sizes = [math.prod(shape) * itemsize for shape in shapes]
        last = list(range(len(layers)))
        for i, layer in enumerate(layers):
            if isinstance(layer, InputLayer):
                continue
            inputs = layer.input_layers if isinstance(layer, MergeLayer) else [layer.input_layer]
            for inp in inputs:
                last[index[inp]] = max(last[index[inp]], i)
        last[index[self.output_layer]] = len(layers)
        peak = max(sum(sizes[j] for j in range(i + 1) if last[j] >= i) for i in range(len(layers)))
        padded = max(
            (sizes[index[layer.input_layer]] for layer in layers if isinstance(layer, ConvLayer)),
            default=0,
        )
        return peak + padded

    def layer(self, name) -> Layer:
        """The layer named `name` (``'blocks[2].conv1'``)."""
        for info in self.layers:
            if info.layer.name == name:
                return info.layer
        raise KeyError(name)


# ---------------------------------------------------------------------------------------------
