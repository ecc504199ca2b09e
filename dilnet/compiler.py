"""Specs -> layer graph: `build` turns a `Sequential` of blocks into `dilnet.layers` layers.

Pure: no training and no I/O. What the compiler adds to the blocks:

- **Shapes at build time.** Every layer's output shape is known when the model is built
  (``None`` for lengths that depend on the input); lengths that a kernel or pool window
  cannot fit, channel mismatches in residual and parallel blocks, and a kernel given for the
  wrong number of axes are errors here, each naming the block's path in the model
  (``blocks[2].body[0].dilation``), what was expected and what was received.
- **'same' padding** per axis from kernel, dilation and stride (`dilnet.shapes`), even kernels
  and strides included; explicit padding is used as given.
- **Receptive fields** (size, jump, start per axis; `dilnet.geometry.ReceptiveField`) for every
  layer and block, from `dilnet.geometry`'s walk over the layer graph.
- **Names.** Each layer is named after the block that made it and its role
  (``blocks[2].conv1``), so parameters are ``blocks[2].conv1.W`` and so on.

Convolutions are cross-correlations (``flip_filters=False``, as in PyTorch and Keras) with
weights ``(out, in, *kernel)``.
"""

import pytensor

from . import init as initializers
from . import nonlinearities
from .blocks.base import Block, provide, to_blocks
from .blocks.basic import (
    Activation,
    BatchNorm,
    Classifier,
    Conv,
    DilatedConv,
    Dropout,
    Input,
    Pool,
    Upsample,
)
from .blocks.stacks import (
    CONTEXT_LARGE_WIDTHS,
    Concat,
    ContextModule,
    DilatedStack,
    Parallel,
    Residual,
    Sequential,
)
from .errors import ConfigError, DilnetError, ShapeError, SpecError, invalid
from .geometry import layer_padding, receptive_fields, walk
from .io.summary import format_summary
from .layers import (
    BatchNormLayer,
    ConcatLayer,
    ConvLayer,
    DropoutLayer,
    ElemwiseSumLayer,
    InputLayer,
    NonlinearityLayer,
    ParametricRectifierLayer,
    PoolLayer,
    UpscaleLayer,
    get_output_shape,
)
from .network import BlockInfo as BlockInfo
from .network import LayerInfo as LayerInfo
from .network import Network as Network
from .shapes import kernel_misfit
from .utils import is_int

__all__ = ["build"]

#: spatial lengths tried when a residual or parallel block is checked with unknown lengths:
#: multiples of every stride, pool size and upsampling factor up to 10, so that a body that
#: pools and upsamples back (lengths divisible by its period) passes; `Network.check_size`
#: checks the actual size later
PROBE_LENGTHS = (5040, 10080)

_NONLINEARITIES = {
    "relu": nonlinearities.rectify,
    "leaky_relu": nonlinearities.leaky_rectify,
    "elu": nonlinearities.elu,
    "selu": nonlinearities.selu,
    "sigmoid": nonlinearities.sigmoid,
    "tanh": nonlinearities.tanh,
    "softplus": nonlinearities.softplus,
    "softmax": nonlinearities.softmax,
}


def _initializer(name, channels_base=None):
    if name == "glorot_uniform":
        return initializers.GlorotUniform()
    if name == "glorot_normal":
        return initializers.GlorotNormal()
    if name == "he_uniform":
        return initializers.HeUniform(gain="relu")
    if name == "he_normal":
        return initializers.HeNormal(gain="relu")
    if name == "orthogonal":
        return initializers.Orthogonal()
    if name == "identity":
        if channels_base is None:
            return initializers.Identity("basic")
        return initializers.Identity("large", C=channels_base)
    raise SpecError(f"unknown initialiser {name!r}")  # the blocks' validators prevent this


class _Context:
    def __init__(self, rank, input_layer):
        self.rank = rank
        self.input_layer = input_layer
        self.made = []  # (path, block, layer) in creation order
        self.blocks = []  # (path, block, output layer, layers)

    def layer(self, cls, incoming, path, block, role, *args, **kwargs):
        """Make one layer named ``path.role``; layer errors get the block path in front."""
        name = f"{path}.{role}"
        try:
            layer = cls(incoming, *args, name=name, **kwargs)
            shape = layer.output_shape
        except DilnetError as err:
            raise type(err)(f"{path} ({type(block).__name__}): {err}") from err
        if any(s is not None and s < 1 for s in shape[2:]):
            raise ShapeError(
                f"{path} ({type(block).__name__}): layer {name} would output shape {shape}, "
                f"with no voxels along a spatial axis, for input shape {layer.input_shape}."
            )
        self.made.append((path, block, layer))
        return layer

    def spatial_probe_shapes(self, layers):
        """Spatial shapes of `layers` for the built-in input shape and, where lengths are
        unknown, for each of the probe lengths."""
        results = [(None, [layer.output_shape[2:] for layer in layers])]
        spatial = self.input_layer.shape[2:]
        if any(s is None for s in spatial):
            for probe in PROBE_LENGTHS:
                size = tuple(probe if s is None else s for s in spatial)
                shape = (1, self.input_layer.shape[1], *size)
                shapes = get_output_shape(layers, {self.input_layer: shape})
                results.append((size, [s[2:] for s in shapes]))
        return results


def _field_error(cls, where, name, expected, received):
    return cls(f"{where}: expected {expected}; received {name}={received!r}.")


def _per_axis(ctx, value, path, name):
    """An int or a per-axis tuple of ints -> a tuple of `rank` ints."""
    if is_int(value):
        return (int(value),) * ctx.rank
    if len(value) != ctx.rank:
        raise _field_error(
            SpecError,
            f"{path}.{name}",
            name,
            f"an int or {ctx.rank} ints (one per spatial axis of this {ctx.rank}D model)",
            value,
        )
    return tuple(value)


def _padding(ctx, value, path):
    if isinstance(value, str) or is_int(value):
        return value
    if len(value) != ctx.rank:
        raise _field_error(
            SpecError,
            f"{path}.padding",
            "padding",
            f"a mode, an int, or {ctx.rank} entries (one per spatial axis)",
            value,
        )
    return value


def _activation(ctx, incoming, path, block, name, role=None):
    if name == "linear":
        return incoming
    role = role or name
    if name == "prelu":
        return ctx.layer(ParametricRectifierLayer, incoming, path, block, role)
    return ctx.layer(NonlinearityLayer, incoming, path, block, role, _NONLINEARITIES[name])


def _conv(
    ctx, incoming, path, block, role, *, filters, kernel, stride=1, dilation=1, padding="same",
    bias=True, init="glorot_uniform", init_base=None, fields=None,
):  # fmt: skip
    """One convolution layer, with the fit and initialiser checked against the block's fields.

    `fields` maps 'kernel', 'dilation', 'stride', 'padding', 'init' to the field paths errors
    should name (default ``path.<field>``).
    """
    fields = {k: f"{path}.{k}" for k in ("kernel", "dilation", "stride", "padding", "init")} | (
        fields or {}
    )

    def axes(value, name):
        try:
            return _per_axis(ctx, value, path, name)
        except SpecError as err:
            raise SpecError(str(err).replace(f"{path}.{name}", fields[name], 1)) from None

    k, s, d = axes(kernel, "kernel"), axes(stride, "stride"), axes(dilation, "dilation")
    padding = _padding(ctx, padding, path)
    channels = incoming.output_shape[1]
    pads = (padding,) * ctx.rank if isinstance(padding, str) or is_int(padding) else padding
    misfit = kernel_misfit(incoming.output_shape[2:], k, s, pads, d)
    if misfit is not None:
        field = "dilation" if misfit.dilation > 1 else "kernel"
        raise ShapeError(
            f"{fields[field]}: a kernel of size {misfit.filter_size} with dilation "
            f"{misfit.dilation} spans {misfit.extent} voxels, more than the {misfit.length} "
            f"voxels (with padding={padding!r}) along spatial axis {misfit.axis} of its input "
            f"{incoming.output_shape}. Use padding='same', a smaller dilation or a larger input."
        )
    if init == "identity":
        if any(ki % 2 == 0 for ki in k):
            raise _field_error(SpecError, fields["init"], "init", "odd kernel sizes for "
                               f"init='identity' (kernel={kernel!r})", init)  # fmt: skip
        if init_base is None and channels != filters:
            raise ShapeError(
                f"{fields['init']}: init='identity' maps each input channel to itself, so it "
                f"needs as many filters as input channels; received {filters} filters for an "
                f"input with {channels} channels. Put a Conv(filters={filters}, kernel=1) "
                "before it, or use another init."
            )
    return ctx.layer(
        ConvLayer, incoming, path, block, role, filters, k, stride=s, pad=padding, dilation=d,
        W=_initializer(init, init_base), b=initializers.Constant(0.0) if bias else None,
        nonlinearity=None, flip_filters=False,
    )  # fmt: skip


def _conv_block(ctx, incoming, path, block, stride=1):
    bias = (not block.batch_norm) if block.bias is None else block.bias
    out = _conv(
        ctx, incoming, path, block, "conv", filters=block.filters, kernel=block.kernel,
        stride=stride, dilation=block.dilation, padding=block.padding, bias=bias,
        init=block.init,
    )  # fmt: skip
    if block.batch_norm:
        out = ctx.layer(BatchNormLayer, out, path, block, "bn")
    return _activation(ctx, out, path, block, block.activation)


def _build_conv(ctx, incoming, path, block):
    return _conv_block(ctx, incoming, path, block, stride=block.stride)


def _build_dilated_conv(ctx, incoming, path, block):
    return _conv_block(ctx, incoming, path, block)


def _build_batch_norm(ctx, incoming, path, block):
    return ctx.layer(
        BatchNormLayer, incoming, path, block, "bn", epsilon=block.epsilon, alpha=block.alpha
    )


def _build_activation(ctx, incoming, path, block):
    if block.name == "linear":
        return ctx.layer(NonlinearityLayer, incoming, path, block, "linear",
                         nonlinearities.linear)  # fmt: skip
    return _activation(ctx, incoming, path, block, block.name)


def _dropout(ctx, incoming, path, block, role, rate, spatial):
    axes = tuple(range(2, 2 + ctx.rank)) if spatial else ()
    return ctx.layer(DropoutLayer, incoming, path, block, role, p=rate, shared_axes=axes)


def _build_dropout(ctx, incoming, path, block):
    return _dropout(ctx, incoming, path, block, "dropout", block.rate, block.spatial)


def _build_pool(ctx, incoming, path, block):
    size = _per_axis(ctx, block.size, path, "size")
    stride = None if block.stride is None else _per_axis(ctx, block.stride, path, "stride")
    for axis, (length, k) in enumerate(zip(incoming.output_shape[2:], size, strict=True)):
        if length is not None and length < k and not block.ceil:
            raise ShapeError(
                f"{path}.size: a pooling window of {k} voxels does not fit the {length} voxels "
                f"along spatial axis {axis} of its input {incoming.output_shape}; use a smaller "
                "size or ceil=True."
            )
    mode = "max" if block.mode == "max" else "average_exc_pad"
    return ctx.layer(PoolLayer, incoming, path, block, "pool", size, stride=stride,
                     ignore_border=not block.ceil, mode=mode)  # fmt: skip


def _build_upsample(ctx, incoming, path, block):
    factor = _per_axis(ctx, block.factor, path, "factor")
    return ctx.layer(UpscaleLayer, incoming, path, block, "upsample", factor, mode="repeat")


def _build_classifier(ctx, incoming, path, block):
    out = _conv(ctx, incoming, path, block, "conv", filters=block.num_classes, kernel=1,
                padding="valid")  # fmt: skip
    return _activation(ctx, out, path, block, block.activation)


def _check_spatial_agree(ctx, layers, where, what):
    """`layers` must have equal spatial shapes (also for the probe lengths if unknown)."""
    for size, shapes in ctx.spatial_probe_shapes(layers):
        if len(set(shapes)) > 1:
            given = "" if size is None else f" for an input of spatial size {size}"
            raise ShapeError(f"{where}: {what}; received spatial shapes {shapes}{given}.")


def _build_residual(ctx, incoming, path, block):
    body = _build_sequence(ctx, incoming, f"{path}.body", block.body)
    _check_spatial_agree(
        ctx, [incoming, body], f"{path}.body",
        "a body that keeps the spatial size of its input (input, body output)",
    )  # fmt: skip
    c_in, c_out = incoming.output_shape[1], body.output_shape[1]
    project = block.projection if block.projection is not None else c_in != c_out
    if not project and c_in != c_out:
        raise _field_error(
            ShapeError, f"{path}.projection", "projection",
            f"True or None when the body changes the channels ({c_in} in, {c_out} out)",
            block.projection,
        )  # fmt: skip
    shortcut = incoming
    if project:
        shortcut = _conv(ctx, incoming, path, block, "projection", filters=c_out, kernel=1,
                         padding="valid", bias=False)  # fmt: skip
    out = ctx.layer(ElemwiseSumLayer, [body, shortcut], path, block, "add")
    return _activation(ctx, out, path, block, block.activation)


def _build_parallel(ctx, incoming, path, block):
    outs = [
        _build_sequence(ctx, incoming, f"{path}.branches[{i}]", branch)
        for i, branch in enumerate(block.branches)
    ]
    merge = getattr(block, "merge", "concat")
    _check_spatial_agree(ctx, outs, f"{path}.branches",
                         "branches with equal spatial output sizes")  # fmt: skip
    if merge == "sum":
        channels = [o.output_shape[1] for o in outs]
        if len(set(channels)) > 1:
            raise _field_error(ShapeError, f"{path}.branches", "channels",
                               "branches with equal channels for merge='sum'", channels)  # fmt: skip
        return ctx.layer(ElemwiseSumLayer, outs, path, block, "sum")
    return ctx.layer(ConcatLayer, outs, path, block, "concat", axis=1)


def _build_dilated_stack(ctx, incoming, path, block):
    x = incoming
    for i, d in enumerate(block.dilations):
        fields = {"dilation": f"{path}.dilations[{i}]"}
        out = _conv(
            ctx, x, path, block, f"conv{i}", filters=block.filters, kernel=block.kernel,
            dilation=d, bias=not block.batch_norm, init=block.init, fields=fields,
        )  # fmt: skip
        if block.batch_norm:
            out = ctx.layer(BatchNormLayer, out, path, block, f"bn{i}")
        if block.residual:
            shortcut = x
            if x.output_shape[1] != block.filters:
                shortcut = _conv(ctx, x, path, block, f"projection{i}", filters=block.filters,
                                 kernel=1, padding="valid", bias=False)  # fmt: skip
            out = ctx.layer(ElemwiseSumLayer, [out, shortcut], path, block, f"add{i}")
        out = _activation(ctx, out, path, block, block.activation, f"{block.activation}{i}")
        if block.dropout > 0:
            out = _dropout(ctx, out, path, block, f"dropout{i}", block.dropout, spatial=True)
        x = out
    return x


def _build_context_module(ctx, incoming, path, block):
    c = block.channels
    large = block.variant == "large"
    widths = [w * c for w in CONTEXT_LARGE_WIDTHS] if large else [c] * len(block.dilations)
    if block.init == "identity" and not large and incoming.output_shape[1] != c:
        raise ShapeError(
            f"{path}.channels: the basic context module with init='identity' passes its input "
            f"through, so its input needs channels={c} channels; received an input with "
            f"{incoming.output_shape[1]} channels. Put a Conv(filters={c}) before it, or use "
            "variant='large' or another init."
        )
    base = c if large else None
    x = incoming
    for i, d in enumerate(block.dilations):
        x = _conv(
            ctx, x, path, block, f"conv{i}", filters=widths[i], kernel=block.kernel,
            dilation=d, init=block.init, init_base=base,
            fields={"dilation": f"{path}.dilations[{i}]"},
        )  # fmt: skip
        x = _activation(ctx, x, path, block, block.activation, f"{block.activation}{i}")
    return _conv(ctx, x, path, block, "output", filters=c, kernel=1, padding="valid",
                 init=block.init, init_base=base)  # fmt: skip


def _build_sequential(ctx, incoming, path, block):
    return _build_sequence(ctx, incoming, f"{path}.blocks", block.blocks)


def _build_input(ctx, incoming, path, block):
    raise SpecError(
        f"{path}: an Input block may only be the first block of the model; received "
        f"{block!r} inside it."
    )


_BUILDERS = {
    Input: _build_input,
    Conv: _build_conv,
    DilatedConv: _build_dilated_conv,
    BatchNorm: _build_batch_norm,
    Activation: _build_activation,
    Dropout: _build_dropout,
    Pool: _build_pool,
    Upsample: _build_upsample,
    Classifier: _build_classifier,
    Residual: _build_residual,
    Parallel: _build_parallel,
    Concat: _build_parallel,
    DilatedStack: _build_dilated_stack,
    ContextModule: _build_context_module,
    Sequential: _build_sequential,
}


def _build_block(ctx, incoming, path, block):
    if not isinstance(block, Block):
        raise SpecError(f"{path}: expected a block; received {block!r}.")
    start = len(ctx.made)
    builder = _BUILDERS.get(type(block))
    if builder is not None:
        out = builder(ctx, incoming, path, block)
    else:
        try:
            children = to_blocks(block.expand())
        except NotImplementedError as err:
            raise SpecError(f"{path}: {err}") from None
        if not (isinstance(children, tuple) and children
                and all(isinstance(b, Block) for b in children)):  # fmt: skip
            raise SpecError(
                f"{path}: {type(block).__name__}.expand() must return a block or a non-empty "
                f"list of blocks; received {children!r}."
            )
        out = _build_sequence(ctx, incoming, path, children)
    layers = tuple(layer for _, _, layer in ctx.made[start:])
    ctx.blocks.append((path, block, out, layers))
    return out


def _build_sequence(ctx, incoming, prefix, blocks):
    for i, block in enumerate(blocks):
        incoming = _build_block(ctx, incoming, f"{prefix}[{i}]", block)
    return incoming


def build(spec, spatial=None, batch_size=None) -> Network:
    """Compile a spec into a `Network` (a `dilnet.layers` graph plus paths and receptive fields).

    Parameters
    ----------
    spec : Sequential or list of blocks
        Must start with an `Input` block, which fixes the channels and the rank.
    spatial : tuple of int, optional
        Spatial lengths used instead of the Input block's (e.g. to check a size or to report
        shapes and memory for it).
    batch_size : int, optional
        Fixed batch size of the input layer (default: any).

    Raises
    ------
    SpecError
        A block in the wrong place (an `Input` not first or missing), a field that does not fit
        the model's rank.
    ShapeError
        Blocks that do not fit together: a kernel larger than its input, channels or spatial
        sizes that disagree in residual and parallel blocks.
    """
    if isinstance(spec, list | tuple):
        spec = Sequential(list(spec))
    if not isinstance(spec, Sequential):
        raise SpecError(f"build: expected a Sequential of blocks; received {spec!r}.")
    first = spec.blocks[0]
    if not isinstance(first, Input):
        raise SpecError(
            "blocks[0]: expected an Input block first (it gives the channels and the spatial "
            f"rank, e.g. Input(channels=1, spatial=(None, None, None))); received {first!r}."
        )
    size = first.spatial
    if spatial is not None:
        spatial = tuple(spatial) if not is_int(spatial) else (spatial,) * len(size)
        if len(spatial) != len(size) or not all(
            s is None or (is_int(s) and s > 0) for s in spatial
        ):
            raise _field_error(SpecError, "build", "spatial",
                               f"{len(size)} positive lengths (the Input's rank)", spatial)  # fmt: skip
        size = tuple(s if s is not None else t for s, t in zip(spatial, size, strict=True))
    if batch_size is not None and not (is_int(batch_size) and batch_size > 0):
        raise _field_error(SpecError, "build", "batch_size", "a positive int or None", batch_size)
    input_layer = InputLayer((batch_size, first.channels, *size), name="input")
    ctx = _Context(len(size), input_layer)
    ctx.made.append(("blocks[0]", first, input_layer))
    ctx.blocks.append(("blocks[0]", first, input_layer, (input_layer,)))
    output = _build_sequence_from(ctx, input_layer, spec.blocks)

    fields = receptive_fields(walk(output))
    by_layer = {id(layer): (path, block) for path, block, layer in ctx.made}
    layers = [
        LayerInfo(*by_layer[id(layer)], layer, field, layer_padding(layer))
        for layer, field in fields.items()
    ]
    blocks = [
        BlockInfo(path, block, out, made, fields[out]) for path, block, out, made in ctx.blocks
    ]
    return Network(spec, input_layer, output, layers, blocks)


def _build_sequence_from(ctx, incoming, blocks):
    for i, block in enumerate(blocks[1:], start=1):
        incoming = _build_block(ctx, incoming, f"blocks[{i}]", block)
    return incoming


def _summary(spec, spatial=None, batch_size=1, dtype="float32"):
    if dtype not in ("float32", "float64"):
        raise ConfigError(invalid("Sequential.summary", "dtype", "'float32' or 'float64'", dtype))
    # parameters and the activation memory in `dtype`, as a `Model` of that dtype has them
    with pytensor.config.change_flags(floatX=dtype):
        return format_summary(build(spec, spatial=spatial), batch_size=batch_size)


provide("build", build)
provide("summary", _summary)
